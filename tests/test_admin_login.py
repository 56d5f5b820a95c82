"""`up` ends by saying how to log into /admin/: the URL, the superuser, and the command that
reveals the generated password on request, never the password itself."""

from __future__ import annotations

import io

from rich.console import Console

from deployer import render
from deployer.config import Config


def said(config: Config, *, emulator: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=100_000)
    render.admin_login(
        config, url="https://demo-django-1.europe-west1.run.app", emulator=emulator, out=console
    )
    return buffer.getvalue()


def test_on_google_the_gcloud_command() -> None:
    config = Config("demo", project="acme-prod", superuser={"username": "boss"})
    lines = said(config, emulator=False).splitlines()
    assert lines == [
        "admin: https://demo-django-1.europe-west1.run.app/admin/ as boss (or admin@example.com "
        "when the user model logs in by email)",
        "  password: gcloud secrets versions access latest "
        "--secret=demo-django-superuser-password --project=acme-prod",
    ]


def test_on_the_emulator_the_secret_name() -> None:
    text = said(Config("demo", project="acme-prod"), emulator=True)
    assert "password: in secret demo-django-superuser-password" in text

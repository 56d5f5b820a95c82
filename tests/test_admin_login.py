"""`up` ends by saying how to log into /admin/: the URL, the superuser, and the command that
reveals the generated password on request, never the password itself."""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from deployer import render
from deployer.config import Config
from deployer.emulator.testing import EmulatorHandle
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from tests.test_scenarios import PROJECT, TENANT, up

GETTING_STARTED = Path(__file__).parents[1] / "docs" / "getting-started.md"


def said(config: Config, *, endpoint: str | None) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=100_000)
    render.admin_login(
        config, url="https://demo-django-1.europe-west1.run.app", endpoint=endpoint, out=console
    )
    return buffer.getvalue()


def test_on_google_the_gcloud_command() -> None:
    config = Config("demo", project="acme-prod", superuser={"username": "boss"})
    lines = said(config, endpoint=None).splitlines()
    assert lines == [
        "admin: https://demo-django-1.europe-west1.run.app/admin/ as boss (or admin@example.com "
        "when the user model logs in by email)",
        "  password: gcloud secrets versions access latest "
        "--secret=demo-django-superuser-password --project=acme-prod",
    ]


def test_on_the_emulator_the_gcloud_command_that_reaches_it() -> None:
    """The form docs/getting-started.md gives: gcloud's Secret Manager endpoint overridden to
    the emulator's (with the trailing slash gcloud needs), any token."""
    config = Config("demo", project="djdeploy-demo")
    password = said(config, endpoint="http://127.0.0.1:40001").splitlines()[1]
    assert password == (
        "  password: CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER=http://127.0.0.1:40001/ "
        "CLOUDSDK_AUTH_ACCESS_TOKEN=emulator gcloud secrets versions access latest "
        "--secret=demo-django-superuser-password --project=djdeploy-demo"
    )
    assert password.split("password: ")[1] in GETTING_STARTED.read_text().replace(" \\\n  ", " ")


@pytest.mark.slow  # a whole up, then gcloud
@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed")
def test_the_printed_command_reads_the_password_from_the_emulator(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Run as `up` prints it (a fresh gcloud configuration: no login), gcloud reaches the
    emulator and reads the generated password."""
    code, output = up(emulator)
    assert code == 0, output
    command = next(line for line in output.splitlines() if line.startswith("  password: "))
    words = shlex.split(command.removeprefix("  password: "))
    at = words.index("gcloud")
    env = dict(word.split("=", 1) for word in words[:at])
    run = subprocess.run(
        words[at:],
        env={**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    cloud = Cloud(PROJECT, "europe-west1", ClientFactory(endpoint=emulator.url, project=PROJECT))
    secret = Config(TENANT, project=PROJECT).names.secret_superuser_password
    same = run.stdout == cloud.secrets.access(secret, "latest").reveal()
    assert same, "gcloud read another value"  # neither value shown

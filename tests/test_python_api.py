"""The Python API as docs/python-api.md shows it: tables as plain dicts, the project optional on
the emulator, status() with the URL and health."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployer import Config, Target, plan, status, up
from deployer.config import CronEntry, SecretRef, ServiceConfig, VpcConfig
from deployer.emulator.testing import EmulatorHandle
from deployer.errors import ConfigError


def test_tables_as_plain_dicts() -> None:
    config = Config(
        "acme",
        project="acme-prod",
        service={"memory": "1Gi", "max_instances": 5},
        vpc={"network": "default", "subnetwork": "default"},
        database={"extensions": ["pg_trgm"]},
        secret_env={"STRIPE_KEY": "stripe-key:3", "SENTRY_DSN": {"secret": "sentry"}},
        cron=[{"name": "nightly", "schedule": "0 3 * * *", "command": ["clearsessions"]}],
        domains=["www.example.com"],
    )
    assert config.service == ServiceConfig(memory="1Gi", max_instances=5)
    assert isinstance(config.vpc, VpcConfig) and config.vpc.network == "default"
    assert config.database.extensions == ("pg_trgm",)
    assert config.secret_env["STRIPE_KEY"] == SecretRef("stripe-key", version="3")
    assert config.secret_env["SENTRY_DSN"] == SecretRef("sentry")
    assert config.cron == (CronEntry("nightly", schedule="0 3 * * *", command=("clearsessions",)),)
    # the same object as with the dataclasses: equal, and so the same deployment
    assert config == Config(
        "acme",
        project="acme-prod",
        service=ServiceConfig(memory="1Gi", max_instances=5),
        vpc=VpcConfig(network="default", subnetwork="default"),
        database={"extensions": ("pg_trgm",)},
        secret_env={"STRIPE_KEY": SecretRef("stripe-key", version="3"), "SENTRY_DSN": "sentry"},
        cron=[CronEntry("nightly", schedule="0 3 * * *", command=("clearsessions",))],
        domains=("www.example.com",),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"service": {"memroy": "1Gi"}},
            'unknown key "service.memroy": did you mean "service.memory"?',
        ),
        ({"service": {"memory": "lots"}}, 'service.memory "lots" is invalid'),
        ({"service": 3}, "service 3 is invalid: use a ServiceConfig or a dict of its fields"),
        ({"cron": [{"name": "x"}]}, "cron is invalid: it needs schedule, command"),
    ],
)
def test_bad_tables_are_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Config("acme", project="acme-prod", **kwargs)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_project_is_required_on_google_only(tmp_path: Path) -> None:
    config = Config("acme")
    with pytest.raises(
        ConfigError, match=r'^no project: pass Config\(\.\.\., project="my-project"\)'
    ):
        plan(config)  # refused before any API call: no credentials needed
    changes = plan(config, target=Target(emulator=True, state_dir=tmp_path, execute=False))
    assert {c.step for c in changes} >= {"service", "sql-instance"}


@pytest.mark.slow  # a whole deployment
def test_status_after_up(emulator: EmulatorHandle) -> None:
    config = Config("acme", project="acme-prod", domains=["www.example.com"])
    target = Target(endpoint=emulator.url, time_scale=0.001)
    before = status(config, target=target)
    assert before.url == "" and not before.healthy and before.steps["service"] == "missing"
    assert up(config, target=target).ok
    now = status(config, target=target)
    assert now.healthy and now.in_sync, now.steps
    assert now.url.startswith("https://acme-django-") and now.url.endswith(".europe-west1.run.app")
    assert now.urls[0] == now.url and now.urls[-1] == "https://www.example.com"
    assert any(u.endswith(".a.run.app") for u in now.urls)
    assert "is ready at" in now.health and set(now.steps.values()) == {"ok"}


@pytest.mark.slow  # a whole deployment and its destroy, on the built-in emulator
def test_the_documented_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/python-api.md's first example, as written; the emulator's state in a fresh data
    directory (XDG_DATA_HOME) instead of the user's."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    text = (Path(__file__).parents[1] / "docs" / "python-api.md").read_text()
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match is not None
    printed: list[str] = []
    exec(match.group(1), {"print": lambda *a: printed.append(" ".join(map(str, a)))})
    assert printed[0].startswith("True https://demo-django-")
    assert " True service demo-django is ready at " in printed[1]
    assert printed[2] == "0 step(s) would change"

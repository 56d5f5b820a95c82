"""`status` without --tenant against the emulator (API only): every tenant, its resources, each
service's URL and health, in text and --json, with the same few list calls whatever the number
of tenants."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deployer.api import NOT_SERVED
from deployer.cli import app
from deployer.emulator.testing import EmulatorHandle
from tests.test_scenarios import PROJECT

pytestmark = pytest.mark.slow  # two whole deployments through the CLI


def djdeploy(emulator: EmulatorHandle, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["--endpoint", emulator.url, "--time-scale", "0.001", *args],
        env={"GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_TENANT": ""},
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def test_every_tenant_with_its_url_and_health(emulator: EmulatorHandle) -> None:
    for tenant in ("demo", "shop"):
        code, output = djdeploy(emulator, "up", "--tenant", tenant)
        assert code == 0, output

    before = len(emulator.emu.transcript.entries())
    code, output = djdeploy(emulator, "status", "--json")
    assert code == 0, output
    calls = emulator.emu.transcript.entries()[before:]
    assert all(e["method"] == "GET" for e in calls)
    lists = len(calls)
    doc = json.loads(output)["tenants"]
    assert sorted(doc) == ["demo", "shop"]
    [served] = doc["shop"]["services"]
    assert served["service"] == "shop-django"
    assert served["url"].startswith("https://shop-django-") and served["url"].endswith(".run.app")
    assert served["local_url"] is None and served["health"] == NOT_SERVED
    assert "service shop-django" in doc["shop"]["resources"]

    code, output = djdeploy(emulator, "status")
    assert code == 0, output
    lines = output.splitlines()
    assert any(ln.startswith("demo: ") for ln in lines), output
    assert f"  shop-django: {served['url']} health: {NOT_SERVED}" in lines, output

    # a third tenant costs no more calls
    code, output = djdeploy(emulator, "up", "--tenant", "blog")
    assert code == 0, output
    before = len(emulator.emu.transcript.entries())
    code, output = djdeploy(emulator, "status", "--json")
    assert code == 0 and len(json.loads(output)["tenants"]) == 3
    assert len(emulator.emu.transcript.entries()) - before == lists

"""A new user's first mistakes, through the CLI against the emulator (real clients): a tenant
that is not deployed (misspelt, or never deployed) is said so in one line by status, logs and
destroy, rather than shown as a table of missing steps, nothing, or "kept" resources that do
not exist; an empty log says so; a delete Google refuses fails at once with its reason."""

from __future__ import annotations

import pytest
from click.testing import Result
from typer.testing import CliRunner

from deployer.cli import app
from deployer.emulator.testing import EmulatorHandle
from tests.contract import check_transcript

PROJECT = "acme-new"
TENANT = "demo"


def djdeploy(emulator: EmulatorHandle, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        ["--endpoint", emulator.url, "--time-scale", "0.001", *args],
        env={"GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_TENANT": None},
        catch_exceptions=False,
    )


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_logs_of_an_unknown_tenant_say_the_service_does_not_exist(
    emulator: EmulatorHandle,
) -> None:
    result = djdeploy(emulator, "logs", "--tenant", "nosuch")
    assert result.exit_code == 1, result.output
    line = one_line(result.output)
    assert line.startswith("error: service nosuch-django does not exist in project acme-new")
    assert "`djdeploy status` lists the tenants" in line
    result = djdeploy(emulator, "logs", "--tenant", "nosuch", "--job", "migrate")
    assert result.exit_code == 1, result.output
    assert "job nosuch-django-migrate does not exist" in one_line(result.output)
    assert check_transcript(emulator.control.transcript()) == []


@pytest.mark.slow  # a whole up
def test_logs_with_no_matching_entry_say_so_on_stderr(emulator: EmulatorHandle) -> None:
    assert djdeploy(emulator, "up", "--tenant", TENANT).exit_code == 0
    result = djdeploy(emulator, "logs", "--tenant", TENANT, "--severity", "EMERGENCY", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # --json: stdout stays one entry per line
    assert one_line(result.stderr) == (
        f"no log entries of service {TENANT}-django (at EMERGENCY or worse)"
    )

"""Bad input: one clear line, a non-zero exit, no traceback, no API call, no google import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer.cli import app

PROBE = """
import sys
from typer.testing import CliRunner
from deployer.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print("EXIT", result.exit_code)
print("GOOGLE", sorted(m for m in sys.modules if m.split(".")[0] in ("google", "googleapiclient")))
"""


def run_probe(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    return proc.stdout


@pytest.mark.slow  # a djdeploy process each
@pytest.mark.parametrize(
    "args",
    [["--help"], ["up", "--help"], ["--version"], ["up", "--tenant", "Demo_1", "--emulator"]],
)
def test_help_version_and_config_errors_import_no_google(args: list[str], tmp_path: Path) -> None:
    if "--emulator" in args:
        args = ["--emulator", *[a for a in args if a != "--emulator"]]
    output = run_probe(*args, cwd=tmp_path)
    assert "GOOGLE []" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--tenant", "Demo_1"], 'tenant "Demo_1" is invalid'),
        (["up", "--tenant", "demo", "--region", "mars-1"], "mars-1"),
        (["plan", "--tenant", "demo", "--region", "mars-1"], "mars-1"),
        (["destroy", "--tenant", "demo", "--project", "X"], "project"),
        (["up"], "no tenant"),
        (["up", "--tenant", "demo", "--source", "/nonexistent"], "/nonexistent"),
        (["up", "--tenant", "demo", "--endpoint", "notaurl"], 'endpoint "notaurl"'),
        (["up", "--tenant", "demo", "--time-scale", "0"], "time scale 0"),
        (["plan", "--tenant", "demo", "--time-scale", "-1"], "time scale -1"),
        (["--request-timeout", "0", "up", "--tenant", "demo"], "request timeout 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("GOOGLE_CLOUD_PROJECT", "DJDEPLOY_TENANT", "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(app, ["--emulator", *args])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_bad_memory_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DJDEPLOY_SERVICE_MEMORY", "lots")
    result = CliRunner().invoke(app, ["--emulator", "up", "--tenant", "demo"])
    assert result.exit_code == 1
    assert "memory" in result.output and "lots" in result.output
    assert "DJDEPLOY_SERVICE_MEMORY" in result.output


def test_bad_value_in_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "djdeploy.toml").write_text('tenant = "demo"\n[service]\nmax_instances = -1\n')
    result = CliRunner().invoke(app, ["--emulator", "plan"])
    assert result.exit_code == 1
    assert "max_instances" in result.output and "djdeploy.toml" in result.output


def test_time_scale_needs_an_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["up", "--tenant", "demo", "--project", "acme-prod", "--time-scale", "0.01"]
    )
    assert result.exit_code == 1
    assert "--time-scale only applies to an emulator" in result.output


def test_an_unrelated_djdeploy_variable_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DJDEPLOY_VERBOSE", "1")
    monkeypatch.setenv("DJDEPLOY_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(app, ["--emulator", "status", "--tenant", "demo"])
    assert result.exit_code == 1, result.output  # no tenant demo yet
    assert "error: no tenant demo is deployed" in result.output
    assert f"state {tmp_path / 'state'})" in result.output  # the emulator it started
    assert "DJDEPLOY_VERBOSE" not in result.output


def test_a_misspelt_djdeploy_variable_is_named_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DJDEPLOY_SERVICE_MEMRY", "1Gi")
    monkeypatch.setenv("DJDEPLOY_VERBOSE", "1")
    result = CliRunner().invoke(
        app, ["plan", "--tenant", "demo", "--project", "acme-prod", "--region", "nowhere-1"]
    )
    assert result.exit_code == 1  # the bad region stops it; the warning came first
    assert result.stderr.startswith(
        "DJDEPLOY_SERVICE_MEMRY is not a djdeploy setting "
        "(did you mean DJDEPLOY_SERVICE_MEMORY?): ignored\n"
    )
    assert "DJDEPLOY_VERBOSE" not in result.output


def test_source_without_manage_py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    result = CliRunner().invoke(app, ["--emulator", "up", "--tenant", "demo", "--source", "proj"])
    assert result.exit_code == 1
    assert "manage.py" in result.output


MARKUP = ("[/x]", "[bold]x", "[red]", "x[/]")


@pytest.mark.parametrize("text", MARKUP)
@pytest.mark.parametrize(
    "channel",
    [
        "--tenant",
        "--project",
        "--region",
        "--source",
        "--app",
        "--config",
        "--endpoint",
        "DJDEPLOY_TENANT",
        "DJDEPLOY_REGION",
        "DJDEPLOY_SERVICE_MEMORY",
        "djdeploy.toml tenant",
        "djdeploy.toml [env] key",
        "djdeploy.toml [service] memory",
        "pyproject.toml region",
    ],
)
def test_markup_like_text_comes_back_exactly(
    channel: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """User text is never read as Rich markup: no crash on "[/x]", no "[bold]x" shown as x,
    no hint in brackets lost."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    args = ["--emulator", "plan"]
    if channel.startswith("--"):
        args += [channel, text]
    elif channel.startswith("DJDEPLOY_"):
        monkeypatch.setenv(channel, text)
    elif channel == "djdeploy.toml tenant":
        (tmp_path / "djdeploy.toml").write_text(f"tenant = {json.dumps(text)}\n")
    elif channel == "djdeploy.toml [env] key":
        (tmp_path / "djdeploy.toml").write_text(f'[env]\n{json.dumps(text)} = "v"\n')
    elif channel == "djdeploy.toml [service] memory":
        (tmp_path / "djdeploy.toml").write_text(f"[service]\nmemory = {json.dumps(text)}\n")
    else:
        (tmp_path / "pyproject.toml").write_text(f"[tool.djdeploy]\nregion = {json.dumps(text)}\n")
    if "tenant" not in channel.lower():
        args += ["--tenant", "demo"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert text in lines[0]


def test_a_hint_in_brackets_is_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "djdeploy.toml").write_text('tenant = "demo"\nenv = "x"\n')
    result = CliRunner().invoke(app, ["--emulator", "plan"])
    assert result.exit_code == 1
    assert "must be a table ([env])" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["manage", "--tenant", "demo"], "no management command given"),
        (["manage", "--tenant", "demo", "--", "shell"], "shell"),
        (["rollback", "--tenant", "demo", "--undo", "--to", "r1"], "leave out --to"),
        (["destroy", "--tenant", "demo", "--delete-data"], "not confirmed: nothing was deleted"),
        (["secrets", "rotate", "--tenant", "demo", "--secret", "x"], "--secret 'x'"),
        (["logs", "--tenant", "demo", "--since", "soon"], "--since 'soon'"),
    ],
)
def test_emulator_commands_refuse_bad_input_before_starting_it(
    args: list[str], message: str, tmp_path: Path
) -> None:
    """--emulator: the refusal comes before the background emulator starts (no daemon, not
    even its state directory)."""
    state = tmp_path / "state"
    result = CliRunner().invoke(app, ["--emulator", "--state-dir", str(state), *args], input="n\n")
    assert result.exit_code == 1, result.output
    assert "error: " in result.output and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not state.exists(), result.output

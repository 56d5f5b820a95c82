"""`djdeploy --help` costs about what `import typer` does (issue 11; figures in bench/README.md):
the help imports none of what only the commands need. Structural, not timed: the modules a
whole `python -X importtime -m deployer ... --help` process imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: what only a command's body needs: the API layer and what it loads, the emulator, the Google
#: clients, typer's value coercion (pydantic) and the consoles (rich)
FORBIDDEN = (
    "deployer.api",
    "deployer.config",
    "deployer.emulator",
    "deployer.render",
    "google",
    "googleapiclient",
    "pydantic",
    "rich",
)


def imported(*args: str, cwd: Path, code: int = 0) -> tuple[str, list[str]]:
    """The whole process's output and the modules it imported (-X importtime's report)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJDEPLOY_")}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "deployer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )
    assert proc.returncode == code, proc.stderr[-2000:]
    return proc.stdout + proc.stderr, [
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and not line.endswith("| package")
    ]


@pytest.mark.parametrize(
    "args", [["--help"], ["up", "--help"], ["-h"], ["emulator", "serve", "--help"]]
)
def test_help_imports_only_what_it_shows(args: list[str], tmp_path: Path) -> None:
    out, modules = imported(*args, cwd=tmp_path)
    assert out.startswith("Usage: djdeploy"), out
    assert "deployer.cli" in modules and "typer" in modules
    heavy = [
        m for m in modules if m in FORBIDDEN or m.startswith(tuple(f + "." for f in FORBIDDEN))
    ]
    assert heavy == []


def test_options_given_as_strings_and_paths_cost_no_pydantic(tmp_path: Path) -> None:
    """A command's string and path options are taken as typer would (no TypeAdapter built):
    every option here is one, and the command gets as far as its source check."""
    out, modules = imported(
        *("--endpoint", "http://127.0.0.1:9", "--state-dir", str(tmp_path), "-v"),
        *("up", "--tenant", "demo", "--project", "bench-proj", "--app", "web"),
        *("--source", str(tmp_path)),
        cwd=tmp_path,
        code=1,
    )
    assert "error: " in out.splitlines()[-1], out
    assert [m for m in modules if m == "pydantic" or m.startswith("pydantic.")] == []


def test_a_number_is_still_checked(tmp_path: Path) -> None:
    out, _ = imported("--time-scale", "fast", "status", cwd=tmp_path, code=1)
    assert "Invalid value for '--time-scale'" in out, out


def test_the_background_emulators_client_imports_no_server(tmp_path: Path) -> None:
    """An `--emulator` command talks to the background emulator through ``daemon`` (and reads
    its front door's port): neither imports the emulator's server, APIs or realizers."""
    probe = (
        "import sys, deployer.emulator.daemon, deployer.emulator.local.frontdoor; "
        "print(*sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    loaded = set(proc.stdout.split())
    heavy = {
        "deployer.emulator.server",
        "deployer.emulator.admin",
        "deployer.emulator.local.realizers",
    }
    assert loaded & heavy == set()


def built(args: list[str]) -> list[str]:
    """The commands typer builds for a run given ``args``."""
    import typer.main

    from deployer.cli import for_args

    return sorted(typer.main.get_command(for_args(args)).commands)  # type: ignore[attr-defined]


def test_a_run_builds_only_the_commands_its_arguments_name() -> None:
    """typer builds each command's options on every run; a run builds the ones named, all of
    them (an option's value may be a command's name), and the whole app for help or none."""
    assert built(["--emulator", "up", "--tenant", "demo"]) == ["up"]
    assert built(["--state-dir", "up", "status", "--json"]) == ["status", "up"]
    assert built(["emulator", "stop"]) == ["emulator"]
    everything = built([])
    assert len(everything) > 10
    assert built(["up", "--help"]) == built(["statu"]) == built(["--version"]) == everything


@pytest.mark.parametrize(
    "args", [["up", "--bogus"], ["statu"], ["up", "--json", "--time-scale", "x"], ["emulator"]]
)
def test_a_run_of_some_commands_says_what_the_whole_app_says(args: list[str]) -> None:
    from typer.testing import CliRunner

    from deployer.cli import app, for_args

    whole = CliRunner().invoke(app, args)
    some = CliRunner().invoke(for_args(args), args)
    assert (some.exit_code, some.output) == (whole.exit_code, whole.output)


def test_the_help_says_which_command_to_run_first() -> None:
    from typer.testing import CliRunner

    from deployer.cli import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # click wraps the epilog
    assert "Start here: `djdeploy up --tenant demo --emulator`" in text
    assert "`djdeploy init` in its directory" in text

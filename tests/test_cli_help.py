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


def imported(*args: str, cwd: Path) -> list[str]:
    """The modules the whole process imported, from -X importtime's report on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJDEPLOY_")}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "deployer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=True,
    )
    assert proc.stdout.startswith("Usage: djdeploy"), proc.stdout
    return [
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and not line.endswith("| package")
    ]


@pytest.mark.parametrize(
    "args", [["--help"], ["up", "--help"], ["-h"], ["emulator", "serve", "--help"]]
)
def test_help_imports_only_what_it_shows(args: list[str], tmp_path: Path) -> None:
    modules = imported(*args, cwd=tmp_path)
    assert "deployer.cli" in modules and "typer" in modules
    heavy = [
        m for m in modules if m in FORBIDDEN or m.startswith(tuple(f + "." for f in FORBIDDEN))
    ]
    assert heavy == []

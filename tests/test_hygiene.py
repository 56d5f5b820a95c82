"""The test suite's own rules: the route-coverage guard (tests/conftest.py) stays quiet on runs
that do not run every emulator test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUARD_TITLE = "discovery contract coverage"


@pytest.mark.slow  # a pytest process each
@pytest.mark.parametrize(
    "args",
    [
        ["--collect-only", "tests/emulator"],
        ["-k", "test_fixture_serves_and_enables", "tests/emulator"],
    ],
    ids=["collect-only", "keyword"],
)
def test_the_coverage_guard_ignores_partial_runs(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert GUARD_TITLE not in proc.stdout

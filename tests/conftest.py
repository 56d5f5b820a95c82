import sys
from pathlib import Path

import pytest

# make `tests.*` importable (e.g. `from tests.contract import check_transcript`)
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = ["deployer.emulator.testing"]

# -- the discovery-contract coverage guard -------------------------------------------------------
#
# tests.contract.check_transcript records every emulator route whose exchanges it validated. When
# the whole tests/emulator directory ran (every file, nothing deselected, no single-test ids) and
# passed, a route the emulator serves that no test validated fails the session (allowlist:
# tests.contract.UNVALIDATABLE_ROUTES). Running a subset (`pytest tests/emulator/test_run.py`)
# never triggers it.

_EMULATOR_TESTS = Path(__file__).resolve().parent / "emulator"
_GUARD: dict[str, object] = {"deselected": False, "missing": []}


def pytest_deselected(items: list[pytest.Item]) -> None:
    _GUARD["deselected"] = True


def _whole_emulator_dir_ran(session: pytest.Session) -> bool:
    if _GUARD["deselected"] or any("::" in str(a) for a in session.config.args):
        return False
    files = {Path(str(item.path)).resolve() for item in session.items}
    wanted = set(_EMULATOR_TESTS.glob("test_*.py"))
    return bool(wanted) and wanted <= files


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus != 0 or not _whole_emulator_dir_ran(session):
        return
    from tests.contract import unvalidated_routes

    missing = unvalidated_routes()
    if missing:
        _GUARD["missing"] = missing
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    missing = _GUARD["missing"]
    if missing:
        terminalreporter.section("discovery contract coverage", sep="=", red=True, bold=True)
        terminalreporter.line(
            "FAILED: these emulator routes were never validated by tests.contract."
            "check_transcript (add a test that drives them, or allowlist them in "
            "tests.contract.UNVALIDATABLE_ROUTES with the reason):"
        )
        for method, template in missing:  # type: ignore[attr-defined]
            terminalreporter.line(f"  {method} {template}")

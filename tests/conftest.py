import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# make `tests.*` importable (e.g. `from tests.contract import check_transcript`)
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = ["deployer.emulator.testing"]

# -- background emulators ------------------------------------------------------------------------
#
# `--emulator` starts a background emulator per state dir (deployer/emulator/daemon.py) that
# outlives the command. No test may leave one behind: the user's data dir (the default state dir)
# is a directory of the session's own, each test's daemons under its tmp_path are stopped at its
# teardown, and at the end every one left under the session's temporary directory.


def _stop_daemons_under(root: Path, depth: int) -> None:
    from deployer.emulator import daemon

    for level in range(depth + 1):
        for found in root.glob("/".join(["*"] * level + [daemon.INFO_NAME])):
            daemon.stop(found.parent)


@pytest.fixture(scope="session", autouse=True)
def _session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default state dir (platformdirs' user data dir) is the session's own."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(base / "xdg-data"))
        yield
    _stop_daemons_under(base, depth=3)


@pytest.fixture(autouse=True)
def _no_daemon_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop the background emulators a test started under its tmp_path."""
    yield
    tmp_path = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if isinstance(tmp_path, Path):
        _stop_daemons_under(tmp_path, depth=5)  # HOME=tmp_path: .local/share/djdeploy/emulator


# -- the discovery-contract coverage guard -------------------------------------------------------
#
# tests.contract.check_transcript records every emulator route whose exchanges it validated. When
# every test of every tests/emulator file ran and the session passed, a route the emulator serves
# that no test validated fails the session (allowlist: tests.contract.UNVALIDATABLE_ROUTES). Any
# partial run never triggers it: --collect-only, a file subset, node ids, -k / -m / --deselect /
# --lf (anything deselected), or a run stopped early (-x, Ctrl-C).

_EMULATOR_TESTS = Path(__file__).resolve().parent / "emulator"


@dataclass
class _Guard:
    deselected: bool = False
    ran: set[str] = field(default_factory=set)  # node ids run to their teardown (skips too)
    missing: list[tuple[str, str]] = field(default_factory=list)


_GUARD = pytest.StashKey[_Guard]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_GUARD] = _Guard()


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[_GUARD].deselected = True


def pytest_runtest_teardown(item: pytest.Item) -> None:
    item.config.stash[_GUARD].ran.add(item.nodeid)


def _whole_emulator_dir_ran(session: pytest.Session) -> bool:
    guard = session.config.stash[_GUARD]
    if session.config.option.collectonly or guard.deselected:
        return False
    if any("::" in str(a) for a in session.config.args):
        return False
    emulator_items = [i for i in session.items if _EMULATOR_TESTS in Path(str(i.path)).parents]
    files = {Path(str(item.path)).resolve() for item in emulator_items}
    wanted = set(_EMULATOR_TESTS.glob("test_*.py"))
    every_file = bool(wanted) and wanted <= files
    return every_file and all(item.nodeid in guard.ran for item in emulator_items)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus != 0 or not _whole_emulator_dir_ran(session):
        return
    from tests.contract import unvalidated_routes

    missing = unvalidated_routes()
    if missing:
        session.config.stash[_GUARD].missing = missing
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    missing = config.stash[_GUARD].missing
    if missing:
        terminalreporter.section("discovery contract coverage", sep="=", red=True, bold=True)
        terminalreporter.line(
            "FAILED: these emulator routes were never validated by tests.contract."
            "check_transcript (add a test that drives them, or allowlist them in "
            "tests.contract.UNVALIDATABLE_ROUTES with the reason):"
        )
        for method, template in missing:
            terminalreporter.line(f"  {method} {template}")

"""local/workers.py on its own: a worker pool's instance that exits is started again (its exit
said as Cloud Run says it), a tried revision fails when an instance exits before its start period
(on an injected clock that stands still: no timing window) and starts once the clock passes it,
and stopping the pool leaves no process. Plain ``sh`` processes: no image, no API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deployer.emulator.local.processes import Spec, Supervisor
from deployer.emulator.local.workers import FAILED, STARTED, STARTING, LocalWorkers, PoolPlan

pytestmark = pytest.mark.slow

WAIT = 60.0


def eventually(condition: Callable[[], object], what: str) -> None:
    """Wait until ``condition()`` holds (the bound only ends a test that would hang)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    supervisor = Supervisor(tmp_path / "processes")
    yield supervisor
    supervisor.close()
    assert list((tmp_path / "processes").glob("*.json")) == []


@pytest.fixture
def workers(supervisor: Supervisor) -> Iterator[LocalWorkers]:
    workers = LocalWorkers(supervisor)
    yield workers
    workers.stop_all()


def running(supervisor: Supervisor) -> list[str]:
    return sorted(p.spec.what for p in supervisor.running())


def test_an_exited_instance_is_restarted_and_stop_leaves_nothing(
    tmp_path: Path, supervisor: Supervisor, workers: LocalWorkers
) -> None:
    events: list[tuple[int, str, str]] = []
    lines: list[str] = []
    lock = threading.Lock()

    def on_event(index: int, severity: str, text: str) -> None:
        with lock:
            events.append((index, severity, text))

    def spec(index: int) -> Spec:
        script = f"echo started {index}; exit 3" if index == 0 else "exec sleep 600"
        return Spec(argv=["/bin/sh", "-c", script], env={}, cwd=tmp_path, what=f"w/{index}")

    plan = PoolPlan(
        spec=spec,
        on_line=lambda _i: lambda _s, line: lines.append(line),
        on_event=on_event,
        clock=lambda: 0.0,
        start_period=10.0,
    )
    workers.run("pool", revision="r1", count=2, plan=lambda: plan)
    eventually(
        lambda: (
            events.count((0, "ERROR", "Container called exit(3).")) >= 2
            and "w/1" in running(supervisor)
        ),
        "two exits of instance 0 while instance 1 runs",
    )
    supervisor.flush()  # every line read so far handed on
    assert lines.count("started 0") >= 2
    assert all(index == 0 for index, _, _ in events)  # the sleeping instance runs on
    assert running(supervisor) in (["w/1"], ["w/0", "w/1"])
    workers.stop("pool")
    eventually(lambda: running(supervisor) == [], "the pool's processes to stop")


def test_a_trial_fails_on_an_early_exit_and_starts_once_its_period_passed(
    tmp_path: Path, supervisor: Supervisor, workers: LocalWorkers
) -> None:
    now = [0.0]  # the injected clock: it moves only when the test moves it

    def plan(script: str) -> PoolPlan:
        return PoolPlan(
            spec=lambda i: Spec(["/bin/sh", "-c", script], env={}, cwd=tmp_path, what=f"w/{i}"),
            on_line=lambda _i: lambda _s, _l: None,
            on_event=lambda _i, _s, _t: None,
            clock=lambda: now[0],
            start_period=5.0,
        )

    def state(revision: str, script: str) -> str:
        return workers.trial("pool", revision=revision, count=2, plan=lambda: plan(script)).state

    good = "exec sleep 600"
    workers.run("pool", revision="r1", count=1, plan=lambda: plan(good))
    # an instance whose process exits at once fails the trial, whatever the clock says
    bad = "echo nope >&2; exit 3"
    eventually(lambda: state("r2", bad) == FAILED, "the trial of r2 to fail")
    failed = workers.trial("pool", revision="r2", count=2, plan=lambda: plan(bad))
    assert failed.exit_code == 3 and failed.index in (0, 1)
    workers.abandon("pool", "r2")
    eventually(lambda: running(supervisor) == ["w/0"], "r1's instance alone")

    # instances that stay up: starting while the clock stands still, started once it moved
    assert state("r3", good) == STARTING
    now[0] = 5.0
    eventually(lambda: state("r3", good) == STARTED, "the trial of r3 to start")
    before = {p.pid for p in supervisor.running()}  # r1's instance and r3's two
    workers.run("pool", revision="r3", count=2, plan=lambda: plan("exit 1"))  # its trial's
    eventually(lambda: len(supervisor.running()) == 2, "r1's instance to stop")
    assert {p.pid for p in supervisor.running()} < before  # r3's own, not started again

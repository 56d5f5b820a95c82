"""local/workers.py on its own: a worker pool's instance that exits is started again (its exit
said as Cloud Run says it), and stopping the pool leaves no process. Plain ``sh`` processes: no
image, no API."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from deployer.emulator.local.processes import Spec, Supervisor
from deployer.emulator.local.workers import LocalWorkers, PoolPlan

pytestmark = pytest.mark.slow

WAIT = 60.0


def test_an_exited_instance_is_restarted_and_stop_leaves_nothing(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "processes")
    workers = LocalWorkers(supervisor)
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
        spec=spec, on_line=lambda _i: lambda _s, line: lines.append(line), on_event=on_event
    )
    try:
        workers.run("pool", revision="r1", count=2, plan=lambda: plan)
        deadline = time.monotonic() + WAIT
        while events.count((0, "ERROR", "Container called exit(3).")) < 2 or "w/1" not in {
            p.spec.what for p in supervisor.running()
        }:
            assert time.monotonic() < deadline, events
            time.sleep(0.05)
        supervisor.flush()  # every line read so far handed on
        assert lines.count("started 0") >= 2
        assert all(index == 0 for index, _, _ in events)  # the sleeping instance runs on
        assert [p.spec.what for p in supervisor.running()] in (
            ["w/1"],
            ["w/0", "w/1"],
            ["w/1", "w/0"],
        )
        workers.stop("pool")
        deadline = time.monotonic() + WAIT
        while supervisor.running():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        workers.stop_all()
        supervisor.close()
    assert list((tmp_path / "processes").glob("*.json")) == []

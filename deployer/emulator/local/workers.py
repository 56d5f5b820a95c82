"""Cloud Run worker pools run locally: a pool's instances (``manualInstanceCount``) are processes
running its ready revision, each restarted when it exits, after a back-off that doubles from
RESTART_SECONDS up to RESTART_MAX_SECONDS, as Cloud Run restarts a crashed instance
(docs/emulator.md, "Jobs and services"). A new revision's instances replace the previous
revision's; a changed count starts or stops instances of the same revision.

No port, no probe: a worker pool receives no requests. One thread per instance keeps its process
running. Nothing here knows the APIs: the backend hands in how to make an instance's process and
where its lines go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .processes import OnLine, Process, Spec, Supervisor

#: the first restart's delay after an instance exited (real seconds); doubled each time in a
#: row, up to RESTART_MAX_SECONDS
RESTART_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
#: how often an instance's thread looks at its process (a bounded reaction time)
TICK_SECONDS = 0.1


@dataclass(frozen=True)
class PoolPlan:
    """How to run a revision of a worker pool: ``spec(index)`` is instance ``index``'s process,
    ``on_line(index)`` its output's destination, ``on_event(index, severity, text)`` the
    platform's own lines about it (exits)."""

    spec: Callable[[int], Spec]
    on_line: Callable[[int], OnLine]
    on_event: Callable[[int, str, str], None]


class WorkerInstance:
    """One instance of a worker pool's revision: its process, restarted whenever it exits."""

    def __init__(self, supervisor: Supervisor, plan: PoolPlan, index: int) -> None:
        self.supervisor = supervisor
        self.plan = plan
        self.index = index
        self.restarts = 0
        self.process: Process | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_running, daemon=True)
        self._thread.name = f"djdeploy-worker-{index}"
        self._thread.start()

    def _start(self) -> Process | None:
        try:
            proc = self.supervisor.start(
                self.plan.spec(self.index), on_line=self.plan.on_line(self.index)
            )
        except OSError as exc:  # nothing to run: as an exit, restarted after the back-off
            self.plan.on_event(self.index, "ERROR", f"exec: {exc.strerror}: {exc.filename}")
            return None
        self.process = proc
        if self._stop.is_set():  # stopped while it started
            self.supervisor.stop(proc)
        return proc

    def _keep_running(self) -> None:
        delay = RESTART_SECONDS
        while not self._stop.is_set():
            proc = self._start()
            while proc is not None and proc.alive() and not self._stop.wait(TICK_SECONDS):
                pass
            if self._stop.is_set():
                return
            if proc is not None:
                code = proc.poll()
                for reader in proc.readers:
                    reader.join()  # its last lines before its exit line
                self.supervisor.forget(proc)
                self.plan.on_event(self.index, "ERROR" if code else "INFO", EXITED.format(code))
            self.restarts += 1
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, RESTART_MAX_SECONDS)

    def stop(self, *, wait: bool) -> None:
        self._stop.set()
        proc = self.process
        if proc is not None:
            self.supervisor.stop(proc, wait=wait)
        if wait:
            self._thread.join()


#: Cloud Run's line when a container exits
EXITED = "Container called exit({})."


@dataclass
class _Pool:
    revision: str
    plan: PoolPlan
    instances: list[WorkerInstance]


class LocalWorkers:
    """The worker pools running here, by pool name."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()

    def run(self, pool: str, *, revision: str, count: int, plan: Callable[[], PoolPlan]) -> None:
        """Run ``count`` instances of ``revision`` of ``pool`` (from ``plan()`` when it does not
        run it yet): the instances of its previous revision stop (in the background: called
        inside a store transaction), and those beyond ``count`` too."""
        with self._lock:
            found = self._pools.get(pool)
            stopping: list[WorkerInstance] = []
            if found is not None and found.revision != revision:
                stopping = found.instances
                found = None
            if found is None:
                found = self._pools[pool] = _Pool(revision, plan(), [])
            stopping += found.instances[count:]
            del found.instances[count:]
            for index in range(len(found.instances), count):
                found.instances.append(WorkerInstance(self.supervisor, found.plan, index))
        for instance in stopping:
            instance.stop(wait=False)

    def revision(self, pool: str) -> str | None:
        """The revision of ``pool`` running here, if any."""
        with self._lock:
            found = self._pools.get(pool)
            return None if found is None else found.revision

    def stop(self, pool: str) -> None:
        """Stop the pool's instances (in the background: called inside a store transaction)."""
        with self._lock:
            found = self._pools.pop(pool, None)
        for instance in [] if found is None else found.instances:
            instance.stop(wait=False)

    def stop_all(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        threads = [
            threading.Thread(target=i.stop, kwargs={"wait": True})
            for p in pools
            for i in p.instances
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

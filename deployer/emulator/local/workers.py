"""Cloud Run worker pools run locally: a pool's instances (``manualInstanceCount``) are processes
running its ready revision, each restarted when it exits, after a back-off that doubles from
RESTART_SECONDS up to RESTART_MAX_SECONDS, as Cloud Run restarts a crashed instance
(docs/emulator.md, "Jobs and services").

A deploy's new revision is tried first (:meth:`LocalWorkers.trial`): its instances run beside
the ready revision's, and it has started once each has stayed up for the plan's start period
(read on the plan's clock); one whose first process exits before that fails it (the deploy
then stops them, :meth:`LocalWorkers.abandon`, and the ready revision runs on). A started trial
becomes the running revision (:meth:`LocalWorkers.run`), whose instances replace the previous
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
#: an instance's (and a trial's) states
STARTING, STARTED, FAILED = "starting", "started", "failed"
#: the exit code of an instance whose program could not be started (a shell's "command not found")
NOT_STARTED = 127


@dataclass(frozen=True)
class PoolPlan:
    """How to run a revision of a worker pool: ``spec(index)`` is instance ``index``'s process,
    ``on_line(index)`` its output's destination, ``on_event(index, severity, text)`` the
    platform's own lines about it (exits); an instance has started once its first process has
    stayed up ``start_period`` seconds of ``clock``."""

    spec: Callable[[int], Spec]
    on_line: Callable[[int], OnLine]
    on_event: Callable[[int, str, str], None]
    clock: Callable[[], float]
    start_period: float


@dataclass(frozen=True)
class Trial:
    """Where a tried revision stands: STARTING, STARTED (every instance stayed up its start
    period) or FAILED (instance ``index``'s first process exited with ``exit_code`` before)."""

    state: str
    index: int = 0
    exit_code: int = 0


class WorkerInstance:
    """One instance of a worker pool's revision: its process, restarted whenever it exits."""

    def __init__(self, supervisor: Supervisor, plan: PoolPlan, index: int) -> None:
        self.supervisor = supervisor
        self.plan = plan
        self.index = index
        self.restarts = 0
        self.state = STARTING
        self.exit_code = 0  # FAILED: how its first process ended
        self.process: Process | None = None
        self._since = plan.clock()
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

    def _stayed_up(self) -> None:
        """STARTED once its first process has stayed up for the start period."""
        if self.state == STARTING and self.plan.clock() - self._since >= self.plan.start_period:
            self.state = STARTED

    def _exited(self, code: int) -> None:
        self._stayed_up()
        if self.state == STARTING:  # its first process did not stay up
            self.exit_code, self.state = code, FAILED

    def _keep_running(self) -> None:
        delay = RESTART_SECONDS
        while not self._stop.is_set():
            proc = self._start()
            while proc is not None and proc.alive() and not self._stop.wait(TICK_SECONDS):
                self._stayed_up()
            if self._stop.is_set():
                return
            if proc is None:
                self._exited(NOT_STARTED)
            else:
                code = proc.poll() or 0
                for reader in proc.readers:
                    reader.join()  # its last lines before its exit line
                self.supervisor.forget(proc)
                self.plan.on_event(self.index, "ERROR" if code else "INFO", EXITED.format(code))
                self._exited(code)
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

    def trial(self) -> Trial:
        failed = next((i for i in self.instances if i.state == FAILED), None)
        if failed is not None:
            return Trial(FAILED, failed.index, failed.exit_code)
        if all(i.state == STARTED for i in self.instances):
            return Trial(STARTED)
        return Trial(STARTING)

    def stop(self, *, wait: bool) -> None:
        for instance in self.instances:
            instance.stop(wait=wait)


class LocalWorkers:
    """The worker pools running here (by pool name), and the revisions being tried."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._pools: dict[str, _Pool] = {}
        self._trials: dict[str, _Pool] = {}
        self._lock = threading.Lock()

    def run(self, pool: str, *, revision: str, count: int, plan: Callable[[], PoolPlan]) -> None:
        """Run ``count`` instances of ``revision`` of ``pool`` (its trial's when it was tried,
        else from ``plan()`` when it does not run it yet): the instances of its previous
        revision stop (in the background: called inside a store transaction), and those beyond
        ``count`` too."""
        with self._lock:
            found = self._pools.get(pool)
            stopping: list[WorkerInstance] = []
            if found is not None and found.revision != revision:
                stopping = found.instances
                found = None
            if found is None:
                tried = self._trials.get(pool)
                if tried is not None and tried.revision == revision:
                    found = self._trials.pop(pool)
                else:
                    found = _Pool(revision, plan(), [])
                self._pools[pool] = found
            stopping += found.instances[count:]
            del found.instances[count:]
            for index in range(len(found.instances), count):
                found.instances.append(WorkerInstance(self.supervisor, found.plan, index))
        for instance in stopping:
            instance.stop(wait=False)

    def trial(self, pool: str, *, revision: str, count: int, plan: Callable[[], PoolPlan]) -> Trial:
        """Try ``count`` instances of ``revision`` of ``pool`` beside its running ones (started
        from ``plan()`` unless they run: a trial of another revision, a later deploy's, replaces
        an earlier one); where the trial stands."""
        with self._lock:
            found = self._trials.get(pool)
            replaced = None
            if found is None or found.revision != revision:
                replaced = found
                made = plan()
                instances = [WorkerInstance(self.supervisor, made, i) for i in range(count)]
                found = self._trials[pool] = _Pool(revision, made, instances)
            trial = found.trial()
        if replaced is not None:
            replaced.stop(wait=False)
        return trial

    def abandon(self, pool: str, revision: str) -> None:
        """Stop the trial of ``revision`` of ``pool`` (it failed; in the background)."""
        with self._lock:
            found = self._trials.get(pool)
            if found is None or found.revision != revision:
                return
            del self._trials[pool]
        found.stop(wait=False)

    def revision(self, pool: str) -> str | None:
        """The revision of ``pool`` running here, if any."""
        with self._lock:
            found = self._pools.get(pool)
            return None if found is None else found.revision

    def stop(self, pool: str) -> None:
        """Stop the pool's instances, its trial's too (in the background: called inside a store
        transaction)."""
        with self._lock:
            found = [p for p in (self._pools.pop(pool, None), self._trials.pop(pool, None)) if p]
        for p in found:
            p.stop(wait=False)

    def stop_all(self) -> None:
        with self._lock:
            pools = [*self._pools.values(), *self._trials.values()]
            self._pools, self._trials = {}, {}
        threads = [
            threading.Thread(target=i.stop, kwargs={"wait": True})
            for p in pools
            for i in p.instances
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

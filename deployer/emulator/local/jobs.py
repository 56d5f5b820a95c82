"""A Cloud Run job execution run locally: ``taskCount`` tasks, at most ``parallelism`` at a time,
each a process; a task that exits non-zero or outlives its timeout is run again up to
``maxRetries`` times (docs/emulator.md, "Jobs and services").

One thread per execution drives its tasks, so timeouts hold whether or not anybody polls; the
Run backend's completer reads :meth:`ExecutionRun.results` (None while running). Nothing here
knows the APIs: the backend hands in how to make a task's process and where its lines go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .processes import OnLine, Process, Spec, Supervisor

#: how often the driver looks at its running tasks (bounded reaction time, not a timing
#: assumption: results are read once every task is over)
POLL_SECONDS = 0.05


#: the exit code of a task whose program could not be started (a shell's "command not found")
NOT_STARTED = 127


@dataclass(frozen=True)
class TaskResult:
    """How task ``index`` ended, after ``retried`` retries: its last attempt's exit code (None:
    cancelled before it ended), and whether that attempt hit the task timeout."""

    index: int
    exit_code: int | None
    retried: int
    timed_out: bool = False
    cancelled: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class TaskPlan:
    """An execution's shape: ``spec(index, attempt)`` is a task attempt's process,
    ``on_line(index, attempt)`` its output's destination, ``on_exit(index, attempt, code,
    timed_out)`` is told how each attempt ended."""

    task_count: int
    parallelism: int
    max_retries: int
    timeout: float
    spec: Callable[[int, int], Spec]
    on_line: Callable[[int, int], OnLine]
    on_exit: Callable[[int, int, int, bool], None]


class ExecutionRun:
    """One execution's tasks, driven by a thread."""

    def __init__(self, supervisor: Supervisor, plan: TaskPlan) -> None:
        self.supervisor = supervisor
        self.plan = plan
        self._cancel = threading.Event()
        self._results: list[TaskResult] | None = None
        self._thread = threading.Thread(target=self._drive, daemon=True)
        self._thread.name = "djdeploy-local-execution"
        self._thread.start()

    def results(self) -> list[TaskResult] | None:
        """Every task's result, by index, once all are over; None while any runs."""
        return self._results

    def cancel(self, *, wait: bool) -> None:
        self._cancel.set()
        if wait:
            self._thread.join()

    def _drive(self) -> None:
        plan = self.plan
        pending = list(range(plan.task_count))
        attempts = dict.fromkeys(pending, 0)
        running: dict[int, Process] = {}
        done: dict[int, TaskResult] = {}
        width = max(1, plan.parallelism or plan.task_count)
        while pending or running:
            if self._cancel.is_set():
                for index, proc in running.items():
                    self.supervisor.stop(proc)
                    done[index] = TaskResult(index, None, attempts[index], cancelled=True)
                for index in pending:
                    done[index] = TaskResult(index, None, attempts[index], cancelled=True)
                break
            while pending and len(running) < width:
                index = pending.pop(0)
                on_line = plan.on_line(index, attempts[index])
                try:
                    running[index] = self.supervisor.start(
                        plan.spec(index, attempts[index]), on_line=on_line
                    )
                except OSError as exc:  # nothing to run: as a shell says it, exit 127
                    on_line("stderr", f"exec: {exc.strerror}: {exc.filename}")
                    plan.on_exit(index, attempts[index], NOT_STARTED, False)
                    done[index] = TaskResult(index, NOT_STARTED, attempts[index])
            for index, proc in list(running.items()):
                code = proc.poll()
                timed_out = code is None and time.monotonic() - proc.started > plan.timeout
                if timed_out:
                    self.supervisor.stop(proc)
                    code = proc.poll()
                if code is None:
                    continue
                self.supervisor.forget(proc)
                for reader in proc.readers:
                    reader.join()  # its last lines before its exit line
                del running[index]
                plan.on_exit(index, attempts[index], code, timed_out)
                if (code != 0 or timed_out) and attempts[index] < plan.max_retries:
                    attempts[index] += 1
                    pending.insert(0, index)
                else:
                    done[index] = TaskResult(index, code, attempts[index], timed_out=timed_out)
            time.sleep(POLL_SECONDS)
        self._results = [done[i] for i in range(plan.task_count)]


class LocalJobs:
    """The executions running here, by execution name."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._runs: dict[str, ExecutionRun] = {}
        self._lock = threading.Lock()

    def run(self, name: str, plan: Callable[[], TaskPlan]) -> ExecutionRun:
        """The run of execution ``name``, started from ``plan()`` unless it runs already."""
        with self._lock:
            if name not in self._runs:
                self._runs[name] = ExecutionRun(self.supervisor, plan())
            return self._runs[name]

    def get(self, name: str) -> ExecutionRun | None:
        with self._lock:
            return self._runs.get(name)

    def forget(self, name: str) -> None:
        """The backend recorded the results."""
        with self._lock:
            self._runs.pop(name, None)

    def cancel(self, prefix: str) -> None:
        """Stop the tasks of the executions named ``prefix`` or under it (a deleted job's), in
        the background: called inside a store transaction."""
        with self._lock:
            names = [n for n in self._runs if n == prefix or n.startswith(prefix + "/")]
            runs = [self._runs.pop(n) for n in names]
        for run in runs:
            run.cancel(wait=False)

    def stop_all(self) -> None:
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            run.cancel(wait=True)

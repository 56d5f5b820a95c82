"""The processes local execution runs (a job's tasks, a revision's instances): a small
supervisor (docs/emulator.md, "Local execution").

Each process leads its own process group (everything it forks is stopped with it) and is
recorded in ``<state>/processes/<id>.json`` (pid, process group, start time, what it is: never
its environment, which holds secrets) while it runs, so that an emulator killed with ``kill -9``
has its processes reaped by the next one started on that state dir (:func:`reap_stale`; the
start time tells a recycled pid from ours).

Output: each line a process prints on stdout or stderr is handed to the ``on_line`` callback of
its start, from one pump thread, in the order read; a pipe is never left unread while the
callback waits (on the store), so a process never blocks on its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PROCESSES = "processes"
#: Cloud Run's shutdown window: SIGTERM, then SIGKILL this many seconds later
GRACE_SECONDS = 10.0
#: lines of output each process keeps for messages (the log tail of a failure)
TAIL_LINES = 20

OnLine = Callable[[str, str], None]  # (stream "stdout" | "stderr", line without newline)


@dataclass(frozen=True)
class Spec:
    """How to start one process: ``what`` names it in its record and in messages (e.g. the
    task or revision), never its env. ``stdin``: bytes written to its stdin, then closed (a way
    to hand it secrets that is neither argv nor a file); None: stdin empty."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    what: str
    stdin: bytes | None = None


@dataclass
class Process:
    """One running (or finished) process."""

    spec: Spec
    popen: subprocess.Popen[bytes]
    record: Path
    started: float = field(default_factory=time.monotonic)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    readers: list[threading.Thread] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        """The exit code once it exited (a signal: 128 + its number, as a shell reports)."""
        code = self.popen.poll()
        if code is None:
            return None
        return 128 - code if code < 0 else code

    def alive(self) -> bool:
        return self.popen.poll() is None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _feed(popen: subprocess.Popen[bytes], data: bytes) -> None:
    assert popen.stdin is not None
    with contextlib.suppress(OSError), popen.stdin:  # it may exit without reading
        popen.stdin.write(data)


def _live_records(directory: Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Each record in ``directory`` with its data when its process group still runs (its leader
    with the recorded start time, or the leader gone and its children not), else None."""
    if not directory.is_dir():
        return
    for record in sorted(directory.glob("*.json")):
        try:
            data = json.loads(record.read_text())
            pid, pgid, started = int(data["pid"]), int(data["pgid"]), str(data["startTime"])
        except (OSError, ValueError, KeyError):
            yield record, None
            continue
        leader = _start_time(pid)
        live = leader == started or (leader is None and _group_alive(pgid))
        yield record, data if live else None


def stale(directory: Path) -> list[str]:
    """What the records in ``directory`` say still runs ("what (pid N)"); observes only."""
    return [
        f"{d.get('what', 'process')} (pid {d['pid']})" for _, d in _live_records(directory) if d
    ]


def reap_stale(directory: Path) -> list[str]:
    """Stop every process group recorded in ``directory`` by an emulator that is gone, and
    forget the records; what was stopped. Only called by the holder of the state dir's lock."""
    stopped = []
    for record, data in _live_records(directory):
        if data is not None:
            _signal_group(int(data["pgid"]), signal.SIGKILL)
            stopped.append(f"{data.get('what', 'process')} (pid {data['pid']})")
        record.unlink(missing_ok=True)
    return stopped


class Supervisor:
    """The processes of one executing emulator, recorded under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._running: dict[str, Process] = {}
        self._lines: queue.Queue[tuple[OnLine, str, str] | None] = queue.Queue()
        self._pump = threading.Thread(target=self._pump_lines, name="djdeploy-local-logs")
        self._pump.daemon = True
        self._pump.start()

    def start(self, spec: Spec, *, on_line: OnLine) -> Process:
        """Start ``spec`` in a new process group (stdin: ``spec.stdin``, else empty)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        popen = subprocess.Popen(
            spec.argv,
            env=spec.env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL if spec.stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        record = self.directory / f"{uuid.uuid4().hex}.json"
        data = {
            "pid": popen.pid,
            "pgid": popen.pid,
            "startTime": _start_time(popen.pid),
            "what": spec.what,
            "argv": spec.argv,
        }
        record.write_text(json.dumps(data))
        proc = Process(spec, popen, record)
        if spec.stdin is not None:  # a thread: a full pipe must not block the caller
            threading.Thread(target=_feed, args=(popen, spec.stdin), daemon=True).start()
        for stream, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
            assert pipe is not None
            reader = threading.Thread(
                target=self._read, args=(proc, stream, pipe, on_line), daemon=True
            )
            reader.start()
            proc.readers.append(reader)
        with self._lock:
            self._running[record.stem] = proc
        return proc

    def _read(self, proc: Process, stream: str, pipe: IO[bytes], on_line: OnLine) -> None:
        with pipe:
            for raw in pipe:
                line = raw.decode(errors="replace").rstrip("\r\n")
                proc.tail.append(line)
                self._lines.put((on_line, stream, line))

    def _pump_lines(self) -> None:
        while True:
            item = self._lines.get()
            if item is None:
                return
            on_line, stream, line = item
            try:
                on_line(stream, line)
            except Exception:  # a line that cannot be logged must not stop the others
                continue

    def stop(self, proc: Process, *, grace: float = GRACE_SECONDS, wait: bool = True) -> None:
        """SIGTERM to the process's group, SIGKILL to what is left after ``grace`` seconds.
        ``wait=False`` (from inside a store transaction): the escalation runs in a thread."""
        if wait:
            self._stop(proc, grace)
        else:
            threading.Thread(target=self._stop, args=(proc, grace), daemon=True).start()

    def _stop(self, proc: Process, grace: float) -> None:
        if proc.alive():
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=grace)
        _signal_group(proc.pid, signal.SIGKILL)  # the leader's children that outlived it
        proc.popen.wait()
        self.forget(proc)

    def forget(self, proc: Process) -> None:
        """A process that exited: drop its record (its output is still pumped)."""
        if proc.alive():
            return
        _signal_group(proc.pid, signal.SIGKILL)
        proc.record.unlink(missing_ok=True)
        with self._lock:
            self._running.pop(proc.record.stem, None)

    def running(self) -> list[Process]:
        with self._lock:
            return [p for p in self._running.values() if p.alive()]

    def stop_all(self, *, grace: float = GRACE_SECONDS) -> None:
        """Stop every process (in parallel), then hand on their last lines."""
        with self._lock:
            procs = list(self._running.values())
        stoppers = [threading.Thread(target=self._stop, args=(p, grace)) for p in procs]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        for p in procs:
            for reader in p.readers:
                reader.join(timeout=5)

    def flush(self) -> None:
        """Wait until every line read so far was handed on."""
        done = threading.Event()
        self._lines.put((lambda _s, _l: done.set(), "", ""))
        done.wait(timeout=30)

    def close(self) -> None:
        """Stop everything and the pump."""
        self.stop_all()
        self.flush()
        self._lines.put(None)
        self._pump.join(timeout=5)

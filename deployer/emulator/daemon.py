"""The background emulator behind ``--emulator``: one per state directory, started on first
use, reused by later commands, stopped by ``djdeploy emulator stop`` (docs/emulator.md, "The
background emulator"). What it runs (a serving revision, a PostgreSQL) so outlives the command
that deployed it.

In the state directory: ``daemon.json`` (pid, address, time scale, execute flag, version,
start time; written by the emulator once it listens, removed when it exits), ``daemon.lock``
(held while one command starts or stops it, so that two starting at once make one), and
``emulator.log`` (its output).

Run as ``python -m deployer.emulator.daemon STATE_DIR ...`` by :func:`ensure`, never by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .control import EmulatorControl, EmulatorControlError
from .store import StateError

if TYPE_CHECKING:
    from .server import Emulator

INFO_NAME = "daemon.json"
LOCK_NAME = "daemon.lock"
LOG_NAME = "emulator.log"
START_TIMEOUT = 120.0  # seconds for a new emulator to listen (a loaded 2-core machine)
STOP_TIMEOUT = 60.0  # seconds for it to stop what it runs and exit after SIGTERM
HEALTH_TIMEOUT = 10.0  # seconds for a running one to answer its health request


class DaemonError(Exception):
    """The background emulator cannot be used as asked; ``str()`` is the one line to show."""


class StateUnusable(DaemonError):
    """The emulator could not open its state directory (the store's StateError, or the
    directory itself); ``str()`` says why."""


@dataclass(frozen=True)
class Daemon:
    """A running background emulator, as its ``daemon.json`` and health answer say."""

    pid: int
    url: str
    state_dir: str
    time_scale: float  # what it runs at now (its admin API can change it)
    execute: bool  # local execution on (docs/emulator.md, "Local execution")
    version: str  # the djdeploy that started it
    started: float  # Unix time

    @property
    def log(self) -> Path:
        return Path(self.state_dir) / LOG_NAME

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.started)


def _read(state_dir: Path) -> Daemon | None:
    """The daemon file's record, None when there is none or it is not one (a partial write is
    impossible: it is renamed into place)."""
    try:
        return Daemon(**json.loads((state_dir / INFO_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write(state_dir: Path, daemon: Daemon) -> None:
    temp = state_dir / f".{INFO_NAME}.{daemon.pid}"
    temp.write_text(json.dumps(asdict(daemon), indent=2) + "\n")
    temp.replace(state_dir / INFO_NAME)


def _forget(state_dir: Path, pid: int) -> None:
    """Remove the daemon file if it still names ``pid`` (never a successor's)."""
    found = _read(state_dir)
    if found is not None and found.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            (state_dir / INFO_NAME).unlink()


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (exited, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process has that pid now: not ours, but alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is the answer
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's daemon lock: one command starts or stops its emulator at a
    time (the others wait, then find it)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = (state_dir / LOCK_NAME).open("ab")
    except OSError as exc:
        raise StateUnusable(exc.strerror or str(exc)) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def find(state_dir: Path) -> Daemon | None:
    """The emulator running for ``state_dir``: its daemon file names a live process that answers
    its health request for this state directory. None when there is none (or only a stale
    file: its process is gone). Raises DaemonError when its process lives but does not answer."""
    found = _read(state_dir)
    if found is None or not alive(found.pid):
        return None
    try:
        health = EmulatorControl(found.url, timeout=HEALTH_TIMEOUT).health()
    except ConnectionRefusedError:
        return None  # it died and its pid was reused: nothing listens there any more
    except (EmulatorControlError, ValueError, http.client.HTTPException):
        return None  # something else listens there now, not an emulator
    except OSError as exc:
        raise DaemonError(
            f"the local emulator (pid {found.pid}) does not answer at {found.url} "
            f"({exc.strerror or type(exc).__name__}; its log: {found.log}): stop it with "
            f"`kill {found.pid}`, then run again"
        ) from None
    if health.get("state_dir") != found.state_dir:
        return None  # another emulator took the port of one that died
    return Daemon(**{**asdict(found), "time_scale": float(health["time_scale"])})


def running(state_dir: Path) -> Daemon | None:
    """:func:`find`, for a state directory that may not exist (observing creates nothing)."""
    return find(state_dir) if state_dir.is_dir() else None


def ensure(
    state_dir: Path,
    *,
    time_scale: float | None,
    execute: bool | None,
    default_time_scale: float,
    stop_command: str,
    version: str,
    meanwhile: Callable[[], None] = lambda: None,
) -> tuple[Daemon, bool]:
    """The emulator for ``state_dir``, started when none runs; True when this call started it.

    ``time_scale``/``execute`` None: whatever runs (a new one: the stored time scale, else
    ``default_time_scale``; execution on). Given, and the running one differs: DaemonError
    naming ``stop_command``, the fix; so is one started by another djdeploy ``version``.
    StateUnusable when the state cannot be opened. ``meanwhile`` is called once: while a new
    emulator starts (between its launch and its answer), else once one is found."""
    state_dir = state_dir.absolute()
    with _locked(state_dir):
        found = find(state_dir)
        started = found is None
        if found is None:
            found = _start(
                state_dir,
                time_scale=default_time_scale if time_scale is None else time_scale,
                set_time_scale=time_scale is not None,
                execute=execute is not False,
                version=version,
                meanwhile=meanwhile,
            )
    if not started:
        meanwhile()
    if time_scale is not None and found.time_scale != time_scale:
        raise DaemonError(
            f"the local emulator for {state_dir} runs at time scale {found.time_scale:g}, "
            f"not {time_scale:g}: run `{stop_command}` first, or leave out --time-scale"
        )
    if execute is not None and found.execute != execute:
        has, option = (
            ("executes", "--no-execute") if found.execute else ("does not execute", "--execute")
        )
        raise DaemonError(
            f"the local emulator for {state_dir} {has} what it deploys (you asked for "
            f"{option}): run `{stop_command}` first, or leave out {option}"
        )
    if found.version != version:
        raise DaemonError(
            f"the local emulator for {state_dir} is djdeploy {found.version}'s, this is "
            f"{version}: run `{stop_command}` first"
        )
    return found, started


def _start(
    state_dir: Path,
    *,
    time_scale: float,
    set_time_scale: bool,
    execute: bool,
    version: str,
    meanwhile: Callable[[], None],
) -> Daemon:
    """Start the emulator, detached (its own session, no terminal, output to its log), and
    wait for it to say it listens or why it cannot."""
    ready_read, ready_write = os.pipe()
    log = state_dir / LOG_NAME
    command = [sys.executable, "-m", __name__, str(state_dir), "--ready-fd", str(ready_write)]
    command += ["--time-scale", repr(time_scale), "--execute" if execute else "--no-execute"]
    command += ["--version", version]
    if set_time_scale:
        command.append("--set-time-scale")
    try:
        with log.open("ab") as output:
            launcher = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                pass_fds=(ready_write,),
                start_new_session=True,
                cwd=state_dir,
            )
    finally:
        os.close(ready_write)
    try:
        meanwhile()
        answer = _read_answer(ready_read)
    finally:
        os.close(ready_read)
        launcher.wait()  # it forks the emulator and exits at once
    if "state_error" in answer:
        raise StateUnusable(str(answer["state_error"]))
    if not isinstance(answer.get("daemon"), dict):
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        why = f" ({tail[0].strip()})" if tail else ""
        raise DaemonError(f"the local emulator did not start{why}: its log is {log}")
    return Daemon(**answer["daemon"])  # type: ignore[arg-type]


def _read_answer(fd: int) -> dict[str, object]:
    """The emulator's one JSON line on the ready pipe; {} when it exited (or did not answer in
    START_TIMEOUT) without one."""
    data = b""
    deadline = time.monotonic() + START_TIMEOUT
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return {}
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    try:
        answer = json.loads(data)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def stop(state_dir: Path, *, timeout: float = STOP_TIMEOUT) -> Daemon | None:
    """Stop the emulator running for ``state_dir`` (SIGTERM: it stops what it runs, then exits)
    and wait for its exit; returns it, None when none was running (a stale file is removed)."""
    if not state_dir.is_dir():
        return None
    with _locked(state_dir):
        found = _read(state_dir)
        if found is None or not alive(found.pid):
            if found is not None:
                _forget(state_dir, found.pid)
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(found.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(found.pid):
            if time.monotonic() > deadline:
                raise DaemonError(
                    f"the local emulator (pid {found.pid}) did not stop within {timeout:g} s "
                    f"(its log: {found.log}): `kill -9 {found.pid}` ends it"
                )
            time.sleep(0.05)
        _forget(state_dir, found.pid)
    return found


# -- the emulator process -------------------------------------------------------------------------


def _answer(fd: int, message: dict[str, object]) -> None:
    """Tell the starting command (gone already: nobody to tell)."""
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(message).encode() + b"\n")
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--time-scale", type=float, required=True)
    parser.add_argument("--set-time-scale", action="store_true")
    parser.add_argument("--execute", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--version", required=True)  # the starting djdeploy's
    args = parser.parse_args(argv)
    from .server import main_serve  # the emulator process's, not a starting command's

    if os.fork():
        return 0  # the launcher: the emulator is reparented, so it never waits as a zombie
    state_dir: Path = args.state_dir
    fd: int = args.ready_fd

    def ready(url: str, emu: Emulator) -> None:
        daemon = Daemon(
            pid=os.getpid(),
            url=url,
            state_dir=str(state_dir),
            time_scale=emu.latency.time_scale,
            execute=emu.local.enabled,
            version=args.version,
            started=time.time(),
        )
        _write(state_dir, daemon)
        _answer(fd, {"daemon": asdict(daemon)})

    try:
        main_serve(
            host="127.0.0.1",
            port=0,
            state_dir=state_dir,
            time_scale=args.time_scale,
            set_time_scale=args.set_time_scale,
            execute=args.execute,
            on_ready=ready,
        )
    except StateError as exc:
        _answer(fd, {"state_error": str(exc)})
        return 1
    finally:
        _forget(state_dir, os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())

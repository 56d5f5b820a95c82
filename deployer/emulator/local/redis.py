"""Memorystore for Redis instances as local ``redis-server`` processes.

:class:`LocalRedis` runs one server per instance, on loopback, started through the
:class:`~.processes.Supervisor` like a job's task (its own process group, recorded under
``<state>/processes`` while it runs, so one left by a killed emulator is reaped by the next),
and keeps under ``<state>/redis/PROJECT/LOCATION/INSTANCE`` its working directory and ``port``
(reused on a restart when it is free). Nothing is persisted (``--save ""``, no AOF), as a Basic
tier instance keeps nothing on disk. An instance with AUTH requires its password: ``requirepass``
reaches the server as configuration on its stdin (``redis-server -``), never in argv or a file,
and a running server's is changed with CONFIG SET (AUTH enabled or disabled on a live instance:
its data stays, as on Memorystore). It knows nothing of HTTP or of the Redis API.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

from .processes import Process, Spec, Supervisor

#: the one line shown when no redis-server can be found (the API keeps working)
UNAVAILABLE = "local execution has no redis-server: install Redis (redis-server on PATH)"
HOST = "127.0.0.1"


def find_server() -> str | None:
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def answers(port: int) -> bool:
    """Whether a Redis server on ``port`` answers PING (or asks for its password first)."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def _command(*args: str) -> bytes:
    """A command in RESP (a password may hold any character)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _set_password(port: int, old: str | None, new: str | None) -> None:
    """Change a running server's ``requirepass`` (None: none) by CONFIG SET."""
    commands = ([_command("AUTH", old)] if old else []) + [
        _command("CONFIG", "SET", "requirepass", new or "")
    ]
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(b"".join(commands))
        replies = b""
        while replies.count(b"\r\n") < len(commands):
            chunk = s.recv(256)
            if not chunk:
                break
            replies += chunk
    if replies.split(b"\r\n")[: len(commands)] != [b"+OK"] * len(commands):
        raise OSError("redis-server refused the new password")


class LocalRedis:
    """The Redis servers of one executing emulator, by instance name."""

    def __init__(self, root: Path, supervisor: Supervisor, *, server: str) -> None:
        self.root = root
        self.supervisor = supervisor
        self.server = server
        self._lock = threading.Lock()
        self._running: dict[str, Process] = {}
        self._passwords: dict[str, str | None] = {}

    def _dir(self, name: str) -> Path:
        """``projects/P/locations/L/instances/I`` -> ``<root>/P/L/I``."""
        parts = name.split("/")
        return self.root.joinpath(parts[1], parts[3], parts[5])

    def start(self, name: str, password: str | None = None) -> int:
        """Start the server of instance ``name`` unless it runs, requiring ``password`` (None:
        none; a running server's is changed); its port (it may not answer yet:
        :func:`answers`). Safe to call again (a completer's retry)."""
        with self._lock:
            proc = self._running.get(name)
            directory = self._dir(name)
            port_file = directory / "port"
            if proc is not None and proc.alive():
                port = int(port_file.read_text())
                if self._passwords.get(name) != password:
                    _set_password(port, self._passwords.get(name), password)
                    self._passwords[name] = password
                return port
            directory.mkdir(parents=True, exist_ok=True)
            port = int(port_file.read_text()) if port_file.exists() else 0
            if not port or not _port_free(port):
                port = _free_port()
                port_file.write_text(str(port))
            spec = Spec(
                argv=[
                    self.server,
                    "-",  # the configuration on stdin: the password, if any
                    "--bind",
                    HOST,
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(directory),
                    "--daemonize",
                    "no",
                ],
                env={"PATH": "/usr/bin:/bin"},
                cwd=directory,
                what=f"redis {name}",
                stdin=f"requirepass {password}\n".encode() if password else b"",
            )
            self._running[name] = self.supervisor.start(spec, on_line=lambda _s, _l: None)
            self._passwords[name] = password
            return port

    def wait_answering(self, name: str, port: int) -> bool:
        """Block until the server of ``name`` answers PING on ``port`` (True) or exits (False):
        a restored instance is READY, so it must answer before the emulator serves."""
        while not answers(port):
            with self._lock:
                proc = self._running.get(name)
            if proc is None or not proc.alive():
                return False
            time.sleep(0.02)  # between two PINGs
        return True

    def running(self, name: str) -> bool:
        """Whether the server of ``name`` started here is still alive."""
        with self._lock:
            proc = self._running.get(name)
        return proc is not None and proc.alive()

    def stop(self, name: str, *, wait: bool = True) -> None:
        """Stop the server of ``name`` (``wait=False`` from inside a store transaction)."""
        with self._lock:
            proc = self._running.pop(name, None)
        if proc is not None:
            self.supervisor.stop(proc, grace=5.0, wait=wait)

    def remove(self, name: str) -> None:
        """Stop the server and forget its directory (the instance was deleted)."""
        self.stop(name, wait=False)
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def stop_all(self) -> None:
        for name in list(self._running):
            self.stop(name)

    def remove_all(self) -> None:
        self.stop_all()
        shutil.rmtree(self.root, ignore_errors=True)

    def describe(self) -> list[dict[str, object]]:
        """The running servers: where to connect."""
        out: list[dict[str, object]] = []
        for name, proc in sorted(self._running.items()):
            if proc.alive():
                port = int((self._dir(name) / "port").read_text())
                out.append({"instance": name, "port": port, "url": f"redis://{HOST}:{port}/0"})
        return out

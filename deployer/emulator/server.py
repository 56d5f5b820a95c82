"""The Emulator object and its HTTP server.

``Emulator`` holds the state (store, clock, latency model, operations, faults, outcomes,
transcript) and handles requests independently of HTTP (``emu.handle(...)``); ``serve(emu)``
puts it on a port in a background thread; ``main_serve(...)`` is ``djdeploy emulator serve``.

API modules register by being listed in :data:`API_MODULES`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from deployer.clock import Clock, RealClock

from . import admin, ingress
from .errors import ApiError
from .faults import Faults, as_error, held_for
from .latency import Latency
from .local.frontdoor import FrontDoor
from .local.realizers import Realizers
from .operations import Operations
from .outcomes import Outcomes
from .routing import Headers, Request, Response, Router, RouteTable
from .store import Store
from .transcript import DEFAULT_LIMIT as TRANSCRIPT_LIMIT
from .transcript import Transcript

log = logging.getLogger(__name__)

#: The API modules (under deployer.emulator) whose module-level ``router`` is served.
#: API engineers: add your module here, one per line, keep the trailing comma.
API_MODULES: tuple[str, ...] = (
    "serviceusage",
    "resourcemanager",
    "run",
    "sqladmin",
    "secretmanager",
    "storage",
    "iam",
    "cloudbuild",
    "artifactregistry",
    "monitoring",
    "cloudscheduler",
    "logging",
    "redis",
)

ADMIN_PREFIX = "/_emulator/"
JSON_CT = "application/json; charset=UTF-8"


def load_routers(modules: tuple[str, ...] = API_MODULES) -> list[Router]:
    routers = []
    for name in modules:
        mod = importlib.import_module(f"{__package__}.{name}")
        routers.append(mod.router)
    return routers


def realize_stored(emu: Emulator, modules: tuple[str, ...]) -> None:
    """Bring back what the stored state says runs (an emulator restart): each API module with
    a module-level ``realize(emu)`` hook does its own."""
    for name in modules:
        hook = getattr(importlib.import_module(f"{__package__}.{name}"), "realize", None)
        if hook is not None:
            hook(emu)


@dataclass
class Outcome:
    """What ``Emulator.handle`` did: the response to send, or drop the connection."""

    response: Response
    dropped: bool = False


class Emulator:
    def __init__(
        self,
        *,
        state_dir: Path | str | None = None,
        time_scale: float = 1.0,
        clock: Clock | None = None,
        modules: tuple[str, ...] = API_MODULES,
        transcript_limit: int = TRANSCRIPT_LIMIT,
        set_time_scale: bool = False,
        execute: bool = False,
    ) -> None:
        """``execute``: run what is deployed (docs/emulator.md, "Local execution"); off, the
        emulator only answers the APIs (the test fixture's default: fast)."""
        self.state_dir = Path(state_dir) if state_dir is not None else None
        # one clock for operations, windows and sleeps: tests pass the VirtualClock their
        # deployer Cloud shares; emu.clock() reads it, emu.sleep waits on it
        time = clock if clock is not None else RealClock()
        self.clock: Callable[[], float] = time.now
        self.sleep: Callable[[float], None] = time.sleep
        self.apis = modules
        self.store = Store(self.state_dir)
        self.latency = Latency(self.store, time_scale)
        # a new state takes time_scale; an existing one keeps its own unless set_time_scale
        self.latency.init(force=set_time_scale)
        self.ops = Operations(self)
        self.faults = Faults(self)
        self.outcomes = Outcomes(self)
        self.transcript = Transcript(transcript_limit)
        self.routes = RouteTable(load_routers(modules))
        self.admin_routes = RouteTable([admin.router])
        self.local = Realizers(self.state_dir, execute=execute)
        if self.local.enabled:
            realize_stored(self, modules)
            self._open_front_door()

    def _open_front_door(self) -> None:
        """The front door (docs/emulator.md, "The front door and the local URL"): it asks the
        realizers where a revision runs at each request, so a serving realizer (or a test)
        may change that at any time."""
        assert self.local.dir is not None
        door = FrontDoor(
            self.local.dir,
            ingress.Services(self),
            lambda revision: self.local.revision_address(revision),
        )
        try:
            door.start()
        except OSError as exc:
            print(
                f"djdeploy emulator: no front door ({exc}): services are not served locally",
                file=sys.stderr,
            )
            return
        self.local.frontdoor = door

    def close(self) -> None:
        """Stop what runs (the realizers' servers and processes) and close the store."""
        self.local.close()
        self.store.close()

    def reset(self) -> None:
        """Forget everything: resources, operations, faults, outcomes, latency, transcript, and
        what runs (local execution)."""
        self.local.reset()
        self.store.reset()
        self.latency.reset()
        self.transcript.clear()

    # -- request handling (HTTP-independent) ----------------------------------------------------

    def handle(
        self, method: str, path: str, query_string: str, headers: Headers, body: bytes
    ) -> Outcome:
        method = method.upper()
        query = parse_qs(query_string, keep_blank_values=True) if query_string else {}
        if path.startswith(ADMIN_PREFIX):
            return Outcome(self._dispatch(self.admin_routes, method, path, query, headers, body))
        delay = self.latency.request_delay
        if delay > 0:
            self.sleep(delay)
        dropped = False
        try:
            self.ops.advance()
            rule = self.faults.match(method, path, body)
        except Exception:
            print(f"emulator: {method} {path}: advancing operations failed:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            resp = _error_response(ApiError(500, "Internal error encountered."))
        else:
            if rule is not None and rule["action"] == "error":
                resp = _error_response(as_error(rule))
            else:
                if rule is not None and rule["action"] == "delay":
                    self.sleep(held_for(rule, headers))
                dropped = rule is not None and rule["action"] == "drop"
                resp = self._dispatch(self.routes, method, path, query, headers, body)
                dropped = dropped or resp.dropped
        self.transcript.record(
            method=method,
            path=path,
            query=query,
            body=body,
            status=None if dropped else resp.status,
            response=None if dropped else resp.encoded(),
            response_is_json=resp.content_type.startswith("application/json"),
            dropped=dropped,
        )
        return Outcome(resp, dropped)

    def _dispatch(
        self,
        table: RouteTable,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Headers,
        body: bytes,
    ) -> Response:
        found = table.match(method, path)
        if found is None:
            return _error_response(
                ApiError(404, f"The requested URL {path} was not found on this server.")
            )
        route, params = found
        req = Request(method=method, path=path, query=query, headers=headers, body=body, emu=self)
        try:
            result = route.handler(req, **params)
        except ApiError as exc:
            return _error_response(exc)
        except Exception:
            print(f"emulator: {method} {path} failed:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return _error_response(ApiError(500, "Internal error encountered."))
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(200, {})
        if isinstance(result, dict | list):
            return Response(200, result)
        print(f"emulator: {method} {path}: bad handler result {type(result)}", file=sys.stderr)
        return _error_response(ApiError(500, "Internal error encountered."))


def _error_response(exc: ApiError) -> Response:
    return Response(exc.code, exc.body(), headers=exc.headers())


# -- HTTP ----------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        """The request body; raises _BadFraming for a malformed Content-Length or chunk size."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    raise _BadFraming(f"Invalid chunk size {line[:40]!r}.") from None
                if size < 0:
                    raise _BadFraming(f"Invalid chunk size {line[:40]!r}.")
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        raw_length = (self.headers.get("Content-Length") or "0").strip()
        if not raw_length.isdigit():
            raise _BadFraming(f"Invalid Content-Length {raw_length[:40]!r}.")
        n = int(raw_length)
        return self.rfile.read(n) if n else b""

    def _send_error_json(self, exc: ApiError) -> None:
        """A Google error answered outside the emulator (bad framing, a bad request line): the
        connection is closed after it, since the rest of the stream cannot be trusted."""
        self.close_connection = True
        payload = json.dumps(exc.body()).encode()
        head = (
            f"HTTP/1.1 {exc.code} {_reason(exc.code)}\r\nContent-Type: {JSON_CT}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        with contextlib.suppress(OSError):
            self.wfile.write(head + (b"" if self.command == "HEAD" else payload))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own errors (bad request line, header too long, ...) in Google's JSON
        format instead of an HTML page."""
        self._send_error_json(ApiError(code, message or _reason(code)))

    def __getattr__(self, name: str) -> Any:
        # any method token (OPTIONS, TRACE, PROPFIND, ...) goes to the emulator, which answers
        # Google's JSON 404 for a method no route serves (the stdlib would answer an HTML 501)
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _BadFraming as exc:
            self._send_error_json(ApiError(400, str(exc)))
            return
        path, _, qs = self.path.partition("?")
        if path.startswith("http://") or path.startswith("https://"):  # absolute-form target
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        outcome = self.server.emu.handle(
            self.command, path, qs, Headers(self.headers.items()), body
        )
        if outcome.dropped:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        resp = outcome.response
        payload = resp.encoded()
        ctype = resp.content_type
        if ctype == "application/json":
            ctype = JSON_CT
        lines = [f"HTTP/1.1 {resp.status} {_reason(resp.status)}"]
        headers = {"Content-Type": ctype, **resp.headers, "Content-Length": str(len(payload))}
        for k, v in headers.items():
            lines.append(f"{k}: {v}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command == "HEAD":
            payload = b""
        if resp.body_limit is not None:  # a broken stream: part of the body, then the drop
            self.wfile.write(head + payload[: resp.body_limit])
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(head + payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


#: the port ``djdeploy emulator serve`` listens on by default (the CLI and docs agree)
DEFAULT_PORT = 8089


class _BadFraming(Exception):
    """The request's body framing (Content-Length, chunk sizes) cannot be parsed."""


def _reason(code: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self, addr: tuple[str, int], emu: Emulator, *, listener: socket.socket | None = None
    ) -> None:
        self.emu = emu
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler, bind_and_activate=listener is None)
        if listener is not None:  # bound before the state was opened (main_serve)
            self.socket.close()
            self.socket = listener
            self.server_address = listener.getsockname()[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # a client went away (or a dropped-connection fault): not our error
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class RunningEmulator:
    """An emulator serving on a port from a background thread."""

    def __init__(self, emu: Emulator, server: _Server, thread: threading.Thread) -> None:
        from .control import EmulatorControl

        self.emu = emu
        self._server = server
        self._thread = thread
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        self.control = EmulatorControl(self.url)

    def stop(self, *, wait: bool = True) -> None:
        """Stop serving and close every connection; ``wait=False`` returns at once and lets a
        background thread finish the job (fast test teardown)."""
        if not wait:
            threading.Thread(target=self.stop, daemon=True).start()
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.close_all()
        self._thread.join(timeout=5)
        self.emu.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(emu: Emulator | None = None, host: str = "127.0.0.1", port: int = 0) -> RunningEmulator:
    """Start serving ``emu`` (a new in-memory one if None) in a background thread."""
    emu = emu if emu is not None else Emulator()
    server = _Server((host, port), emu)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.name = f"djdeploy-emulator-{server.server_address[1]}"
    thread.start()
    return RunningEmulator(emu, server, thread)


class BindError(Exception):
    """``emulator serve`` cannot listen on host:port (in use, not this machine's, no such
    name, a privileged port); ``errno`` says which, None for a name that does not resolve."""

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        self.errno = None if isinstance(exc, socket.gaierror) else exc.errno
        super().__init__(os.strerror(self.errno) if self.errno else exc.strerror or str(exc))
        self.host, self.port = host, port


def main_serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    state_dir: Path | str | None = None,
    time_scale: float = 1.0,
    execute: bool = True,
    set_time_scale: bool = True,
    on_ready: Callable[[str, Emulator], None] | None = None,
) -> None:
    """``djdeploy emulator serve``: serve in the foreground, print the URL, stop on Ctrl-C or
    SIGTERM (both stop what it runs). The
    serving process owns the state directory's time scale: it sets it, once it has its port
    (a second serve on a port in use fails without touching the state); ``set_time_scale=False``
    keeps a stored one (the background emulator started without --time-scale). ``on_ready``
    sees the URL and the emulator once it listens. Raises BindError (the address cannot be
    listened on) or StateError."""
    try:
        listener = socket.create_server((host, port), backlog=_Server.request_queue_size)
    except OSError as exc:
        raise BindError(host, port, exc) from None
    emu = Emulator(
        state_dir=state_dir, time_scale=time_scale, set_time_scale=set_time_scale, execute=execute
    )
    time_scale = emu.latency.time_scale  # the stored one, unless set_time_scale
    signal.signal(signal.SIGTERM, _interrupt)
    server = _Server((host, port), emu, listener=listener)
    h, p = str(server.server_address[0]), server.server_address[1]
    where = f"state in {emu.state_dir}" if emu.state_dir else "in-memory state"
    mode = "executing" if emu.local.enabled else "API only"
    print(
        f"djdeploy emulator listening on http://{h}:{p} ({where}, time scale {time_scale}, {mode})"
    )
    if emu.local.frontdoor is not None:
        print(
            f"front door on {emu.local.frontdoor.url}: "
            f"http://SERVICE-NUMBER.REGION.localhost:{emu.local.frontdoor.port}"
        )
    sys.stdout.flush()
    try:
        if on_ready is not None:
            on_ready(f"http://{h}:{p}", emu)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.close_all()
        emu.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

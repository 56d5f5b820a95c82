"""The front door: one HTTP server on loopback answering for every Cloud Run service the emulator
runs, as Google's front end answers for ``*.run.app`` (docs/emulator.md, "The front door and the
local URL").

A service's cloud URL ``https://HOST.run.app`` is served locally at ``http://HOST.localhost:PORT``
(browsers and curl resolve ``*.localhost`` to loopback); ``http://SERVICE.localhost:PORT`` works
too while one service has that name; ``TAG---`` in front of either reaches the revision a traffic
tag names. The request goes on to the revision's instance with the Host of the cloud URL,
``X-Forwarded-Proto: https``, ``X-Forwarded-For`` and the local origin in ``Origin`` / ``Referer``
rewritten to the cloud origin, so the app sees what it sees behind Google (its ALLOWED_HOSTS and
CSRF checks pass); ``Location`` headers and cookie domains in the answer are rewritten back.

This module knows nothing of the Google APIs: a :class:`Directory` says which service a host
names, its traffic and whether it is public; an address function says where a revision's instance
listens. Standard library only: a threaded ``http.server`` in front, ``http.client`` behind.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import io
import json
import os
import re
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

STATE_FILE = "frontdoor.json"  # {"port": N, "token": "..."} in the state directory
LOCAL_SUFFIX = ".localhost"
CLOUD_SUFFIX = ".run.app"
TAG_SEPARATOR = "---"
BIND_HOST = "127.0.0.1"
CHUNK = 64 * 1024

#: headers that belong to one connection, never forwarded (RFC 9110 7.6.1)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


# -- what the front door routes ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One entry of a service's traffic: a revision's full name (None: the latest ready
    revision, and there is none), its percent, its tag."""

    revision: str | None
    percent: int = 0
    tag: str = ""


@dataclass(frozen=True)
class Route:
    """A Cloud Run service as the front door sees it."""

    name: str  # projects/P/locations/L/services/S
    cloud_host: str  # the host of its deterministic URL: S-NUMBER.REGION.run.app
    public: bool  # allUsers hold roles/run.invoker (or the invoker check is disabled)
    targets: tuple[Target, ...]
    timeout: float = 300.0  # the template's request timeout, seconds


class Directory(Protocol):
    """Which service a local host names: ``label`` is the host without ``.localhost`` and any
    tag (``S-NUMBER.REGION``, ``S-HASH-CODE.a``, or ``S`` alone)."""

    def find(self, label: str) -> Route | None: ...


Addresses = Callable[[str], "tuple[str, int] | None"]


def local_url(cloud_url: str, port: int) -> str:
    """``https://X.run.app`` -> ``http://X.localhost:PORT`` (other URLs: "")."""
    host = urlsplit(cloud_url).hostname or ""
    if not host.endswith(CLOUD_SUFFIX):
        return ""
    return f"http://{host.removesuffix(CLOUD_SUFFIX)}{LOCAL_SUFFIX}:{port}"


@dataclass(frozen=True)
class Stored:
    """What the state directory keeps of the front door: its port and its invoker token."""

    port: int
    token: str

    @classmethod
    def read(cls, state_dir: Path) -> Stored | None:
        try:
            doc = json.loads((state_dir / STATE_FILE).read_text())
            return cls(int(doc["port"]), str(doc["token"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, state_dir: Path) -> None:
        path = state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the token is private
        with os.fdopen(fd, "w") as f:
            json.dump({"port": self.port, "token": self.token}, f)
        tmp.replace(path)


# -- the split -----------------------------------------------------------------------------------


class Splitter:
    """Picks a target by percent, deterministically: smooth weighted round robin (nginx's), so
    every 100 requests follow the split exactly (50/50 alternates) where Google picks at
    random."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[tuple[str, tuple[Target, ...]], list[int]] = {}

    def pick(self, service: str, targets: tuple[Target, ...]) -> Target | None:
        weighted = tuple(t for t in targets if t.percent > 0)
        if not weighted:
            return None
        key = (service, weighted)
        with self._lock:
            current = self._current.setdefault(key, [0] * len(weighted))
            total = sum(t.percent for t in weighted)
            for i, t in enumerate(weighted):
                current[i] += t.percent
            best = max(range(len(weighted)), key=lambda i: current[i])
            current[best] -= total
            return weighted[best]


# -- the decision: where a request goes, or the page it gets -------------------------------------


@dataclass(frozen=True)
class Page:
    """An answer of the front door itself (no instance involved)."""

    status: int
    text: str


@dataclass(frozen=True)
class Forward:
    address: tuple[str, int]
    cloud_host: str  # the Host the app sees (with the tag, when one was asked)
    local_host: str  # the Host the client used, port included
    timeout: float


def _page_text(status: int, what: str) -> str:
    phrase = HTTPStatus(status).phrase
    return f"Error: {phrase}\n\n{what}\n"


NOT_FOUND = (
    "No Cloud Run service answers at {host}. Local URLs are http://SERVICE-NUMBER.REGION"
    ".localhost:{port} (the cloud URL with .run.app replaced by .localhost:{port}); "
    "`djdeploy status` shows the service's."
)
FORBIDDEN = (
    "Your client does not have permission to get URL {path} from this server: the service is "
    "not public. Send `Authorization: Bearer TOKEN` with the front door's token "
    "(GET /_emulator/local on the emulator: frontdoor.token)."
)
NO_REVISION = "The service has no ready revision to serve traffic."
NOT_RUNNING = "Revision {revision} is not running locally."
NO_TAG = "The service has no traffic tag '{tag}'."


class FrontDoor:
    """The server. :meth:`start` listens on the port kept in ``<state>/frontdoor.json`` (a
    free one the first time, or when another process took it); :meth:`stop` closes it and
    every connection."""

    def __init__(self, state_dir: Path, directory: Directory, addresses: Addresses) -> None:
        self.state_dir = state_dir
        self.directory = directory
        self.addresses = addresses
        self.splitter = Splitter()
        self.pool = _Pool()
        stored = Stored.read(state_dir)
        self.token = stored.token if stored is not None else secrets.token_urlsafe(32)
        self._wanted = stored.port if stored is not None else 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the front door is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{BIND_HOST}:{self.port}"

    def start(self) -> None:
        try:
            server = _Server((BIND_HOST, self._wanted), self)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or not self._wanted:
                raise
            print(
                f"djdeploy emulator: the front door's port {self._wanted} is taken: "
                "local URLs move to a new one",
                file=sys.stderr,
            )
            server = _Server((BIND_HOST, 0), self)
        self._server = server
        Stored(self.port, self.token).write(self.state_dir)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"djdeploy-frontdoor-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.pool.close()
        self._server = None

    def describe(self) -> dict[str, Any]:
        """``{"url", "port", "token", "hosts"}``: what a client needs (docs)."""
        return {
            "url": self.url,
            "port": self.port,
            "token": self.token,
            "hosts": f"SERVICE-NUMBER.REGION{LOCAL_SUFFIX}:{self.port}",
        }

    # -- deciding --------------------------------------------------------------------------

    def decide(self, host_header: str, path: str, authorization: list[str]) -> Page | Forward:
        local_host = host_header.strip().lower()
        label = local_host.rsplit(":", 1)[0].removesuffix(".")
        if not label.endswith(LOCAL_SUFFIX):
            return Page(404, NOT_FOUND.format(host=host_header or "(no Host)", port=self.port))
        label = label.removesuffix(LOCAL_SUFFIX)
        tag = ""
        if TAG_SEPARATOR in label:
            tag, label = label.split(TAG_SEPARATOR, 1)
        route = self.directory.find(label)
        if route is None:
            return Page(404, NOT_FOUND.format(host=host_header, port=self.port))
        if not route.public and not self._recognized(authorization):
            return Page(403, FORBIDDEN.format(path=path.split("?", 1)[0]))
        if tag:
            target = next((t for t in route.targets if t.tag == tag), None)
            if target is None:
                return Page(404, NO_TAG.format(tag=tag))
        else:
            target = self.splitter.pick(route.name, route.targets)
        if target is None or target.revision is None:
            return Page(503, NO_REVISION)
        address = self.addresses(target.revision)
        if address is None:
            short = target.revision.rsplit("/", 1)[-1]
            return Page(503, NOT_RUNNING.format(revision=short))
        cloud_host = f"{tag}{TAG_SEPARATOR}{route.cloud_host}" if tag else route.cloud_host
        return Forward(address, cloud_host, local_host, route.timeout)

    def _recognized(self, authorization: list[str]) -> bool:
        for value in authorization:
            scheme, _, token = value.strip().partition(" ")
            sent = token.strip().encode("utf-8", "surrogateescape")
            if scheme.lower() == "bearer" and secrets.compare_digest(sent, self.token.encode()):
                return True
        return False


# -- rewriting between the local and the cloud origin -------------------------------------------


@dataclass(frozen=True)
class Origins:
    """The client's origin (``http://HOST.localhost:PORT``) and the app's
    (``https://HOST.run.app``)."""

    local_host: str  # with the port
    cloud_host: str

    @property
    def local(self) -> str:
        return f"http://{self.local_host}"

    @property
    def cloud(self) -> str:
        return f"https://{self.cloud_host}"

    def to_cloud(self, value: str) -> str:
        """Origin / Referer: the local origin becomes the cloud one; others stay."""
        if value == self.local or value.startswith(self.local + "/"):
            return self.cloud + value[len(self.local) :]
        return value

    def to_local(self, url: str) -> str:
        """Location: an https URL of this service (or of any run.app host) comes back local."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if (
            parts.scheme != "https"
            or not host.endswith(CLOUD_SUFFIX)
            or parts.port
            not in (
                None,
                443,
            )
        ):
            return url
        if host == self.cloud_host:
            local = self.local_host
        else:
            port = self.local_host.rsplit(":", 1)[-1]
            local = f"{host.removesuffix(CLOUD_SUFFIX)}{LOCAL_SUFFIX}:{port}"
        rest = url[len(f"{parts.scheme}://{parts.netloc}") :]
        return f"http://{local}{rest}"

    def cookie(self, header: str) -> str:
        """Set-Cookie: a Domain of the cloud host (or a parent of it) becomes the local host's."""
        local_name = self.local_host.rsplit(":", 1)[0]

        def domain(m: re.Match[str]) -> str:
            value = m.group(2).lstrip(".").lower()
            if value == self.cloud_host:
                return m.group(1) + local_name
            if self.cloud_host.endswith("." + value):
                return m.group(1) + value.removesuffix("run.app") + "localhost"
            return m.group(0)

        return _DOMAIN.sub(domain, header)


_DOMAIN = re.compile(r"(;\s*domain=)([^;]*)", re.IGNORECASE)


# -- HTTP ----------------------------------------------------------------------------------------


class _Pool:
    """Idle keep-alive connections to instances, by address."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, int], list[http.client.HTTPConnection]] = {}

    def take(
        self, address: tuple[str, int], timeout: float
    ) -> tuple[http.client.HTTPConnection, bool]:
        """A connection and whether it was used before (it may have been closed meanwhile)."""
        with self._lock:
            idle = self._idle.get(address)
            conn = idle.pop() if idle else None
        if conn is not None:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True
        return http.client.HTTPConnection(*address, timeout=timeout), False

    def give(self, address: tuple[str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(address, []).append(conn)

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()


class _BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "Google Frontend"  # the Server header of the front door's own pages
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method goes on to the app
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        door = self.server.door
        auth = [
            *self.headers.get_all("Authorization", []),
            *self.headers.get_all("X-Serverless-Authorization", []),
        ]
        host = self.headers.get("Host", "")
        if self.path.startswith(("http://", "https://")):  # absolute-form: its host wins
            parts = urlsplit(self.path)
            host = parts.netloc
            self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        decision = door.decide(host, self.path, auth)
        if isinstance(decision, Page):
            self._page(decision)
            return
        try:
            self._forward(decision)
        except _BadRequest as exc:
            self._page(Page(400, str(exc)))

    def _has_body(self) -> bool:
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        return chunked or (self.headers.get("Content-Length") or "0").strip() not in ("", "0")

    def _page(self, page: Page) -> None:
        """The front door's own answer; a request body it did not read ends the connection."""
        if self._has_body():
            self.close_connection = True
        body = _page_text(page.status, page.text).encode()
        self.send_response(page.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- the request, on to the instance -------------------------------------------------------

    def _request_headers(self, fwd: Forward, origins: Origins) -> list[tuple[str, str]]:
        named = {h.strip().lower() for h in (self.headers.get("Connection") or "").split(",")}
        out: list[tuple[str, str]] = []
        forwarded_for = ""
        for key, value in self.headers.items():
            low = key.lower()
            if low in _HOP_BY_HOP or low in named or low in ("host", "content-length", "expect"):
                continue
            if low == "x-forwarded-for":
                forwarded_for = value + ", "
                continue
            if low in ("x-forwarded-proto", "x-forwarded-host"):
                continue
            if low in ("origin", "referer"):
                value = origins.to_cloud(value)
            out.append((key, value))
        out.append(("Host", fwd.cloud_host))
        out.append(("X-Forwarded-Proto", "https"))
        out.append(("X-Forwarded-For", forwarded_for + self.client_address[0]))
        if not any(k.lower() == "x-cloud-trace-context" for k, _ in out):
            trace = secrets.token_hex(16)
            out.append(("X-Cloud-Trace-Context", f"{trace}/{secrets.randbits(63)};o=1"))
        return out

    def _body(self) -> tuple[_Body, str | None]:
        """The request body as http.client sends it, and its Content-Length (None: chunked)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._chunks(), None
        raw = (self.headers.get("Content-Length") or "").strip()
        if not raw:
            return None, None
        if not raw.isdigit():
            raise _BadRequest(f"Invalid Content-Length {raw[:40]!r}.")
        n = int(raw)
        return (_Limited(self.rfile, n) if n else b""), str(n)

    def _chunks(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                raise _BadRequest(f"Invalid chunk size {line[:40]!r}.") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return
            while size > 0:
                data = self.rfile.read(min(size, CHUNK))
                if not data:
                    return
                size -= len(data)
                yield data
            self.rfile.readline(1024)

    def _forward(self, fwd: Forward) -> None:
        origins = Origins(fwd.local_host, fwd.cloud_host)
        headers = self._request_headers(fwd, origins)
        body, length = self._body()
        if length is not None:
            headers.append(("Content-Length", length))
        elif body is not None:
            headers.append(("Transfer-Encoding", "chunked"))
        pool = self.server.door.pool
        replayable = body is None or body == b""
        while True:
            conn, reused = pool.take(fwd.address, fwd.timeout)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in headers:
                    conn.putheader(key, value)
                conn.endheaders(message_body=None)
                if body is not None and body != b"":
                    self._send_body(conn, body, chunked=length is None)
                resp = conn.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                conn.close()
                if reused and replayable and not isinstance(exc, TimeoutError):
                    continue  # an idle connection the instance had closed: a fresh one
                if isinstance(exc, TimeoutError):
                    self._page(Page(504, "upstream request timeout"))
                else:
                    self._page(Page(503, f"The instance did not answer ({exc})."))
                return
            break
        whole = self._answer(resp, origins)
        if resp.will_close or not whole:
            conn.close()
        else:
            pool.give(fwd.address, conn)

    @staticmethod
    def _send_body(
        conn: http.client.HTTPConnection,
        body: bytes | _Limited | Iterator[bytes],
        *,
        chunked: bool,
    ) -> None:
        if isinstance(body, bytes):
            conn.send(body)
            return
        if not chunked:
            assert isinstance(body, _Limited)
            while data := body.read(CHUNK):
                conn.send(data)
            return
        assert not isinstance(body, _Limited)
        for data in body:
            conn.send(b"%x\r\n%s\r\n" % (len(data), data))
        conn.send(b"0\r\n\r\n")

    # -- the answer, back to the client --------------------------------------------------------

    def _answer(self, resp: http.client.HTTPResponse, origins: Origins) -> bool:
        """Send the instance's answer on; False when it broke off midway."""
        named = {h.strip().lower() for h in (resp.getheader("Connection") or "").split(",")}
        self.send_response_only(resp.status, resp.reason)
        length = resp.getheader("Content-Length")
        no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        for key, value in resp.getheaders():
            low = key.lower()
            if low in _HOP_BY_HOP or low in named or low == "content-length":
                continue
            if low in ("location", "content-location"):
                value = origins.to_local(value)
            elif low == "set-cookie":
                value = origins.cookie(value)
            self.send_header(key, value)
        chunked = False
        if length is not None:
            self.send_header("Content-Length", length)
        elif not no_body and self.request_version == "HTTP/1.0":
            self.close_connection = True  # the body ends with the connection
        elif not no_body:
            chunked = True
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if no_body:
            resp.read()
            return True
        try:
            while data := resp.read1(CHUNK):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        except (http.client.HTTPException, OSError):
            self.close_connection = True  # the instance broke off: so does the answer
            resp.close()
            return False
        # read1 leaves a response whose Content-Length is used up open, and http.client will
        # not send on a connection whose last response is open: close it (the socket stays)
        resp.close()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        return True


class _Limited:
    """The next ``n`` bytes of a stream, read in pieces."""

    def __init__(self, stream: io.BufferedIOBase, n: int) -> None:
        self.stream, self.left = stream, n

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if size < 0 else min(size, self.left)
        data = self.stream.read(want)
        self.left -= len(data)
        if not data:
            self.left = 0
        return data


_Body = bytes | _Limited | Iterator[bytes] | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], door: FrontDoor) -> None:
        self.door = door
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

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
            return  # a client or an instance went away
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

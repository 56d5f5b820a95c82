"""Just enough of PostgreSQL's frontend/backend protocol (version 3) for an existing server
given by a URL (:mod:`.sharedpg`): parsing that URL, an admin client that runs simple queries,
and the startup packet a connection proxy rewrites. No driver is needed (psycopg is not a
dependency of djdeploy).

The client authenticates with trust, a cleartext password, MD5 or SCRAM-SHA-256 (RFC 5802/7677,
without channel binding), without SSL.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import hmac
import secrets
import socket
import struct
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from .postgres import PostgresError

#: where the URL comes from when no option gives it
URL_ENV = "DJDEPLOY_EMULATOR_POSTGRES_URL"
URL_FORM = "postgresql://USER[:PASSWORD]@HOST[:PORT][/DATABASE]"
PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
#: bound on one admin statement (a DROP DATABASE ... WITH (FORCE) ends sessions first)
STATEMENT_SECONDS = 120.0
CONNECT_SECONDS = 10.0
_PARAMETERS = {"host", "port", "user", "password", "dbname", "sslmode", "connect_timeout"}
_SSLMODES = {"disable", "allow", "prefer"}  # what connects without SSL


class PostgresUrlError(PostgresError):
    """The URL cannot be used; the message is one line, without the password."""


@dataclass(frozen=True)
class ServerUrl:
    host: str  # a name or address, or a unix socket directory (starts with /)
    port: int
    user: str
    database: str
    password: str | None = None

    def __repr__(self) -> str:  # never the password
        return f"ServerUrl({self.redacted})"

    @property
    def redacted(self) -> str:
        """The URL without its password (what output may show)."""
        host = self.host if not self.host.startswith("/") else f"[{self.host}]"
        return f"postgresql://{self.user}@{host}:{self.port}/{self.database}"

    def connect(self) -> socket.socket:
        """A socket to the server (OSError when it does not answer)."""
        if self.host.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_SECONDS)
            try:
                sock.connect(f"{self.host}/.s.PGSQL.{self.port}")
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self.host, self.port), timeout=CONNECT_SECONDS)
        sock.settimeout(STATEMENT_SECONDS)
        return sock


def parse_url(url: str, *, source: str = URL_ENV) -> ServerUrl:
    """``postgresql://USER[:PASSWORD]@HOST[:PORT][/DATABASE]`` (or ``postgres://``; libpq's
    ``host``, ``port``, ``user``, ``password``, ``dbname`` query parameters; ``host`` may be a
    unix socket directory). USER defaults to this system user, DATABASE to USER, as in libpq.
    ``source`` names where the URL came from in the error."""

    def bad(why: str) -> PostgresUrlError:
        return PostgresUrlError(f"{source}: {why}: give {URL_FORM}")

    try:
        parts = urlsplit(url.strip())
        port_in_netloc = parts.port
    except ValueError as exc:
        raise bad(f"not a URL ({exc})") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise bad("not a PostgreSQL URL (it must start with postgresql://)")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - _PARAMETERS)
    if unknown:
        raise bad(f"unsupported parameter {unknown[0]}")
    sslmode = query.get("sslmode", "prefer")
    if sslmode not in _SSLMODES:
        raise bad(f"sslmode={sslmode} is not supported (the emulator connects without SSL)")
    host = query.get("host") or unquote(parts.hostname or "")
    if not host:
        raise bad("no host")
    try:
        port = int(query.get("port") or port_in_netloc or 5432)
    except ValueError:
        raise bad(f"port {query['port']!r} is not a number") from None
    if not 0 < port < 65536:
        raise bad(f"port {port} is out of range")
    user = query.get("user") or unquote(parts.username or "") or getpass.getuser()
    password = query.get("password") or (unquote(parts.password) if parts.password else None)
    database = query.get("dbname") or unquote(parts.path.lstrip("/")) or user
    return ServerUrl(host=host, port=port, user=user, database=database, password=password)


# -- messages ------------------------------------------------------------------------------------


def startup_packet(params: dict[str, str], *, version: int = PROTOCOL_3) -> bytes:
    body = struct.pack("!I", version)
    for key, value in params.items():
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def parse_startup(body: bytes) -> dict[str, str]:
    """The parameters of a startup packet's body after the version (``key\\0value\\0...\\0``)."""
    fields = body.split(b"\0")
    return {
        fields[i].decode(): fields[i + 1].decode()
        for i in range(0, len(fields) - 1, 2)
        if fields[i]
    }


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def _read(sock: socket.socket) -> tuple[bytes, bytes]:
    kind = recv_exact(sock, 1)
    (length,) = struct.unpack("!I", recv_exact(sock, 4))
    return kind, recv_exact(sock, length - 4)


def _error_text(body: bytes) -> str:
    """An ErrorResponse's message field (``M``)."""
    for field in body.split(b"\0"):
        if field[:1] == b"M":
            return field[1:].decode(errors="replace")
    return "the server reported an error"


# -- authentication ------------------------------------------------------------------------------


class _Scram:
    """The client side of SCRAM-SHA-256 without channel binding."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        data = ("n,," + self.first_bare).encode()
        return b"SCRAM-SHA-256\0" + struct.pack("!I", len(data)) + data

    def final(self, server_first: str) -> bytes:
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise PostgresError("the server's SCRAM nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac(
            "sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_signature = hmac.new(server_key, auth, "sha256").digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check(self, server_final: str) -> None:
        attrs = dict(item.split("=", 1) for item in server_final.split(","))
        if base64.b64decode(attrs.get("v", "")) != self.server_signature:
            raise PostgresError("the server's SCRAM signature does not match")


class Client:
    """One admin session on the server (simple query protocol)."""

    def __init__(self, server: ServerUrl, *, database: str | None = None) -> None:
        self.server = server
        try:
            self.sock = server.connect()
        except OSError as exc:
            raise PostgresError(
                f"the PostgreSQL server {server.redacted} does not answer ({exc.strerror or exc})"
            ) from None
        try:
            self._start(database or server.database)
        except (OSError, ConnectionError) as exc:
            self.sock.close()
            raise PostgresError(f"the PostgreSQL server {server.redacted}: {exc}") from None
        except PostgresError:
            self.sock.close()
            raise

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(message(b"X", b""))
        self.sock.close()

    def _password(self) -> str:
        if self.server.password is None:
            raise PostgresError(
                f"the PostgreSQL server {self.server.redacted} asks for a password: "
                f"put it in the URL ({URL_FORM})"
            )
        return self.server.password

    def _start(self, database: str) -> None:
        user = self.server.user
        params = {"user": user, "database": database, "application_name": "djdeploy-emulator"}
        self.sock.sendall(startup_packet(params))
        scram: _Scram | None = None
        while True:
            kind, body = _read(self.sock)
            if kind == b"E":
                raise PostgresError(_error_text(body))
            if kind == b"Z":
                return
            if kind != b"R":
                continue  # ParameterStatus, BackendKeyData, NoticeResponse
            (code,) = struct.unpack("!I", body[:4])
            if code == 3:
                self.sock.sendall(message(b"p", self._password().encode() + b"\0"))
            elif code == 5:
                inner = hashlib.md5((self._password() + user).encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                self.sock.sendall(message(b"p", b"md5" + outer.encode() + b"\0"))
            elif code == 10:
                if b"SCRAM-SHA-256\0" not in body[4:]:
                    raise PostgresError("the server offers no SCRAM-SHA-256 authentication")
                scram = _Scram(self._password())
                self.sock.sendall(message(b"p", scram.first()))
            elif code == 11 and scram is not None:
                self.sock.sendall(message(b"p", scram.final(body[4:].decode())))
            elif code == 12 and scram is not None:
                scram.check(body[4:].decode())
            elif code != 0:
                raise PostgresError(f"unsupported authentication method (code {code})")

    def query(self, sql: str) -> list[list[str | None]]:
        """Run ``sql`` (one implicit transaction unless a statement cannot run in one: send
        CREATE/DROP DATABASE alone); the rows, as text; PostgresError with the server's
        message."""
        self.sock.sendall(message(b"Q", sql.encode() + b"\0"))
        rows: list[list[str | None]] = []
        error: str | None = None
        while True:
            kind, body = _read(self.sock)
            if kind == b"D":
                rows.append(_row(body))
            elif kind == b"E":
                error = _error_text(body)
            elif kind == b"Z":
                break
        if error is not None:
            raise PostgresError(error)
        return rows


def _row(body: bytes) -> list[str | None]:
    (count,) = struct.unpack("!H", body[:2])
    at, out = 2, list[str | None]()
    for _ in range(count):
        (length,) = struct.unpack("!i", body[at : at + 4])
        at += 4
        if length < 0:
            out.append(None)
            continue
        out.append(body[at : at + length].decode())
        at += length
    return out

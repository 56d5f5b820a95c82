"""Cloud SQL instances on an existing PostgreSQL server given by a URL (docs/emulator.md,
"Local execution"): an instance is a set of prefixed roles and databases on it.

Names: every role and database of an instance is ``<prefix><name>``, the prefix
``dj<state>_<instance>_`` made of hashes of the state directory (6 hex digits: two state dirs
never share objects, and :meth:`SharedServer.remove_all` finds all of one) and of
``PROJECT:INSTANCE`` (8 hex digits), 18 bytes in all. A name that would pass PostgreSQL's
63-byte limit keeps its head and ends in a hash of the whole name, so two long names never
become one.

Connections: the app must see the names Cloud SQL gives it, so each instance has a small proxy
(:class:`Proxy`, threads of the emulator) listening where a cluster's server would (a short
socket directory linked into the Cloud SQL layout, and a loopback port). It reads the startup
packet, prefixes its ``user`` and ``database`` (a missing database is the user's name, as
PostgreSQL would take it, before the prefix), and from then on copies bytes both ways: the
server itself authenticates the role with the password the API set (a SCRAM verifier) and
whatever its pg_hba.conf says. The URL's own user (CREATEROLE and CREATEDB, or a superuser) runs
the API's effects, through :class:`~.pgwire.Client`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import selectors
import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path

from .pgwire import (
    CANCEL_REQUEST,
    CONNECT_SECONDS,
    GSSENC_REQUEST,
    SSL_REQUEST,
    Client,
    ServerUrl,
    message,
    parse_startup,
    recv_exact,
    startup_packet,
)
from .postgres import GROUP, Instances, PostgresError, Served, find_tool, ident, literal

NAME_MAX = 63  # PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes
FORCE_DROP_VERSION = 130000  # DROP DATABASE ... WITH (FORCE)


def _hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def state_prefix(state_dir: Path) -> str:
    return f"dj{_hex(str(state_dir.resolve()), 6)}_"


def instance_prefix(state: str, project: str, instance: str) -> str:
    return f"{state}{_hex(f'{project}:{instance}', 8)}_"


def prefixed(prefix: str, name: str) -> str:
    """``prefix + name`` within NAME_MAX bytes (a longer one: its head and a hash of it)."""
    full = prefix + name
    if len(full.encode()) <= NAME_MAX:
        return full
    room = NAME_MAX - len(prefix.encode()) - 9
    head = name.encode()[:room].decode(errors="ignore")
    return f"{prefix}{head}_{_hex(name, 8)}"


def _starting(column: str, prefix: str) -> str:
    return f"left({column}, {len(prefix)}) = {literal(prefix)}"


def _drop_prefixed(server: ServerUrl, prefix: str) -> None:
    """Drop every database (ending its sessions) and role whose name starts with ``prefix``."""
    with Client(server) as c:
        [[version]] = c.query("SHOW server_version_num")
        databases = c.query(f"SELECT datname FROM pg_database WHERE {_starting('datname', prefix)}")
        for [name] in databases:
            assert name is not None
            if int(version or 0) >= FORCE_DROP_VERSION:
                c.query(f"DROP DATABASE IF EXISTS {ident(name)} WITH (FORCE)")
                continue
            c.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = {literal(name)}"
            )
            c.query(f"DROP DATABASE IF EXISTS {ident(name)}")
        roles = c.query(
            f"SELECT rolname FROM pg_roles WHERE {_starting('rolname', prefix)} "
            "ORDER BY rolcanlogin DESC"  # the members before their group
        )
        for [name] in roles:
            assert name is not None
            c.query(f"DROP ROLE IF EXISTS {ident(name)}")


# -- the proxy -----------------------------------------------------------------------------------


def _fatal(text: str) -> bytes:
    """An ErrorResponse a client shows as the reason its connection failed."""
    return message(b"E", b"SFATAL\0C08006\0M" + text.encode() + b"\0\0")


class Proxy:
    """Accepts PostgreSQL connections on a unix socket and a loopback port, and passes each to
    the server with its startup packet's user and database prefixed."""

    def __init__(self, server: ServerUrl, *, prefix: str, unix_path: Path, port: int) -> None:
        self.server = server
        self.prefix = prefix
        self.listeners = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), socket.socket()]
        with contextlib.suppress(FileNotFoundError):
            unix_path.unlink()  # left by an emulator that was killed
        try:
            self.listeners[0].bind(str(unix_path))
            self.listeners[1].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listeners[1].bind(("127.0.0.1", port))
        except OSError:
            for listener in self.listeners:
                listener.close()
            raise
        self.unix_path = unix_path
        self._wake_r, self._wake_w = socket.socketpair()
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name=f"pgproxy-{port}", daemon=True)

    def start(self) -> None:
        for listener in self.listeners:
            listener.listen(64)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and end every connection it passes (their sessions end)."""
        self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join()
        for listener in self.listeners:
            listener.close()
        self._wake_r.close()
        self._wake_w.close()
        with contextlib.suppress(FileNotFoundError):
            self.unix_path.unlink()
        with self._lock:
            live, self._live = set(self._live), set()
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        with selectors.DefaultSelector() as selector:
            for listener in self.listeners:
                selector.register(listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    assert isinstance(key.fileobj, socket.socket)
                    with contextlib.suppress(OSError):
                        client, _ = key.fileobj.accept()
                        threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, *socks: socket.socket) -> bool:
        with self._lock:
            if self._stopping:
                return False
            self._live.update(socks)
            return True

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            self._live.difference_update(socks)
        for sock in socks:
            sock.close()

    def _serve(self, client: socket.socket) -> None:
        if not self._track(client):
            client.close()
            return
        upstream: socket.socket | None = None
        try:
            client.settimeout(CONNECT_SECONDS)  # a startup packet arrives at once
            while True:
                (length,) = struct.unpack("!I", recv_exact(client, 4))
                body = recv_exact(client, length - 4)
                (code,) = struct.unpack("!I", body[:4])
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    break
                client.sendall(b"N")  # no SSL, no GSSAPI: the client goes on in the clear
            try:
                upstream = self.server.connect()
            except OSError as exc:
                client.sendall(_fatal(f"{self.server.redacted} does not answer ({exc})"))
                return
            if code == CANCEL_REQUEST:  # a backend's pid and key: the server's own
                upstream.sendall(struct.pack("!I", length) + body)
                return
            params = parse_startup(body[4:])
            user = params.get("user", "")
            if user:
                params["database"] = prefixed(self.prefix, params.get("database") or user)
                params["user"] = prefixed(self.prefix, user)
            upstream.sendall(startup_packet(params, version=code))
            client.settimeout(None)
            upstream.settimeout(None)
            if not self._track(upstream):
                return
            other = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
            other.start()
            _copy(client, upstream)
            other.join()
        except (OSError, ConnectionError, struct.error, UnicodeDecodeError):
            return  # the client or the server went away: so does the connection
        finally:
            self._forget(client, *([upstream] if upstream is not None else []))


def _copy(source: socket.socket, target: socket.socket) -> None:
    """Bytes from ``source`` to ``target`` until either ends; then both are shut down, which
    ends the copy the other way too."""
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    for sock in (source, target):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


# -- instances -----------------------------------------------------------------------------------


class SharedInstance(Served):
    """One instance's roles and databases on the server, and its proxy."""

    def __init__(
        self,
        root: Path,
        *,
        layout_dir: Path,
        server: ServerUrl,
        prefix: str,
        pg_dump: str | None,
    ) -> None:
        super().__init__(root, layout_dir=layout_dir)
        self.server = server
        self.prefix = prefix
        self.pg_dump = pg_dump
        self._proxy: Proxy | None = None

    def name(self, name: str) -> str:
        return prefixed(self.prefix, name)

    def facts(self) -> dict[str, object]:
        return {"server": self.server.redacted, "prefix": self.prefix}

    def _sql(self, *statements: str) -> list[list[str | None]]:
        """Each statement in its own transaction, as the URL's user; the last one's rows."""
        rows: list[list[str | None]] = []
        with Client(self.server) as c:
            for statement in statements:
                rows = c.query(statement)
        return rows

    def _has(self, catalog: str, column: str, name: str) -> bool:
        query = f"SELECT 1 FROM {catalog} WHERE {column} = {literal(self.name(name))}"
        return bool(self._sql(query))

    def exists(self) -> bool:
        """Its ``postgres`` database, made last by :meth:`create`, exists."""
        return self._has("pg_database", "datname", "postgres")

    def running(self) -> bool:
        return self._proxy is not None

    def create(self, *, root_password_verifier: str | None) -> None:
        """The Cloud SQL roles and database, prefixed (each made unless it exists, so an
        interrupted create completes): ``cloudsqlsuperuser`` (the URL's user joins it, so it
        may give it databases), ``postgres`` (the root password, else none), the ``postgres``
        database; then the proxy starts."""
        if not self._has("pg_roles", "rolname", GROUP):
            self._sql(
                f"CREATE ROLE {self.group} NOLOGIN CREATEROLE CREATEDB",
                f"GRANT {self.group} TO CURRENT_USER",
            )
        if not self._has("pg_roles", "rolname", "postgres"):
            self.create_role("postgres", verifier=root_password_verifier)
        if not self.exists():
            self.create_database("postgres")
        self.start()

    def start(self) -> None:
        if self._proxy is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        port = self._take_port()
        self.socket_dir.mkdir(mode=0o755, exist_ok=True)
        try:
            proxy = Proxy(self.server, prefix=self.prefix, unix_path=self.socket, port=port)
        except OSError as exc:
            raise PostgresError(
                f"the proxy of {self.layout_dir.name} cannot listen: {exc}"
            ) from None
        proxy.start()
        self._proxy = proxy
        self._link_layout()

    def stop(self) -> None:
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            proxy.stop()
        self._unlink_layout()

    def remove(self) -> None:
        """Stop the proxy, drop every database (ending its sessions) and role of the
        instance, delete its files."""
        self.stop()
        for path in (self.root, self.socket_dir, self.layout_dir):
            shutil.rmtree(path, ignore_errors=True)
        _drop_prefixed(self.server, self.prefix)

    def execute(self, statement: str) -> None:
        self._sql(statement)

    def dump(self, path: Path) -> None:
        """``pg_dump --create`` of each of the instance's databases (their server names), one
        after the other in ``path``; without a pg_dump on this machine, no file."""
        if self.pg_dump is None:
            return
        rows = self._sql(
            f"SELECT datname FROM pg_database WHERE {_starting('datname', self.prefix)} "
            "ORDER BY datname"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.server.password is not None:
            env["PGPASSWORD"] = self.server.password
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            out.write(f"-- the databases of {self.prefix}* on {self.server.redacted}\n")
            for [database] in rows:
                assert database is not None
                out.flush()
                done = subprocess.run(
                    [
                        self.pg_dump,
                        "--create",
                        "--no-password",
                        "--dbname",
                        self._conninfo(database),
                    ],
                    stdout=out,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    check=False,
                )
                if done.returncode != 0:
                    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
                    raise PostgresError(lines[-1] if lines else f"pg_dump exited {done.returncode}")

    def _conninfo(self, database: str) -> str:
        def quoted(value: str) -> str:
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

        fields = {
            "host": self.server.host,
            "port": str(self.server.port),
            "user": self.server.user,
            "dbname": database,
        }
        return " ".join(f"{k}={quoted(v)}" for k, v in fields.items())


class SharedServer(Instances):
    """The instances of one state directory on one server."""

    DIRS = ("postgres-shared", *Instances.DIRS)

    def __init__(self, state_dir: Path, server: ServerUrl) -> None:
        super().__init__(state_dir)
        self.server = server
        self.source = server.redacted
        self.prefix = state_prefix(state_dir)
        self.pg_dump = find_tool("pg_dump")

    @classmethod
    def open(cls, state_dir: Path, server: ServerUrl) -> SharedServer:
        """PostgresError (one line) when the server does not answer or its user may not make
        roles and databases."""
        with Client(server) as c:
            [[can]] = c.query(
                "SELECT rolsuper OR (rolcreaterole AND rolcreatedb) FROM pg_roles "
                "WHERE rolname = current_user"
            )
        if can != "t":
            raise PostgresError(
                f"the PostgreSQL server {server.redacted}: user {server.user} needs CREATEROLE "
                "and CREATEDB (or to be a superuser) to make the instances' roles and databases"
            )
        return cls(state_dir, server)

    def _make(self, project: str, instance: str, *, layout_dir: Path) -> SharedInstance:
        return SharedInstance(
            self.state_dir / "postgres-shared" / project / instance,
            layout_dir=layout_dir,
            server=self.server,
            prefix=instance_prefix(self.prefix, project, instance),
            pg_dump=self.pg_dump,
        )

    def remove_all(self) -> None:
        """:meth:`Instances.remove_all`, and every database and role of this state dir on
        the server, also of instances this emulator has not touched."""
        super().remove_all()
        _drop_prefixed(self.server, self.prefix)

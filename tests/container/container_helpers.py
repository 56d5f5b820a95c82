"""Fixtures for the container tests.

A real PostgreSQL 15 (127.0.0.1:5432, trust auth, superuser postgres), a socket directory laid
out as Cloud Run lays out /cloudsql, and container/entrypoint.sh run from the checkout.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from deployer.contract import CONTRACT_NAMES

REPO = Path(__file__).resolve().parents[2]
CONTAINER = REPO / "container"
ENTRYPOINT = CONTAINER / "entrypoint.sh"
SAMPLE = CONTAINER / "sample"
VENV_BIN = Path(sys.executable).parent
PG_SOCKET = Path("/var/run/postgresql/.s.PGSQL.5432")
HOST = "app-test.example.run.app"
#: the service's older host as the deployer allows it (Names.run_app_host_pattern)
RUN_APP_PATTERN = "app-test-*-ew.a.run.app"
CONNECTION_NAME = "test-proj:europe-west1:test-inst"


def admin_connect() -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True
    )


@dataclass(frozen=True)
class Tenant:
    """A user and database laid out as djdeploy makes them on Cloud SQL."""

    owner: str  # stands in for cloudsqlsuperuser: owns the database; the user is a member
    user: str
    password: str
    database: str


def create_tenant(label: str) -> Tenant:
    suffix = secrets.token_hex(4)
    tenant = Tenant(
        owner=f"djt_{label}_{suffix}_owner",
        user=f"djt_{label}_{suffix}",
        password="dbpw-" + secrets.token_urlsafe(24),
        database=f"djt_{label}_{suffix}",
    )
    with admin_connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(tenant.owner)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(tenant.user),
                sql.Literal(tenant.password),
                sql.Identifier(tenant.owner),
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(tenant.database), sql.Identifier(tenant.owner)
            )
        )
    return tenant


def drop_tenant(tenant: Tenant) -> None:
    with admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{tenant.database}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{tenant.user}"')
        conn.execute(f'DROP ROLE IF EXISTS "{tenant.owner}"')


def tenant_query(tenant: Tenant, query: str) -> list[tuple]:
    """Run a query in the tenant's database as postgres."""
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname=tenant.database, autocommit=True
    ) as conn:
        return conn.execute(query).fetchall()


@contextlib.contextmanager
def cloudsql_dir() -> Iterator[Path]:
    """<tmp>/<project>:<region>:<instance>/.s.PGSQL.5432 -> the local server's socket.

    Laid out as Cloud Run mounts /cloudsql; in a short temporary directory, since a Unix
    socket's path must stay under 108 bytes.
    """
    with tempfile.TemporaryDirectory(prefix="djd-") as base:
        directory = Path(base) / CONNECTION_NAME
        directory.mkdir()
        (directory / PG_SOCKET.name).symlink_to(PG_SOCKET)
        yield directory


def pbkdf2_checks(encoded: str, password: str) -> bool:
    """Django's check of a password against its default (PBKDF2) hash, without setting Django
    up in the test process."""
    algorithm, iterations, salt, digest = encoded.split("$")
    assert algorithm == "pbkdf2_sha256"
    raw = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    return base64.b64encode(raw).decode() == digest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env() -> dict[str, str]:
    """This process's environment without any contract variable, with the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in CONTRACT_NAMES}
    for name in ("APP_HOME", "PYTHONPATH", "PORT", "DB_WAIT_SECONDS", "GOOGLE_CLOUD_PROJECT"):
        env.pop(name, None)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def secret_key() -> str:
    return "sk-" + secrets.token_urlsafe(48)


def tenant_env(tenant: Tenant, app_home: Path, socket_dir: Path, files: Path) -> dict[str, str]:
    env = base_env()
    env.update(
        APP_HOME=str(app_home),
        SECRET_KEY=secret_key(),
        DB_NAME=tenant.database,
        DB_USER=tenant.user,
        DB_PASSWORD=tenant.password,
        DB_HOST=str(socket_dir),
        DB_PORT="5432",
        MEDIA_ROOT=str(files / "media"),
        STATIC_ROOT=str(files / "static"),
        ALLOWED_HOSTS=f"{HOST},{RUN_APP_PATTERN},other.example.com",
        CSRF_TRUSTED_ORIGINS=f"https://{HOST}",
        GS_BUCKET_NAME="test-proj-media",
        DB_EXTENSIONS="citext,pg_trgm",
        DJANGO_SUPERUSER_USERNAME="admin",
        DJANGO_SUPERUSER_EMAIL="admin@example.com",
        DJANGO_SUPERUSER_PASSWORD="su-" + secrets.token_urlsafe(18),
        DB_WAIT_SECONDS="10",
    )
    return env


def run_entrypoint(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def http_get(
    url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text()


def start_server(env: dict[str, str], log_path: Path, wait: float = 20) -> Server:
    port = free_port()
    env = {**env, "PORT": str(port), "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4"}
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [str(ENTRYPOINT), "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    log_file.close()
    server = Server(process, port, log_path)
    health = env.get("HEALTH_PATH") or "/health/"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited {process.returncode}:\n{server.log()}")
        try:
            status, _, _ = http_get(server.base + health)
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise AssertionError(f"serve did not answer {health} within {wait}s:\n{server.log()}")


def stop_server(server: Server) -> float:
    """SIGTERM, as Cloud Run sends; returns how long shutdown took."""
    started = time.monotonic()
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    return time.monotonic() - started


def one_line(result: subprocess.CompletedProcess) -> str:
    """The single non-empty line a failing command printed (stdout and stderr together)."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one log line, got {len(lines)}:\n" + "\n".join(lines)
    return lines[0]

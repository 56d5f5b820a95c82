"""Cloud SQL instances on an existing PostgreSQL server given by a URL (local/sharedpg.py): the
real discovery client's calls become prefixed roles and databases on the machine's server
(127.0.0.1:5432, user postgres), and the app connects with Cloud SQL's names through the
instance's proxy in the connector layout. Every test drops what its state dir made there."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from deployer.api import Target, up
from deployer.cli import app
from deployer.config import Config
from deployer.emulator import Emulator, serve
from deployer.emulator.local.pgwire import URL_ENV, Client, PostgresUrlError, parse_url
from deployer.emulator.local.postgres import (
    UNAVAILABLE,
    Cluster,
    LocalPostgres,
    PostgresError,
    find_binaries,
    runner_for,
    scram_verifier,
)
from deployer.emulator.local.realizers import find_postgres
from deployer.emulator.local.sharedpg import (
    NAME_MAX,
    SharedServer,
    instance_prefix,
    prefixed,
    state_prefix,
)
from deployer.emulator.testing import TEST_TIME_SCALE
from tests.emulator.test_sqladmin_local import REGION, P, create, wait
from tests.emulator.test_sqladmin_local import client as sql_client

URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> bool:
    try:
        Client(parse_url(url)).close()
    except PostgresError:
        return False
    return True


needs_server = pytest.mark.skipif(not _answers(URL), reason=f"no PostgreSQL at {URL}")


def server_names(prefix: str) -> list[str]:
    """The databases and roles on the machine's server whose names start with ``prefix``."""
    with psycopg.connect(URL) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) "
            "UNION ALL SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)",
            (prefix, prefix),
        ).fetchall()
    return sorted(r[0] for r in rows)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pgu-", dir="/tmp"))  # short: the layout socket fits
    yield path
    if _answers(URL):  # whatever the test left on the server goes
        SharedServer(path, parse_url(URL)).remove_all()
        assert server_names(state_prefix(path)) == []
    shutil.rmtree(path, ignore_errors=True)


def start(state_dir: Path, url: str = URL) -> Any:
    return serve(
        Emulator(state_dir=state_dir, time_scale=TEST_TIME_SCALE, execute=True, postgres_url=url)
    )


def client(running: Any) -> Any:
    return sql_client(running.url, running.emu)


def done(sql: Any, op: dict[str, Any]) -> None:
    finished = wait(sql, op)
    assert "error" not in finished, finished


def layout(running: Any) -> tuple[str, int]:
    """The one instance's layout socket directory and loopback port."""
    [found] = running.control.local()["sql"]
    return str(Path(found["layoutSocket"]).parent), int(found["port"])


# -- the URL -------------------------------------------------------------------------------------


def test_url_forms() -> None:
    full = parse_url("postgresql://app:s%40cret@db.example:6543/main")
    assert (full.host, full.port, full.user, full.password, full.database) == (
        "db.example",
        6543,
        "app",
        "s@cret",
        "main",
    )
    assert "s@cret" not in full.redacted and "s@cret" not in repr(full)
    short = parse_url("postgres://admin@localhost")
    assert (short.port, short.database, short.password) == (5432, "admin", None)
    unix = parse_url("postgresql:///postgres?host=/var/run/postgresql&user=postgres")
    assert (unix.host, unix.user, unix.database) == ("/var/run/postgresql", "postgres", "postgres")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("mysql://root:pw@host/db", "not a PostgreSQL URL"),
        ("postgresql://root:pw@host:99999/db", "not a URL"),
        ("postgresql://root:pw@host/db?sslmode=require", "sslmode=require is not supported"),
        ("postgresql://root:pw@host/db?options=-c", "unsupported parameter options"),
        ("postgresql://root:pw@/db", "no host"),
    ],
)
def test_a_bad_url_is_one_line_without_the_password(url: str, why: str) -> None:
    with pytest.raises(PostgresUrlError) as info:
        parse_url(url)
    message = str(info.value)
    assert message.startswith(f"{URL_ENV}: ") and why in message
    assert "\n" not in message and ":pw@" not in message and "postgresql://USER" in message


def test_serve_refuses_a_bad_url_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["emulator", "serve", "--state-dir", str(tmp_path / "s"), "--postgres-url", "pg://x:pw@h"],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = [ln for ln in result.output.splitlines() if ln.strip()]
    assert "--postgres-url: not a PostgreSQL URL" in line and "pw" not in line
    assert not (tmp_path / "s").exists()


def test_emulator_commands_refuse_a_bad_url_in_the_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["--emulator", "status", "--tenant", "demo", "--state-dir", str(tmp_path / "s")],
        env={URL_ENV: "postgresql://h:notaport/db"},
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = [ln for ln in result.output.splitlines() if ln.strip()]
    assert line.startswith(f"error: {URL_ENV}: not a URL")
    assert not (tmp_path / "s").exists()  # no emulator was started


def test_names_are_prefixed_within_the_identifier_limit() -> None:
    prefix = "dj0a1b2c_3d4e5f60_"
    assert prefixed(prefix, "django") == prefix + "django"
    long_a, long_b = "a" * 60 + "x", "a" * 60 + "y"
    assert len(prefixed(prefix, long_a).encode()) <= NAME_MAX
    assert prefixed(prefix, long_a) != prefixed(prefix, long_b)
    assert prefixed(prefix, long_a) == prefixed(prefix, long_a)  # deterministic
    assert len(prefixed(prefix, "é" * 40).encode()) <= NAME_MAX  # bytes, not characters


def test_no_postgres_names_the_url_way() -> None:
    assert f"{URL_ENV}=postgresql://" in UNAVAILABLE


@needs_server
def test_a_url_wins_over_the_machines_binaries(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    given = find_postgres(state_dir, url=URL)
    assert isinstance(given, SharedServer) and given.source == URL
    monkeypatch.setenv(URL_ENV, URL)
    assert isinstance(find_postgres(state_dir, url=None), SharedServer)


def test_a_server_that_does_not_answer_is_one_line_and_the_api_works(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free: nothing listens once closed
    running = start(state_dir, f"postgresql://postgres:pw@127.0.0.1:{port}/postgres")
    try:
        sql = client(running)
        assert "error" not in create(sql)
        assert sql.instances().get(project=P, instance="pg-1").execute()["state"] == "RUNNABLE"
    finally:
        running.stop()
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if "PostgreSQL" in ln]
    assert f"postgresql://postgres@127.0.0.1:{port}/postgres does not answer" in line
    assert ":pw@" not in line


# -- the instance on the server ------------------------------------------------------------------


@needs_server
def test_users_databases_and_delete_are_prefixed_objects_on_the_server(state_dir: Path) -> None:
    running = start(state_dir)
    try:
        sql = client(running)
        assert "error" not in create(sql, retainBackupsOnDelete=True)
        [found] = running.control.local()["sql"]
        prefix = found["prefix"]
        assert running.control.local()["postgres"] == URL and found["server"] == URL
        users, databases = sql.users(), sql.databases()
        done(sql, users.insert(project=P, instance="pg-1", body={"name": "app"}).execute())
        done(sql, databases.insert(project=P, instance="pg-1", body={"name": "appdb"}).execute())
        names = ["app", "appdb", "cloudsqlsuperuser", "postgres", "postgres"]  # a db and a role
        assert sorted(server_names(prefix)) == sorted(prefix + n for n in names)
        socket_dir, port = layout(running)
        # the app's names are Cloud SQL's: the proxy prefixes them for the server
        with psycopg.connect(host=socket_dir, user="app", password="x", dbname="appdb") as conn:
            conn.execute("CREATE TABLE app_table (x int)")  # the app user may create tables
            assert conn.execute("SELECT current_user, current_database()").fetchone() == (
                prefix + "app",
                prefix + "appdb",
            )
        with pytest.raises(psycopg.OperationalError, match=f'database "{prefix}app" does not'):
            psycopg.connect(host="127.0.0.1", port=port, user="app", password="x")  # db: "app"
        with psycopg.connect(host="127.0.0.1", port=port, user="app", dbname="appdb") as conn:
            assert conn.execute("SELECT count(*) FROM app_table").fetchone() == (0,)
        body: dict[str, Any] = {}
        done(sql, sql.backupRuns().insert(project=P, instance="pg-1", body=body).execute())
        [dump] = (state_dir / "postgres-backups" / P / "pg-1").iterdir()
        assert "CREATE TABLE public.app_table" in dump.read_text()
        done(sql, databases.delete(project=P, instance="pg-1", database="appdb").execute())
        done(sql, users.delete(project=P, instance="pg-1", name="app").execute())
        assert prefix + "appdb" not in server_names(prefix)
        assert prefix + "app" not in server_names(prefix)
        with psycopg.connect(host=socket_dir, user="postgres", password="x", dbname="postgres"):
            # a session still open: the instance's delete ends it
            done(sql, sql.instances().delete(project=P, instance="pg-1").execute())
        assert server_names(prefix) == []
        assert dump.exists()  # retained
        assert not Path(socket_dir).exists() and running.control.local()["sql"] == []
    finally:
        running.stop()


@needs_server
def test_a_cancel_request_through_the_proxy_cancels_the_running_query(state_dir: Path) -> None:
    """A client's cancel (a CancelRequest packet on a new connection, naming the backend's pid
    and key) passes through the proxy unchanged and ends the query; the session goes on."""
    running = start(state_dir)
    try:
        assert "error" not in create(client(running))
        socket_dir, _ = layout(running)
        with psycopg.connect(
            host=socket_dir, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            pid = conn.info.backend_pid
            ended: list[BaseException] = []

            def sleep() -> None:
                try:
                    conn.execute("SELECT pg_sleep(600)")
                except psycopg.Error as exc:
                    ended.append(exc)

            query = threading.Thread(target=sleep)
            query.start()

            def sleeping() -> bool:  # seen by the server: a cancel now reaches the query
                with psycopg.connect(URL) as admin:
                    row = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s "
                        "AND state = 'active' AND query LIKE '%%pg_sleep%%'",
                        (pid,),
                    ).fetchone()
                return row == (1,)

            deadline = time.monotonic() + 60
            while not sleeping():
                assert time.monotonic() < deadline, "the query never ran"
                time.sleep(0.05)
            conn.cancel_safe()
            query.join(timeout=60)  # a bound, not a timing assumption: the cancel ends it
            assert not query.is_alive()
            assert len(ended) == 1 and isinstance(ended[0], psycopg.errors.QueryCanceled)
            assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on
    finally:
        running.stop()


@needs_server
def test_a_restart_brings_back_the_proxy_and_reset_drops_everything(state_dir: Path) -> None:
    running = start(state_dir)
    try:
        assert "error" not in create(client(running))
    finally:
        running.stop()
    running = start(state_dir)  # the realizer finds the instance on the server and serves it
    try:
        socket_dir, _ = layout(running)
        with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert server_names(state_prefix(state_dir)) != []
        running.control.reset()
        assert server_names(state_prefix(state_dir)) == []
    finally:
        running.stop()


@needs_server
def test_without_a_state_dir_the_server_is_cleaned_when_the_emulator_closes() -> None:
    emu = Emulator(time_scale=TEST_TIME_SCALE, execute=True, postgres_url=URL)
    assert emu.local.dir is not None
    prefix = state_prefix(emu.local.dir)
    running = serve(emu)
    try:
        assert "error" not in create(client(running))
        assert server_names(prefix) != []
    finally:
        running.stop()
    assert server_names(prefix) == []


# -- passwords, and a user that is not a superuser ------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(find_binaries() is None, reason=UNAVAILABLE)
def test_on_a_scram_server_the_server_checks_the_api_passwords(state_dir: Path) -> None:
    """The "existing server" is a cluster of the machine's PostgreSQL (scram-sha-256 for every
    login) whose URL user is a Cloud SQL ``postgres``: CREATEROLE and CREATEDB, no superuser."""
    binaries = find_binaries()
    assert binaries is not None
    host = LocalPostgres(state_dir / "host", binaries=binaries, runner=runner_for())
    server = host.cluster("host-proj", "host", region=REGION)
    assert isinstance(server, Cluster)
    try:
        server.create(root_password_verifier=scram_verifier("host-pw"))
        running = start(
            state_dir / "emu", f"postgresql://postgres:host-pw@127.0.0.1:{server.port}/postgres"
        )
        try:
            sql = client(running)
            assert "error" not in create(sql)
            body = {"name": "app", "password": "app-pw-1"}
            done(sql, sql.users().insert(project=P, instance="pg-1", body=body).execute())
            socket_dir, _ = layout(running)
            with psycopg.connect(
                host=socket_dir, user="app", password="app-pw-1", dbname="postgres"
            ):
                pass
            body = {"password": "app-pw-2"}
            update = sql.users().update(project=P, instance="pg-1", name="app", body=body)
            done(sql, update.execute())
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(host=socket_dir, user="app", password="app-pw-1", dbname="postgres")
            with psycopg.connect(
                host=socket_dir, user="app", password="app-pw-2", dbname="postgres"
            ):
                pass
            with psycopg.connect(
                host=socket_dir, user="postgres", password="root-Secret-1", dbname="postgres"
            ):
                pass
            done(sql, sql.instances().delete(project=P, instance="pg-1").execute())
        finally:
            running.stop()
        prefix = state_prefix(state_dir / "emu")
        left = f"SELECT count(*) FROM pg_roles WHERE starts_with(rolname, '{prefix}')"
        assert server.sql(left).strip() == "0"
    finally:
        server.remove()


# -- the app -------------------------------------------------------------------------------------


@needs_server
@pytest.mark.slow
def test_up_migrates_the_app_through_the_proxy(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` on the built-in emulator with the URL in the environment: the migrate job's Django
    connects to /cloudsql/P:R:I as demo_django and its tables land in the prefixed database."""
    monkeypatch.setenv(URL_ENV, URL)
    result = up(
        Config(tenant="demo", project="acme-prod"),
        target=Target(emulator=True, state_dir=state_dir, time_scale=0.01),
    )
    assert result.ok, [r.error for r in result.results if r.error]
    prefix = instance_prefix(state_prefix(state_dir), "acme-prod", "demo-django-pg")
    with psycopg.connect(URL, dbname=prefix + "demo_django") as conn:
        [(applied,)] = conn.execute("SELECT count(*) FROM django_migrations").fetchall()
        [(owner,)] = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'django_migrations'"
        ).fetchall()
    assert applied > 0 and owner == prefix + "demo_django"


def test_serve_names_the_variable_a_bad_url_came_from(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["emulator", "serve", "--state-dir", str(tmp_path / "s")],
        env={URL_ENV: "postgresql://h/db?sslmode=verify-full"},
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{URL_ENV}: sslmode=verify-full is not supported" in result.output

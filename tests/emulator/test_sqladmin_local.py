"""Cloud SQL Admin with local execution on: the real discovery client's calls become a real
PostgreSQL server, roles and databases, checked by connecting with psycopg through the Cloud SQL
layout socket."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deployer.emulator import Emulator, serve, serviceusage
from deployer.emulator.local.postgres import UNAVAILABLE, Cluster, find_binaries
from deployer.emulator.testing import TEST_TIME_SCALE, EmulatorHandle, discovery_client

P = "sql-local-proj"
REGION = "europe-west1"
needs_postgres = pytest.mark.skipif(find_binaries() is None, reason=UNAVAILABLE)


def client(url: str, emu: Emulator) -> Any:
    serviceusage.set_enabled(emu, P, "sqladmin.googleapis.com")
    return discovery_client(url, "sqladmin", "v1")


@pytest.fixture
def sql(executing_emulator: EmulatorHandle) -> Any:
    return client(executing_emulator.url, executing_emulator.emu)


def wait(sql: Any, op: dict[str, Any]) -> dict[str, Any]:
    """Poll until DONE (bounded: initdb takes seconds on a loaded machine)."""
    deadline = time.monotonic() + 120
    while op["status"] != "DONE":
        assert time.monotonic() < deadline, op
        time.sleep(0.02)
        op = sql.operations().get(project=P, operation=op["name"]).execute()
    return op


def create(sql: Any, name: str = "pg-1", **settings: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "region": REGION,
        "databaseVersion": "POSTGRES_15",
        "rootPassword": "root-Secret-1",
        "settings": {"tier": "db-f1-micro", **settings},
    }
    return wait(sql, sql.instances().insert(project=P, body=body).execute())


def cluster(emu: Emulator, name: str = "pg-1") -> Cluster:
    assert emu.local.postgres is not None
    return emu.local.postgres.cluster(P, name, region=REGION)


def connect(
    emu: Emulator, user: str, password: str, dbname: str = "postgres"
) -> psycopg.Connection:
    layout = cluster(emu).layout_dir
    assert layout.name == f"{P}:{REGION}:pg-1"
    return psycopg.connect(host=str(layout), user=user, password=password, dbname=dbname)


def refused(emu: Emulator, user: str, password: str, dbname: str = "postgres") -> str:
    with pytest.raises(psycopg.OperationalError) as info:
        connect(emu, user, password, dbname).close()
    return str(info.value)


@needs_postgres
@pytest.mark.slow
def test_users_and_databases_are_real(sql: Any, executing_emulator: EmulatorHandle) -> None:
    emu = executing_emulator.emu
    assert "error" not in create(sql)
    with connect(emu, "postgres", "root-Secret-1") as conn:  # the root password applies
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    # the admin API tells where it listens; the loopback port serves the user's own psql
    local = executing_emulator.control.local()
    assert local["executing"] and local["postgres"]
    [server] = local["sql"]
    assert server["connectionName"] == f"{P}:{REGION}:pg-1"
    assert server["layoutSocket"] == str(cluster(emu).layout_socket)
    with psycopg.connect(
        host="127.0.0.1", port=server["port"], user="postgres", password="root-Secret-1"
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    users, dbs = sql.users(), sql.databases()
    assert "error" not in wait(
        sql, dbs.insert(project=P, instance="pg-1", body={"name": "app"}).execute()
    )
    new_user = {"name": "app", "password": "app-Secret-1"}
    assert "error" not in wait(
        sql, users.insert(project=P, instance="pg-1", body=new_user).execute()
    )
    with connect(emu, "app", "app-Secret-1", "app") as conn:
        conn.execute("CREATE TABLE t (x int)")

    change = {"name": "app", "password": "app-Secret-2"}
    op = users.update(project=P, instance="pg-1", name="app", body=change).execute()
    assert "error" not in wait(sql, op)
    connect(emu, "app", "app-Secret-2", "app").close()
    assert "password authentication failed" in refused(emu, "app", "app-Secret-1", "app")

    # a role that owns objects cannot be dropped: the operation fails with PostgreSQL's reason
    failed = wait(sql, users.delete(project=P, instance="pg-1", name="app").execute())
    assert "some objects depend on it" in failed["error"]["errors"][0]["message"]
    assert users.get(project=P, instance="pg-1", name="app").execute()["name"] == "app"

    assert "error" not in wait(
        sql, dbs.delete(project=P, instance="pg-1", database="app").execute()
    )
    assert 'database "app" does not exist' in refused(emu, "app", "app-Secret-2", "app")
    assert "error" not in wait(sql, users.delete(project=P, instance="pg-1", name="app").execute())
    assert "password authentication failed" in refused(emu, "app", "app-Secret-2")

    # passwords reach PostgreSQL as SCRAM verifiers: never stored, never in the transcript
    state = json.dumps(emu.store.dump()) + json.dumps(emu.transcript.entries())
    for secret in ("root-Secret-1", "app-Secret-1", "app-Secret-2"):
        assert secret not in state
    assert "SCRAM-SHA-256$" in state

    # a reset forgets what runs too
    executing_emulator.control.reset()
    assert not cluster(emu).running() and not cluster(emu).root.exists()
    assert executing_emulator.control.local()["sql"] == []


@needs_postgres
@pytest.mark.slow
def test_delete_removes_the_server_and_keeps_a_real_dump_when_retained(
    sql: Any, executing_emulator: EmulatorHandle
) -> None:
    emu = executing_emulator.emu
    create(sql, retainBackupsOnDelete=True)
    with connect(emu, "postgres", "root-Secret-1") as conn:
        conn.execute("CREATE TABLE precious (v text)")
        conn.execute("INSERT INTO precious VALUES ('kept')")
    op = sql.backupRuns().insert(project=P, instance="pg-1", body={}).execute()
    assert "error" not in wait(sql, op)
    run = sql.backupRuns().list(project=P, instance="pg-1").execute()["items"][0]
    c = cluster(emu)
    assert emu.local.postgres is not None
    dump = emu.local.postgres.backup_dir(P, "pg-1") / f"{run['id']}.sql"

    assert "error" not in wait(sql, sql.instances().delete(project=P, instance="pg-1").execute())
    assert not c.root.exists() and not c.layout_dir.exists() and not c.socket_dir.exists()
    assert "CREATE TABLE public.precious" in dump.read_text() and "kept" in dump.read_text()


@needs_postgres
@pytest.mark.slow
def test_delete_without_retention_drops_the_dumps(
    sql: Any, executing_emulator: EmulatorHandle
) -> None:
    emu = executing_emulator.emu
    create(sql)
    assert "error" not in wait(
        sql, sql.backupRuns().insert(project=P, instance="pg-1", body={}).execute()
    )
    assert emu.local.postgres is not None
    backups = emu.local.postgres.backup_dir(P, "pg-1")
    assert list(backups.glob("*.sql"))
    assert "error" not in wait(sql, sql.instances().delete(project=P, instance="pg-1").execute())
    assert not backups.exists() and not cluster(emu).root.exists()


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lps-", dir="/tmp"))  # short: the layout socket fits
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_postgres
@pytest.mark.slow
def test_an_emulator_restart_brings_back_runnable_instances(state_dir: Path) -> None:
    first = serve(Emulator(state_dir=state_dir, time_scale=TEST_TIME_SCALE, execute=True))
    try:
        sql = client(first.url, first.emu)
        create(sql)
        with connect(first.emu, "postgres", "root-Secret-1") as conn:
            conn.execute("CREATE TABLE survives (v int)")
    finally:
        first.stop()
    assert not (state_dir / "cloudsql" / f"{P}:{REGION}:pg-1" / ".s.PGSQL.5432").exists()

    again = serve(Emulator(state_dir=state_dir, execute=True))
    try:
        assert cluster(again.emu).running()
        with connect(again.emu, "postgres", "root-Secret-1") as conn:
            assert conn.execute("SELECT count(*) FROM survives").fetchone() == (0,)
    finally:
        again.stop()


@needs_postgres
def test_one_executing_emulator_per_state_dir(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = Emulator(state_dir=state_dir, execute=True)
    other = Emulator(state_dir=state_dir, execute=True)
    try:
        assert owner.local.enabled and not other.local.enabled
        assert "another emulator executes on this state dir" in capsys.readouterr().err
    finally:
        other.close()
        owner.close()


def test_api_only_runs_nothing(emulator: EmulatorHandle) -> None:
    sql = client(emulator.url, emulator.emu)
    assert create(sql)["status"] == "DONE"
    assert not emulator.emu.local.enabled and emulator.emu.local.postgres is None
    assert "verifier" not in json.dumps(emulator.emu.store.dump())


def test_without_postgres_one_line_and_the_api_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("deployer.emulator.local.postgres.find_binaries", lambda: None)
    running = serve(Emulator(time_scale=TEST_TIME_SCALE, execute=True))
    try:
        sql = client(running.url, running.emu)
        assert "error" not in create(sql)
        inst = sql.instances().get(project=P, instance="pg-1").execute()
        assert inst["state"] == "RUNNABLE"
    finally:
        running.stop()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "PostgreSQL" in ln]
    assert lines == [f"djdeploy emulator: {UNAVAILABLE}"]


@needs_postgres
@pytest.mark.slow
def test_a_server_left_by_a_killed_emulator_is_reaped_by_the_next(state_dir: Path) -> None:
    serving = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from deployer.emulator import main_serve; import sys; "
            "main_serve(host='127.0.0.1', port=0, state_dir=sys.argv[1], time_scale=0.0)",
            str(state_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = serving.stdout.readline() if serving.stdout else ""
        assert line.rstrip().endswith("executing)"), line
        url = line.split("listening on ", 1)[1].split()[0]
        sharing = Emulator(state_dir=state_dir)  # API only: enables the API in the same state
        serviceusage.set_enabled(sharing, P, "sqladmin.googleapis.com")
        sharing.close()
        assert "error" not in create(discovery_client(url, "sqladmin", "v1"))
        pid_file = state_dir / "postgres" / P / "pg-1" / "data" / "postmaster.pid"
        stale = int(pid_file.read_text().split()[0])
    finally:
        serving.kill()  # kill -9: nothing stops its server
        serving.wait()
    assert not gone(stale)  # a server outlives an emulator killed with -9 ...

    again = Emulator(state_dir=state_dir, execute=True)
    try:
        assert gone(stale)  # ... until the next one starts on the state dir
        assert cluster(again).running()
        connect(again, "postgres", "root-Secret-1").close()
    finally:
        again.close()


def gone(pid: int) -> bool:
    """No such process, or a zombie (exited; its new parent may not reap it in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"

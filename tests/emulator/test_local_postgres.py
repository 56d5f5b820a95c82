"""The PostgreSQL realizer against the machine's own PostgreSQL (as root on CI: the user
namespace / unprivileged-user path runs for real). Clients connect with psycopg through the
Cloud SQL layout socket, the way the service's /cloudsql volume is used."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from deployer.emulator.local.postgres import (
    SOCKET_PATH_MAX,
    UNAVAILABLE,
    Binaries,
    Cluster,
    LocalPostgres,
    PostgresError,
    PostgresUnavailable,
    Runner,
    find_binaries,
    runner_for,
    scram_verifier,
    stale_postmasters,
)
from deployer.emulator.local.realizers import leftovers, reap_leftovers

pytestmark = pytest.mark.skipif(find_binaries() is None, reason=UNAVAILABLE)


@pytest.fixture
def pg() -> Iterator[LocalPostgres]:
    # a short state dir, so that the layout socket path fits the unix socket limit
    state = Path(tempfile.mkdtemp(prefix="lp-", dir="/tmp"))
    local = LocalPostgres.find(state)
    try:
        yield local
    finally:
        local.stop_all()
        shutil.rmtree(state, ignore_errors=True)


def _cluster(pg: LocalPostgres, instance: str = "inst", root_password: str = "root-pw") -> Cluster:
    c = pg.cluster("proj", instance, region="us-central1")
    c.create(root_password_verifier=scram_verifier(root_password))
    return c


def _connect(c: Cluster, user: str, password: str, dbname: str = "postgres") -> psycopg.Connection:
    assert len(str(c.layout_socket)) <= SOCKET_PATH_MAX
    return psycopg.connect(
        host=str(c.layout_dir), port=5432, user=user, password=password, dbname=dbname
    )


def _refused(c: Cluster, user: str, password: str, dbname: str = "postgres") -> str:
    with pytest.raises(psycopg.OperationalError) as info:
        _connect(c, user, password, dbname).close()
    return str(info.value)


@pytest.mark.slow
def test_roles_databases_and_passwords(pg: LocalPostgres) -> None:
    c = _cluster(pg)
    assert c.layout_socket == pg.state_dir / "cloudsql/proj:us-central1:inst/.s.PGSQL.5432"
    with _connect(c, "postgres", "root-pw") as conn:  # the instance's root password
        row = conn.execute("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = 'postgres'")
        assert row.fetchone() == (False, True)  # as on Cloud SQL: no superuser for anyone
    assert "password authentication failed" in _refused(c, "postgres", "wrong")

    c.create_role("app", verifier=scram_verifier("first"))
    c.create_database("appdb")
    with _connect(c, "app", "first", "appdb") as conn:
        conn.execute("CREATE TABLE t (x int)")  # members of cloudsqlsuperuser may create
        conn.execute("INSERT INTO t VALUES (1)")
    # the loopback port, for the user's own psql
    with psycopg.connect(
        host="127.0.0.1", port=c.port, user="app", password="first", dbname="appdb"
    ) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]

    c.set_password("app", scram_verifier("second"))
    _connect(c, "app", "second", "appdb").close()
    assert "password authentication failed" in _refused(c, "app", "first", "appdb")

    c.drop_database("appdb")
    assert 'database "appdb" does not exist' in _refused(c, "app", "second", "appdb")
    c.drop_role("app")
    assert "password authentication failed" in _refused(c, "app", "second")


@pytest.mark.slow
def test_failures_carry_postgres_message(pg: LocalPostgres) -> None:
    c = _cluster(pg)
    c.create_database("dup")
    with pytest.raises(PostgresError, match='database "dup" already exists'):
        c.create_database("dup")


@pytest.mark.slow
def test_stop_start_keeps_data_dump_and_remove(pg: LocalPostgres, tmp_path: Path) -> None:
    c = _cluster(pg)
    c.create_database("keep")
    with _connect(c, "postgres", "root-pw", "keep") as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    c.stop()
    assert not c.running()
    assert not c.layout_socket.exists() and not c.socket_dir.exists()
    assert "No such file" in _refused(c, "postgres", "root-pw", "keep")

    c.start()
    with _connect(c, "postgres", "root-pw", "keep") as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]

    dump = tmp_path / "final.sql"
    c.dump(dump)
    text = dump.read_text()
    assert "CREATE TABLE public.kept" in text and "still here" in text
    assert "CREATE ROLE postgres" in text

    c.remove()
    assert not c.root.exists() and not c.socket_dir.exists() and not c.layout_dir.exists()


@pytest.mark.slow
def test_restart_in_a_new_emulator_reaps_the_stale_postmaster(pg: LocalPostgres) -> None:
    old = _cluster(pg)
    assert old._proc is not None
    stale_pid = old._proc.pid
    # an emulator that was killed leaves its postmaster behind; a new one on the same state dir
    again = LocalPostgres(pg.state_dir, binaries=pg.binaries, runner=pg.runner)
    c = again.cluster("proj", "inst", region="us-central1")
    c.create(root_password_verifier=None)  # exists: starts it, the root password is unchanged
    try:
        assert old._proc.wait() is not None  # the stale one was stopped
        assert c._proc is not None and c._proc.pid != stale_pid
        _connect(c, "postgres", "root-pw").close()
    finally:
        c.stop()
        old._proc = None


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the unprivileged-user fallback is for root")
def test_as_root_without_user_namespaces_an_unprivileged_user_runs_it() -> None:
    state = Path(tempfile.mkdtemp(prefix="lpu-", dir="/tmp"))
    state.chmod(0o755)  # that user must reach the state dir
    runner = Runner(user="postgres" if _has_user("postgres") else "nobody")
    local = LocalPostgres(state, binaries=_binaries(), runner=runner)
    try:
        c = _cluster(local)
        assert c.data.stat().st_uid == pwd.getpwnam(str(runner.user)).pw_uid
        _connect(c, "postgres", "root-pw").close()
        c.remove()
        assert not c.root.exists()
    finally:
        local.stop_all()
        shutil.rmtree(state, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _binaries() -> Binaries:
    found = find_binaries()
    assert found is not None
    return found


def test_root_runs_clusters_unprivileged() -> None:
    assert runner_for(euid=1000).argv("postgres") == ["postgres"]
    as_root = runner_for(euid=0)
    assert as_root.prefix or as_root.user in ("postgres", "nobody")
    if as_root.prefix:  # a user namespace: inside it the server is not root
        uid = subprocess.run(
            as_root.argv("id", "-u"), capture_output=True, text=True, check=True
        ).stdout
        assert uid.strip() != "0"


def test_binaries_come_from_path_first(tmp_path: Path) -> None:
    for tool in ("initdb", "postgres", "psql", "pg_dumpall"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    found = find_binaries({"PATH": str(tmp_path)})
    assert found is not None and (found.bindir, found.source) == (tmp_path, "PATH")


def test_binaries_from_the_debian_layout_newest_first(tmp_path: Path) -> None:
    for version in ("13", "15"):
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        for tool in ("initdb", "postgres", "psql", "pg_dumpall"):
            (bindir / tool).write_text("#!/bin/sh\n")
            (bindir / tool).chmod(0o755)
    found = find_binaries({"PATH": ""}, debian=tmp_path)
    assert found is not None and found.bindir == tmp_path / "15" / "bin"


def test_no_postgres_names_the_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "deployer.emulator.local.postgres.importlib.util.find_spec", lambda name: None
    )
    assert find_binaries({"PATH": ""}, debian=tmp_path) is None
    message = str(PostgresUnavailable())
    assert "\n" not in message
    assert "install PostgreSQL" in message and "djdeploy[local]" in message


def test_scram_verifier_shape_and_no_password_inside() -> None:
    v = scram_verifier("hunter2")
    assert v.startswith("SCRAM-SHA-256$4096:") and "hunter2" not in v
    assert scram_verifier("hunter2") != v  # salted


@pytest.mark.slow
def test_a_killed_emulators_postmaster_is_listed_then_stopped(pg: LocalPostgres) -> None:
    """`emulator status` / `emulator stop` after a SIGKILL: the postmaster left on a cluster of
    the state dir is found by its postmaster.pid, then stopped."""
    old = _cluster(pg)
    assert old._proc is not None
    pid = old._proc.pid
    assert stale_postmasters(pg.state_dir) == [pid]
    assert f"postgres (pid {pid})" in leftovers(pg.state_dir)
    assert f"postgres (pid {pid})" in reap_leftovers(pg.state_dir)
    assert old._proc.wait() is not None
    assert stale_postmasters(pg.state_dir) == []
    old._proc = None

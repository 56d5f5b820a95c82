"""Cloud SQL Admin v1 through the real discovery client: every route, operation polling,
the legacy error format and the semantics that bite (one operation at a time, names of
deleted instances, staleData, deletion protection)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from deployer.emulator import serviceusage
from deployer.emulator.testing import discovery_client
from tests.contract import check_transcript

P = "sql-emu-proj"


@pytest.fixture
def sql(emulator):
    serviceusage.set_enabled(emulator.emu, P, "sqladmin.googleapis.com")
    yield discovery_client(emulator.url, "sqladmin", "v1")
    assert check_transcript(emulator.emu.transcript.entries()) == []


def wait(sql, op: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.time() + timeout
    while op["status"] != "DONE":
        assert time.time() < deadline, op
        time.sleep(0.01)
        op = sql.operations().get(project=P, operation=op["name"]).execute()
    return op


def body(name: str = "pg-1", **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "region": "europe-west1",
        "databaseVersion": "POSTGRES_15",
        "settings": {
            "tier": "db-f1-micro",
            "edition": "ENTERPRISE",
            "dataDiskSizeGb": "10",
            "backupConfiguration": {"enabled": True, "startTime": "03:00"},
            "deletionProtectionEnabled": False,
            "userLabels": {"managed-by": "djdeploy"},
            **settings,
        },
    }


def reason(exc: HttpError) -> str:
    import json

    return json.loads(exc.content)["error"]["errors"][0]["reason"]


def create(sql, name: str = "pg-1", **settings: Any) -> dict[str, Any]:
    op = sql.instances().insert(project=P, body=body(name, **settings)).execute()
    assert op["kind"] == "sql#operation" and op["operationType"] == "CREATE"
    assert op["status"] in ("PENDING", "RUNNING")
    return wait(sql, op)


def test_instance_lifecycle(sql, emulator):
    emulator.control.set_latency(durations={"sql.instance.create": 10**9})  # held till completed
    op = sql.instances().insert(project=P, body=body()).execute()
    inst = sql.instances().get(project=P, instance="pg-1").execute()
    assert inst["state"] == "PENDING_CREATE"
    # one operation at a time: a database insert meanwhile is refused
    with pytest.raises(HttpError) as exc:
        sql.databases().insert(project=P, instance="pg-1", body={"name": "db"}).execute()
    assert exc.value.status_code == 409 and reason(exc.value) == "operationInProgress"
    assert "another operation was already in progress" in str(exc.value)
    emulator.emu.ops.complete_now(op["name"])
    done = wait(sql, op)
    assert done["status"] == "DONE" and "error" not in done and done["endTime"]
    inst = sql.instances().get(project=P, instance="pg-1").execute()
    assert inst["state"] == "RUNNABLE"
    assert inst["connectionName"] == f"{P}:europe-west1:pg-1"
    assert inst["settings"]["settingsVersion"] == "1"
    assert inst["settings"]["userLabels"] == {"managed-by": "djdeploy"}
    listed = sql.instances().list(project=P).execute()
    assert [i["name"] for i in listed["items"]] == ["pg-1"]
    flt = sql.instances().list(project=P, filter="settings.userLabels.managed-by:djdeploy")
    assert len(flt.execute()["items"]) == 1
    none = sql.instances().list(project=P, filter="settings.userLabels.managed-by:other").execute()
    assert "items" not in none

    # patch: applied when the operation is done; settingsVersion incremented; labels merge
    op = (
        sql.instances()
        .patch(
            project=P,
            instance="pg-1",
            body={
                "settings": {
                    "tier": "db-g1-small",
                    "userLabels": {"team": "x"},
                    "settingsVersion": "1",
                }
            },
        )
        .execute()
    )
    assert op["operationType"] == "UPDATE"
    wait(sql, op)
    inst = sql.instances().get(project=P, instance="pg-1").execute()
    assert inst["settings"]["tier"] == "db-g1-small"
    assert inst["settings"]["settingsVersion"] == "2"
    assert inst["settings"]["userLabels"] == {"managed-by": "djdeploy", "team": "x"}
    # a stale settingsVersion: 412 staleData
    with pytest.raises(HttpError) as exc:
        sql.instances().patch(
            project=P, instance="pg-1", body={"settings": {"tier": "x", "settingsVersion": "1"}}
        ).execute()
    assert exc.value.status_code == 412 and reason(exc.value) == "staleData"

    # operations list: newest first, per instance
    ops = sql.operations().list(project=P, instance="pg-1").execute()["items"]
    assert [o["operationType"] for o in ops] == ["UPDATE", "CREATE"]
    assert all(o["status"] == "DONE" for o in ops)

    # delete; the name cannot be reused for a week
    op = sql.instances().delete(project=P, instance="pg-1").execute()
    assert op["operationType"] == "DELETE"
    wait(sql, op)
    with pytest.raises(HttpError) as exc:
        sql.instances().get(project=P, instance="pg-1").execute()
    assert exc.value.status_code == 404 and reason(exc.value) == "instanceDoesNotExist"
    with pytest.raises(HttpError) as exc:
        sql.instances().insert(project=P, body=body()).execute()
    assert exc.value.status_code == 409 and reason(exc.value) == "instanceAlreadyExists"
    assert "until one week from the deletion date" in str(exc.value)


def test_insert_existing_and_invalid(sql):
    create(sql)
    with pytest.raises(HttpError) as exc:
        sql.instances().insert(project=P, body=body()).execute()
    assert exc.value.status_code == 409 and reason(exc.value) == "instanceAlreadyExists"
    bad = body("pg-2")
    bad["region"] = "mars-1"
    with pytest.raises(HttpError) as exc:
        sql.instances().insert(project=P, body=bad).execute()
    assert exc.value.status_code == 400
    no_tier = body("pg-3")
    del no_tier["settings"]["tier"]
    with pytest.raises(HttpError) as exc:
        sql.instances().insert(project=P, body=no_tier).execute()
    assert exc.value.status_code == 400


def test_deletion_protection(sql):
    create(sql, deletionProtectionEnabled=True)
    with pytest.raises(HttpError) as exc:
        sql.instances().delete(project=P, instance="pg-1").execute()
    assert exc.value.status_code == 400
    assert "The instance is protected" in str(exc.value)
    op = (
        sql.instances()
        .patch(
            project=P,
            instance="pg-1",
            body={"settings": {"deletionProtectionEnabled": False, "retainBackupsOnDelete": True}},
        )
        .execute()
    )
    wait(sql, op)
    # a final backup, kept after the delete because of retainBackupsOnDelete
    op = (
        sql.backupRuns().insert(project=P, instance="pg-1", body={"description": "final"}).execute()
    )
    assert op["operationType"] == "BACKUP_VOLUME"
    wait(sql, op)
    runs = sql.backupRuns().list(project=P, instance="pg-1").execute()["items"]
    assert runs[0]["status"] == "SUCCESSFUL" and runs[0]["description"] == "final"
    got = sql.backupRuns().get(project=P, instance="pg-1", id=runs[0]["id"]).execute()
    assert got["id"] == runs[0]["id"]
    wait(sql, sql.instances().delete(project=P, instance="pg-1").execute())


def test_databases_and_users(sql, emulator):
    create(sql)
    op = (
        sql.databases()
        .insert(project=P, instance="pg-1", body={"name": "app", "charset": "UTF8"})
        .execute()
    )
    assert op["operationType"] == "CREATE_DATABASE"
    wait(sql, op)
    db = sql.databases().get(project=P, instance="pg-1", database="app").execute()
    assert db["charset"] == "UTF8" and db["collation"] == "en_US.UTF8"
    names = [d["name"] for d in sql.databases().list(project=P, instance="pg-1").execute()["items"]]
    assert names == ["app", "postgres"]
    with pytest.raises(HttpError) as exc:
        sql.databases().insert(project=P, instance="pg-1", body={"name": "app"}).execute()
    assert exc.value.status_code == 409

    op = (
        sql.users()
        .insert(project=P, instance="pg-1", body={"name": "app", "password": "hunter2-secret"})
        .execute()
    )
    assert op["operationType"] == "CREATE_USER"
    wait(sql, op)
    user = sql.users().get(project=P, instance="pg-1", name="app").execute()
    assert user["name"] == "app" and "password" not in user
    users = sql.users().list(project=P, instance="pg-1").execute()["items"]
    assert sorted(u["name"] for u in users) == ["app", "postgres"]
    assert all("password" not in u for u in users)
    op = (
        sql.users()
        .update(
            project=P,
            instance="pg-1",
            name="app",
            body={"name": "app", "password": "new-secret-pw"},
        )
        .execute()
    )
    assert op["operationType"] == "UPDATE_USER"
    wait(sql, op)
    wait(sql, sql.users().delete(project=P, instance="pg-1", name="app").execute())
    with pytest.raises(HttpError) as exc:
        sql.users().get(project=P, instance="pg-1", name="app").execute()
    assert exc.value.status_code == 404
    op = sql.databases().delete(project=P, instance="pg-1", database="app").execute()
    assert op["operationType"] == "DELETE_DATABASE"
    wait(sql, op)
    with pytest.raises(HttpError) as exc:
        sql.databases().get(project=P, instance="pg-1", database="app").execute()
    assert exc.value.status_code == 404
    import json

    dump = json.dumps(emulator.emu.transcript.entries())
    assert "hunter2-secret" not in dump and "new-secret-pw" not in dump
    assert "hunter2-secret" not in json.dumps(emulator.emu.store.dump())


def test_failed_operation_shape(sql, emulator):
    emulator.control.fail("sql.operation", "pg-1/CREATE", "Quota exceeded for instances")
    op = sql.instances().insert(project=P, body=body()).execute()
    done = wait(sql, op)
    assert done["error"]["errors"][0]["message"] == "Quota exceeded for instances"
    assert sql.instances().get(project=P, instance="pg-1").execute()["state"] == "FAILED"


def test_a_failed_delete_leaves_the_instance_as_it_was(sql, emulator):
    create(sql)
    emulator.control.fail("delete", f"projects/{P}/instances/pg-1", "the instance is in use")
    op = sql.instances().delete(project=P, instance="pg-1").execute()
    assert sql.instances().get(project=P, instance="pg-1").execute()["state"] == "PENDING_DELETE"
    done = wait(sql, op)
    assert done["error"]["errors"][0]["message"] == "the instance is in use"
    assert sql.instances().get(project=P, instance="pg-1").execute()["state"] == "RUNNABLE"
    wait(sql, sql.instances().delete(project=P, instance="pg-1").execute())  # the rule used up
    with pytest.raises(HttpError) as gone:
        sql.instances().get(project=P, instance="pg-1").execute()
    assert gone.value.status_code == 404


def test_errors_map_through_the_deployer(emulator):
    """The mapped error keeps errors[].reason, so the retry policy can see operationInProgress."""
    from deployer.errors import Conflict, NotFound
    from deployer.gcp.errors import map_error

    serviceusage.set_enabled(emulator.emu, P, "sqladmin.googleapis.com")
    sql = discovery_client(emulator.url, "sqladmin", "v1")
    sql.instances().insert(project=P, body=body()).execute()
    try:
        sql.databases().insert(project=P, instance="pg-1", body={"name": "db"}).execute()
    except HttpError as exc:
        mapped = map_error(exc)
    assert isinstance(mapped, Conflict) and mapped.reason == "operationInProgress"
    try:
        sql.instances().get(project=P, instance="nope").execute()
    except HttpError as exc:
        missing = map_error(exc)
    assert isinstance(missing, NotFound)


def test_service_disabled(emulator):
    sql = discovery_client(emulator.url, "sqladmin", "v1")
    with pytest.raises(HttpError) as exc:
        sql.instances().list(project="sql-off-proj").execute()
    assert exc.value.status_code == 403 and reason(exc.value) == "accessNotConfigured"


def test_unknown_operation(sql):
    with pytest.raises(HttpError) as exc:
        sql.operations().get(project=P, operation="nope").execute()
    assert exc.value.status_code == 404

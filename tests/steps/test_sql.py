"""Cloud SQL steps: diff tables, then up / no-op up / drift / faults / destroy on the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deployer.config import Config, DatabaseConfig
from deployer.emulator import serviceusage
from deployer.engine import Engine, Options
from deployer.errors import StepFailed
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.base import Action, Broken, NotOurs
from deployer.steps.secrets import Secrets
from deployer.steps.sql import FINAL_BACKUP, SqlDatabase, SqlInstance, SqlUser
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PROJECT = "sql-steps-proj"
REGION = "europe-west1"
READS = ("GET",)


def config(**db: Any) -> Config:
    return Config(tenant="demo", project=PROJECT, region=REGION, database=DatabaseConfig(**db))


def labels(cfg: Config) -> dict[str, str]:
    return dict(cfg.names.labels)


def without(d: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in d.items() if k != key}


def instance(cfg: Config, **over: Any) -> dict[str, Any]:
    settings = {
        "tier": "db-f1-micro",
        "edition": "ENTERPRISE",
        "dataDiskSizeGb": "10",
        "backupConfiguration": {"enabled": True, "startTime": "03:00", "kind": "x"},
        "deletionProtectionEnabled": True,
        "userLabels": labels(cfg),
        "settingsVersion": "3",
    }
    settings.update(over.pop("settings", {}))
    inst = {
        "name": cfg.names.sql_instance,
        "state": "RUNNABLE",
        "databaseVersion": "POSTGRES_15",
        "connectionName": cfg.names.connection_name,
        "settings": settings,
    }
    inst.update(over)
    return inst


CFG = config()


@pytest.mark.parametrize(
    ("observed", "action", "paths", "failure"),
    [
        (None, Action.CREATE, [], ""),
        ({"instance": instance(CFG), "pending": []}, Action.NOOP, [], ""),
        ({"instance": instance(CFG, state="PENDING_CREATE"), "pending": []}, Action.WAIT, [], ""),
        ({"instance": instance(CFG), "pending": ["UPDATE"]}, Action.WAIT, [], ""),
        ({"instance": instance(CFG, state="FAILED"), "pending": []}, Action.REFUSE, [], "FAILED"),
        (
            {"instance": instance(CFG, settings={"tier": "db-g1-small"}), "pending": []},
            Action.UPDATE,
            ["settings.tier"],
            "",
        ),
        (
            {"instance": instance(CFG, settings={"dataDiskSizeGb": "25"}), "pending": []},
            Action.NOOP,  # grown by auto-resize: never shrunk
            [],
            "",
        ),
        (
            {"instance": instance(CFG, settings={"dataDiskSizeGb": "5"}), "pending": []},
            Action.UPDATE,
            ["settings.dataDiskSizeGb"],
            "",
        ),
        (
            {
                "instance": instance(CFG, settings={"deletionProtectionEnabled": False}),
                "pending": [],
            },
            Action.UPDATE,
            ["settings.deletionProtectionEnabled"],
            "",
        ),
        (  # one of our labels removed by hand: drift, repaired
            {
                "instance": instance(
                    CFG, settings={"userLabels": without(labels(CFG), "djdeploy-tenant")}
                ),
                "pending": [],
            },
            Action.UPDATE,
            ["settings.userLabels.djdeploy-tenant"],
            "",
        ),
        (  # labelled for another app (or tenant): not ours, never adopted
            {
                "instance": instance(
                    CFG, settings={"userLabels": {**labels(CFG), "djdeploy-app": "x"}}
                ),
                "pending": [],
            },
            Action.REFUSE,
            [],
            "not labelled",
        ),
        (
            {"instance": instance(CFG, settings={"userLabels": {"team": "x"}}), "pending": []},
            Action.REFUSE,
            [],
            "not labelled",
        ),
        (
            {"instance": instance(CFG, databaseVersion="POSTGRES_14"), "pending": []},
            Action.REFUSE,
            [],
            "POSTGRES_14",
        ),
        (
            {
                "instance": instance(CFG, settings={"backupConfiguration": {"enabled": False}}),
                "pending": [],
            },
            Action.UPDATE,
            ["settings.backupConfiguration.enabled", "settings.backupConfiguration.startTime"],
            "",
        ),
    ],
)
def test_instance_diff(observed, action, paths, failure):
    change = SqlInstance(CFG).diff(observed)
    assert change.action is action
    assert sorted(f.path for f in change.fields) == sorted(paths)
    assert failure in str(change.failure or "")
    if not failure:
        assert change.failure is None
    else:  # labelled for someone else: not ours; a failed or old instance: for the user to fix
        assert isinstance(change.failure, NotOurs if "not labelled" in failure else Broken)
    if action is Action.NOOP:
        assert "matches" in change.reason


def test_instance_diff_shared():
    cfg = config(shared_instance="shared-pg")
    step = SqlInstance(cfg)
    missing = step.diff(None)
    assert missing.action is Action.REFUSE and isinstance(missing.failure, Broken)
    assert str(missing.failure) == (
        f"shared instance shared-pg does not exist in project {PROJECT}: create it, or unset "
        "database.shared_instance to let djdeploy create one"
    )
    foreign = instance(cfg, name="shared-pg", settings={"userLabels": {"team": "x"}})
    ok = step.diff({"instance": foreign, "pending": []})
    assert ok.action is Action.NOOP and "shared" in ok.reason


@pytest.mark.parametrize(
    ("observed", "action"),
    [
        (None, Action.CREATE),
        ({"database": None, "pending": ["CREATE_DATABASE"]}, Action.WAIT),
        ({"database": {"name": "demo_django"}, "pending": []}, Action.NOOP),
    ],
)
def test_database_and_user_diff(observed, action):
    assert SqlDatabase(CFG).diff(observed).action is action
    user_obs = None
    if observed is not None:  # the password was set from the latest version
        user_obs = {"user": observed["database"], **observed, "latest": "1", "recorded": "1"}
    assert SqlUser(CFG).diff(user_obs).action is action


def test_user_noop_says_password_not_compared():
    change = SqlUser(CFG).diff(
        {"user": {"name": "demo_django"}, "pending": [], "latest": "1", "recorded": "1"}
    )
    assert "cannot be read back" in change.reason


@pytest.mark.parametrize(
    ("latest", "recorded", "action", "failure"),
    [
        ("1", "1", Action.NOOP, ""),
        ("2", "1", Action.UPDATE, ""),  # a version added by hand: the password is set again
        ("1", None, Action.UPDATE, ""),  # never recorded: set once, then recorded
        (None, "1", Action.REFUSE, "no enabled version"),
    ],
)
def test_user_diff_follows_the_secret_version(latest, recorded, action, failure):
    observed = {"user": {"name": "demo_django"}, "pending": [], "latest": latest}
    change = SqlUser(CFG).diff({**observed, "recorded": recorded})
    assert change.action is action
    assert failure in str(change.failure or "") and bool(failure) == bool(change.failure)
    if action is Action.UPDATE and not failure:
        assert [(f.path, f.new) for f in change.fields] == [
            ("password", f"secret version {latest}")
        ]


# -- against the emulator ------------------------------------------------------------------------


def make_cloud(emulator) -> Cloud:
    for api in ("sqladmin.googleapis.com", "secretmanager.googleapis.com"):
        serviceusage.set_enabled(emulator.emu, PROJECT, api)
    return Cloud(
        PROJECT, REGION, ClientFactory(endpoint=emulator.url, project=PROJECT), clock=emulator.clock
    )


def make_engine(cloud: Cloud) -> Engine:
    return Engine(cloud, options=Options.scaled(0.001))


def apis_stub(name: str = "apis"):
    """A need satisfied by hand (the emulator's APIs are enabled by make_cloud)."""
    from deployer.steps.base import Change

    class Stub:
        needs: tuple[str, ...] = ()

        def observe(self, cloud):
            return {}

        def diff(self, observed):
            return Change(self.name, self.name, Action.NOOP, "done")

        def apply(self, cloud, change):
            pass

        def delete(self, cloud, *, delete_data):
            return Change(self.name, self.name, Action.NOOP, "kept")

    stub = Stub()
    stub.name = name
    return stub


def steps(cfg: Config) -> list[Any]:
    return [apis_stub(), Secrets(cfg), SqlInstance(cfg), SqlDatabase(cfg), SqlUser(cfg)]


def mutating(entries: list[dict[str, Any]]) -> list[str]:
    return [f"{e['method']} {e['path']}" for e in entries if e["method"] not in READS]


def test_up_noop_destroy(emulator):
    cloud = make_cloud(emulator)
    cfg = config()
    engine = make_engine(cloud)
    result = engine.up(steps(cfg))
    assert result.ok, [r.error for r in result.results]
    inst = cloud.sql.get_instance(cfg.names.sql_instance)
    assert inst["state"] == "RUNNABLE"
    assert inst["settings"]["deletionProtectionEnabled"] is True
    assert inst["settings"]["backupConfiguration"]["enabled"] is True
    assert inst["settings"]["userLabels"] == labels(cfg)
    assert inst["connectionName"] == cfg.names.connection_name
    assert cloud.sql.get_database(cfg.names.sql_instance, cfg.names.database)["charset"] == "UTF8"
    assert cloud.sql.get_user(cfg.names.sql_instance, cfg.names.db_user) is not None
    problems = check_transcript(emulator.emu.transcript.entries())
    assert problems == []
    # the password went over the wire redacted only
    for e in emulator.emu.transcript.entries():
        if e["path"].endswith("/users") and e["method"] == "POST":
            assert e["body"]["password"] == "***"

    # a second up: reads only
    emulator.emu.transcript.clear()
    result = make_engine(cloud).up(steps(cfg))
    assert result.ok
    assert all(r.first.action is Action.NOOP for r in result.results)
    assert mutating(emulator.emu.transcript.entries()) == []

    # destroy keeps data, twice
    for _ in range(2):
        changes = make_engine(cloud).destroy(steps(cfg), delete_data=False)
        by = {c.step: c for c in changes}
        assert by["sql-instance"].action is Action.NOOP
        assert by["sql-instance"].reason.startswith("kept: database instance")
        assert by["sql-database"].reason.startswith("kept: database")
        assert by["sql-user"].reason.startswith("kept: user")
    assert cloud.sql.get_instance(cfg.names.sql_instance) is not None

    # destroy --delete-data removes it all (deletion protection lifted, final backup), twice
    emulator.emu.transcript.clear()
    changes = make_engine(cloud).destroy(steps(cfg), delete_data=True)
    by = {c.step: c for c in changes}
    assert by["sql-instance"].action is Action.DELETE
    assert "final backup" in by["sql-instance"].reason
    assert cloud.sql.get_instance(cfg.names.sql_instance) is None
    retained = emulator.emu.store.list("sql.backup.retained", f"{PROJECT}/")
    assert len(retained) == 1 and retained[0][1]["status"] == "SUCCESSFUL"
    calls = mutating(emulator.emu.transcript.entries())
    inst_path = f"/v1/projects/{PROJECT}/instances/{cfg.names.sql_instance}"
    assert calls.index(f"PATCH {inst_path}") < calls.index(f"POST {inst_path}/backupRuns")
    assert calls.index(f"POST {inst_path}/backupRuns") < calls.index(f"DELETE {inst_path}")
    assert check_transcript(emulator.emu.transcript.entries()) == []
    changes = make_engine(cloud).destroy(steps(cfg), delete_data=True)
    assert all(c.action is Action.NOOP for c in changes)


def test_drift_repaired(emulator):
    cloud = make_cloud(emulator)
    cfg = config()
    assert make_engine(cloud).up(steps(cfg)).ok
    name = cfg.names.sql_instance
    inst = cloud.sql.get_instance(name)
    op = cloud.sql.patch_instance(
        name,
        {
            "settings": {
                "tier": "db-g1-small",
                "userLabels": {"djdeploy-app": None, "team": "data"},
                "settingsVersion": inst["settings"]["settingsVersion"],
            }
        },
    )
    emulator.emu.ops.complete_now(op["name"])
    change = SqlInstance(cfg).diff(SqlInstance(cfg).observe(cloud))
    assert sorted(f.path for f in change.fields) == [
        "settings.tier",
        "settings.userLabels.djdeploy-app",
    ]
    assert make_engine(cloud).up(steps(cfg)).ok
    inst = cloud.sql.get_instance(name)
    assert inst["settings"]["tier"] == "db-f1-micro"
    assert inst["settings"]["userLabels"] == {**labels(cfg), "team": "data"}  # theirs kept
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_faults_ridden_out(emulator):
    cloud = make_cloud(emulator)
    cfg = config()
    emulator.control.add_fault(method="POST", path=r"/instances$", code=503, times=2)
    emulator.control.add_fault(method="GET", path=r"/databases/", code=429, retry_after=0, times=2)
    emulator.control.add_fault(method="POST", path=r"/users$", code=503, times=1)
    result = make_engine(cloud).up(steps(cfg))
    assert result.ok, [r.error for r in result.results]
    statuses = [e["status"] for e in emulator.emu.transcript.entries()]
    assert statuses.count(503) == 3 and statuses.count(429) == 2
    assert cloud.sql.get_user(cfg.names.sql_instance, cfg.names.db_user) is not None


def test_operation_in_progress_ridden_out(emulator):
    """A database insert while another operation runs on the instance: 409
    operationInProgress, retried by the one policy until the operation is done."""
    cloud = make_cloud(emulator)
    cfg = config()
    assert make_engine(cloud).up([apis_stub(), SqlInstance(cfg)]).ok
    name = cfg.names.sql_instance
    emulator.control.set_latency(durations={"sql.instance.update": 1000.0})  # 1 s at 0.001
    inst = cloud.sql.get_instance(name)
    cloud.sql.patch_instance(
        name,
        {
            "settings": {
                "settingsVersion": inst["settings"]["settingsVersion"],
                "tier": "db-g1-small",
            }
        },
    )
    result = make_engine(cloud).up([apis_stub("sql-instance"), SqlDatabase(cfg)])
    assert result.ok, [r.error for r in result.results]
    conflicts = [
        e
        for e in emulator.emu.transcript.entries()
        if e["status"] == 409 and e["path"].endswith("/databases")
    ]
    assert conflicts
    assert conflicts[0]["response"]["error"]["errors"][0]["reason"] == "operationInProgress"
    assert cloud.sql.get_database(name, cfg.names.database) is not None


def test_operation_failure_reported(emulator):
    cloud = make_cloud(emulator)
    cfg = config()
    emulator.control.fail("sql.operation", f"{cfg.names.sql_instance}/CREATE", "quota exceeded")
    result = make_engine(cloud).up([apis_stub(), SqlInstance(cfg)])
    assert not result.ok
    assert "FAILED" in result.results[-1].error
    assert (  # commands in backquotes, which an --emulator run adds --emulator to
        f"`djdeploy destroy --tenant {cfg.tenant} --delete-data` deletes it, then "
        f"`djdeploy up --tenant {cfg.tenant}`"
    ) in result.results[-1].error


def test_recently_deleted_name_is_explained(emulator):
    cloud = make_cloud(emulator)
    cfg = config(deletion_protection=False)
    assert make_engine(cloud).up([apis_stub(), SqlInstance(cfg)]).ok
    make_engine(cloud).destroy([apis_stub(), SqlInstance(cfg)], delete_data=True)
    result = make_engine(cloud).up([apis_stub(), SqlInstance(cfg)])
    assert not result.ok
    assert "deleted recently" in result.results[-1].error


def test_not_ours_is_refused(emulator):
    cloud = make_cloud(emulator)
    cfg = config()
    body = SqlInstance(cfg).insert_body()
    body["settings"]["userLabels"] = {"team": "x"}
    op = cloud.sql.insert_instance(body)
    emulator.emu.ops.complete_now(op["name"])
    result = make_engine(cloud).up([apis_stub(), SqlInstance(cfg)])
    assert not result.ok
    assert "not labelled as djdeploy's" in result.results[-1].error


def test_shared_instance(emulator):
    cloud = make_cloud(emulator)
    cfg = config(shared_instance="shared-pg")
    result = make_engine(cloud).up(steps(cfg))
    assert not result.ok
    by = {r.step: r for r in result.results}
    assert "shared instance shared-pg does not exist" in by["sql-instance"].error
    # someone else's instance: used, never patched or deleted; only our database and user go
    body = SqlInstance(config()).insert_body()
    body["name"] = "shared-pg"
    body["settings"]["userLabels"] = {"team": "platform"}
    body["settings"]["tier"] = "db-custom-2-7680"
    op = cloud.sql.insert_instance(body)
    emulator.emu.ops.complete_now(op["name"])
    assert make_engine(cloud).up(steps(cfg)).ok
    inst = cloud.sql.get_instance("shared-pg")
    assert inst["settings"]["tier"] == "db-custom-2-7680"
    assert cloud.sql.get_database("shared-pg", cfg.names.database) is not None
    changes = make_engine(cloud).destroy(steps(cfg), delete_data=True)
    by_step = {c.step: c for c in changes}
    assert by_step["sql-instance"].action is Action.NOOP
    assert "shared" in by_step["sql-instance"].reason
    assert cloud.sql.get_instance("shared-pg") is not None
    assert cloud.sql.get_database("shared-pg", cfg.names.database) is None
    assert cloud.sql.get_user("shared-pg", cfg.names.db_user) is None
    assert cloud.sql.get_database("shared-pg", "postgres") is not None


def test_user_password_is_the_secret(emulator):
    """The user is created with the db-password secret's latest enabled version, and no
    secret value appears in the transcript or in any Change."""
    cloud = make_cloud(emulator)
    cfg = config()
    result = make_engine(cloud).up(steps(cfg))
    assert result.ok
    value = cloud.secrets.access(cfg.names.secret_db_password, "1").reveal()
    import json

    dump = json.dumps(emulator.emu.transcript.entries())
    assert value not in dump
    for r in result.results:
        assert value not in repr(r.first) and value not in repr(r.last)


def test_step_failed_carries_no_secret(emulator):
    cloud = make_cloud(emulator)
    cfg = config()
    step = SqlUser(cfg)
    with pytest.raises(Exception) as info:
        step.apply(cloud, step.diff(None))  # no secret yet, no instance
    assert "no enabled version" in str(info.value)
    assert not isinstance(info.value, StepFailed)


def test_new_secret_version_sets_the_password_again(emulator, monkeypatch):
    """A version added to the db-password secret by hand (`gcloud secrets versions add`, as the
    secrets step advises): the next up sets the user's password from it and records the
    version on the secret; the up after that is reads only."""
    from deployer.steps.base import Secret
    from deployer.steps.sql import PASSWORD_LABEL

    cloud = make_cloud(emulator)
    cfg = config()
    n = cfg.names
    assert make_engine(cloud).up(steps(cfg)).ok
    assert cloud.secrets.get_secret(n.secret_db_password)["labels"][PASSWORD_LABEL] == "1"
    cloud.secrets.add_version(n.secret_db_password, Secret("rotated-by-hand"))
    change = SqlUser(cfg).diff(SqlUser(cfg).observe(cloud))
    assert change.action is Action.UPDATE
    assert "from version 2" in change.reason and "was set from version 1" in change.reason

    sent: list[str] = []
    real = cloud.sql.set_password

    def spy(instance, name, password):
        sent.append(password.reveal())
        return real(instance, name, password)

    monkeypatch.setattr(cloud.sql, "set_password", spy)
    emulator.emu.transcript.clear()
    result = make_engine(cloud).up(steps(cfg))
    assert result.ok, [r.error for r in result.results]
    by = {r.step: r for r in result.results}
    assert by["sql-user"].first.action is Action.UPDATE
    assert by["sql-user"].last.action is Action.NOOP
    assert by["secrets"].first.action is Action.NOOP  # the extra label is not drift
    assert sent == ["rotated-by-hand"]
    user_path = f"/v1/projects/{PROJECT}/instances/{n.sql_instance}/users"
    calls = mutating(emulator.emu.transcript.entries())
    assert f"PUT {user_path}" in calls
    labels = cloud.secrets.get_secret(n.secret_db_password)["labels"]
    assert labels == {**dict(n.labels), PASSWORD_LABEL: "2"}
    assert check_transcript(emulator.emu.transcript.entries()) == []
    assert "rotated-by-hand" not in json.dumps(emulator.emu.transcript.entries())

    emulator.emu.transcript.clear()
    result = make_engine(cloud).up(steps(cfg))
    assert all(r.first.action is Action.NOOP for r in result.results)
    assert mutating(emulator.emu.transcript.entries()) == []


def test_removed_tenant_label_is_drift_repaired(emulator):
    """djdeploy-tenant removed from the instance's userLabels by hand: still ours
    (managed-by=djdeploy), so up puts it back instead of refusing the instance."""
    cloud = make_cloud(emulator)
    cfg = config()
    assert make_engine(cloud).up([apis_stub(), SqlInstance(cfg)]).ok
    name = cfg.names.sql_instance
    op = cloud.sql.patch_settings(name, lambda _: {"userLabels": {"djdeploy-tenant": None}})
    emulator.emu.ops.complete_now(op["name"])
    assert "djdeploy-tenant" not in cloud.sql.get_instance(name)["settings"]["userLabels"]
    result = make_engine(cloud).up([apis_stub(), SqlInstance(cfg)])
    assert result.ok, [r.error for r in result.results]
    assert [f.path for f in result.results[-1].first.fields] == [
        "settings.userLabels.djdeploy-tenant"
    ]
    assert cloud.sql.get_instance(name)["settings"]["userLabels"] == labels(cfg)


def test_another_tenants_instance_is_never_adopted(emulator):
    cloud = make_cloud(emulator)
    cfg = config()
    body = SqlInstance(cfg).insert_body()
    other = {**labels(cfg), "djdeploy-tenant": "other"}
    body["settings"]["userLabels"] = other
    emulator.emu.ops.complete_now(cloud.sql.insert_instance(body)["name"])
    result = make_engine(cloud).up([apis_stub(), SqlInstance(cfg)])
    assert not result.ok
    assert "not labelled as djdeploy's" in result.results[-1].error
    changes = make_engine(cloud).destroy([apis_stub(), SqlInstance(cfg)], delete_data=True)
    assert changes[0].action is Action.NOOP and "not labelled as ours" in changes[0].reason
    assert cloud.sql.get_instance(cfg.names.sql_instance)["settings"]["userLabels"] == other


def test_stale_settings_are_read_again(emulator):
    """A 412 staleData on the patch (someone changed the settings after our read): the gcp
    layer redoes the read-modify-write inside the one retried call."""
    cloud = make_cloud(emulator)
    cfg = config()
    assert make_engine(cloud).up([apis_stub(), SqlInstance(cfg)]).ok
    name = cfg.names.sql_instance
    inst_path = f"/instances/{name}$"
    emulator.control.add_fault(
        method="PATCH", path=inst_path, code=412, reason="staleData", times=2
    )
    op = cloud.sql.patch_settings(name, lambda s: {"tier": "db-g1-small"})
    emulator.emu.ops.complete_now(op["name"])
    assert cloud.sql.get_instance(name)["settings"]["tier"] == "db-g1-small"
    patches = [e for e in emulator.emu.transcript.entries() if e["method"] == "PATCH"]
    assert [e["status"] for e in patches] == [412, 412, 200]


def test_failed_final_backup_keeps_the_instance(emulator):
    """destroy --delete-data: the final backup FAILED, so the instance is not deleted and the
    step fails with the backup's error."""
    cloud = make_cloud(emulator)
    cfg = config()
    assert make_engine(cloud).up([apis_stub(), SqlInstance(cfg)]).ok
    name = cfg.names.sql_instance
    emulator.control.fail("sql.operation", f"{name}/BACKUP_VOLUME", "backup disk unavailable")
    with pytest.raises(StepFailed) as info:
        make_engine(cloud).destroy([apis_stub(), SqlInstance(cfg)], delete_data=True)
    assert "final backup of Cloud SQL instance" in str(info.value)
    assert "backup disk unavailable" in str(info.value)
    assert cloud.sql.get_instance(name)["state"] == "RUNNABLE"
    assert not [e for e in emulator.emu.transcript.entries() if e["method"] == "DELETE"]
    # again: the failed backup is still the newest final one; still refused
    with pytest.raises(StepFailed):
        make_engine(cloud).destroy([apis_stub(), SqlInstance(cfg)], delete_data=True)
    assert cloud.sql.get_instance(name) is not None
    # a successful final backup (taken by hand, as the message says): now it goes
    op = cloud.sql.insert_backup(name, FINAL_BACKUP)
    emulator.emu.ops.complete_now(op["name"])
    changes = make_engine(cloud).destroy([apis_stub(), SqlInstance(cfg)], delete_data=True)
    assert changes[0].action is Action.DELETE
    assert cloud.sql.get_instance(name) is None


class FakeSql:
    """Just enough of cloud.sql for SqlInstance's delete stages; records the mutations."""

    def __init__(self, inst: dict[str, Any], backups: list[dict[str, Any]]) -> None:
        self.inst, self.backups, self.calls = inst, backups, []

    def get_instance(self, name):
        return self.inst

    def pending_operations(self, name):
        return []

    def list_backups(self, name):
        return self.backups

    def patch_settings(self, name, make_patch):
        self.calls.append("patch")
        return {}

    def insert_backup(self, name, description):
        self.calls.append("backup")
        return {}

    def delete_instance(self, name):
        self.calls.append("delete")
        return {}


def final(status: str, t: str = "2024-01-01T00:00:00Z", **kw: Any) -> dict[str, Any]:
    return {"description": FINAL_BACKUP, "status": status, "enqueuedTime": t, "id": "1", **kw}


UNPROTECTED = {"deletionProtectionEnabled": False, "retainBackupsOnDelete": True}


@pytest.mark.parametrize(
    ("state", "backups", "action", "calls", "error"),
    [
        ("RUNNABLE", [], Action.WAIT, ["backup"], ""),
        ("RUNNABLE", [final("RUNNING")], Action.WAIT, [], ""),
        ("RUNNABLE", [final("SUCCESSFUL")], Action.DELETE, ["delete"], ""),
        # a backup that is not ours (another description) does not count
        ("RUNNABLE", [{**final("SUCCESSFUL"), "description": ""}], Action.WAIT, ["backup"], ""),
        (
            "RUNNABLE",
            [final("FAILED", error={"message": "disk unavailable"})],
            None,
            [],
            "disk unavailable",
        ),
        # the newest final backup decides
        (
            "RUNNABLE",
            [final("SUCCESSFUL"), final("FAILED", "2024-02-01T00:00:00Z", id="2")],
            None,
            [],
            "final backup of Cloud SQL instance",
        ),
        ("STOPPED", [], None, [], "no final backup can be taken"),
        ("FAILED", [final("FAILED")], None, [], "final backup"),
        ("STOPPED", [final("SUCCESSFUL")], Action.DELETE, ["delete"], ""),
        ("MAINTENANCE", [], Action.WAIT, [], ""),
    ],
)
def test_delete_stages(state, backups, action, calls, error):
    from types import SimpleNamespace

    from deployer.errors import DeployError

    cfg = config()
    fake = FakeSql(instance(cfg, state=state, settings=UNPROTECTED), backups)
    cloud = SimpleNamespace(sql=fake)
    step = SqlInstance(cfg)
    if error:
        with pytest.raises(DeployError, match=error):
            step.delete(cloud, delete_data=True)
    else:
        assert step.delete(cloud, delete_data=True).action is action
    assert fake.calls == calls


def test_delete_refused_before_protection_is_lifted():
    """An instance that cannot be backed up keeps its deletion protection: refused first."""
    from types import SimpleNamespace

    from deployer.errors import DeployError

    cfg = config()
    fake = FakeSql(instance(cfg, state="STOPPED"), [])
    with pytest.raises(DeployError, match="gcloud sql instances delete"):
        SqlInstance(cfg).delete(SimpleNamespace(sql=fake), delete_data=True)
    assert fake.calls == []

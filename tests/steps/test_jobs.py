"""db-init and migrate job steps: diff tables, then up / no-op / re-run rules / failure / destroy
on the emulator."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from deployer.archive import container_dir
from deployer.config import DatabaseConfig
from deployer.steps import container_env as ce
from deployer.steps.base import Action, Broken, NotOurs, Transient
from deployer.steps.jobs import IMAGE_LABEL, SPEC_LABEL, DbInitJob, MigrateJob, code_hash
from deployer.steps.service import Service
from tests.steps.test_service import (
    CFG,
    IMAGE,
    IMAGE_REPO,
    INPUTS,
    PROJECT,
    REGION,
    alone,
    assert_contract,
    config,
    make_cloud,
    make_engine,
    mutating,
    seed,
)

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

INPUTS_ALL = ce.Inputs(
    INPUTS.project_number,
    {**INPUTS.versions, CFG.names.secret_superuser_password: "1"},
)


def job(step: Any, **over: Any) -> dict[str, Any]:
    body = step.desired(INPUTS_ALL)
    body["name"] = f"projects/p/locations/r/jobs/{step.job_id}"
    body["template"]["template"]["containers"][0]["resources"]["limits"]["memory"] = "512Mi"
    body.update(generation="1", observedGeneration="1", reconciling=False)
    body.update(over)
    return body


def execution(step: Any, state: str, *, marker: str | None = None, n: int = 1) -> dict[str, Any]:
    labels = dict(step.desired(INPUTS_ALL)["template"]["labels"])
    if marker is not None:
        labels[step.marker_label] = marker
    e: dict[str, Any] = {
        "name": f"projects/p/locations/r/jobs/{step.job_id}/executions/{step.job_id}-0000{n}",
        "labels": labels,
        "taskCount": 1,
        "createTime": f"2024-01-01T00:00:0{n}Z",
        "logUri": "https://console.cloud.google.com/logs/viewer?x",
        "completionTime": "" if state == "running" else "2024-01-01T00:01:00Z",
        "succeededCount": 1 if state == "succeeded" else 0,
        "failedCount": 1 if state == "failed" else 0,
        "conditions": [{"type": "Completed", "message": "Task x-task0 failed with exit code 1"}],
    }
    return e


DB = DbInitJob(CFG, image=IMAGE)
MIG = MigrateJob(CFG, image=IMAGE)
OTHER_IMAGE_DB = DbInitJob(CFG, image=IMAGE + "-old")


def obs(step: Any, j: dict[str, Any] | None = None, execs: list[Any] | None = None) -> Any:
    return {
        "job": j or job(step),
        "executions": execs or [],
        "last_error": "",
        "inputs": INPUTS_ALL,
    }


@pytest.mark.parametrize(
    ("step", "observed", "action", "failure"),
    [
        (DB, None, Action.CREATE, ""),
        (DB, obs(DB), Action.RUN, ""),
        (DB, obs(DB, execs=[execution(DB, "succeeded")]), Action.NOOP, ""),
        (DB, obs(DB, execs=[execution(DB, "running")]), Action.WAIT, ""),
        (DB, obs(DB, execs=[execution(DB, "succeeded", marker="old")]), Action.RUN, ""),
        (DB, obs(DB, execs=[execution(DB, "failed")]), Action.RUN, "logs: `djdeploy logs"),
        (DB, obs(DB, job(DB, reconciling=True)), Action.WAIT, ""),
        (DB, obs(DB, job(DB, labels={})), Action.REFUSE, "not created by djdeploy"),
        (
            MIG,
            obs(MIG, job(MIG, labels={"managed-by": "djdeploy", "djdeploy-app": "other"})),
            Action.REFUSE,
            "not created by djdeploy",
        ),
        (
            # one of our labels removed by hand: drift that up repairs, not a stranger
            DB,
            obs(DB, job(DB, labels={"djdeploy-tenant": "demo"})),
            Action.UPDATE,
            "",
        ),
        (MIG, obs(MIG, execs=[execution(MIG, "succeeded")]), Action.NOOP, ""),
        # done for its marker: what the job runs with (image, env, resources) waits for its
        # next run, so a new image or a memory change neither updates nor runs db-init
        (DB, obs(DB, job(OTHER_IMAGE_DB), [execution(DB, "succeeded")]), Action.NOOP, ""),
        (DB, obs(DB, job(OTHER_IMAGE_DB), [execution(DB, "failed")]), Action.UPDATE, ""),
        (
            MIG,
            obs(MIG, job(MIG, labels={}), [execution(MIG, "succeeded")]),
            Action.REFUSE,
            "not created",
        ),
        (MIG, obs(MIG, execs=[execution(MIG, "succeeded", marker="x")]), Action.RUN, ""),
        (
            MIG,
            obs(MIG, execs=[execution(MIG, "failed", n=2), execution(MIG, "succeeded", n=1)]),
            Action.NOOP,
            "",
        ),
    ],
)
def test_diff(step: Any, observed: Any, action: Action, failure: str) -> None:
    change = step.diff(observed)
    assert change.action is action, change
    assert failure in str(change.failure or "")
    if failure:  # another's job is refused; a failed execution is run again once per up
        assert isinstance(change.failure, NotOurs if "not created" in failure else Broken)
    else:
        assert change.failure is None
    assert change.reason


def test_an_execution_denied_a_fresh_secret_grant_is_run_again_after_a_delay() -> None:
    failed = execution(DB, "failed")
    failed["conditions"][0]["message"] = (
        "Permission denied on secret: projects/1/secrets/s/versions/1 for Job service account x"
    )
    change = DB.diff(obs(DB, execs=[failed]))
    assert change.action is Action.RUN
    assert isinstance(change.failure, Transient)
    assert change.failure.delay == ce.SECRET_GRANT_RETRY


def test_diff_reports_spec_drift() -> None:
    j = job(DB)
    j["template"]["template"]["maxRetries"] = 3
    change = DB.diff(obs(DB, j))
    assert change.action is Action.UPDATE
    assert [f.path for f in change.fields] == ["template.template.maxRetries"]


def test_templates() -> None:
    db = DB.desired(INPUTS_ALL)["template"]
    mig = MIG.desired(INPUTS_ALL)["template"]
    db_env = {e["name"] for e in db["template"]["containers"][0]["env"]}
    mig_env = {e["name"] for e in mig["template"]["containers"][0]["env"]}
    assert "DJANGO_SUPERUSER_PASSWORD" in mig_env and "DJANGO_SUPERUSER_PASSWORD" not in db_env
    assert db["template"]["containers"][0]["args"] == ["db-init"]
    assert mig["template"]["containers"][0]["args"] == ["migrate"]
    assert [v["name"] for v in db["template"]["volumes"]] == ["cloudsql"]
    assert [v["name"] for v in mig["template"]["volumes"]] == ["cloudsql", "media"]
    assert SPEC_LABEL in db["labels"] and IMAGE_LABEL in mig["labels"]
    # migrate's marker follows the image only; db-init's what it does, never the image
    other = MigrateJob(CFG, image=IMAGE + "x").desired(INPUTS_ALL)["template"]["labels"]
    assert other[IMAGE_LABEL] != mig["labels"][IMAGE_LABEL]
    assert OTHER_IMAGE_DB.marker() == DB.marker()
    for changed in (
        config(database=DatabaseConfig(extensions=("pg_trgm", "unaccent"))),
        config(app="other"),  # another database, user and instance
    ):
        assert DbInitJob(changed, image=IMAGE).marker() != DB.marker()


def test_migrate_marker_follows_a_superuser_password_rotation() -> None:
    """Before any rotation: the image alone (an upgrade of djdeploy reruns nothing). After one
    (a previous version enabled): the pinned pair too, so the rotation runs migrate once."""
    sid = CFG.names.secret_superuser_password
    step = MigrateJob(CFG, image=IMAGE)
    assert step.marker(INPUTS_ALL) == ce.spec_hash(IMAGE)

    def rotated(new: str, previous: str) -> ce.Inputs:
        return ce.Inputs(
            INPUTS.project_number, {**INPUTS_ALL.versions, sid: new}, previous={sid: previous}
        )

    after = step.marker(rotated("2", "1"))
    assert after not in (step.marker(INPUTS_ALL), step.marker(rotated("3", "2")))
    assert after == step.marker(rotated("2", "1"))  # stable until the next rotation or image
    body = step.desired(rotated("2", "1"))
    pins = ce.template_pins(body["template"]["template"])
    assert {(sid, "2"), (sid, "1")} <= pins
    env = {e["name"] for e in body["template"]["template"]["containers"][0]["env"]}
    assert "DJANGO_SUPERUSER_PASSWORD_PREVIOUS" in env


def test_db_init_marker_follows_its_code(tmp_path: Path) -> None:
    shutil.copytree(container_dir() / "djdeploy_runtime", tmp_path / "djdeploy_runtime")
    before = code_hash(tmp_path)
    (tmp_path / "djdeploy_runtime" / "dbinit.py").write_text("# changed\n", encoding="utf-8")
    assert code_hash(tmp_path) != before
    changed = code_hash(tmp_path)
    (tmp_path / "djdeploy_runtime" / "settings.py").write_text("# not db-init\n")
    assert code_hash(tmp_path) == changed


def test_settings_module_reaches_both_jobs() -> None:
    cfg = config(settings_module="mysite.settings")
    for step in (DbInitJob(cfg, image=IMAGE), MigrateJob(cfg, image=IMAGE)):
        container = step.desired(INPUTS_ALL)["template"]["template"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DJANGO_PROJECT_SETTINGS"] == "mysite.settings"
    for step in (DB, MIG):
        container = step.desired(INPUTS_ALL)["template"]["template"]["containers"][0]
        assert "DJANGO_PROJECT_SETTINGS" not in {e["name"] for e in container["env"]}


# -- on the emulator -----------------------------------------------------------------------------


def test_up_runs_once_then_noop_and_new_image_reruns_migrate_alone(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    engine = make_engine(cloud)
    steps = [alone(DB), MigrateJob(CFG, image=IMAGE, needs=("db-init",))]
    result = engine.up(steps)
    assert result.ok, result.results
    assert len(cloud.run.list_executions(CFG.names.db_init_job)) == 1
    assert len(cloud.run.list_executions(CFG.names.migrate_job)) == 1

    emulator.emu.transcript.clear()
    again = engine.up(steps)
    assert again.ok and all(r.first.action is Action.NOOP for r in again.results)
    assert mutating(emulator.emu.transcript.entries()) == []

    new_image = f"{IMAGE_REPO}:next"
    emulator.emu.store.put("artifactregistry.tag", new_image, {"name": new_image})
    steps = [
        alone(DbInitJob(CFG, image=new_image)),
        MigrateJob(CFG, image=new_image, needs=("db-init",)),
    ]
    emulator.emu.transcript.clear()
    assert engine.up(steps).ok
    assert len(cloud.run.list_executions(CFG.names.migrate_job)) == 2
    assert len(cloud.run.list_executions(CFG.names.db_init_job)) == 1
    # db-init's job is neither updated nor run: migrate's update and run are the whole chain
    assert [w for w in mutating(emulator.emu.transcript.entries()) if "db-init" in w] == []

    assert [c.action for c in engine.destroy(steps, delete_data=False)] == [Action.DELETE] * 2
    assert [c.action for c in engine.destroy(steps, delete_data=False)] == [Action.NOOP] * 2
    assert_contract(emulator)


def test_failing_migrate_stops_before_the_service(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    emulator.control.fail("execution", CFG.names.migrate_job, "")
    steps = [
        alone(MIG),
        Service(CFG, IMAGE),
    ]
    result = make_engine(cloud).up(steps)
    assert not result.ok
    err = result.results[0].error
    newest = cloud.run.list_executions(CFG.names.migrate_job)[0]
    short = newest["name"].rsplit("/", 1)[-1]
    assert f"execution {short} failed" in err
    # the logs command works on Google and the emulator alike; a console URL only on Google
    assert f"exit code 1.; logs: `djdeploy logs --tenant {CFG.tenant} --job migrate`" in err
    assert "console.cloud.google.com" not in err
    assert result.results[1].error == "not run: migrate failed"
    assert cloud.run.get_service(CFG.names.service) is None

    # the next up runs migrate again (the outcome is used up) and then deploys the service
    assert make_engine(cloud).up(steps).ok
    assert cloud.run.get_service(CFG.names.service) is not None
    assert_contract(emulator)


def test_a_failed_execution_says_its_container_s_last_error_line(emulator: Any) -> None:
    """A missing requirement (the commonest first failure) is named by `up` itself: Cloud
    Run's condition says only the exit code, the container's log says why."""
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    emulator.control.fail("execution", CFG.names.migrate_job, "failed with exit code 1.")
    result = make_engine(cloud).up([alone(MIG)])
    assert not result.ok
    assert "failed with exit code 1.; logs: `djdeploy logs" in result.results[0].error  # once
    eid = cloud.run.list_executions(CFG.names.migrate_job)[0]["name"].rsplit("/", 1)[-1]
    why = "migrate: migrate failed: ModuleNotFoundError: No module named 'yaml'"
    entries = cloud.clients.discovery("logging", "v2").entries()
    entries.write(
        body={
            "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fstdout",
            "resource": {
                "type": "cloud_run_job",
                "labels": {"job_name": CFG.names.migrate_job, "location": REGION},
            },
            "entries": [
                {
                    "severity": "ERROR",
                    "labels": {"run.googleapis.com/execution_name": eid},
                    "jsonPayload": {"message": f"Traceback (most recent call last):\n  ...\n{why}"},
                }
            ],
        }
    ).execute()
    change = MIG.diff(MIG.observe(cloud))
    assert f"exit code 1.; its last error: {why}; logs: `djdeploy logs --tenant" in str(
        change.failure
    )
    assert_contract(emulator)


def test_fault_on_run_is_ridden_out(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    emulator.control.add_fault(method="POST", path=":run$", code=503, times=2)
    emulator.control.add_fault(method="GET", path="/executions$", code=429, retry_after=0, times=1)
    assert make_engine(cloud).up([alone(DB)]).ok

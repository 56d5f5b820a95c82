"""[[cron]] steps (cron-job-<entry>, iam-scheduler, cron) in the graph and on the emulator:
create, no-op, drift, a forced run, a removed entry, someone else's job, destroy."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from deployer.config import Config, CronEntry
from deployer.emulator import policies, serviceusage
from deployer.steps import build_steps
from deployer.steps.apis import SCHEDULER_API, required_apis
from deployer.steps.base import Action
from deployer.steps.cron import CRON_LABEL, CronJob, CronSchedules
from deployer.steps.iam import IamScheduler
from tests.steps.test_service import (
    IMAGE,
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

NIGHTLY = CronEntry("nightly", schedule="0 3 * * *", command=("clearsessions",))
REPORT = CronEntry(
    "report",
    schedule="*/15 9-17 * * mon-fri",
    command="send_report --days 1",
    time_zone="Europe/Paris",
)
CFG = config(cron=(NIGHTLY, REPORT))


def steps(cfg: Config = CFG) -> list[Any]:
    jobs = [alone(CronJob(cfg, image=IMAGE, entry=e)) for e in cfg.cron]
    after = tuple(j.name for j in jobs)
    return [*jobs, IamScheduler(cfg, needs=after), CronSchedules(cfg, needs=("iam-scheduler",))]


@pytest.fixture
def cloud(emulator: Any) -> Any:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    serviceusage.set_enabled(emulator.emu, PROJECT, SCHEDULER_API)
    email = CFG.names.scheduler_sa_email
    emulator.emu.store.put(policies.SA_KIND, email, {"email": email, "_visibleAt": 0.0})
    return cloud


def test_off_by_default_adds_only_the_retiring_step_and_no_api() -> None:
    plain = config()
    names = [s.name for s in build_steps(plain) if "cron" in s.name or "scheduler" in s.name]
    assert names == ["cron-retired"]  # deletes what earlier entries left (steps/retired.py)
    assert SCHEDULER_API not in required_apis(plain)


def test_entries_add_their_steps_and_the_api() -> None:
    names = [s.name for s in build_steps(CFG)]
    assert names[-5:-1] == ["cron-job-nightly", "cron-job-report", "iam-scheduler", "cron"]
    [rotation] = [s for s in build_steps(CFG) if s.name == "rotation"]  # after what reads secrets
    assert {"cron-job-nightly", "cron-job-report"} <= set(rotation.needs)
    assert SCHEDULER_API in required_apis(CFG)
    [sas] = [s for s in build_steps(CFG) if s.name == "service-accounts"]
    assert CFG.names.scheduler_sa_email in sas.resource


def test_the_job_runs_the_command_through_the_entrypoint() -> None:
    job = CronJob(CFG, image=IMAGE, entry=REPORT)
    assert job.name == "cron-job-report" and job.needs == ("migrate",)
    assert job.args == ["manage", "send_report", "--days", "1"]
    desired = job.desired(INPUTS)
    assert desired["labels"][CRON_LABEL] == desired["template"]["labels"][CRON_LABEL] == "report"
    [container] = desired["template"]["template"]["containers"]
    assert container["args"] == ["manage", "send_report", "--days", "1"]
    assert container["image"] == IMAGE


def test_the_scheduler_job_calls_jobs_run_as_the_scheduler_account() -> None:
    desired = CronSchedules(CFG).desired(REPORT)
    target = desired["httpTarget"]
    assert target["uri"] == (
        f"https://run.googleapis.com/v2/projects/{PROJECT}/locations/{REGION}"
        f"/jobs/{CFG.names.cron_job('report')}:run"
    )
    assert target["oauthToken"]["serviceAccountEmail"] == CFG.names.scheduler_sa_email
    assert "body" not in target  # the job's own args: no overrides, no runWithOverrides
    assert (desired["schedule"], desired["timeZone"]) == (REPORT.schedule, "Europe/Paris")


def test_diff() -> None:
    step = CronSchedules(CFG)
    assert step.diff(None).action is Action.CREATE
    live = {step.job_id(e): {"name": step.job_id(e), **step.desired(e)} for e in CFG.cron}
    assert step.diff(live).action is Action.NOOP
    drift = {**live, step.job_id(NIGHTLY): {**live[step.job_id(NIGHTLY)], "schedule": "0 4 * * *"}}
    change = step.diff(drift)
    assert change.action is Action.UPDATE
    assert [(f.path, f.old, f.new) for f in change.fields] == [
        (f"{step.job_id(NIGHTLY)}.schedule", "0 4 * * *", "0 3 * * *")
    ]
    theirs = {**live, step.job_id(NIGHTLY): {**live[step.job_id(NIGHTLY)], "description": "x"}}
    assert step.diff(theirs).action is Action.REFUSE


def test_up_noop_run_remove_destroy(emulator: Any, cloud: Any) -> None:
    engine = make_engine(cloud)
    result = engine.up(steps())
    assert result.ok, result.results
    jid = CFG.names.cron_job("nightly")
    [sched] = [j for j in cloud.scheduler.list_jobs() if j["name"].endswith("/" + jid)]
    assert sched["schedule"] == "0 3 * * *" and sched["state"] == "ENABLED"
    job = cloud.run.get_job(jid)
    assert job["template"]["template"]["containers"][0]["args"] == ["manage", "clearsessions"]
    policy = cloud.run.get_iam_policy(cloud.run.job_name(jid))
    member = f"serviceAccount:{CFG.names.scheduler_sa_email}"
    assert {"role": "roles/run.invoker", "members": [member]} in policy["bindings"]

    emulator.emu.transcript.clear()
    again = engine.up(steps())
    assert again.ok and all(r.first.action is Action.NOOP for r in again.results)
    assert mutating(emulator.emu.transcript.entries()) == []

    cloud.scheduler.run_job(jid)  # "run now", as the console's Force run does
    [execution] = cloud.run.list_executions(jid)
    assert execution["template"]["containers"][0]["args"] == ["manage", "clearsessions"]

    fewer = dataclasses.replace(CFG, cron=(REPORT,))
    assert engine.up(steps(fewer)).ok
    assert [j["name"].rsplit("/", 1)[1] for j in cloud.scheduler.list_jobs()] == [
        CFG.names.cron_job("report")
    ]
    assert cloud.run.get_job(jid) is None  # the removed entry's job went with its schedule

    assert engine.up(steps()).ok
    destroyed = engine.destroy(steps(), delete_data=False)
    assert {c.action for c in destroyed} == {Action.DELETE}
    assert cloud.scheduler.list_jobs() == []
    assert cloud.run.get_job(jid) is None
    assert_contract(emulator)


def test_someone_elses_scheduler_job_is_refused_and_kept(emulator: Any, cloud: Any) -> None:
    jid = CFG.names.cron_job("nightly")
    theirs = {**CronSchedules(CFG).desired(NIGHTLY), "description": "the ops team's"}
    cloud.scheduler.create_job(jid, theirs)
    engine = make_engine(cloud)
    result = engine.up(steps())
    assert not result.ok
    assert "not created by djdeploy" in str(result.results[-1].error)
    engine.destroy(steps(), delete_data=False)
    assert cloud.scheduler.get_job(jid)["description"] == "the ops team's"


def test_the_job_is_kept_up_to_date_and_never_run_by_its_step() -> None:
    step = CronJob(CFG, image=IMAGE, entry=NIGHTLY)
    live = {**step.desired(INPUTS), "generation": "2", "observedGeneration": "2"}
    running = {"name": "x/executions/e1", "createTime": "t"}  # no completionTime: running
    observed = {"job": live, "executions": [running], "inputs": INPUTS}
    change = step.diff(observed)
    assert change.action is Action.NOOP and change.info == {"execution": "e1"}
    other = CronJob(config(cron=(NIGHTLY,), env={"FEATURE": "on"}), image=IMAGE, entry=NIGHTLY)
    assert other.diff(observed).action is Action.UPDATE  # same image, new env: updated now

"""Scheduled commands end to end through the CLI against the emulator: plan's exit codes, up
creates a Cloud Run job and a Cloud Scheduler job per [[cron]] entry, a second up writes
nothing, a forced run starts an execution with the command's args, kill -9 in the middle and
the next up converges with no duplicate, destroy removes them; golden transcripts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deployer.archive import default_source
from deployer.emulator.testing import EmulatorHandle
from tests import test_scenarios as scenarios
from tests.contract import check_transcript
from tests.test_scenarios import (
    GOLDEN,
    PROJECT,
    TENANT,
    assert_golden,
    config_env,
    normalise,
    writes,
)

pytestmark = pytest.mark.slow  # CLI scenarios: each runs whole deployments

REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
CRON_TOML = """\
[[cron]]
name = "nightly"
schedule = "0 3 * * *"
command = ["clearsessions"]

[[cron]]
name = "report"
schedule = "*/15 9-17 * * mon-fri"
time_zone = "Europe/Paris"
command = "check --deploy"
"""
JOBS = {f"{TENANT}-django-cron-nightly", f"{TENANT}-django-cron-report"}
SCHEDULER_SA = f"{TENANT}-django-sched@{PROJECT}.iam.gserviceaccount.com"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "djdeploy.toml"
    path.write_text(CRON_TOML)
    return path


def djdeploy(emulator: EmulatorHandle, config_file: Path, *args: str) -> tuple[int, str]:
    code, output = scenarios.djdeploy(emulator, *args, config=config_file)
    return code, output


def scheduler_jobs(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    jobs = emulator.discovery("cloudscheduler", "v1").projects().locations().jobs()
    listed: list[dict[str, Any]] = jobs.list(parent=PARENT).execute().get("jobs", [])
    return listed


def has_scheduler_account(emulator: EmulatorHandle) -> bool:
    accounts = emulator.discovery("iam", "v1").projects().serviceAccounts()
    listed = accounts.list(name=f"projects/{PROJECT}").execute().get("accounts", [])
    return any(a["email"] == SCHEDULER_SA for a in listed)


def run_jobs(emulator: EmulatorHandle) -> set[str]:
    run = emulator.discovery("run", "v2").projects().locations().jobs()
    listed = run.list(parent=PARENT).execute().get("jobs", [])
    return {j["name"].rsplit("/", 1)[1] for j in listed if "-cron-" in j["name"]}


def test_plan_up_noop_forced_run_destroy(emulator: EmulatorHandle, config_file: Path) -> None:
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 2, output
    for step in ("cron-job-nightly", "cron-job-report", "iam-scheduler", "cron"):
        assert step in output

    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert {j["name"].rsplit("/", 1)[1] for j in scheduler_jobs(emulator)} == JOBS
    assert run_jobs(emulator) == JOBS
    code, output = djdeploy(emulator, config_file, "status", "--tenant", TENANT, "--json")
    assert code == 0, output
    states = {s["step"]: s["state"] for s in json.loads(output)["steps"]}
    assert states["cron"] == states["iam-scheduler"] == states["cron-job-report"] == "ok", states
    assert check_transcript(emulator.control.transcript()) == []

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    sources = f"/b/{PROJECT}-djdeploy-sources/o"  # where a tenant's deploy lease is kept
    assert [w for w in writes(emulator.control.transcript()) if sources not in w] == []
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output

    sched = emulator.discovery("cloudscheduler", "v1").projects().locations().jobs()
    sched.run(name=f"{PARENT}/jobs/{TENANT}-django-cron-report", body={}).execute()
    executions = (
        emulator.discovery("run", "v2")
        .projects()
        .locations()
        .jobs()
        .executions()
        .list(parent=f"{PARENT}/jobs/{TENANT}-django-cron-report")
        .execute()["executions"]
    )
    assert [e["template"]["containers"][0]["args"] for e in executions] == [
        ["manage", "check", "--deploy"]
    ]

    code, output = djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)
    assert code == 0, output
    assert scheduler_jobs(emulator) == [] and run_jobs(emulator) == set()
    assert not has_scheduler_account(emulator)
    assert check_transcript(emulator.control.transcript()) == []


def test_a_bad_schedule_fails_before_any_call(emulator: EmulatorHandle, config_file: Path) -> None:
    config_file.write_text(CRON_TOML.replace("0 3 * * *", "0 3 * *"))
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code != 0
    assert 'cron.nightly.schedule "0 3 * *" is invalid: a schedule has 5 fields' in output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    assert emulator.control.transcript() == []


def test_a_bad_time_zone_fails_before_any_call(emulator: EmulatorHandle, config_file: Path) -> None:
    config_file.write_text(CRON_TOML.replace("Europe/Paris", "Europe/Pariss"))
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code != 0
    assert 'cron.report.time_zone "Europe/Pariss" is invalid' in output
    assert emulator.control.transcript() == []


def test_kill_9_before_the_schedules_then_up_converges_without_duplicates(
    emulator: EmulatorHandle, config_file: Path, tmp_path: Path
) -> None:
    """The cron step's first read (the scheduler jobs list) is held 30 s, so a kill once the
    scheduler account's invoker binding is written (the step before) lands between the Run jobs
    and the schedules."""
    emulator.control.add_fault(
        method="GET", path=r"^/v1/projects/.*/jobs$", action="delay", seconds=30, times=1
    )
    env = {**os.environ, **config_env(config_file)}
    cmd = [sys.executable, "-m", "deployer", "--endpoint", emulator.url, "--time-scale", "0.01"]
    proc = subprocess.Popen(
        [*cmd, "up", "--tenant", TENANT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if any(
            e["method"] == "POST" and e["path"].endswith(":setIamPolicy") and "-cron-" in e["path"]
            for e in emulator.control.transcript()
        ):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0]
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert scheduler_jobs(emulator) == []  # killed before any schedule
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert sorted(j["name"].rsplit("/", 1)[1] for j in scheduler_jobs(emulator)) == sorted(JOBS)
    assert run_jobs(emulator) == JOBS


def test_a_create_whose_answer_is_lost_leaves_no_duplicate(
    emulator: EmulatorHandle, config_file: Path
) -> None:
    """The connection drops after a schedule was created: the retry's 409 adopts it."""
    emulator.control.add_fault(
        method="POST", path=r"^/v1/projects/.*/jobs$", action="drop", times=1
    )
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert sorted(j["name"].rsplit("/", 1)[1] for j in scheduler_jobs(emulator)) == sorted(JOBS)


def service_image(emulator: EmulatorHandle) -> str:
    service = emulator.discovery("run", "v2").projects().locations().services()
    got = service.get(name=f"{PARENT}/services/{TENANT}-django").execute()
    image: str = got["template"]["containers"][0]["image"]
    return image


def test_a_deploy_only_change_builds_no_image(emulator: EmulatorHandle, tmp_path: Path) -> None:
    """djdeploy.toml beside manage.py (source = "."), as `djdeploy init` writes it: a new
    schedule or memory size changes the scheduler job and the service, never the image (the
    archive leaves the deployer's config out), so no build and no migrate run."""
    site = tmp_path / "site"
    shutil.copytree(default_source(), site)
    config = site / "djdeploy.toml"
    config.write_text(f'source = "."\n{CRON_TOML}')
    assert djdeploy(emulator, config, "up", "--tenant", TENANT)[0] == 0
    image = service_image(emulator)

    config.write_text(
        f'source = "."\n[service]\nmemory = "1Gi"\n{CRON_TOML.replace("0 3 * * *", "30 4 * * *")}'
    )
    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config, "up", "--tenant", TENANT)
    assert code == 0, output
    changed = writes(emulator.control.transcript())
    assert not [w for w in changed if "/builds" in w or ":run" in w], changed
    assert any(w.startswith("PATCH") and w.endswith("-cron-nightly") for w in changed), changed
    nightly = next(j for j in scheduler_jobs(emulator) if j["name"].endswith("-cron-nightly"))
    assert nightly["schedule"] == "30 4 * * *"
    service = emulator.discovery("run", "v2").projects().locations().services()
    got = service.get(name=f"{PARENT}/services/{TENANT}-django").execute()["template"]
    assert got["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    assert got["containers"][0]["image"] == image


def test_the_python_api_deploys_and_destroys_cron(emulator: EmulatorHandle) -> None:
    from deployer import Config, Target, destroy, plan, up
    from deployer.config import CronEntry

    entry = CronEntry("nightly", schedule="0 3 * * *", command=("clearsessions",))
    config = Config(TENANT, project=PROJECT, cron=(entry,))
    target = Target(endpoint=emulator.url, time_scale=0.001)
    assert up(config, target=target).ok
    assert {j["name"].rsplit("/", 1)[1] for j in scheduler_jobs(emulator)} == {
        f"{TENANT}-django-cron-nightly"
    }
    assert all(c.action.value == "noop" for c in plan(config, target=target))
    changes = {c.step: c.action.value for c in destroy(config, target=target)}
    assert changes["cron"] == changes["iam-scheduler"] == changes["cron-job-nightly"] == "delete"
    assert scheduler_jobs(emulator) == [] and run_jobs(emulator) == set()


@pytest.mark.parametrize("scenario", ["up-cron", "destroy-cron"])
def test_golden_transcripts(emulator: EmulatorHandle, config_file: Path, scenario: str) -> None:
    """Only the [[cron]] traffic (Cloud Scheduler, the cron jobs, their IAM, the scheduler
    account): the rest is the other goldens' (no [[cron]] there)."""
    assert djdeploy(emulator, config_file, "up", "--tenant", TENANT)[0] == 0
    if scenario == "destroy-cron":
        emulator.control.clear_transcript()
        assert djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)[0] == 0

    def ours(e: dict[str, Any]) -> bool:
        if e["path"].startswith(f"/v1/{PARENT}/jobs"):  # Cloud Scheduler
            return True
        seen = json.dumps([e["path"], e.get("query"), e.get("body")])
        return "-cron-" in seen or "-sched" in seen

    entries = [e for e in emulator.control.transcript() if ours(e)]
    assert_golden(GOLDEN / f"{scenario}.json", normalise(entries))

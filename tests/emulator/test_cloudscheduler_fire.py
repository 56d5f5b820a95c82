"""Cloud Scheduler fires on schedule when the emulator executes (docs/emulator.md, "Local
execution"): jobs created through the real client, on the emulator's clock (not scaled by the
time scale: a scheduled minute is a minute of the clock, moved at will when it is virtual).

The virtual-clock tests call the ticker's work (``firing.tick``) themselves after moving the
clock: the emulator's own ticker thread may have done it first, and either way a scheduled
time fires once (one store transaction), so nothing depends on a timing window. The slow test
runs container/sample's ``manage check`` as a real process on the real clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import run_v2

from deployer.clock import VirtualClock
from deployer.emulator import Emulator, policies, serve, serviceusage
from deployer.emulator.cloudscheduler import firing
from deployer.emulator.formats import rfc3339
from deployer.emulator.logging.filters import parse_time
from deployer.emulator.testing import EmulatorHandle, discovery_client, gapic_options
from tests.emulator import test_local_run as local
from tests.emulator.test_local_run import setup_project

PROJECT = "fire-proj"
REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
SCHED_SA = f"t1-django-sched@{PROJECT}.iam.gserviceaccount.com"
RUN_JOB = "t1-django-cron-tick"
#: the emulator's time scale: operations take 1% of Google's time, the schedule does not
SCALE = 0.01
MINUTE = 60.0


class Fixture:
    """An executing emulator on a virtual clock, served, with a Run job the scheduler's
    account may run."""

    def __init__(self, state: Path, clock: VirtualClock) -> None:
        self.clock = clock
        self.emu = Emulator(state_dir=state, time_scale=SCALE, clock=clock, execute=True)
        self.running = serve(self.emu)
        self.scheduler = (
            discovery_client(self.running.url, "cloudscheduler", "v1").projects().locations().jobs()
        )
        self.run_jobs = run_v2.JobsClient(**gapic_options(self.running.url))
        self.executions = run_v2.ExecutionsClient(**gapic_options(self.running.url))

    def make_run_job(self) -> None:
        emu = self.emu
        for api in ("run", "cloudscheduler"):
            serviceusage.set_enabled(emu, PROJECT, f"{api}.googleapis.com")
        emu.store.put(policies.SA_KIND, SCHED_SA, {"email": SCHED_SA, "_visibleAt": 0.0})
        template = run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(
                containers=[run_v2.Container(image="gcr.io/d/a:1", args=["manage", "check"])]
            )
        )
        self.run_jobs.create_job(parent=PARENT, job=run_v2.Job(template=template), job_id=RUN_JOB)
        self.clock.advance(1.0)  # the job's update (2 s scaled) is over
        job = self.run_jobs.get_job(name=f"{PARENT}/jobs/{RUN_JOB}")
        assert not job.reconciling
        grant = {"role": "roles/run.invoker", "members": [f"serviceAccount:{SCHED_SA}"]}
        policies.set_policy(emu, job.name, {"bindings": [grant]})

    def create(self, schedule: str = "* * * * *", **over: Any) -> dict[str, Any]:
        body = {
            "name": f"{PARENT}/jobs/{RUN_JOB}",
            "schedule": schedule,
            "timeZone": "Europe/Paris",
            "httpTarget": {
                "uri": f"https://run.googleapis.com/v2/{PARENT}/jobs/{RUN_JOB}:run",
                "httpMethod": "POST",
                "oauthToken": {"serviceAccountEmail": SCHED_SA},
            },
            **over,
        }
        return dict(self.scheduler.create(parent=PARENT, body=body).execute())

    def get(self) -> dict[str, Any]:
        return dict(self.scheduler.get(name=f"{PARENT}/jobs/{RUN_JOB}").execute())

    def tick(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        firing.tick(self.emu)

    def fired(self) -> int:
        return len(list(self.executions.list_executions(parent=f"{PARENT}/jobs/{RUN_JOB}")))

    def attempts(self) -> list[dict[str, Any]]:
        entries = discovery_client(self.running.url, "logging", "v2").entries()
        body = {
            "resourceNames": [f"projects/{PROJECT}"],
            "filter": 'resource.type="cloud_scheduler_job"',
        }
        return list(entries.list(body=body).execute().get("entries", []))

    def close(self) -> None:
        self.running.stop()


@pytest.fixture
def fx(tmp_path: Path) -> Iterator[Fixture]:
    f = Fixture(tmp_path, VirtualClock())
    f.make_run_job()
    yield f
    f.close()


def test_fires_each_scheduled_minute_once_and_never_backfills(fx: Fixture) -> None:
    fx.create()
    fx.tick()
    first = fx.get()["scheduleTime"]  # the next minute, in schedule time
    assert fx.fired() == 0

    fx.tick(MINUTE)
    job = fx.get()
    assert fx.fired() == 1
    assert job["status"] == {} and job["lastAttemptTime"]
    assert parse_time(job["scheduleTime"]) == parse_time(first) + 60
    started, finished = fx.attempts()
    assert started["jsonPayload"]["scheduledTime"] == first
    assert finished["httpRequest"] == {"status": 200}
    assert finished["jsonPayload"]["debugInfo"].startswith("URL_CRAWLED")

    fx.tick()
    assert fx.fired() == 1  # a scheduled time fires once

    fx.tick(1000 * MINUTE)  # a long stop: the missed minutes fire once, not 1000 times
    assert fx.fired() == 2


def test_a_paused_job_does_not_fire_and_a_deleted_one_stops(fx: Fixture) -> None:
    job = fx.create()
    fx.tick()
    fx.scheduler.pause(name=job["name"], body={}).execute()
    fx.tick(10 * MINUTE)
    assert fx.fired() == 0 and "scheduleTime" not in fx.get()

    fx.scheduler.resume(name=job["name"], body={}).execute()
    fx.tick()  # resumed: the minutes it was paused are not run
    assert fx.fired() == 0 and fx.get()["scheduleTime"]
    fx.tick(MINUTE)
    assert fx.fired() == 1

    fx.scheduler.delete(name=job["name"]).execute()
    fx.tick(10 * MINUTE)
    assert fx.fired() == 1


def test_a_restart_does_not_fire_a_scheduled_time_twice(tmp_path: Path) -> None:
    first = Fixture(tmp_path, VirtualClock())
    first.make_run_job()
    first.create()
    first.tick()
    first.tick(MINUTE)
    assert first.fired() == 1
    at = first.clock.now()
    first.close()

    second = Fixture(tmp_path, VirtualClock(start=at))  # the same state, the same time
    try:
        second.tick()
        assert second.fired() == 1
        second.tick(MINUTE)
        assert second.fired() == 2
    finally:
        second.close()


def test_an_account_that_may_not_run_the_job_is_denied_and_retried(fx: Fixture) -> None:
    policies.set_policy(fx.emu, f"{PARENT}/jobs/{RUN_JOB}", {"bindings": []})
    retry = {"retryCount": 2, "minBackoffDuration": "10s", "maxDoublings": 1}
    fx.create(schedule="0 3 * * *", retryConfig=retry)
    ran = fx.scheduler.run(name=f"{PARENT}/jobs/{RUN_JOB}", body={}).execute()
    assert ran["status"]["code"] == 7  # PERMISSION_DENIED, as Google records the 403

    fx.tick(9.9)
    assert len([a for a in fx.attempts() if "httpRequest" in a]) == 1  # backoff: real seconds
    fx.tick(0.1)  # first retry, after 10 s
    fx.tick(20)  # second, after 20 s more
    fx.tick(3600)  # no third
    finished = [a for a in fx.attempts() if "httpRequest" in a]
    assert [f["httpRequest"]["status"] for f in finished] == [403, 403, 403]
    assert {f["jsonPayload"]["status"] for f in finished} == {"PERMISSION_DENIED"}
    assert {f["severity"] for f in finished} == {"ERROR"}
    assert fx.fired() == 0


def test_retries_go_on_until_both_limits_are_reached(fx: Fixture) -> None:
    """RetryConfig: "retried until both limits are reached": no retryCount, but 30 s of
    maxRetryDuration, still retries (after 10 s, then 20 s more: linear past 0 doublings)."""
    policies.set_policy(fx.emu, f"{PARENT}/jobs/{RUN_JOB}", {"bindings": []})
    retry = {"maxRetryDuration": "30s", "minBackoffDuration": "10s", "maxDoublings": 0}
    fx.create(schedule="0 3 * * *", retryConfig=retry)
    fx.scheduler.run(name=f"{PARENT}/jobs/{RUN_JOB}", body={}).execute()

    def finished() -> int:
        return len([a for a in fx.attempts() if "httpRequest" in a])

    fx.tick(10)
    assert finished() == 2
    fx.tick(20)  # 30 s after the first attempt: within the limit
    assert finished() == 3
    fx.tick(3600)  # the next one would be 60 s after the first: none
    assert finished() == 3


def test_the_schedule_follows_the_time_zone(fx: Fixture) -> None:
    fx.create(schedule="0 3 * * *")
    fx.tick()
    # 03:00 in Paris, in November (winter time) is 02:00 UTC
    assert fx.get()["scheduleTime"].endswith("T02:00:00.000000Z")


@pytest.mark.slow
def test_a_scheduled_command_really_runs(executing_emulator: EmulatorHandle) -> None:
    """A forced run (the attempt a schedule makes) starts an execution that runs ``manage
    check`` as a process of container/sample, with nobody polling its operation."""
    handle = executing_emulator
    clients = setup_project(handle)
    handle.control.set_latency(time_scale=SCALE)
    serviceusage.set_enabled(handle.emu, local.PROJECT, "cloudscheduler.googleapis.com")
    sched_sa = f"t1-django-sched@{local.PROJECT}.iam.gserviceaccount.com"
    handle.emu.store.put(policies.SA_KIND, sched_sa, {"email": sched_sa, "_visibleAt": 0.0})
    template = run_v2.ExecutionTemplate(
        template=run_v2.TaskTemplate(
            containers=[local.container(["manage", "check"])],
            volumes=local.volumes(),
            service_account=local.SA,
        )
    )
    made = (
        clients["jobs"]
        .create_job(parent=local.PARENT, job_id="tick", job=run_v2.Job(template=template))
        .result(polling=local.POLL)
    )
    invoker = {"role": "roles/run.invoker", "members": [f"serviceAccount:{sched_sa}"]}
    policies.set_policy(handle.emu, made.name, {"bindings": [invoker]})
    sched = discovery_client(handle.url, "cloudscheduler", "v1").projects().locations().jobs()
    body = {
        "name": f"{local.PARENT}/jobs/tick",
        "schedule": "0 3 * * *",
        "httpTarget": {
            "uri": f"https://run.googleapis.com/v2/{made.name}:run",
            "oauthToken": {"serviceAccountEmail": sched_sa},
        },
    }
    job = sched.create(parent=local.PARENT, body=body).execute()

    def fired() -> list[Any]:
        return list(clients["executions"].list_executions(parent=made.name))

    assert sched.run(name=job["name"], body={}).execute()["status"] == {}
    [first] = fired()

    def completed() -> bool:
        return clients["executions"].get_execution(name=first.name).completion_time is not None

    local.eventually(completed, "the fired execution to complete")
    done = clients["executions"].get_execution(name=first.name)
    assert done.succeeded_count == 1, done
    [task] = clients["tasks"].list_tasks(parent=done.name)
    assert task.last_attempt_result.exit_code == 0
    lines = local.logged(
        clients, 'resource.type="cloud_run_job" AND resource.labels.job_name="tick"'
    )
    texts = [e.get("textPayload") or e.get("jsonPayload", {}).get("message", "") for e in lines]
    assert any("System check identified no issues" in t for t in texts), texts


def test_the_schedule_follows_the_clock_whatever_the_time_scale(fx: Fixture) -> None:
    fx.create()
    fx.tick()
    assert fx.fired() == 0
    fx.tick(MINUTE * SCALE)  # a scheduled minute is not 0.6 s at scale 0.01
    assert fx.fired() == 0
    fx.emu.latency.set(time_scale=0.0)  # instant operations: the schedule goes on
    fx.tick(MINUTE)
    assert fx.fired() == 1


def test_a_start_takes_a_schedule_time_ahead_of_the_clock_back(tmp_path: Path) -> None:
    """A state whose scheduleTime is later than the schedule's next time (the clock set back,
    or an earlier emulator's scaled schedule time): the next start takes it back."""
    first = Fixture(tmp_path, VirtualClock())
    first.make_run_job()
    first.create()
    first.tick()
    at = first.clock.now()
    ahead = rfc3339(parse_time(first.get()["scheduleTime"]) + 100 * 3600)
    name = f"{PARENT}/jobs/{RUN_JOB}"
    first.emu.store.put(
        firing.KIND, name, {**first.emu.store.get(firing.KIND, name), "scheduleTime": ahead}
    )
    first.close()

    second = Fixture(tmp_path, VirtualClock(start=at))
    try:
        second.tick()  # the start dropped it (whether or not its ticker came first): set again
        assert parse_time(second.get()["scheduleTime"]) <= at + MINUTE
        second.tick(MINUTE)
        assert second.fired() == 1
    finally:
        second.close()

"""Cloud Scheduler v1 in the emulator, driven through the discovery client; a forced run of a
job whose target is the Run API's jobs:run starts a Run execution with the body's overrides,
when the target's account may run the job with overrides, and is logged as Google logs it."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest
from google.api_core.retry import Retry
from google.cloud import run_v2
from googleapiclient.errors import HttpError

from deployer.emulator import policies, serviceusage
from deployer.emulator.testing import discovery_client, gapic_options
from tests.contract import check_transcript

PROJECT = "sched-proj"
REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
SA = f"t1-django-sched@{PROJECT}.iam.gserviceaccount.com"
RUN_URI = f"https://run.googleapis.com/v2/{PARENT}/jobs/t1-django-cron-nightly:run"
POLL = Retry(initial=0.005, maximum=0.05, timeout=20)


@pytest.fixture
def jobs(emulator: Any) -> Any:
    serviceusage.set_enabled(emulator.emu, PROJECT, "cloudscheduler.googleapis.com")
    yield discovery_client(emulator.url, "cloudscheduler", "v1").projects().locations().jobs()
    assert check_transcript(emulator.emu.transcript.entries()) == []


def _body(job_id: str = "t1-django-cron-nightly", **over: Any) -> dict[str, Any]:
    body = {
        "name": f"{PARENT}/jobs/{job_id}",
        "description": "djdeploy scheduled command",
        "schedule": "0 3 * * *",
        "timeZone": "Europe/Paris",
        "httpTarget": {
            "uri": RUN_URI,
            "httpMethod": "POST",
            "oauthToken": {
                "serviceAccountEmail": SA,
                "scope": "https://www.googleapis.com/auth/cloud-platform",
            },
        },
        "retryConfig": {"retryCount": 0},
        "attemptDeadline": "180s",
    }
    return {**body, **over}


def _status(call: Any) -> int:
    with pytest.raises(HttpError) as info:
        call.execute()
    return int(info.value.status_code)


def _next_run(job: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(job["scheduleTime"].replace("Z", "+00:00"))


@pytest.mark.virtual_clock  # the next runs are read against a clock that stands still
def test_job_crud(jobs: Any, emulator: Any) -> None:
    created = jobs.create(parent=PARENT, body=_body()).execute()
    assert created["state"] == "ENABLED" and created["timeZone"] == "Europe/Paris"
    now = datetime.datetime.fromtimestamp(emulator.emu.clock(), datetime.UTC)
    # its next run, as Google answers, whether or not this emulator fires it
    assert now < _next_run(created) <= now + datetime.timedelta(days=1)
    assert _status(jobs.create(parent=PARENT, body=_body())) == 409
    name = created["name"]
    assert jobs.get(name=name).execute()["schedule"] == "0 3 * * *"
    listed = jobs.list(parent=PARENT).execute()["jobs"]
    assert [j["name"] for j in listed] == [name]

    patched = jobs.patch(
        name=name, body={"schedule": "*/5 * * * *"}, updateMask="schedule"
    ).execute()
    assert patched["schedule"] == "*/5 * * * *" and patched["timeZone"] == "Europe/Paris"
    assert _next_run(patched).minute % 5 == 0 and _next_run(patched) <= _next_run(created)
    assert _status(jobs.patch(name=name, body={"state": "PAUSED"}, updateMask="state")) == 400

    paused = jobs.pause(name=name, body={}).execute()
    assert paused["state"] == "PAUSED" and "scheduleTime" not in paused
    resumed = jobs.resume(name=name, body={}).execute()
    assert resumed["state"] == "ENABLED" and _next_run(resumed) == _next_run(patched)

    assert jobs.delete(name=name).execute() == {}
    assert _status(jobs.get(name=name)) == 404
    assert _status(jobs.delete(name=name)) == 404
    assert jobs.list(parent=PARENT).execute().get("jobs", []) == []


@pytest.mark.parametrize(
    "over",
    [
        {"schedule": "0 3 * *"},
        {"schedule": "every day"},
        {"timeZone": "Mars/Olympus"},
        {"attemptDeadline": "5s"},
        {"httpTarget": {"uri": "ftp://example.com", "httpMethod": "POST"}},
        {
            "httpTarget": {
                "uri": RUN_URI,
                "oauthToken": {"serviceAccountEmail": "x@other-proj.iam.gserviceaccount.com"},
            }
        },
        {"httpTarget": {"uri": RUN_URI, "body": "not base64!"}},
        {"httpTarget": None, "pubsubTarget": {"topicName": "projects/p/topics/t"}},
    ],
)
def test_refuses_bad_jobs(jobs: Any, over: dict[str, Any]) -> None:
    assert _status(jobs.create(parent=PARENT, body=_body(**over))) == 400


def test_bad_job_id(jobs: Any) -> None:
    assert _status(jobs.create(parent=PARENT, body=_body(job_id="bad.id"))) == 400


def test_api_must_be_enabled(emulator: Any) -> None:
    serviceusage.set_enabled(emulator.emu, PROJECT, "cloudscheduler.googleapis.com", False)
    jobs = discovery_client(emulator.url, "cloudscheduler", "v1").projects().locations().jobs()
    with pytest.raises(HttpError) as info:
        jobs.list(parent=PARENT).execute()
    assert info.value.status_code == 403
    assert "SERVICE_DISABLED" in info.value.content.decode()
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_run_starts_a_run_execution_with_the_overrides(emulator: Any, jobs: Any) -> None:
    serviceusage.set_enabled(emulator.emu, PROJECT, "run.googleapis.com")
    run_jobs = run_v2.JobsClient(**gapic_options(emulator.url))
    template = run_v2.ExecutionTemplate(
        template=run_v2.TaskTemplate(
            containers=[run_v2.Container(image="gcr.io/d/a:1", args=["manage", "check"])]
        )
    )
    run_jobs.create_job(
        parent=PARENT, job=run_v2.Job(template=template), job_id="t1-django-cron-nightly"
    ).result(polling=POLL)
    request = {"overrides": {"containerOverrides": [{"args": ["manage", "clearsessions"]}]}}
    body = base64.b64encode(json.dumps(request).encode()).decode()
    target = {**_body()["httpTarget"], "body": body}
    job = jobs.create(parent=PARENT, body=_body(httpTarget=target)).execute()

    key = f"{PARENT}/jobs/t1-django-cron-nightly"
    emulator.emu.store.put(policies.SA_KIND, SA, {"email": SA, "_visibleAt": 0.0})
    grant = {"bindings": [{"role": "roles/run.invoker", "members": [f"serviceAccount:{SA}"]}]}
    policies.set_policy(emulator.emu, key, grant)

    denied = jobs.run(name=job["name"], body={}).execute()  # invoker: no overrides
    assert denied["status"]["code"] == 7 and "runWithOverrides" in denied["status"]["message"]
    grant["bindings"][0]["role"] = "roles/run.developer"
    policies.set_policy(emulator.emu, key, grant)
    ran = jobs.run(name=job["name"], body={}).execute()

    assert "code" not in ran.get("status", {})
    assert ran["lastAttemptTime"]
    logged = (
        emulator.discovery("logging", "v2")
        .entries()
        .list(
            body={
                "resourceNames": [f"projects/{PROJECT}"],
                "filter": 'resource.type="cloud_scheduler_job"',
            }
        )
        .execute()["entries"]
    )
    kinds = [(e["jsonPayload"]["@type"].rsplit(".", 1)[-1], e["severity"]) for e in logged]
    assert kinds == [
        ("AttemptStarted", "INFO"),
        ("AttemptFinished", "ERROR"),
        ("AttemptStarted", "INFO"),
        ("AttemptFinished", "INFO"),
    ]
    assert [e.get("httpRequest", {}).get("status") for e in logged] == [None, 403, None, 200]
    assert logged[1]["jsonPayload"]["status"] == "PERMISSION_DENIED"
    assert logged[0]["resource"]["labels"] == {
        "project_id": PROJECT,
        "job_id": "t1-django-cron-nightly",
        "location": REGION,
    }
    assert logged[0]["logName"] == (
        f"projects/{PROJECT}/logs/cloudscheduler.googleapis.com%2Fexecutions"
    )
    executions = list(
        run_v2.ExecutionsClient(**gapic_options(emulator.url)).list_executions(
            parent=f"{PARENT}/jobs/t1-django-cron-nightly"
        )
    )
    assert len(executions) == 1
    assert list(executions[0].template.containers[0].args) == ["manage", "clearsessions"]


def test_run_of_a_missing_run_job_records_the_failure(emulator: Any, jobs: Any) -> None:
    serviceusage.set_enabled(emulator.emu, PROJECT, "run.googleapis.com")
    job = jobs.create(parent=PARENT, body=_body()).execute()
    ran = jobs.run(name=job["name"], body={}).execute()
    assert ran["status"]["code"] == 5  # NOT_FOUND, as Google records the failed HTTP call

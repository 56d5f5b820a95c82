"""`djdeploy logs` and `api.logs` against the emulator: the entries Cloud Run and Cloud Build
wrote during `up`, the filters, --json, bad input, and --follow as a bounded loop on an
injected clock."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from deployer import api
from deployer.cli import app
from deployer.clock import VirtualClock
from deployer.config import Config
from deployer.emulator.testing import EmulatorHandle, discovery_client
from deployer.gcp.logging import LogEntry
from tests.contract import check_transcript

PROJECT = "acme-logs"
TENANT = "demo"
MIGRATE_JOB = f"{TENANT}-django-migrate"


def djdeploy(emulator: EmulatorHandle, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["--endpoint", emulator.url, "--time-scale", "0.001", *args],
        env={"GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_TENANT": TENANT},
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def _write(emulator: EmulatorHandle, job: str, *entries: dict) -> None:
    discovery_client(emulator.url, "logging", "v2").entries().write(
        body={
            "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fstdout",
            "resource": {"type": "cloud_run_job", "labels": {"job_name": job}},
            "labels": {"run.googleapis.com/execution_name": f"{job}-w1"},
            "entries": list(entries),
        }
    ).execute()


@pytest.mark.slow
def test_logs_after_up_show_the_runs_filter_and_print_json(emulator: EmulatorHandle) -> None:
    code, output = djdeploy(emulator, "up", "--tenant", TENANT)
    assert code == 0, output

    code, output = djdeploy(emulator, "logs", "--tenant", TENANT, "--job", "migrate")
    assert code == 0, output
    lines = output.splitlines()
    assert any("INFO" in line and "migrate: done" in line for line in lines), output
    assert "Container called exit(0)." in lines[-1]
    assert all(f"{MIGRATE_JOB}-" in line for line in lines)  # the execution's name

    code, output = djdeploy(emulator, "logs", "--tenant", TENANT)
    assert code == 0, output
    assert "STARTUP HTTP probe succeeded" in output and f"{TENANT}-django-0" in output
    assert "migrate: done" not in output  # the service's revisions only

    _write(
        emulator,
        MIGRATE_JOB,
        {"severity": "WARNING", "jsonPayload": {"message": "[red]not markup[/red] \\"}},
    )
    code, output = djdeploy(
        emulator, "logs", "--tenant", TENANT, "--job", "migrate", "--severity", "warning"
    )
    assert code == 0, output
    assert output.splitlines() == [output.splitlines()[0]]  # only the one warning
    assert "WARNING" in output and "[red]not markup[/red] \\" in output

    code, output = djdeploy(emulator, "logs", "--tenant", TENANT, "--job", "migrate", "--json")
    assert code == 0, output
    docs = [json.loads(line) for line in output.splitlines()]
    assert {"timestamp", "severity", "source", "message", "insert_id"} <= set(docs[0])
    assert docs[-1]["message"] == "[red]not markup[/red] \\"
    assert [d["timestamp"] for d in docs] == sorted(d["timestamp"] for d in docs)
    assert check_transcript(emulator.emu.transcript.entries()) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--since", "10 minutes"], "--since '10 minutes' is not a duration"),
        (["--severity", "LOUD"], "--severity 'LOUD' is not a severity"),
        (["--job", "web"], "--job 'web' is not a job"),
        (["--job", "cron-"], "or cron-NAME for the [[cron]] entry NAME"),
        (["--job", "cron-Nightly"], "--job 'cron-Nightly' is not a job"),
        (["--job", "migrate", "--worker"], "--job and --worker name two sources"),
    ],
)
def test_bad_input_is_one_line_and_no_api_call(
    emulator: EmulatorHandle, args: list[str], named: str
) -> None:
    code, output = djdeploy(emulator, "logs", "--tenant", TENANT, *args)
    assert code == 1
    assert output.count("\n") == 1 and named in output and "Traceback" not in output
    assert emulator.emu.transcript.entries() == []


def test_follow_prints_each_new_entry_once(emulator: EmulatorHandle) -> None:
    job = f"{TENANT}-django-manage"
    _write(emulator, job, {"timestamp": "2026-03-01T10:00:00Z", "textPayload": "one"})
    found = api.logs(
        Config(tenant=TENANT, project=PROJECT),
        query=api.LogQuery(job="manage"),
        target=api.Target(endpoint=emulator.url),
        follow=True,
        max_polls=3,
        clock=VirtualClock(),  # the polls' sleeps take no real time
    )
    assert next(found).message == "one"
    # a second entry at the same instant as the last one seen, then a later one
    _write(
        emulator,
        job,
        {"timestamp": "2026-03-01T10:00:00Z", "textPayload": "two"},
        {"timestamp": "2026-03-01T10:00:01Z", "textPayload": "three"},
    )
    assert [e.message for e in found] == ["two", "three"]  # three polls, nothing repeated
    polls = [e for e in emulator.emu.transcript.entries() if e["path"] == "/v2/entries:list"]
    assert len(polls) == 4  # the first read and max_polls polls
    assert 'timestamp>="2026-03-01T10:00:01Z"' in polls[-1]["body"]["filter"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--worker"], "has no worker pool demo-django-worker (nor log entries of one): "),
        (["--job", "manage"], "has no job demo-django-manage (nor log entries of one): "),
        (
            ["--job", "cron-nightly"],
            "has no job demo-django-cron-nightly (nor log entries of one): `djdeploy up` with a "
            "[[cron]] entry named nightly",
        ),
    ],
)
def test_a_deployed_tenant_without_the_source_is_told_what_makes_it(
    emulator: EmulatorHandle, args: list[str], named: str
) -> None:
    """Not "is tenant demo deployed there?": its service is, only the pool or job is not."""
    parent = f"projects/{PROJECT}/locations/europe-west1"
    usage = discovery_client(emulator.url, "serviceusage", "v1")
    op = usage.services().enable(name=f"projects/{PROJECT}/services/run.googleapis.com").execute()
    while not op.get("done"):  # the enabling is a long-running operation
        time.sleep(0.05)
        op = usage.operations().get(name=op["name"]).execute()
    discovery_client(emulator.url, "run", "v2").projects().locations().services().create(
        parent=parent,
        serviceId=f"{TENANT}-django",
        body={
            "template": {"containers": [{"image": "us-docker.pkg.dev/cloudrun/container/hello"}]}
        },
    ).execute()
    code, output = djdeploy(emulator, "logs", "--tenant", TENANT, *args)
    assert code == 1
    assert output.count("\n") == 1 and named in output, output
    assert "deployed there?" not in output


def test_filter_for_the_service_a_job_and_the_worker() -> None:
    cfg = Config(tenant=TENANT, project=PROJECT)
    assert api.log_filter(cfg, api.LogQuery(), now=0) == (
        f'resource.type="cloud_run_revision" AND resource.labels.service_name="{TENANT}-django"'
    )
    assert api.log_filter(cfg, api.LogQuery(worker=True), now=0) == (
        'resource.type="cloud_run_worker_pool" AND '
        f'resource.labels.worker_pool_name="{TENANT}-django-worker"'
    )
    assert api.log_filter(cfg, api.LogQuery(job="cron-nightly"), now=0) == (
        f'resource.type="cloud_run_job" AND resource.labels.job_name="{TENANT}-django-cron-nightly"'
    )
    query = api.LogQuery(job="db-init", since="10m", severity="warning")
    assert api.log_filter(cfg, query, now=1_800_000_600.0) == (
        f'resource.type="cloud_run_job" AND resource.labels.job_name="{TENANT}-django-db-init" '
        'AND timestamp>="2027-01-15T08:00:00.000000Z" AND severity>=WARNING'
    )


def test_entries_read_as_one_line_each() -> None:
    read = LogEntry.from_api
    text = read({"textPayload": "Container called exit(0).\n", "resource": {"labels": {}}})
    assert text.message == "Container called exit(0)." and text.severity == "DEFAULT"
    doc = read(
        {"jsonPayload": {"event": "x"}, "labels": {"run.googleapis.com/execution_name": "e"}}
    )
    assert doc.message == '{"event": "x"}' and doc.source == "e"
    request = read(
        {
            "httpRequest": {"requestMethod": "GET", "status": 404, "requestUrl": "https://h/x"},
            "resource": {"labels": {"revision_name": "r1"}},
        }
    )
    assert request.message == "GET 404 https://h/x" and request.source == "r1"

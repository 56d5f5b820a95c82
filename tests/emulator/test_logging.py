"""Cloud Logging v2 in the emulator (entries.write, entries.list), driven through the discovery
client, and the filter subset it evaluates."""

from __future__ import annotations

import pytest
from googleapiclient.errors import HttpError

from deployer.emulator.errors import InvalidArgument
from deployer.emulator.logging import filters, simulated
from deployer.emulator.testing import discovery_client
from tests.contract import check_transcript

PROJECT = "log-proj"
LOC = f"projects/{PROJECT}/locations/europe-west1"
JOB = {"type": "cloud_run_job", "labels": {"project_id": PROJECT, "job_name": "t1-django-migrate"}}
REV = {
    "type": "cloud_run_revision",
    "labels": {"project_id": PROJECT, "service_name": "t1-django", "revision_name": "r1"},
}


@pytest.fixture
def entries(emulator):
    return discovery_client(emulator.url, "logging", "v2").entries()


def _entry(ts: str, severity: str, message: str, resource: dict, **labels: str) -> dict:
    return {
        "timestamp": ts,
        "severity": severity,
        "jsonPayload": {"message": message},
        "resource": resource,
        "labels": labels,
    }


def _list(entries, flt: str = "", **kw) -> list[dict]:
    body = {"resourceNames": [f"projects/{PROJECT}"], "filter": flt, **kw}
    return entries.list(body=body).execute().get("entries", [])


def _messages(found: list[dict]) -> list[str]:
    return [e["jsonPayload"]["message"] for e in found]


def test_write_then_list_in_time_order_with_filters(emulator, entries):
    body = {
        "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fstdout",
        "entries": [
            _entry(
                "2026-01-01T10:00:02Z",
                "WARNING",
                "second",
                JOB,
                **{"run.googleapis.com/execution_name": "e1"},
            ),
            _entry("2026-01-01T10:00:01.123456789Z", "INFO", "first", JOB),
            _entry("2026-01-01T10:00:03Z", "ERROR", "served", REV),
        ],
    }
    assert entries.write(body=body).execute() == {}
    found = _list(entries)
    assert _messages(found) == ["first", "second", "served"]
    assert all(e["insertId"] and e["receiveTimestamp"] for e in found)
    assert found[0]["logName"] == body["logName"]
    job = 'resource.type="cloud_run_job" AND resource.labels.job_name="t1-django-migrate"'
    assert _messages(_list(entries, job)) == ["first", "second"]
    assert _messages(_list(entries, "severity>=WARNING")) == ["second", "served"]
    assert _messages(_list(entries, 'timestamp>="2026-01-01T10:00:02Z"')) == ["second", "served"]
    labelled = 'labels."run.googleapis.com/execution_name"="e1"'
    assert _messages(_list(entries, labelled)) == ["second"]
    assert _messages(_list(entries, orderBy="timestamp desc")) == ["served", "second", "first"]
    first = entries.list(body={"resourceNames": [f"projects/{PROJECT}"], "pageSize": 2}).execute()
    assert _messages(first["entries"]) == ["first", "second"]
    rest = _list(entries, pageToken=first["nextPageToken"])
    assert _messages(rest) == ["served"]
    assert check_transcript(emulator.emu.transcript.entries()) == []


def _status(call) -> tuple[int, str]:
    with pytest.raises(HttpError) as info:
        call.execute()
    return info.value.status_code, str(info.value)


def test_refusals_name_the_problem(emulator, entries):
    code, text = _status(
        entries.list(
            body={"resourceNames": [f"projects/{PROJECT}"], "filter": 'textPayload:"boom"'}
        )
    )
    assert code == 400 and "textPayload" in text
    code, text = _status(entries.list(body={"filter": ""}))
    assert code == 400 and "resourceNames" in text
    code, text = _status(
        entries.list(body={"resourceNames": [f"projects/{PROJECT}"], "orderBy": "severity"})
    )
    assert code == 400 and "orderBy" in text
    code, text = _status(entries.write(body={"entries": [{"textPayload": "x", "resource": JOB}]}))
    assert code == 400 and "logName" in text
    code, text = _status(
        entries.write(
            body={"entries": [{"textPayload": "x", "logName": f"projects/{PROJECT}/logs/a"}]}
        )
    )
    assert code == 400 and "resource" in text
    bad = {"entries": [{"textPayload": "x", "resource": JOB}], "dryRun": True}
    assert _status(entries.write(body=bad))[0] == 400  # a dry run checks the entries too
    good = {**bad, "logName": f"projects/{PROJECT}/logs/a"}
    assert entries.write(body=good).execute() == {}
    assert _list(entries) == []  # nothing written by a refused request or a dry run
    assert check_transcript(emulator.emu.transcript.entries()) == []


ENTRY = {
    "timestamp": "2026-01-01T10:00:00.500000Z",
    "severity": "WARNING",
    "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
    "insertId": "0000000000000005",
    "resource": {"type": "cloud_run_job", "labels": {"job_name": "j"}},
    "labels": {"run.googleapis.com/execution_name": "j-abc"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ('resource.type="cloud_run_job"', True),
        ("resource.type=cloud_run_job", True),
        ('resource.type="cloud_run_revision"', False),
        ('resource.labels.job_name="j"', True),
        ('resource.labels.job_name!="j"', False),
        ('labels."run.googleapis.com/execution_name"="j-abc"', True),
        ('labels.instanceId="x"', False),
        ("severity>=WARNING", True),
        ("severity>WARNING", False),
        ("severity>=error", False),
        ("severity<=INFO", False),
        ("severity=WARNING", True),
        ('timestamp>="2026-01-01T10:00:00Z"', True),
        ('timestamp>"2026-01-01T10:00:00.5Z"', False),
        ('timestamp<"2026-01-01T11:00:00+01:00"', False),
        ('insertId>"0000000000000004"', True),
        ('logName="projects/p/logs/run.googleapis.com%2Fstdout"', True),
        ('resource.type="cloud_run_job" AND severity>=ERROR', False),
        ('resource.type="cloud_run_job" severity>=DEBUG', True),
    ],
)
def test_filter_terms(text, expected):
    assert filters.matches(filters.parse(text), ENTRY) is expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('textPayload:"x"', "textPayload"),
        ('jsonPayload.message="x"', "jsonPayload.message"),
        ('resource.type="a" OR resource.type="b"', "OR"),
        ("severity>=LOUD", "LOUD"),
        ('timestamp>="yesterday"', "yesterday"),
        ('resource.type>"a"', 'resource.type>"a"'),
        ("NOT severity=INFO", "NOT"),
    ],
)
def test_refused_filter_terms_are_named(text, named):
    with pytest.raises(InvalidArgument) as info:
        filters.parse(text)
    assert named in info.value.message


def test_simulated_execution_and_revision_lines(emulator, entries):
    emu = emulator.emu
    execution = {
        "name": f"{LOC}/jobs/t1-django-migrate/executions/t1-django-migrate-x1",
        "taskCount": 1,
        "template": {"containers": [{"args": ["migrate"]}]},
    }
    simulated.execution_completed(emu, execution, started=emu.clock(), problem=None, exit_code=None)
    found = _list(entries, 'resource.labels.job_name="t1-django-migrate"')
    assert found[-1]["textPayload"] == "Container called exit(0)."
    assert "migrate: done" in [e.get("jsonPayload", {}).get("message") for e in found]
    assert {e["labels"]["run.googleapis.com/execution_name"] for e in found} == {
        "t1-django-migrate-x1"
    }
    simulated.execution_completed(
        emu,
        {**execution, "name": execution["name"][:-1] + "2"},
        started=emu.clock(),
        problem="Task t1-django-migrate-x2-task0 failed with exit code 1.",
        exit_code=1,
    )
    failed = _list(
        entries,
        'labels."run.googleapis.com/execution_name"="t1-django-migrate-x2" AND severity>=ERROR',
    )
    assert [e.get("textPayload") or e["jsonPayload"]["message"] for e in failed] == [
        "Task t1-django-migrate-x2-task0 failed with exit code 1.",
        "Container called exit(1).",
    ]
    revision = {
        "name": f"{LOC}/services/t1-django/revisions/t1-django-00001-abc",
        "containers": [{"name": "django", "startupProbe": {"httpGet": {"path": "/health/"}}}],
    }
    simulated.revision_settled(emu, revision, problem=None)
    served = _list(entries, 'resource.type="cloud_run_revision"')
    assert served[-1]["textPayload"].startswith("STARTUP HTTP probe succeeded")
    assert served[0]["resource"]["labels"]["revision_name"] == "t1-django-00001-abc"
    assert check_transcript(emulator.emu.transcript.entries()) == []

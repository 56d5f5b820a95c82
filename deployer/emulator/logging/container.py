"""What a locally executed task or instance printed, as Cloud Run puts it in Cloud Logging
(docs/emulator.md, "Jobs and services"; no HTTP).

A line that is a JSON object is a ``jsonPayload`` with its ``severity`` lifted out (a missing or
unknown one: DEFAULT), as Cloud Run's logging agent reads structured lines; any other line is a
``textPayload`` (DEFAULT). stdout lines go to ``run.googleapis.com/stdout``, stderr lines to
``run.googleapis.com/stderr``; the platform's own lines (exit, probes) to
``run.googleapis.com/varlog/system``. Resource types and labels are those of
:mod:`.simulated`: :func:`job_resource`, :func:`revision_resource`; a worker pool's instance
logs as ``cloud_run_worker_pool`` (:func:`worker_pool_resource`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import filters
from .simulated import STDERR, STDOUT, SYSTEM, _instance, _line, _log, _write

if TYPE_CHECKING:
    from ..context import Emulator

_STREAM_LOGS = {"stdout": STDOUT, "stderr": STDERR}


def job_resource(
    execution: str, index: int, attempt: int
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(project id, resource, entry labels) of task ``index`` attempt ``attempt`` of an execution
    (``projects/P/locations/L/jobs/J/executions/E``)."""
    _, project_id, _, location, _, job, _, eid = execution.split("/")
    resource = {
        "type": "cloud_run_job",
        "labels": {"project_id": project_id, "job_name": job, "location": location},
    }
    labels = {
        "run.googleapis.com/execution_name": eid,
        "run.googleapis.com/task_index": str(index),
        "run.googleapis.com/task_attempt": str(attempt),
        "instanceId": _instance(f"{execution}/{index}/{attempt}"),
    }
    return project_id, resource, labels


def revision_resource(revision: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(project id, resource, entry labels) of a revision's instance
    (``projects/P/locations/L/services/S/revisions/R``)."""
    _, project_id, _, location, _, service, _, rev = revision.split("/")
    resource = {
        "type": "cloud_run_revision",
        "labels": {
            "project_id": project_id,
            "service_name": service,
            "revision_name": rev,
            "configuration_name": service,
            "location": location,
        },
    }
    return project_id, resource, {"instanceId": _instance(revision)}


def worker_pool_resource(revision: str, index: int) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(project id, resource, entry labels) of instance ``index`` of a worker pool's revision
    (``projects/P/locations/L/workerPools/W/revisions/R``)."""
    _, project_id, _, location, _, pool, _, rev = revision.split("/")
    resource = {
        "type": "cloud_run_worker_pool",
        "labels": {
            "project_id": project_id,
            "worker_pool_name": pool,
            "revision_name": rev,
            "location": location,
        },
    }
    return project_id, resource, {"instanceId": _instance(f"{revision}/{index}")}


def _payload(line: str) -> tuple[str, str | dict[str, Any]]:
    """(severity, payload) of one printed line."""
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if isinstance(data, dict):
            payload = dict(data)
            severity = str(payload.pop("severity", "") or "DEFAULT").upper()
            return (severity if severity in filters.SEVERITIES else "DEFAULT"), payload
    return "DEFAULT", line


def container_line(
    emu: Emulator,
    where: tuple[str, dict[str, Any], dict[str, str]],
    *,
    stream: str,
    line: str,
) -> None:
    """One line the container printed on ``stream`` ("stdout" / "stderr")."""
    if not line.strip():
        return
    project_id, resource, labels = where
    severity, payload = _payload(line)
    entry = _line(emu.clock(), _log(project_id, _STREAM_LOGS[stream]), severity, payload)
    _write(emu, project_id, [entry], resource=resource, labels=labels)


def platform_line(
    emu: Emulator, where: tuple[str, dict[str, Any], dict[str, str]], *, severity: str, text: str
) -> None:
    """One of Cloud Run's own lines about the container (its exit, a probe's result)."""
    project_id, resource, labels = where
    entry = _line(emu.clock(), _log(project_id, SYSTEM), severity, text)
    _write(emu, project_id, [entry], resource=resource, labels=labels)

"""What Cloud Run and Cloud Build would have printed, written when the emulator completes an
execution, a revision or a build without running it (no HTTP).

The shapes are Cloud Run's: a job's entries have resource type ``cloud_run_job`` (labels
project_id, job_name, location) and entry labels ``run.googleapis.com/execution_name``,
``task_index``, ``task_attempt``; a revision's have ``cloud_run_revision`` (project_id,
service_name, revision_name, configuration_name, location) and an ``instanceId`` label. The
container's JSON lines arrive as ``jsonPayload`` with the severity lifted out, in the logs
``run.googleapis.com/stdout`` and ``stderr``; the platform's own lines are ``textPayload`` in
``run.googleapis.com/varlog/system``. Build lines are ``textPayload`` in the ``cloudbuild`` log
with resource type ``build`` (project_id, build_id). The container lines for ``migrate`` and
``db-init`` are the messages djdeploy's entrypoint prints for them.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ..formats import rfc3339
from ..serviceusage import is_enabled
from .entries import SERVICE, LogEntries

if TYPE_CHECKING:
    from ..context import Emulator

STDOUT, STDERR, SYSTEM = "stdout", "stderr", "varlog%2Fsystem"
_STARTING = (
    "Starting new instance. Reason: DEPLOYMENT_ROLLOUT - Instance started due to traffic "
    "shifting between revisions due to deployment, traffic split adjustment, or deployment "
    "health check."
)
#: (severity, logger, message) lines the container prints for each entrypoint command
_CONTAINER_LINES: dict[str, list[tuple[str, str, str]]] = {
    "migrate": [
        ("INFO", "djdeploy.dbwait", "database is accepting connections"),
        ("INFO", "djdeploy.migrate", "migrate: applied 18 migration(s)"),
        ("INFO", "djdeploy.migrate", "collectstatic: 0 static files copied, 127 unmodified."),
        ("INFO", "djdeploy.superuser", "superuser admin exists"),
        ("INFO", "djdeploy.migrate", "migrate: done"),
    ],
    "db-init": [
        ("INFO", "djdeploy.dbwait", "database is accepting connections"),
        ("INFO", "djdeploy.dbinit", "db-init: no changes (grants in place)"),
    ],
}


def _log(project_id: str, log_id: str) -> str:
    return f"projects/{project_id}/logs/run.googleapis.com%2F{log_id}"


def _line(at: float, log_name: str, severity: str, payload: str | dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"logName": log_name, "severity": severity, "timestamp": rfc3339(at)}
    entry["jsonPayload" if isinstance(payload, dict) else "textPayload"] = payload
    return entry


def _command(template: dict[str, Any]) -> str:
    containers = template.get("containers") or [{}]
    args = containers[0].get("args") or containers[0].get("command") or [""]
    return str(args[0])


def execution_completed(
    emu: Emulator,
    execution: dict[str, Any],
    *,
    started: float,
    problem: str | None,
    exit_code: int | None,
) -> None:
    """An execution's lines: the container's, then its exit; a failed run stops after the
    first line with the failure; a container that never started has only the failure."""
    name = execution["name"]  # projects/P/locations/L/jobs/J/executions/E
    _, project_id, _, location, _, job, _, eid = name.split("/")
    lines = list(_CONTAINER_LINES.get(_command(execution.get("template") or {}), []))
    stdout, system = _log(project_id, STDOUT), _log(project_id, SYSTEM)
    if problem is not None:
        lines = [*lines[:1], ("ERROR", "djdeploy.entrypoint", problem)]
    entries = [
        _line(started + i * 0.001, stdout, severity, {"message": message, "logger": logger})
        for i, (severity, logger, message) in enumerate(lines)
    ]
    end = started + len(lines) * 0.001
    if problem is not None and exit_code is None:
        entries = [_line(end, system, "ERROR", problem)]
    else:
        code = exit_code or 0
        entries.append(
            _line(end, system, "ERROR" if code else "INFO", f"Container called exit({code}).")
        )
    for i in range(int(execution.get("taskCount") or 1)):
        _write(
            emu,
            project_id,
            entries,
            resource={
                "type": "cloud_run_job",
                "labels": {"project_id": project_id, "job_name": job, "location": location},
            },
            labels={
                "run.googleapis.com/execution_name": eid,
                "run.googleapis.com/task_index": str(i),
                "run.googleapis.com/task_attempt": "0",
                "instanceId": _instance(f"{name}/{i}"),
            },
        )


def revision_settled(emu: Emulator, revision: dict[str, Any], *, problem: str | None) -> None:
    """A revision's start: the instance, the entrypoint's serve line, the startup probe's result
    (or the revision's failure)."""
    name = revision["name"]  # projects/P/locations/L/services/S/revisions/R
    _, project_id, _, location, _, service, _, rev = name.split("/")
    at = emu.clock()
    container = (revision.get("containers") or [{}])[0]
    port = ((container.get("ports") or [{}])[0]).get("containerPort", 8080)
    probe = container.get("startupProbe") or {}
    path = (probe.get("httpGet") or {}).get("path")
    container_name = container.get("name") or service
    kind = f'HTTP probe succeeded after 1 attempt for container "{container_name}" on '
    kind += f'path "{path}".' if path else f"port {port}."
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    settings = env.get("DJANGO_PROJECT_SETTINGS") or "settings"
    serve = {"message": f"serve: {settings} on 0.0.0.0:{port}", "logger": "djdeploy.entrypoint"}
    entries = [
        _line(
            at,
            _log(project_id, SYSTEM),
            "INFO",
            _STARTING,
        ),
        _line(at + 0.001, _log(project_id, STDERR), "INFO", serve),
        _line(at + 0.002, _log(project_id, SYSTEM), "INFO", f"STARTUP {kind}")
        if problem is None
        else _line(at + 0.002, _log(project_id, SYSTEM), "ERROR", problem),
    ]
    _write(
        emu,
        project_id,
        entries,
        resource={
            "type": "cloud_run_revision",
            "labels": {
                "project_id": project_id,
                "service_name": service,
                "revision_name": rev,
                "configuration_name": service,
                "location": location,
            },
        },
        labels={"instanceId": _instance(name)},
    )


def build_completed(emu: Emulator, build: dict[str, Any], *, project_id: str) -> None:
    """A build's log: start, the build stages, DONE or ERROR with its status detail."""
    at = emu.clock()
    lines = [f'starting build "{build["id"]}"', "FETCHSOURCE", "BUILD", "PUSH"]
    if build["status"] == "SUCCESS":
        lines.append("DONE")
    else:
        lines += ["ERROR", f"ERROR: {build.get('statusDetail') or build['status']}"]
    entries = [
        _line(at + i * 0.001, f"projects/{project_id}/logs/cloudbuild", "INFO", text)
        for i, text in enumerate(lines)
    ]
    _write(
        emu,
        project_id,
        entries,
        resource={"type": "build", "labels": {"project_id": project_id, "build_id": build["id"]}},
    )


def _write(
    emu: Emulator,
    project_id: str,
    entries: list[dict[str, Any]],
    *,
    resource: dict[str, Any],
    labels: dict[str, str] | None = None,
) -> None:
    """Write unless the project turned Logging off (then Cloud Run's output is dropped, and the
    run itself is not affected)."""
    if is_enabled(emu, project_id, SERVICE):
        LogEntries(emu).write(entries, resource=resource, labels=labels)


def _instance(seed: str) -> str:
    """A stable instance id of the shape Cloud Run prints (hex)."""
    return "00" + hashlib.sha256(seed.encode()).hexdigest()[:62]

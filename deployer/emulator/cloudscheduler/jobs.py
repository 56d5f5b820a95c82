"""Cloud Scheduler v1: the state and behaviour (no HTTP) of jobs; the rules are listed in the
package docstring."""

from __future__ import annotations

import re
import zoneinfo
from typing import TYPE_CHECKING, Any

from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..formats import rfc3339
from ..projects import resolve
from ..serviceusage import require_enabled
from .firing import KIND, attempt, decoded, forget, next_run

if TYPE_CHECKING:
    from ..context import Emulator

SERVICE = "cloudscheduler.googleapis.com"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,-]+$")
_DURATION = re.compile(r"^(\d+)(?:\.\d+)?s$")
_HTTP_METHODS = ("POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
#: the fields a patch may set (the rest are output only, or the name)
PATCHABLE = frozenset(
    {
        "description",
        "schedule",
        "timeZone",
        "httpTarget",
        "pubsubTarget",
        "appEngineHttpTarget",
        "retryConfig",
        "attemptDeadline",
    }
)
_TARGETS = ("httpTarget", "pubsubTarget", "appEngineHttpTarget")
_OUTPUT = ("state", "userUpdateTime", "lastAttemptTime", "status", "scheduleTime")


class Jobs:
    """The jobs of one emulator's Cloud Scheduler, keyed by full name."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def parent(self, project: str, location: str) -> str:
        project_id, _ = resolve(self.emu, project)
        require_enabled(self.emu, project_id, SERVICE)
        return f"projects/{project_id}/locations/{location}"

    def get(self, name: str) -> dict[str, Any]:
        job = self.emu.store.get(KIND, name)
        if job is None:
            raise NotFound(f"Job not found: {name}.")
        return job  # type: ignore[no-any-return]

    def in_location(self, parent: str) -> list[dict[str, Any]]:
        return [j for _, j in self.emu.store.list(KIND, parent + "/jobs/")]

    def create(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name") or ""
        head, _, job_id = name.rpartition("/jobs/")
        if head != parent or not _JOB_ID.match(job_id):
            raise InvalidArgument(
                f"Job name must be formatted: '{parent}/jobs/<JOB_ID>', where JOB_ID is 1-500 "
                f"letters, numbers, hyphens or underscores; got '{name}'."
            )
        with self.emu.store.transaction():
            if self.emu.store.get(KIND, name) is not None:
                raise AlreadyExists(f"Job {name} already exists.")
            job = {k: v for k, v in body.items() if k not in _OUTPUT}
            job.setdefault("timeZone", "Etc/UTC")
            self._check(job, parent)
            job.update(state="ENABLED", userUpdateTime=self._now())
            self.emu.store.put(KIND, name, self._scheduled(job))
            return job

    def patch(self, name: str, body: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        """Set ``fields`` from ``body`` (all of body when empty: a replace), check, store."""
        for f in fields:
            if f not in PATCHABLE:
                raise InvalidArgument(f"The field {f} cannot be updated.")
        with self.emu.store.transaction():
            job = self.get(name)
            if fields:
                new = {**job, **{f: body[f] for f in fields if f in body}}
                for f in fields:
                    if f not in body:
                        new.pop(f, None)  # named in the mask but absent: cleared
            else:
                new = {k: v for k, v in body.items() if k not in _OUTPUT}
                new.update({k: job[k] for k in _OUTPUT if k in job})
            new["name"] = name
            new.setdefault("timeZone", "Etc/UTC")
            self._check(new, name.rpartition("/jobs/")[0])
            new["userUpdateTime"] = self._now()
            if (new["schedule"], new["timeZone"]) != (job["schedule"], job["timeZone"]):
                new = self._scheduled(new)
            self.emu.store.put(KIND, name, new)
            return new

    def delete(self, name: str) -> None:
        with self.emu.store.transaction():
            self.get(name)
            self.emu.store.delete(KIND, name)
            forget(self.emu, name)

    def set_state(self, name: str, state: str) -> dict[str, Any]:
        """:pause (PAUSED) and :resume (ENABLED)."""
        with self.emu.store.transaction():
            job = self.get(name)
            job = self._scheduled({**job, "state": state, "userUpdateTime": self._now()})
            forget(self.emu, name)
            self.emu.store.put(KIND, name, job)
            return job

    def run(self, name: str) -> dict[str, Any]:
        """Force a run now: one attempt of the target (firing.py: a Run API ``jobs:run``
        target starts an execution with the RunJobRequest in the body, as the account may);
        the answer is the job, the attempt's outcome its ``status`` (as Google records the
        HTTP call's)."""
        with self.emu.store.transaction():
            job = attempt(self.emu, self.get(name), scheduled=self._now())
            self.emu.store.put(KIND, name, job)
            return job

    def _scheduled(self, job: dict[str, Any]) -> dict[str, Any]:
        """``job`` (changed in place) with ``scheduleTime`` its next run after now when it is
        ENABLED (a resumed job's missed times are not run), none when it is paused or its
        schedule never runs: Google's output, whether or not this emulator fires it."""
        nxt = next_run(job, self.emu.clock()) if job.get("state") == "ENABLED" else None
        if nxt is None:
            job.pop("scheduleTime", None)
        else:
            job["scheduleTime"] = nxt
        return job

    # -- the checks ---------------------------------------------------------------------------

    def _now(self) -> str:
        return rfc3339(self.emu.clock())

    def _check(self, job: dict[str, Any], parent: str) -> None:
        targets = [t for t in _TARGETS if job.get(t)]
        if len(targets) != 1:
            raise InvalidArgument("A job must have exactly one target.")
        if targets[0] != "httpTarget":
            raise InvalidArgument(f"The emulator serves httpTarget jobs only, not {targets[0]}.")
        _check_http_target(job["httpTarget"], parent.split("/")[1])
        schedule = job.get("schedule")
        fields = schedule.split() if isinstance(schedule, str) else []
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise InvalidArgument(f"Schedule has an invalid format: {schedule!r}.")
        if job["timeZone"] not in zoneinfo.available_timezones():
            raise InvalidArgument(f"Invalid time zone: {job['timeZone']}.")
        deadline = job.get("attemptDeadline")
        if deadline is not None:
            m = _DURATION.match(deadline) if isinstance(deadline, str) else None
            if m is None or not 15 <= int(m.group(1)) <= 1800:
                raise InvalidArgument(
                    "attemptDeadline of an HTTP target must be between 15 seconds and 30 minutes."
                )


def _check_http_target(target: dict[str, Any], project_id: str) -> None:
    uri = target.get("uri") or ""
    if not uri.startswith(("http://", "https://")):
        raise InvalidArgument(f"HttpTarget.uri must be an http or https URL: {uri!r}.")
    if target.get("httpMethod", "POST") not in _HTTP_METHODS:
        raise InvalidArgument(f"Invalid HttpTarget.httpMethod: {target['httpMethod']!r}.")
    decoded(target.get("body"))
    tokens = [t for t in ("oauthToken", "oidcToken") if target.get(t)]
    if len(tokens) > 1:
        raise InvalidArgument("An HttpTarget has at most one of oauthToken and oidcToken.")
    for t in tokens:
        email = target[t].get("serviceAccountEmail") or ""
        if not email.endswith(f"@{project_id}.iam.gserviceaccount.com"):
            raise InvalidArgument(
                f"{t}.serviceAccountEmail must be a service account of project {project_id}: "
                f"{email!r}."
            )

"""Cloud Scheduler's attempts: what a job's HTTP target does when it fires on its schedule or
is forced (``:run``), and, with local execution on, the schedule itself (no HTTP).

An attempt performs the target against the emulator, in-process: a Run API ``jobs/{j}:run``
uri is called as the Run handler would, after the checks Google's call meets (the Run API
enabled, the job found, the target's ``oauthToken`` account holding ``run.jobs.run`` on the job
or its project, and ``run.jobs.runWithOverrides`` when the body overrides); any other uri is
recorded as attempted only. Each attempt writes Cloud Scheduler's two log entries
(``cloudscheduler.googleapis.com/executions``, resource type ``cloud_scheduler_job``:
``AttemptStarted``, then ``AttemptFinished`` with the HTTP status), and sets the job's
``lastAttemptTime`` and ``status``. A failed attempt is retried per the job's ``retryConfig``
while the emulator executes.

The schedule runs on the emulator's clock, not scaled by the time scale: a job fires at the
wall-clock minute its cron names in its ``timeZone``, as Cloud Scheduler does, and a retry
waits its backoff in real seconds. A person running apps under ``--emulator`` (time scale 0.01)
expects ``0 3 * * *`` at 3 a.m., not every 14 minutes, and ``* * * * *`` once a minute, not a
Django process every 0.6 s; the time scale is for how long Google's operations take. Tests
fire minutes at will on a virtual clock. A job's ``scheduleTime`` (its next run) is stored:
it fires when the clock reaches it, in the same transaction that moves ``scheduleTime`` to the
next time after now, so a restart never fires one scheduled time twice and a long stop fires
once (no backfill). While there are jobs, each tick also completes the operations that are
due, as a request would, so a fired execution runs with nobody polling.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any

from ..errors import GRPC_CODE_BY_STATUS, ApiError, InvalidArgument, PermissionDenied
from ..formats import rfc3339
from ..logging.entries import SERVICE as LOGGING
from ..logging.entries import LogEntries
from ..logging.filters import parse_time
from ..policies import has_binding
from ..resourcemanager import policy_key
from ..run import run_job
from ..run.common import parent as run_parent
from ..run.jobs import Jobs as RunJobs
from ..serviceusage import is_enabled
from .cron import CronError, Schedule

if TYPE_CHECKING:
    from ..context import Emulator

KIND = "cloudscheduler.job"
RETRY_KIND = "cloudscheduler.retry"  # a failed attempt's retries to come, by job name
#: where an earlier emulator kept its scaled schedule time (dropped at start, realize())
_SCALED_ANCHOR = ("cloudscheduler.clock", "anchor")
RUN_URI = re.compile(
    r"^https://run\.googleapis\.com/v2/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/jobs/(?P<job>[^/:]+):run$"
)
_LOG = "cloudscheduler.googleapis.com%2Fexecutions"
_PAYLOAD = "type.googleapis.com/google.cloud.scheduler.logging."
#: roles holding run.jobs.run; the second set also holds run.jobs.runWithOverrides
RUN_ROLES = (
    "roles/run.invoker",
    "roles/run.jobsExecutor",
    "roles/run.jobsExecutorWithOverrides",
    "roles/run.developer",
    "roles/run.admin",
    "roles/editor",
    "roles/owner",
)
OVERRIDE_ROLES = RUN_ROLES[2:]
#: RetryConfig defaults (Google's reference)
_MIN_BACKOFF, _MAX_BACKOFF, _MAX_DOUBLINGS = 5.0, 3600.0, 5


# -- schedule time --------------------------------------------------------------------------------


def next_run(job: dict[str, Any], after: float) -> str | None:
    """The job's first scheduled time after ``after`` (RFC 3339), or None (a schedule that
    never runs)."""
    try:
        found = Schedule.parse(job["schedule"]).next_after(after, job["timeZone"])
    except CronError:
        return None  # the API checks schedules: only a state written by hand gets here
    return None if found is None else rfc3339(found)


# -- the ticker's work -----------------------------------------------------------------------------


def tick(emu: Emulator) -> None:
    """Fire every ENABLED job whose scheduled time has come, and the retries that are due;
    a job with nothing due costs a read (its transaction is only taken to act)."""
    jobs = emu.store.list(KIND)
    if not jobs:
        return  # idle: no store write, no schedule time yet
    now = emu.clock()
    for name, seen in jobs:
        if _due(emu, seen, now):
            with emu.store.transaction():
                job = emu.store.get(KIND, name)  # again: it may have changed meanwhile
                if job is not None and _due(emu, job, now):
                    emu.store.put(KIND, name, _act(emu, job, now))
    # complete due operations as a request would: a fired execution's tasks start (and its
    # command runs) whether or not anybody polls
    emu.ops.advance()


def _due(emu: Emulator, job: dict[str, Any], now: float) -> bool:
    if job.get("state") != "ENABLED":
        return False
    due = job.get("scheduleTime")
    if due is None:
        return next_run(job, now) is not None  # a schedule that never runs ("0 0 30 2 *"): idle
    if parse_time(due) <= now:
        return True
    retry = emu.store.get(RETRY_KIND, job["name"])
    return retry is not None and retry["at"] <= emu.clock()


def _act(emu: Emulator, job: dict[str, Any], now: float) -> dict[str, Any]:
    """What is due on ``job``: its first ``scheduleTime``, its scheduled attempt (the next
    time after now becomes ``scheduleTime``, in the same transaction), or a retry."""
    due: str | None = job.get("scheduleTime")
    if due is None:
        nxt = next_run(job, now)
        return job if nxt is None else {**job, "scheduleTime": nxt}
    if parse_time(due) <= now:
        job = {k: v for k, v in job.items() if k != "scheduleTime"}
        nxt = next_run(job, now)
        if nxt is not None:
            job["scheduleTime"] = nxt
        emu.store.delete(RETRY_KIND, job["name"])  # a scheduled attempt replaces retries
        return attempt(emu, job, scheduled=due)
    retry = emu.store.get(RETRY_KIND, job["name"])
    assert retry is not None  # _due said so, in this transaction
    return attempt(emu, job, scheduled=retry["scheduled"])


# -- one attempt ---------------------------------------------------------------------------------


def attempt(emu: Emulator, job: dict[str, Any], *, scheduled: str) -> dict[str, Any]:
    """Perform ``job``'s target once (its scheduled time ``scheduled``); the job with
    ``lastAttemptTime`` and ``status`` set. Called in a store transaction by the caller, which
    stores the job."""
    target = job.get("httpTarget") or {}
    uri = target.get("uri", "")
    _log(emu, job, "AttemptStarted", "INFO", {"scheduledTime": scheduled}, http=None)
    failure: ApiError | None = None
    found = RUN_URI.match(uri)
    if found is not None:
        try:
            _run(emu, target, found)
        except ApiError as exc:  # the call failed: Google logs it, the job records it
            failure = exc
    code = 200 if failure is None else failure.code
    finished: dict[str, Any] = {"debugInfo": f"{_debug(code)}. Original HTTP response code "}
    finished["debugInfo"] += f"number = {code}"
    status: dict[str, Any] = {}
    if failure is not None:
        finished["status"] = failure.status
        status = {"code": GRPC_CODE_BY_STATUS.get(failure.status, 2), "message": failure.message}
    _log(emu, job, "AttemptFinished", "INFO" if failure is None else "ERROR", finished, http=code)
    _plan_retry(emu, job, scheduled, failed=failure is not None)
    return {**job, "lastAttemptTime": rfc3339(emu.clock()), "status": status}


def _run(emu: Emulator, target: dict[str, Any], found: re.Match[str]) -> None:
    """The Run API's ``jobs:run``, as its handler serves it, for the target's account."""
    request = decoded(target.get("body"))
    overrides = request.get("overrides") or {}
    where = run_parent(emu, found["project"], found["location"])
    run_job_record = RunJobs(emu).get(where, found["job"])
    email = (target.get("oauthToken") or {}).get("serviceAccountEmail")
    if not email:
        raise ApiError(
            401,
            "Request is missing required authentication credential. Expected OAuth 2 access "
            "token (a job calling a Google API needs an oauthToken).",
            status="UNAUTHENTICATED",
        )
    member = f"serviceAccount:{email}"
    keys = (run_job_record["name"], policy_key(where.pid))
    for permission, roles in (
        ("run.jobs.run", RUN_ROLES),
        ("run.jobs.runWithOverrides", OVERRIDE_ROLES if overrides else RUN_ROLES),
    ):
        if not any(has_binding(emu, k, r, member) for k in keys for r in roles):
            raise PermissionDenied(
                f"Permission '{permission}' denied on resource "
                f"'namespaces/{where.pid}/jobs/{found['job']}' (or resource may not exist)."
            )
    run_job(emu, found["project"], found["location"], found["job"], overrides=overrides)


def _debug(code: int) -> str:
    if 200 <= code < 300:
        return "URL_CRAWLED"
    if code in (401, 403):
        return "URL_ERROR-ERROR_AUTHENTICATION"
    if code == 404:
        return "URL_ERROR-ERROR_NOT_FOUND"
    if code >= 500:
        return "URL_UNREACHABLE-UNREACHABLE_5xx"
    return "URL_ERROR-ERROR_OTHER"


def _log(
    emu: Emulator,
    job: dict[str, Any],
    what: str,
    severity: str,
    fields: dict[str, Any],
    *,
    http: int | None,
) -> None:
    """One of Cloud Scheduler's entries, unless the project turned Logging off."""
    _, project_id, _, location, _, job_id = job["name"].split("/")
    if not is_enabled(emu, project_id, LOGGING):
        return
    target = job.get("httpTarget") or {}
    entry: dict[str, Any] = {
        "logName": f"projects/{project_id}/logs/{_LOG}",
        "severity": severity,
        "timestamp": rfc3339(emu.clock()),
        "jsonPayload": {
            "@type": _PAYLOAD + what,
            "jobName": job["name"],
            "targetType": "HTTP",
            "url": target.get("uri", ""),
            **fields,
        },
    }
    if http is not None:
        entry["httpRequest"] = {"status": http}
    resource = {
        "type": "cloud_scheduler_job",
        "labels": {"project_id": project_id, "job_id": job_id, "location": location},
    }
    LogEntries(emu).write([entry], resource=resource)


# -- retries -------------------------------------------------------------------------------------


def _seconds(value: Any, default: float) -> float:
    try:
        return float(str(value).removesuffix("s")) if value not in (None, "") else default
    except ValueError:
        return default


def backoff(config: dict[str, Any], retried: int) -> float:
    """Seconds before retry number ``retried + 1``: the minimum backoff doubled
    ``maxDoublings`` times, then growing by that last step, capped at the maximum (Google's
    RetryConfig: 10 s, 3 doublings, 300 s max gives 10, 20, 40, 80, 160, 240, 300, 300...)."""
    low = _seconds(config.get("minBackoffDuration"), _MIN_BACKOFF)
    high = _seconds(config.get("maxBackoffDuration"), _MAX_BACKOFF)
    doublings = int(config.get("maxDoublings", _MAX_DOUBLINGS))
    if retried <= doublings:
        step = low * 2**retried
    else:
        step = low * 2**doublings * (retried - doublings + 1)
    return min(step, high)


def _plan_retry(emu: Emulator, job: dict[str, Any], scheduled: str, *, failed: bool) -> None:
    """After a failed attempt, the next retry (until both ``retryCount`` retries were made and
    ``maxRetryDuration`` has passed); after a success, none."""
    name = job["name"]
    previous = emu.store.get(RETRY_KIND, name)
    if previous is not None and previous["scheduled"] != scheduled:
        previous = None  # the retries of an earlier scheduled time
    if not failed:
        emu.store.delete(RETRY_KIND, name)
        return
    config = job.get("retryConfig") or {}
    now = emu.clock()
    retried = 0 if previous is None else previous["retried"] + 1
    first = now if previous is None else previous["first"]
    limit = _seconds(config.get("maxRetryDuration"), 0.0)
    at = now + backoff(config, retried)
    # "If specified with retry_count, the job will be retried until both limits are reached"
    # (RetryConfig); a maxRetryDuration of 0 is no time limit
    if retried >= int(config.get("retryCount") or 0) and (not limit or at > first + limit):
        emu.store.delete(RETRY_KIND, name)
        return
    emu.store.put(
        RETRY_KIND, name, {"scheduled": scheduled, "retried": retried, "first": first, "at": at}
    )


def forget(emu: Emulator, name: str) -> None:
    """A deleted job's pending retries go with it."""
    emu.store.delete(RETRY_KIND, name)


def realize(emu: Emulator) -> None:
    """With local execution on, start the ticker (an emulator start; stopped on close). A
    stored ``scheduleTime`` later than the schedule's next time after now is taken back to it:
    the clock was set back, or an earlier emulator ran schedule time ahead of the clock by
    the time scale (its anchor goes too)."""
    ticker = emu.local.scheduler
    if ticker is None:
        return
    now = emu.clock()
    with emu.store.transaction():
        emu.store.delete(*_SCALED_ANCHOR)
        for name, job in emu.store.list(KIND):
            due, nxt = job.get("scheduleTime"), next_run(job, now)
            if due is not None and (nxt is None or parse_time(due) > parse_time(nxt)):
                emu.store.put(KIND, name, {k: v for k, v in job.items() if k != "scheduleTime"})
    ticker.start(lambda: tick(emu))


def decoded(body: object) -> dict[str, Any]:
    """An HTTP target's body: base64 of bytes; for a Run API call, a JSON RunJobRequest."""
    if not body:
        return {}
    try:
        raw = base64.b64decode(str(body), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("HttpTarget.body must be base64-encoded.") from None
    try:
        decoded = json.loads(raw or b"{}")
    except ValueError:
        return {}  # not JSON: Google sends it as it is; only a Run API target reads it
    return decoded if isinstance(decoded, dict) else {}

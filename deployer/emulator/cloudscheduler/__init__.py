"""Cloud Scheduler v1: jobs.

    POST   /v1/projects/{p}/locations/{l}/jobs                  create (the id is the name's)
    GET    /v1/projects/{p}/locations/{l}/jobs[?pageSize&pageToken]
    GET    /v1/projects/{p}/locations/{l}/jobs/{id}
    PATCH  /v1/projects/{p}/locations/{l}/jobs/{id}?updateMask=
    DELETE /v1/projects/{p}/locations/{l}/jobs/{id}
    POST   .../jobs/{id}:pause | :resume | :run

Behaviour copied from Google's reference: the API must be enabled (403 SERVICE_DISABLED); a job
id is 1-500 letters, digits, hyphens or underscores; a job needs exactly one target, and the
emulator serves HTTP targets (uri http(s), method, base64 body, an oauthToken or oidcToken
naming a service account of the project); the schedule is unix-cron (five fields) and the time
zone an IANA name (default UTC); attemptDeadline is 15 s to 30 min for HTTP targets; ``state``
is output only (ENABLED; :pause and :resume set PAUSED and ENABLED); an empty updateMask
replaces the job. ``:run`` forces a run now: Google sends the HTTP request; the emulator does
what that request does when its uri is the Run API's ``jobs/{j}:run``, starting an execution
through the run backend with the RunJobRequest of the body (its overrides); any other uri is
recorded as attempted only. The call is checked as Google's would be: the target's
``oauthToken`` account must hold ``run.jobs.run`` on the Run job or its project (and
``run.jobs.runWithOverrides`` for a body with overrides). Each attempt writes Cloud Scheduler's
``AttemptStarted`` / ``AttemptFinished`` log entries (resource type ``cloud_scheduler_job``)
and a failed one is retried per ``retryConfig``. With local execution on, ENABLED jobs fire on
their schedule on the clock, unscaled. ``scheduleTime`` (output only) is an ENABLED job's
next run, set on create, on a schedule change and on :resume, moved by each firing.

Backend (no HTTP): :mod:`.jobs` (the resource), :mod:`.firing` (attempts, retries, the
schedule, the ticker's work), :mod:`.cron` (unix-cron). :mod:`.handlers` parses, calls them
and renders.
"""

from .firing import realize
from .handlers import router

__all__ = ["realize", "router"]

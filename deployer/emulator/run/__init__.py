"""Cloud Run Admin v2: services, revisions, jobs, executions, tasks, operations, IAM.

    POST   /v2/projects/{p}/locations/{l}/services?serviceId=[&validateOnly=] -> Operation (Service)
    GET    /v2/projects/{p}/locations/{l}/services[/{s}]
    PATCH  .../services/{s}[?allowMissing=&validateOnly=]                -> Operation (Service)
    DELETE .../services/{s}[?etag=&validateOnly=]                        -> Operation (Service)
    GET    .../services/{s}/revisions[/{r}]
    DELETE .../services/{s}/revisions/{r}[?etag=&validateOnly=]          -> Operation (Revision)
    GET|POST .../services/{s}:getIamPolicy | :setIamPolicy | :testIamPermissions (jobs too)
    POST   /v2/projects/{p}/locations/{l}/jobs?jobId=[&validateOnly=]    -> Operation (Job)
    GET    /v2/projects/{p}/locations/{l}/jobs[/{j}]
    PATCH  .../jobs/{j}[?allowMissing=&validateOnly=]                    -> Operation (Job)
    DELETE .../jobs/{j}[?etag=&validateOnly=]                            -> Operation (Job)
    POST   .../jobs/{j}:run  body {overrides, etag, validateOnly}        -> Operation (Execution)
    GET    .../jobs/{j}/executions[/{e}]
    DELETE .../jobs/{j}/executions/{e}[?etag=&validateOnly=]             -> Operation (Execution)
    POST   .../jobs/{j}/executions/{e}:cancel  body {etag, validateOnly} -> Operation (Execution)
    GET    .../jobs/{j}/executions/{e}/tasks[/{t}]
    POST   /v2/projects/{p}/locations/{l}/workerPools?workerPoolId=[&validateOnly=] -> Operation
    GET    /v2/projects/{p}/locations/{l}/workerPools[/{w}]
    PATCH  .../workerPools/{w}[?allowMissing=&validateOnly=]             -> Operation (WorkerPool)
    DELETE .../workerPools/{w}[?etag=&validateOnly=]                     -> Operation (WorkerPool)
    GET|POST .../workerPools/{w}:getIamPolicy | :setIamPolicy | :testIamPermissions
    GET    /v2/projects/{p}/locations/{l}/operations[/{id}]; DELETE .../operations/{id}
    POST   /apis/domains.cloudrun.com/v1/namespaces/{p}/domainmappings   -> DomainMapping (v1)
    GET    /apis/domains.cloudrun.com/v1/namespaces/{p}/domainmappings[/{domain}]
    DELETE /apis/domains.cloudrun.com/v1/namespaces/{p}/domainmappings/{domain} -> Status

Built moto's way: ``handlers`` parses, calls a backend and renders; the backends (``services``,
``revisions``, ``jobs``, ``executions``, ``tasks``, ``workerpools``, ``ops``) hold the behaviour,
with what they share in ``common`` (store kinds, records, etags, operations), the server's
template defaults and 400 checks in ``templates``, the checks a revision or task must pass to
start in ``readiness``, and the discovery-document request checks in ``schema``. ``run_job``
is what Cloud Scheduler's HTTP call to ``jobs:run`` amounts to (the cloudscheduler package
calls it). ``domainmappings``: the Admin API v1's domain mappings (Knative shape, no
operation; the status worked out from the mapping's scaled age; ``unverified.example`` and its
subdomains are the domains the caller does not own). docs/emulator.md lists the behaviour
copied from Google. :mod:`.realize`: local execution (a job's tasks, a serving revision's
instance and a worker pool's instances are real processes); :func:`realize` brings the serving
revisions and the worker pools back when an emulator starts.
"""

from typing import TYPE_CHECKING

from . import services, workerpools
from .executions import run_job
from .handlers import router

if TYPE_CHECKING:
    from ..context import Emulator


def realize(emu: "Emulator") -> None:
    """An emulator start: what the stored state says runs, runs again."""
    services.realize(emu)
    workerpools.realize(emu)


__all__ = ["realize", "router", "run_job"]

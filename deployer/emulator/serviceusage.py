"""Service Usage v1: which APIs a project has enabled.

    GET  /v1/projects/{p}/services/{s}             -> Service
    GET  /v1/projects/{p}/services[?filter=state:ENABLED&pageSize=&pageToken=]
    GET  /v1/projects/{p}/services:batchGet?names=projects/p/services/s...
    POST /v1/projects/{p}/services/{s}:enable      -> Operation
    POST /v1/projects/{p}/services/{s}:disable     -> Operation
    POST /v1/projects/{p}/services:batchEnable     -> Operation   body {"serviceIds": [...]}
    GET  /v1/operations/{id}                       -> Operation

A worked example of an API module: a ``router``, handlers that render the API's own JSON, a
long-running operation started with ``emu.ops.start`` and finished by a ``@completer``.

Behaviour copied from Google: names use the project *number*; a new project has a default set of
services enabled; enabling an already-enabled service answers the done operation
``operations/noop.DONE_OPERATION``; an unknown service is 403
``SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED``. Other API modules can call
:func:`require_enabled` to answer 403 ``SERVICE_DISABLED`` the way every Google API does.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .operations import completer, longrunning_json
from .pagination import Paging, paginate
from .projects import resolve
from .routing import Request, Router

if TYPE_CHECKING:
    from .context import Emulator

router = Router()
_PAGING = Paging(default_size=50, max_size=200)

KIND = "serviceusage.service"
TYPE_PREFIX = "type.googleapis.com/google.api.serviceusage.v1."
NOOP_OPERATION = "operations/noop.DONE_OPERATION"
MAX_BATCH = 20

#: services the emulator knows, with their titles
TITLES: dict[str, str] = {
    "analyticshub.googleapis.com": "Analytics Hub API",
    "artifactregistry.googleapis.com": "Artifact Registry API",
    "bigquery.googleapis.com": "BigQuery API",
    "bigqueryconnection.googleapis.com": "BigQuery Connection API",
    "bigquerydatapolicy.googleapis.com": "BigQuery Data Policy API",
    "bigquerymigration.googleapis.com": "BigQuery Migration API",
    "bigqueryreservation.googleapis.com": "BigQuery Reservation API",
    "bigquerystorage.googleapis.com": "BigQuery Storage API",
    "cloudapis.googleapis.com": "Google Cloud APIs",
    "cloudbuild.googleapis.com": "Cloud Build API",
    "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
    "cloudscheduler.googleapis.com": "Cloud Scheduler API",
    "cloudtrace.googleapis.com": "Cloud Trace API",
    "compute.googleapis.com": "Compute Engine API",
    "containerregistry.googleapis.com": "Container Registry API",
    "dataform.googleapis.com": "Dataform API",
    "dataplex.googleapis.com": "Cloud Dataplex API",
    "datastore.googleapis.com": "Cloud Datastore API",
    "iam.googleapis.com": "Identity and Access Management (IAM) API",
    "iamcredentials.googleapis.com": "IAM Service Account Credentials API",
    "logging.googleapis.com": "Cloud Logging API",
    "monitoring.googleapis.com": "Cloud Monitoring API",
    "pubsub.googleapis.com": "Cloud Pub/Sub API",
    "run.googleapis.com": "Cloud Run Admin API",
    "secretmanager.googleapis.com": "Secret Manager API",
    "servicemanagement.googleapis.com": "Service Management API",
    "serviceusage.googleapis.com": "Service Usage API",
    "sql-component.googleapis.com": "Cloud SQL",
    "sqladmin.googleapis.com": "Cloud SQL Admin API",
    "storage-api.googleapis.com": "Google Cloud Storage JSON API",
    "storage-component.googleapis.com": "Cloud Storage",
    "storage.googleapis.com": "Cloud Storage API",
    "vpcaccess.googleapis.com": "Serverless VPC Access API",
}

#: enabled in every new project (as in a project created from the console)
DEFAULT_ENABLED: frozenset[str] = frozenset(
    {
        "analyticshub.googleapis.com",
        "bigquery.googleapis.com",
        "bigqueryconnection.googleapis.com",
        "bigquerydatapolicy.googleapis.com",
        "bigquerymigration.googleapis.com",
        "bigqueryreservation.googleapis.com",
        "bigquerystorage.googleapis.com",
        "cloudapis.googleapis.com",
        "cloudtrace.googleapis.com",
        "dataform.googleapis.com",
        "dataplex.googleapis.com",
        "datastore.googleapis.com",
        "logging.googleapis.com",
        "monitoring.googleapis.com",
        "servicemanagement.googleapis.com",
        "serviceusage.googleapis.com",
        "sql-component.googleapis.com",
        "storage-api.googleapis.com",
        "storage-component.googleapis.com",
        "storage.googleapis.com",
    }
)


# -- state ---------------------------------------------------------------------------------------


def _check_service(service: str) -> None:
    if service not in TITLES:
        raise ApiError(
            403,
            f"Not found or permission denied for service(s): {service}.",
            reason="SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED",
            domain="serviceusage.googleapis.com",
            metadata={"services": service},
        )


def is_enabled(emu: Emulator, project: str, service: str) -> bool:
    _, number = resolve(emu, project)
    rec = emu.store.get(KIND, f"{number}/{service}")
    if rec is None:
        return service in DEFAULT_ENABLED
    return rec["state"] == "ENABLED"


def set_enabled(emu: Emulator, project: str, service: str, enabled: bool = True) -> None:
    """Enable or disable a service directly (tests, fixtures)."""
    _, number = resolve(emu, project)
    emu.store.put(KIND, f"{number}/{service}", {"state": "ENABLED" if enabled else "DISABLED"})


def require_enabled(emu: Emulator, project: str, service: str, *, legacy: bool = False) -> None:
    """Answer 403 SERVICE_DISABLED, like every Google API called in a project where it is not
    enabled. ``legacy=True`` for discovery-era APIs (adds errors[] with reason
    accessNotConfigured)."""
    if is_enabled(emu, project, service):
        return
    _, number = resolve(emu, project)
    title = TITLES.get(service, service)
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={number}"
    raise ApiError(
        403,
        f"{title} has not been used in project {number} before or it is disabled. Enable it by "
        f"visiting {url} then retry. If you enabled this API recently, wait a few minutes for "
        "the action to propagate to our systems and retry.",
        reason="SERVICE_DISABLED",
        metadata={
            "consumer": f"projects/{number}",
            "service": service,
            "activationUrl": url,
            "serviceTitle": title,
            "containerInfo": number,
        },
        legacy=legacy,
        legacy_reason="accessNotConfigured",
    )


def _service_json(number: str, service: str, state: str) -> dict[str, Any]:
    return {
        "name": f"projects/{number}/services/{service}",
        "config": {"name": service, "title": TITLES.get(service, service)},
        "state": state,
        "parent": f"projects/{number}",
    }


def _service(emu: Emulator, number: str, service: str) -> dict[str, Any]:
    rec = emu.store.get(KIND, f"{number}/{service}")
    state = rec["state"] if rec else ("ENABLED" if service in DEFAULT_ENABLED else "DISABLED")
    return _service_json(number, service, state)


# -- operations ----------------------------------------------------------------------------------


def _op_json(op: dict[str, Any]) -> dict[str, Any]:
    return longrunning_json(
        op,
        f"operations/{op['id']}",
        {
            "@type": TYPE_PREFIX + "OperationMetadata",
            "resourceNames": op["metadata"].get("resourceNames", []),
        },
    )


def _noop(response: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": NOOP_OPERATION,
        "metadata": {"@type": TYPE_PREFIX + "OperationMetadata"},
        "done": True,
        "response": response,
    }


def _start(
    emu: Emulator, number: str, services: list[str], completer_name: str, state: str
) -> dict[str, Any]:
    op = emu.ops.start(
        completer=completer_name,
        duration_kind="serviceusage.enable",
        target=f"projects/{number}/services",
        args={"number": number, "services": services, "state": state},
        metadata={
            "resourceNames": [f"services/{s}/projectSettings/{number}" for s in services],
        },
        op_id=f"acat.p2-{number}-{uuid.uuid4()}",
    )
    return _op_json(op)


def _apply(emu: Emulator, op: dict[str, Any]) -> list[dict[str, Any]]:
    number, state = op["args"]["number"], op["args"]["state"]
    out = []
    for s in op["args"]["services"]:
        emu.store.put(KIND, f"{number}/{s}", {"state": state})
        out.append(_service_json(number, s, state))
    return out


@completer("serviceusage.enable")
def _finish_enable(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    services = _apply(emu, op)
    return {"@type": TYPE_PREFIX + "EnableServiceResponse", "service": services[0]}


@completer("serviceusage.disable")
def _finish_disable(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    services = _apply(emu, op)
    return {"@type": TYPE_PREFIX + "DisableServiceResponse", "service": services[0]}


@completer("serviceusage.batchEnable")
def _finish_batch(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    services = _apply(emu, op)
    return {"@type": TYPE_PREFIX + "BatchEnableServicesResponse", "services": services}


# -- routes --------------------------------------------------------------------------------------


@router.route("GET", "/v1/projects/{project}/services/{service}")
def get_service(req: Request, project: str, service: str) -> dict[str, Any]:
    _, number = resolve(req.emu, project)
    return _service(req.emu, number, service)


@router.route("GET", "/v1/projects/{project}/services")
def list_services(req: Request, project: str) -> dict[str, Any]:
    _, number = resolve(req.emu, project)
    flt = (req.arg("filter") or "").replace(" ", "")
    want: str | None = None
    if flt:
        if flt not in ("state:ENABLED", "state:DISABLED"):
            raise ApiError(400, f"Invalid filter: {flt}")
        want = flt.split(":", 1)[1]
    names = sorted(set(TITLES) | {k.split("/", 1)[1] for k, _ in req.emu.store.list(KIND, number)})
    services = [_service(req.emu, number, s) for s in names]
    if want:
        services = [s for s in services if s["state"] == want]
    return paginate(req, services, _PAGING, key="services")


@router.route("GET", "/v1/projects/{project}/services:batchGet")
def batch_get(req: Request, project: str) -> dict[str, Any]:
    _, number = resolve(req.emu, project)
    names = req.query.get("names", [])
    if len(names) > 30:
        raise ApiError(400, "At most 30 services can be requested at once.")
    out = []
    for n in names:
        service = n.rsplit("/", 1)[-1]
        out.append(_service(req.emu, number, service))
    return {"services": out}


@router.route("POST", "/v1/projects/{project}/services/{service}:enable")
def enable(req: Request, project: str, service: str) -> dict[str, Any]:
    return _switch(req, project, service, "ENABLED")


@router.route("POST", "/v1/projects/{project}/services/{service}:disable")
def disable(req: Request, project: str, service: str) -> dict[str, Any]:
    return _switch(req, project, service, "DISABLED")


def _switch(req: Request, project: str, service: str, state: str) -> dict[str, Any]:
    """Enable or disable one service: a no-op operation when it is in `state` already."""
    req.json()
    _, number = resolve(req.emu, project)
    _check_service(service)
    verb = "Enable" if state == "ENABLED" else "Disable"
    with req.emu.store.transaction():  # read-modify-write: the check and the start together
        current = _service(req.emu, number, service)
        if current["state"] == state:
            return _noop({"@type": f"{TYPE_PREFIX}{verb}ServiceResponse", "service": current})
        return _start(req.emu, number, [service], f"serviceusage.{verb.lower()}", state)


@router.route("POST", "/v1/projects/{project}/services:batchEnable")
def batch_enable(req: Request, project: str) -> dict[str, Any]:
    ids = req.json().get("serviceIds") or []
    if not isinstance(ids, list) or not ids:
        raise ApiError(400, "serviceIds must name at least one service.")
    if len(ids) > MAX_BATCH:
        raise ApiError(400, f"At most {MAX_BATCH} services can be enabled in one request.")
    _, number = resolve(req.emu, project)
    for s in ids:
        _check_service(s)
    services = list(dict.fromkeys(ids))
    if all(_service(req.emu, number, s)["state"] == "ENABLED" for s in services):
        return _noop(
            {
                "@type": TYPE_PREFIX + "BatchEnableServicesResponse",
                "services": [_service(req.emu, number, s) for s in services],
            }
        )
    return _start(req.emu, number, services, "serviceusage.batchEnable", "ENABLED")


@router.route("GET", "/v1/operations/{op_id}")
def get_operation(req: Request, op_id: str) -> dict[str, Any]:
    if f"operations/{op_id}" == NOOP_OPERATION:
        return {"name": NOOP_OPERATION, "done": True}
    op = req.emu.ops.get(op_id)
    if op is None or not op["completer"].startswith("serviceusage."):
        raise ApiError(404, f"Operation 'operations/{op_id}' not found.")
    return _op_json(op)

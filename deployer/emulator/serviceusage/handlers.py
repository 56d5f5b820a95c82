"""Service Usage's routes: parse the request, call the backend, render its answer."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument, NotFound
from ..operations import longrunning_json
from ..pagination import Paging, paginate
from ..routing import Request, Router
from .services import TYPE_PREFIX, Services

router = Router()
_PAGING = Paging(default_size=50, max_size=200)

NOOP_OPERATION = "operations/noop.DONE_OPERATION"
MAX_BATCH = 20
_FILTERS = ("state:ENABLED", "state:DISABLED")


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
    """The done operation Google answers when nothing was to change."""
    return {
        "name": NOOP_OPERATION,
        "metadata": {"@type": TYPE_PREFIX + "OperationMetadata"},
        "done": True,
        "response": response,
    }


@router.route("GET", "/v1/projects/{project}/services/{service}")
def get_service(req: Request, project: str, service: str) -> dict[str, Any]:
    return Services(req.emu, project).get(service)


@router.route("GET", "/v1/projects/{project}/services")
def list_services(req: Request, project: str) -> dict[str, Any]:
    services = Services(req.emu, project)
    flt = (req.arg("filter") or "").replace(" ", "")
    if flt and flt not in _FILTERS:
        raise InvalidArgument(f"Invalid filter: {flt}")
    state = flt.split(":", 1)[1] if flt else None
    return paginate(req, services.list(state), _PAGING, key="services")


@router.route("GET", "/v1/projects/{project}/services:batchGet")
def batch_get(req: Request, project: str) -> dict[str, Any]:
    services = Services(req.emu, project)
    names = req.query.get("names", [])
    if len(names) > 30:
        raise InvalidArgument("At most 30 services can be requested at once.")
    return {"services": [services.get(n.rsplit("/", 1)[-1]) for n in names]}


@router.route("POST", "/v1/projects/{project}/services/{service}:enable")
def enable(req: Request, project: str, service: str) -> dict[str, Any]:
    return _switch(req, project, service, "ENABLED")


@router.route("POST", "/v1/projects/{project}/services/{service}:disable")
def disable(req: Request, project: str, service: str) -> dict[str, Any]:
    return _switch(req, project, service, "DISABLED")


def _switch(req: Request, project: str, service: str, state: str) -> dict[str, Any]:
    """Enable or disable one service: a no-op operation when it is in ``state`` already."""
    req.json()
    services = Services(req.emu, project)
    op = services.switch(service, state)
    if op is not None:
        return _op_json(op)
    verb = "Enable" if state == "ENABLED" else "Disable"
    return _noop({"@type": f"{TYPE_PREFIX}{verb}ServiceResponse", "service": services.get(service)})


@router.route("POST", "/v1/projects/{project}/services:batchEnable")
def batch_enable(req: Request, project: str) -> dict[str, Any]:
    ids = req.json().get("serviceIds") or []
    if not isinstance(ids, list) or not ids:
        raise InvalidArgument("serviceIds must name at least one service.")
    if len(ids) > MAX_BATCH:
        raise InvalidArgument(f"At most {MAX_BATCH} services can be enabled in one request.")
    services = Services(req.emu, project)
    op = services.batch_enable(ids)
    if op is not None:
        return _op_json(op)
    return _noop(
        {
            "@type": TYPE_PREFIX + "BatchEnableServicesResponse",
            "services": [services.get(s) for s in dict.fromkeys(ids)],
        }
    )


@router.route("GET", "/v1/operations/{op_id}")
def get_operation(req: Request, op_id: str) -> dict[str, Any]:
    if f"operations/{op_id}" == NOOP_OPERATION:
        return {"name": NOOP_OPERATION, "done": True}
    op = req.emu.ops.get(op_id)
    if op is None or not op["completer"].startswith("serviceusage."):
        raise NotFound(f"Operation 'operations/{op_id}' not found.")
    return _op_json(op)

"""Memorystore for Redis's routes: parse the request, call the backend, render its answer."""

from __future__ import annotations

from typing import Any

from ..operations import longrunning_json
from ..pagination import Paging, paginate
from ..projects import check_location, ensure_project
from ..routing import Request, Router
from ..serviceusage import require_enabled
from .instances import Instances

router = Router()

SERVICE = "redis.googleapis.com"
_PAGING = Paging(default_size=1000, max_size=1000)
_BASE = "/v1/projects/{project}/locations/{location}/instances"
_INSTANCE = _BASE + "/{instance}"


def operation_json(op: dict[str, Any]) -> dict[str, Any]:
    """An instance operation as google.longrunning.Operation."""
    a = op["args"]
    name = f"projects/{a['project']}/locations/{a['location']}/operations/{op['id']}"
    metadata = dict(op["metadata"])
    if op["done"]:
        metadata["endTime"] = metadata["createTime"]
    return longrunning_json(op, name, metadata)


def _instances(req: Request, project: str, location: str) -> Instances:
    """The location's instances, once the API is enabled and the location is valid."""
    p = ensure_project(req.emu, project)
    require_enabled(req.emu, p["projectId"], SERVICE)
    check_location(location)
    return Instances(req.emu, str(p["projectId"]), location)


@router.route("POST", _BASE)
def create(req: Request, project: str, location: str) -> dict[str, Any]:
    body = req.json()
    instances = _instances(req, project, location)
    return operation_json(instances.create(req.arg("instanceId") or "", body))


@router.route("GET", _BASE)
def list_(req: Request, project: str, location: str) -> dict[str, Any]:
    found = _instances(req, project, location).list()
    return paginate(req, found, _PAGING, key="instances")


@router.route("GET", _INSTANCE)
def get(req: Request, project: str, location: str, instance: str) -> dict[str, Any]:
    return _instances(req, project, location).get(instance)


@router.route("GET", _INSTANCE + "/authString")
def get_auth_string(req: Request, project: str, location: str, instance: str) -> dict[str, Any]:
    return _instances(req, project, location).auth_string(instance)


@router.route("PATCH", _INSTANCE)
def patch(req: Request, project: str, location: str, instance: str) -> dict[str, Any]:
    body = req.json()
    mask = [m.strip() for m in (req.arg("updateMask") or "").split(",") if m.strip()]
    return operation_json(_instances(req, project, location).patch(instance, body, mask))


@router.route("DELETE", _INSTANCE)
def delete(req: Request, project: str, location: str, instance: str) -> dict[str, Any]:
    return operation_json(_instances(req, project, location).delete(instance))

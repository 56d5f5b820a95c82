"""Cloud Monitoring's routes: parse the request, call the backend, render its answer."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument
from ..pagination import Paging, paginate
from ..routing import Request, Router
from . import uptime
from .resources import (
    CHANNEL_PATCHABLE,
    POLICY_PATCHABLE,
    UPTIME_PATCHABLE,
    MonitoringBackend,
    camel,
)

router = Router()
_PAGING = Paging(default_size=100, max_size=1000)


def _mask(req: Request, patchable: frozenset[str]) -> list[str]:
    fields = [camel(f.split(".")[0]) for f in (req.arg("updateMask") or "").split(",") if f]
    for f in fields:
        if f not in patchable:
            raise InvalidArgument(f"The field {f} cannot be updated.")
    return fields


#: the store kind, what an error calls it, and the patchable fields of each collection
_COLLECTIONS: dict[str, tuple[str, str, frozenset[str]]] = {
    "uptimeCheckConfigs": (MonitoringBackend.UPTIME, "Uptime check", UPTIME_PATCHABLE),
    "alertPolicies": (MonitoringBackend.POLICY, "Alerting policy", POLICY_PATCHABLE),
    "notificationChannels": (MonitoringBackend.CHANNEL, "Notification channel", CHANNEL_PATCHABLE),
}


def _backend(req: Request, project: str) -> tuple[MonitoringBackend, str]:
    backend = MonitoringBackend(req.emu)
    return backend, backend.project(project)


def _name(project_id: str, collection: str, rid: str) -> str:
    return f"projects/{project_id}/{collection}/{rid}"


def _register(collection: str) -> None:
    """The list, get, patch and delete routes of one collection (create differs per kind)."""
    kind, what, patchable = _COLLECTIONS[collection]
    base = f"/v3/projects/{{project}}/{collection}"

    def list_(req: Request, project: str) -> dict[str, Any]:
        backend, project_id = _backend(req, project)
        return paginate(req, backend.in_project(kind, project_id), _PAGING, key=collection)

    def get(req: Request, project: str, rid: str) -> dict[str, Any]:
        backend, project_id = _backend(req, project)
        return backend.get(kind, _name(project_id, collection, rid), what)

    def patch(req: Request, project: str, rid: str) -> dict[str, Any]:
        backend, project_id = _backend(req, project)
        fields = _mask(req, patchable)
        return backend.patch(kind, _name(project_id, collection, rid), what, req.json(), fields)

    def delete(req: Request, project: str, rid: str) -> dict[str, Any]:
        backend, project_id = _backend(req, project)
        force = (req.arg("force") or "").lower() == "true"
        backend.delete(kind, _name(project_id, collection, rid), force=force)
        return {}

    router.route("GET", base)(list_)
    router.route("GET", base + "/{rid}")(get)
    router.route("PATCH", base + "/{rid}")(patch)
    router.route("DELETE", base + "/{rid}")(delete)


for _collection in _COLLECTIONS:
    _register(_collection)


@router.route("POST", "/v3/projects/{project}/uptimeCheckConfigs")
def create_uptime(req: Request, project: str) -> dict[str, Any]:
    backend, project_id = _backend(req, project)
    return backend.create_uptime(project_id, req.json())


@router.route("POST", "/v3/projects/{project}/alertPolicies")
def create_policy(req: Request, project: str) -> dict[str, Any]:
    backend, project_id = _backend(req, project)
    return backend.create_policy(project_id, req.json())


@router.route("POST", "/v3/projects/{project}/notificationChannels")
def create_channel(req: Request, project: str) -> dict[str, Any]:
    backend, project_id = _backend(req, project)
    return backend.create_channel(project_id, req.json())


_SERIES_PAGING = Paging(default_size=100_000, max_size=100_000)


@router.route("GET", "/v3/projects/{project}/timeSeries")
def list_time_series(req: Request, project: str) -> dict[str, Any]:
    backend, project_id = _backend(req, project)
    found = uptime.list_time_series(
        backend.emu,
        project_id,
        filter_text=req.arg("filter") or "",
        start=req.arg("interval.startTime"),
        end=req.arg("interval.endTime"),
        view=req.arg("view"),
        aggregated=any(k.startswith(("aggregation.", "secondaryAggregation.")) for k in req.query),
    )
    return paginate(req, found, _SERIES_PAGING, key="timeSeries")


_ALERT_PAGING = Paging(default_size=50, max_size=1000)


@router.route("GET", "/v3/projects/{project}/alerts")
def list_alerts(req: Request, project: str) -> dict[str, Any]:
    backend, project_id = _backend(req, project)
    if req.arg("orderBy"):
        raise InvalidArgument(
            "The emulator lists alerts by open_time desc only: leave orderBy unset."
        )
    found = uptime.list_alerts(backend.emu, project_id, filter_text=req.arg("filter") or "")
    return paginate(req, found, _ALERT_PAGING, key="alerts")


@router.route("GET", "/v3/projects/{project}/alerts/{rid}")
def get_alert(req: Request, project: str, rid: str) -> dict[str, Any]:
    backend, project_id = _backend(req, project)
    return uptime.get_alert(backend.emu, _name(project_id, "alerts", rid))

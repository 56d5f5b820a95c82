"""Cloud Build's routes: parse the request, call the backend, render its answer."""

from __future__ import annotations

import re
from typing import Any

from .. import artifactregistry, redis
from ..artifactregistry.names import op_name
from ..context import Emulator
from ..errors import InvalidArgument, NotFound
from ..formats import parse_rfc3339
from ..operations import longrunning_json
from ..pagination import Paging, paginate
from ..projects import REGIONS, ensure_project
from ..routing import Request, Router
from ..serviceusage import require_enabled
from .builds import GLOBAL, TYPE_PREFIX, Builds, get_build, shown
from .triggers import Triggers

router = Router()

SERVICE = "cloudbuild.googleapis.com"
_PAGING = Paging(default_size=50, max_size=1000)
#: how a build that did not succeed shows as its operation's error: (status, default message)
_OP_ERRORS: dict[str, tuple[str, str]] = {
    "CANCELLED": ("CANCELLED", "Build was cancelled"),
    "TIMEOUT": ("DEADLINE_EXCEEDED", "Build timed out"),
    "INTERNAL_ERROR": ("INTERNAL", "Build failed due to an internal error"),
    "EXPIRED": ("UNKNOWN", "Build expired before it could start"),
}
_FAILED = ("UNKNOWN", "Build failed; check build logs for details")


def _builds(req: Request, project: str, location: str = GLOBAL) -> Builds:
    """The location's builds, once the API is enabled and the location is valid."""
    p = ensure_project(req.emu, project)
    require_enabled(req.emu, p["projectId"], SERVICE)
    if location != GLOBAL and location not in REGIONS:
        raise InvalidArgument(f"invalid location: {location!r}")
    return Builds(req.emu, str(p["projectId"]), str(p["projectNumber"]), location)


def _location_of(name: str | None, what: str = "parent") -> str:
    """The location in ?parent=projects/p/locations/l or ?name=projects/p/locations/l/builds/x."""
    if not name:
        return GLOBAL
    m = re.match(r"^projects/[^/]+/locations/([^/]+)(/builds/[^/]+)?$", name)
    if not m:
        raise InvalidArgument(f"invalid {what}: {name!r}")
    return m.group(1)


def _op_name(build: dict[str, Any]) -> str:
    if build["_location"] == GLOBAL:
        return f"operations/build/{build['projectId']}/{build['_opId']}"
    return op_name(build["projectId"], build["_location"], build["_opId"])


def operation_json(
    emu: Emulator, op: dict[str, Any], *, now: float | None = None
) -> dict[str, Any]:
    """A build's operation: BuildOperationMetadata with the build as of ``now`` (default: the
    clock's now); when done, the Build as ``response`` on SUCCESS, else ``error`` (the
    statusDetail)."""
    build = get_build(emu, op["target"])
    current = shown(build, emu.clock() if now is None else now)
    error: dict[str, Any] = {}  # SUCCESS: the Build, whatever the operation recorded
    if current["status"] != "SUCCESS":
        status, message = _OP_ERRORS.get(current["status"], _FAILED)
        if current["status"] not in ("CANCELLED", "TIMEOUT"):
            message = current.get("statusDetail") or message
        error = {"status": status, "message": message}
    return longrunning_json(
        op,
        _op_name(build),
        {"@type": TYPE_PREFIX + "BuildOperationMetadata", "build": current},
        error=error,
        response={"@type": TYPE_PREFIX + "Build", **current},
    )


# -- create ----------------------------------------------------------------------------------


@router.route("POST", "/v1/projects/{project}/builds")
def create_build(req: Request, project: str) -> dict[str, Any]:
    location = _location_of(req.arg("parent"))
    body = req.json()
    return _created(req.emu, _builds(req, project, location).create(body))


@router.route("POST", "/v1/projects/{project}/locations/{location}/builds")
def create_build_regional(req: Request, project: str, location: str) -> dict[str, Any]:
    body = req.json()
    return _created(req.emu, _builds(req, project, location).create(body))


def _created(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    """The create answer shows the build as created, QUEUED, as Google's does, however long a
    loaded machine took between storing it and answering (the operation is recorded after the
    build, so its own time may already be past the build's queue time)."""
    created = parse_rfc3339(get_build(emu, op["target"])["createTime"])
    return operation_json(emu, op, now=created)


# -- get / list / cancel ---------------------------------------------------------------------


@router.route("GET", "/v1/projects/{project}/builds/{build_id}")
def get_build_global(req: Request, project: str, build_id: str) -> dict[str, Any]:
    builds = _builds(req, project, _location_of(req.arg("name"), "name"))
    return shown(builds.get(build_id), req.emu.clock())


@router.route("GET", "/v1/projects/{project}/locations/{location}/builds/{build_id}")
def get_build_regional(req: Request, project: str, location: str, build_id: str) -> dict[str, Any]:
    return shown(_builds(req, project, location).get(build_id), req.emu.clock())


@router.route("GET", "/v1/projects/{project}/builds")
def list_builds(req: Request, project: str) -> dict[str, Any]:
    builds = _builds(req, project, _location_of(req.arg("parent")))
    return paginate(req, builds.list(req.arg("filter") or ""), _PAGING, key="builds")


@router.route("GET", "/v1/projects/{project}/locations/{location}/builds")
def list_builds_regional(req: Request, project: str, location: str) -> dict[str, Any]:
    builds = _builds(req, project, location)
    return paginate(req, builds.list(req.arg("filter") or ""), _PAGING, key="builds")


@router.route("POST", "/v1/projects/{project}/builds/{build_id}:cancel")
def cancel_build(req: Request, project: str, build_id: str) -> dict[str, Any]:
    location = _location_of(req.json().get("name"), "name")
    return _builds(req, project, location).cancel(build_id)


@router.route("POST", "/v1/projects/{project}/locations/{location}/builds/{build_id}:cancel")
def cancel_build_regional(
    req: Request, project: str, location: str, build_id: str
) -> dict[str, Any]:
    req.json()
    return _builds(req, project, location).cancel(build_id)


# -- triggers --------------------------------------------------------------------------------
# The client sends `/v1/projects/{p}/triggers...` with the location in ?parent= or ?name= (or
# the body's resourceName) when it has a project_id, and the regional paths otherwise.

_TRIGGERS = "/v1/projects/{project}/locations/{location}/triggers"


def _triggers(req: Request, project: str, location: str) -> Triggers:
    p = ensure_project(req.emu, project)
    require_enabled(req.emu, p["projectId"], SERVICE)
    if location != GLOBAL and location not in REGIONS:
        raise InvalidArgument(f"invalid location: {location!r}")
    return Triggers(req.emu, str(p["projectId"]), str(p["projectNumber"]), location)


def _trigger_location(name: str | None) -> str:
    """The location in ?parent=projects/p/locations/l or ?name=.../locations/l/triggers/t."""
    if not name:
        return GLOBAL
    m = re.match(r"^projects/[^/]+/locations/([^/]+)(/triggers/[^/]+)?$", name)
    if not m:
        raise InvalidArgument(f"invalid resource name: {name!r}")
    return m.group(1)


@router.route("POST", "/v1/projects/{project}/triggers")
def create_trigger_global(req: Request, project: str) -> dict[str, Any]:
    return _triggers(req, project, _trigger_location(req.arg("parent"))).create(req.json())


@router.route("POST", _TRIGGERS)
def create_trigger(req: Request, project: str, location: str) -> dict[str, Any]:
    return _triggers(req, project, location).create(req.json())


@router.route("GET", "/v1/projects/{project}/triggers")
def list_triggers_global(req: Request, project: str) -> dict[str, Any]:
    found = _triggers(req, project, _trigger_location(req.arg("parent"))).list()
    return paginate(req, found, _PAGING, key="triggers")


@router.route("GET", _TRIGGERS)
def list_triggers(req: Request, project: str, location: str) -> dict[str, Any]:
    found = _triggers(req, project, location).list()
    return paginate(req, found, _PAGING, key="triggers")


@router.route("GET", "/v1/projects/{project}/triggers/{trigger}")
def get_trigger_global(req: Request, project: str, trigger: str) -> dict[str, Any]:
    return _triggers(req, project, _trigger_location(req.arg("name"))).get(trigger)


@router.route("GET", _TRIGGERS + "/{trigger}")
def get_trigger(req: Request, project: str, location: str, trigger: str) -> dict[str, Any]:
    return _triggers(req, project, location).get(trigger)


@router.route("PATCH", "/v1/projects/{project}/triggers/{trigger}")
def update_trigger_global(req: Request, project: str, trigger: str) -> dict[str, Any]:
    body = req.json()
    location = _trigger_location(body.get("resourceName"))
    return _triggers(req, project, location).replace(trigger, body)


@router.route("PATCH", _TRIGGERS + "/{trigger}")
def update_trigger(req: Request, project: str, location: str, trigger: str) -> dict[str, Any]:
    return _triggers(req, project, location).replace(trigger, req.json())


@router.route("DELETE", "/v1/projects/{project}/triggers/{trigger}")
def delete_trigger_global(req: Request, project: str, trigger: str) -> dict[str, Any]:
    _triggers(req, project, _trigger_location(req.arg("name"))).delete(trigger)
    return {}


@router.route("DELETE", _TRIGGERS + "/{trigger}")
def delete_trigger(req: Request, project: str, location: str, trigger: str) -> dict[str, Any]:
    _triggers(req, project, location).delete(trigger)
    return {}


def _run_trigger(
    req: Request, project: str, location: str, trigger: str, source: dict[str, Any]
) -> dict[str, Any]:
    """RunBuildTrigger: the operation of the build the trigger makes."""
    trigger_id, build = _triggers(req, project, location).build_of(trigger, source)
    op = _builds(req, project, location).create(build, trigger_id=trigger_id)
    return operation_json(req.emu, op)


@router.route("POST", "/v1/projects/{project}/triggers/{trigger}:run")
def run_trigger_global(req: Request, project: str, trigger: str) -> dict[str, Any]:
    """The body is the RepoSource."""
    location = _trigger_location(req.arg("name"))
    return _run_trigger(req, project, location, trigger, req.json())


@router.route("POST", _TRIGGERS + "/{trigger}:run")
def run_trigger(req: Request, project: str, location: str, trigger: str) -> dict[str, Any]:
    """The body is the RunBuildTriggerRequest (name, projectId, triggerId, source)."""
    return _run_trigger(req, project, location, trigger, req.json().get("source") or {})


# -- operations ------------------------------------------------------------------------------


@router.route("GET", "/v1/operations/build/{project}/{op_id}")
def get_operation(req: Request, project: str, op_id: str) -> dict[str, Any]:
    op = req.emu.ops.get(op_id)
    if op is None or op["completer"] != "cloudbuild.build":
        raise NotFound(f"Operation operations/build/{project}/{op_id} not found.")
    return operation_json(req.emu, op)


@router.route("GET", "/v1/projects/{project}/locations/{location}/operations/{op_id}")
def get_regional_operation(req: Request, project: str, location: str, op_id: str) -> dict[str, Any]:
    """One path for the regional operations of Cloud Build, Artifact Registry and Memorystore
    for Redis: served here, since Cloud Build sits above both."""
    op = req.emu.ops.get(op_id)
    if op is not None and op["completer"].startswith("cloudbuild."):
        return operation_json(req.emu, op)
    if op is not None and op["completer"].startswith("artifactregistry."):
        return artifactregistry.operation_json(op)
    if op is not None and op["completer"].startswith("redis."):
        return redis.operation_json(op)
    raise NotFound(f"Operation {op_name(project, location, op_id)} not found.")

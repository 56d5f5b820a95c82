"""Cloud SQL Admin's routes: parse the request, call the backend, render its answer."""

from __future__ import annotations

from typing import Any

from ..pagination import Paging, paginate
from ..projects import resolve
from ..routing import Request, Router
from ..serviceusage import require_enabled
from . import render
from .backups import BackupRuns
from .databases import Databases
from .errors import invalid
from .instances import Instances
from .operations import SqlOperations
from .records import SERVICE
from .users import Users

router = Router()

_PAGING = Paging(default_size=500, max_size=1000, size_param="maxResults", error=invalid)
_INSTANCE = "/v1/projects/{project}/instances/{instance}"


def _project(req: Request, project: str) -> str:
    """The project's id, once Cloud SQL Admin is enabled in it."""
    project_id, _ = resolve(req.emu, project)
    require_enabled(req.emu, project_id, SERVICE, legacy=True)
    return project_id


def _operation(req: Request, op: dict[str, Any]) -> dict[str, Any]:
    return render.operation(op, req.emu.clock())


# -- instances -----------------------------------------------------------------------------------


@router.route("POST", "/v1/projects/{project}/instances")
def insert_instance(req: Request, project: str) -> dict[str, Any]:
    body = req.json()
    return _operation(req, Instances(req.emu).create(_project(req, project), body))


@router.route("GET", _INSTANCE)
def get_instance(req: Request, project: str, instance: str) -> dict[str, Any]:
    return render.resource(Instances(req.emu).get(_project(req, project), instance))


@router.route("GET", "/v1/projects/{project}/instances")
def list_instances(req: Request, project: str) -> dict[str, Any]:
    recs = Instances(req.emu).list(_project(req, project), req.arg("filter") or "")
    items = [render.resource(r) for r in recs]
    return paginate(req, items, _PAGING, key="items", kind="sql#instancesList")


@router.route("PATCH", _INSTANCE)
def patch_instance(req: Request, project: str, instance: str) -> dict[str, Any]:
    body = req.json()
    return _operation(req, Instances(req.emu).patch(_project(req, project), instance, body))


@router.route("DELETE", _INSTANCE)
def delete_instance(req: Request, project: str, instance: str) -> dict[str, Any]:
    return _operation(req, Instances(req.emu).delete(_project(req, project), instance))


# -- databases -----------------------------------------------------------------------------------


@router.route("POST", _INSTANCE + "/databases")
def insert_database(req: Request, project: str, instance: str) -> dict[str, Any]:
    body = req.json()
    return _operation(req, Databases(req.emu).create(_project(req, project), instance, body))


@router.route("GET", _INSTANCE + "/databases/{database}")
def get_database(req: Request, project: str, instance: str, database: str) -> dict[str, Any]:
    return render.resource(Databases(req.emu).get(_project(req, project), instance, database))


@router.route("GET", _INSTANCE + "/databases")
def list_databases(req: Request, project: str, instance: str) -> dict[str, Any]:
    dbs = Databases(req.emu).list(_project(req, project), instance)
    return render.listing("sql#databasesList", dbs)


@router.route("DELETE", _INSTANCE + "/databases/{database}")
def delete_database(req: Request, project: str, instance: str, database: str) -> dict[str, Any]:
    return _operation(req, Databases(req.emu).delete(_project(req, project), instance, database))


# -- users ---------------------------------------------------------------------------------------


@router.route("POST", _INSTANCE + "/users")
def insert_user(req: Request, project: str, instance: str) -> dict[str, Any]:
    body = req.json()
    return _operation(req, Users(req.emu).create(_project(req, project), instance, body))


@router.route("GET", _INSTANCE + "/users")
def list_users(req: Request, project: str, instance: str) -> dict[str, Any]:
    return render.listing("sql#usersList", Users(req.emu).list(_project(req, project), instance))


@router.route("GET", _INSTANCE + "/users/{name}")
def get_user(req: Request, project: str, instance: str, name: str) -> dict[str, Any]:
    return render.resource(Users(req.emu).get(_project(req, project), instance, name))


@router.route("PUT", _INSTANCE + "/users")
def update_user(req: Request, project: str, instance: str) -> dict[str, Any]:
    body = req.json()
    project_id = _project(req, project)
    name = req.arg("name") or body.get("name") or ""
    return _operation(req, Users(req.emu).update(project_id, instance, name, body))


@router.route("DELETE", _INSTANCE + "/users")
def delete_user(req: Request, project: str, instance: str) -> dict[str, Any]:
    name = req.arg("name") or ""
    return _operation(req, Users(req.emu).delete(_project(req, project), instance, name))


# -- backup runs ---------------------------------------------------------------------------------


@router.route("POST", _INSTANCE + "/backupRuns")
def insert_backup(req: Request, project: str, instance: str) -> dict[str, Any]:
    description = req.json().get("description") or ""
    runs = BackupRuns(req.emu)
    return _operation(req, runs.create(_project(req, project), instance, description))


@router.route("GET", _INSTANCE + "/backupRuns")
def list_backups(req: Request, project: str, instance: str) -> dict[str, Any]:
    runs = BackupRuns(req.emu).list(_project(req, project), instance)
    return paginate(req, runs, _PAGING, key="items", kind="sql#backupRunsList")


@router.route("GET", _INSTANCE + "/backupRuns/{backup_id}")
def get_backup(req: Request, project: str, instance: str, backup_id: str) -> dict[str, Any]:
    return BackupRuns(req.emu).get(_project(req, project), instance, backup_id)


# -- operations ----------------------------------------------------------------------------------


@router.route("GET", "/v1/projects/{project}/operations/{operation}")
def get_operation(req: Request, project: str, operation: str) -> dict[str, Any]:
    return _operation(req, SqlOperations(req.emu).get(_project(req, project), operation))


@router.route("GET", "/v1/projects/{project}/operations")
def list_operations(req: Request, project: str) -> dict[str, Any]:
    ops = SqlOperations(req.emu).list(_project(req, project), req.arg("instance"))
    items = [_operation(req, o) for o in ops]
    return paginate(req, items, _PAGING, key="items", kind="sql#operationsList")

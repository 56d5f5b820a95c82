"""Cloud SQL Admin v1: instances, databases, users, backup runs and their operations.

    POST   /v1/projects/{p}/instances                          body DatabaseInstance -> Operation
    GET    /v1/projects/{p}/instances[?filter=&maxResults=&pageToken=]
    GET    /v1/projects/{p}/instances/{i}
    PATCH  /v1/projects/{p}/instances/{i}                      body (partial) -> Operation
    DELETE /v1/projects/{p}/instances/{i}                      -> Operation
    POST   /v1/projects/{p}/instances/{i}/databases            body Database -> Operation
    GET    /v1/projects/{p}/instances/{i}/databases[/{d}]
    DELETE /v1/projects/{p}/instances/{i}/databases/{d}        -> Operation
    POST   /v1/projects/{p}/instances/{i}/users                body User -> Operation
    GET    /v1/projects/{p}/instances/{i}/users[/{name}]       (passwords never echoed)
    PUT    /v1/projects/{p}/instances/{i}/users?name=&host=    body User -> Operation
    DELETE /v1/projects/{p}/instances/{i}/users?name=&host=    -> Operation
    POST   /v1/projects/{p}/instances/{i}/backupRuns           body BackupRun -> Operation
    GET    /v1/projects/{p}/instances/{i}/backupRuns[/{id}]
    GET    /v1/projects/{p}/operations/{op}
    GET    /v1/projects/{p}/operations?instance=I              newest first

A discovery-era API: errors carry ``errors[].reason`` (legacy format). Operations are
``sql#operation`` with ``status`` PENDING -> RUNNING -> DONE and failures in
``error.errors[]``; the effect of an operation lands when it is DONE.

The semantics that bite: ONE operation at a time per instance (anything mutating the instance
while one runs: 409 ``operationInProgress``); an instance name that exists, or was deleted within
the ``sql.instance.name_reuse`` window (a week, scaled), is refused with 409
``instanceAlreadyExists``; a patch carrying an old ``settings.settingsVersion`` is 412
``staleData``; deleting an instance with ``settings.deletionProtectionEnabled`` is 400. Deleting
an instance deletes its backups, unless ``settings.retainBackupsOnDelete`` (then they are kept
under the state kind ``sql.backup.retained``).
Outcomes: ``emu.outcomes`` kind ``sql.operation`` matched against ``<instance>/<operationType>``
(e.g. ``demo-django-pg/CREATE``) makes that operation fail; a failed CREATE leaves the instance
in state FAILED.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .latency import register_duration
from .local.postgres import Cluster, PostgresError, scram_verifier
from .operations import completer
from .pagination import Paging, paginate
from .projects import REGIONS, resolve
from .routing import Request, Router, merge_patch, rfc3339
from .serviceusage import require_enabled

if TYPE_CHECKING:
    from .server import Emulator

router = Router()

ChildEffect = Callable[["Emulator", dict[str, Any]], None]

SERVICE = "sqladmin.googleapis.com"
BASE = "https://sqladmin.googleapis.com/v1"
INSTANCE_KIND = "sql.instance"
DELETED_KIND = "sql.instance.deleted"
DATABASE_KIND = "sql.database"
USER_KIND = "sql.user"
BACKUP_KIND = "sql.backup"
RETAINED_KIND = "sql.backup.retained"  # backups kept after delete (retainBackupsOnDelete)
COMPLETER_PREFIX = "sql."

register_duration("sql.backup", 60.0)
register_duration("sql.instance.name_reuse", 7 * 24 * 3600.0)

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,96}$")
_VERSIONS = ("POSTGRES_", "MYSQL_", "SQLSERVER_")

IN_PROGRESS = "Operation failed because another operation was already in progress."
ALREADY_EXISTS = "The Cloud SQL instance already exists."
RECENTLY_DELETED = (
    "The Cloud SQL instance already exists. When you delete an instance, you can't reuse the "
    "name of the deleted instance until one week from the deletion date."
)
NOT_FOUND = "The Cloud SQL instance does not exist."
PROTECTED = (
    "The instance is protected. Please disable the deletion protection and try again. To "
    "disable deletion protection, update the instance settings with deletionProtectionEnabled "
    "set to false."
)


def _err(code: int, message: str, reason: str) -> ApiError:
    """Cloud SQL Admin's own error: the legacy ``errors[]`` with ``reason``, and (as the API
    answers; only the front end's errors, e.g. SERVICE_DISABLED, carry one) no ``status``."""
    return ApiError(code, message, legacy=True, legacy_reason=reason, with_status=False)


def _sql_service_account(project_id: str) -> str:
    """The instance's service agent: stable across processes (sha256, not the per-process
    ``hash()``)."""
    n = int(hashlib.sha256(project_id.encode()).hexdigest(), 16) % 10**12
    return f"p{n}-abcdef@gcp-sa-cloud-sql.iam.gserviceaccount.com"


# -- helpers -------------------------------------------------------------------------------------


def _start(req: Request, project: str) -> str:
    project_id, _ = resolve(req.emu, project)
    require_enabled(req.emu, project_id, SERVICE, legacy=True)
    return project_id


def _ikey(project_id: str, instance: str) -> str:
    return f"{project_id}/{instance}"


def _get_instance(emu: Emulator, project_id: str, instance: str) -> dict[str, Any]:
    rec = emu.store.get(INSTANCE_KIND, _ikey(project_id, instance))
    if rec is None:
        raise _err(404, NOT_FOUND, "instanceDoesNotExist")
    return rec


def _etag(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:64]


def _busy(emu: Emulator, project_id: str, instance: str) -> None:
    """409 operationInProgress when any operation runs on the instance."""
    if emu.ops.running(_target(project_id, instance)):
        raise _err(409, IN_PROGRESS, "operationInProgress")


def _target(project_id: str, instance: str) -> str:
    # a trailing "|" so that instance "a" is not a prefix of instance "ab"
    return f"sql:{project_id}/{instance}|"


def _operation(
    emu: Emulator,
    project_id: str,
    instance: str,
    op_type: str,
    completer_name: str,
    duration_kind: str,
    args: dict[str, Any],
) -> dict[str, Any]:
    op = emu.ops.start(
        completer=completer_name,
        duration_kind=duration_kind,
        target=_target(project_id, instance),
        args={"project": project_id, "instance": instance, **args},
        metadata={"operationType": op_type},
        op_id=str(uuid.uuid4()),
    )
    return op_json(emu, op)


def op_json(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    """An operation in the sql#operation shape."""
    project_id, instance = op["args"]["project"], op["args"]["instance"]
    now = emu.clock()
    out: dict[str, Any] = {
        "kind": "sql#operation",
        "targetLink": f"{BASE}/projects/{project_id}/instances/{instance}",
        "user": "user@example.com",
        "insertTime": rfc3339(op["created"]),
        "operationType": op["metadata"]["operationType"],
        "name": op["id"],
        "targetId": instance,
        "selfLink": f"{BASE}/projects/{project_id}/operations/{op['id']}",
        "targetProject": project_id,
    }
    if op["done"]:
        out["status"] = "DONE"
        out["startTime"] = rfc3339(op["created"])
        out["endTime"] = rfc3339(op.get("completed", op["done_at"]))
        if op["error"]:
            out["error"] = {
                "kind": "sql#operationErrors",
                "errors": [
                    {
                        "kind": "sql#operationError",
                        "code": op["error"].get("reason") or "INTERNAL_ERROR",
                        "message": op["error"]["message"],
                    }
                ],
            }
    elif now < op["created"] + 0.1 * (op["done_at"] - op["created"]):
        out["status"] = "PENDING"
    else:
        out["status"] = "RUNNING"
        out["startTime"] = rfc3339(op["created"])
    return out


def _fail_outcome(emu: Emulator, op: dict[str, Any]) -> str | None:
    name = f"{op['args']['instance']}/{op['metadata']['operationType']}"
    return emu.outcomes.take("sql.operation", name)


def _failed(op: dict[str, Any], message: str, reason: str = "INTERNAL_ERROR") -> None:
    """Mark the operation failed without rolling back what the completer wrote."""
    op["error"] = {"code": 500, "message": message, "status": "INTERNAL", "reason": reason}


def _child_completer(name: str) -> Callable[[ChildEffect], ChildEffect]:
    """Register a database/user completer: the operation fails when a ``sql.operation`` outcome
    matches, else ``fn(emu, args)`` applies its effect."""

    def deco(fn: ChildEffect) -> ChildEffect:
        @functools.wraps(fn)
        def run(emu: Emulator, op: dict[str, Any]) -> None:
            message = _fail_outcome(emu, op)
            if message is not None:
                _failed(op, message)
            else:
                fn(emu, op["args"])

        completer(name)(run)
        return fn

    return deco


def _child_key(a: dict[str, Any]) -> str:
    """The store key of the database or user an operation's args name."""
    return f"{a['project']}/{a['instance']}/{a['name']}"


def _child_operation(
    req: Request,
    project_id: str,
    instance: str,
    kind: str,
    name: str,
    *,
    exists: ApiError | None,
    missing: ApiError | None,
    op_type: str,
    completer_name: str,
    args: dict[str, Any],
) -> dict[str, Any]:
    """Start a database/user operation (latency kind = the store kind: "sql.database",
    "sql.user") on a RUNNABLE, idle instance: refused with ``exists``
    when the child ``name`` of store kind ``kind`` exists, with ``missing`` when it does not."""
    emu = req.emu
    with emu.store.transaction():
        _mutable_instance(emu, project_id, instance)
        found = emu.store.get(kind, f"{project_id}/{instance}/{name}") is not None
        if found and exists is not None:
            raise exists
        if not found and missing is not None:
            raise missing
        return _operation(
            emu, project_id, instance, op_type, completer_name, kind, {"name": name, **args}
        )


def _instance_json(rec: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in rec.items() if not k.startswith("_")}
    out["etag"] = _etag(out)
    return out


# -- instances -----------------------------------------------------------------------------------


_SETTINGS_DEFAULTS: dict[str, Any] = {
    "kind": "sql#settings",
    "pricingPlan": "PER_USE",
    "replicationType": "SYNCHRONOUS",
    "activationPolicy": "ALWAYS",
    "availabilityType": "ZONAL",
    "dataDiskType": "PD_SSD",
    "dataDiskSizeGb": "10",
    "storageAutoResize": True,
    "storageAutoResizeLimit": "0",
    "ipConfiguration": {"ipv4Enabled": True, "sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED"},
    "locationPreference": {"kind": "sql#locationPreference"},
    "backupConfiguration": {"kind": "sql#backupConfiguration", "enabled": False},
    "deletionProtectionEnabled": False,
    "edition": "ENTERPRISE",
}


@router.route("POST", "/v1/projects/{project}/instances")
def insert_instance(req: Request, project: str) -> dict[str, Any]:
    body = req.json()
    project_id = _start(req, project)
    name = body.get("name") or ""
    if not _NAME_RE.match(name) or name.endswith("-"):
        raise _err(400, f"Invalid request: instance name ({name}) is invalid.", "invalid")
    settings = body.get("settings") or {}
    if not settings.get("tier"):
        raise _err(400, "Invalid request: Missing tier.", "invalid")
    version = body.get("databaseVersion") or "MYSQL_8_0"
    if not version.startswith(_VERSIONS):
        raise _err(400, f"Invalid request: Invalid database version {version}.", "invalid")
    region = body.get("region") or "us-central1"
    if region not in REGIONS:
        raise _err(400, f"Invalid request: region ({region}) is not valid.", "invalid")
    emu = req.emu
    key = _ikey(project_id, name)
    with emu.store.transaction():
        if emu.store.get(INSTANCE_KIND, key) is not None:
            raise _err(409, ALREADY_EXISTS, "instanceAlreadyExists")
        deleted = emu.store.get(DELETED_KIND, key)
        if deleted is not None:
            if emu.clock() < deleted["at"] + emu.latency.duration("sql.instance.name_reuse"):
                raise _err(409, RECENTLY_DELETED, "instanceAlreadyExists")
            emu.store.delete(DELETED_KIND, key)
        full_settings = merge_patch(_SETTINGS_DEFAULTS, settings)
        full_settings["settingsVersion"] = "1"
        full_settings.setdefault("userLabels", {})
        if not full_settings["userLabels"]:
            full_settings.pop("userLabels")
        zone = f"{region}-b"
        full_settings["locationPreference"].setdefault("zone", zone)
        rec: dict[str, Any] = {
            "kind": "sql#instance",
            "state": "PENDING_CREATE",
            "databaseVersion": version,
            "settings": full_settings,
            "project": project_id,
            "name": name,
            "region": region,
            "gceZone": zone,
            "connectionName": f"{project_id}:{region}:{name}",
            "backendType": "SECOND_GEN",
            "instanceType": "CLOUD_SQL_INSTANCE",
            "selfLink": f"{BASE}/projects/{project_id}/instances/{name}",
            "createTime": rfc3339(emu.clock()),
            "serviceAccountEmailAddress": _sql_service_account(project_id),
            "databaseInstalledVersion": version,
        }
        emu.store.put(INSTANCE_KIND, key, rec)
        return _operation(
            emu,
            project_id,
            name,
            "CREATE",
            "sql.instance.create",
            "sql.instance.create",
            _verifier_arg(emu, "root_verifier", body.get("rootPassword")),
        )


@completer("sql.instance.create")
def _finish_create(emu: Emulator, op: dict[str, Any]) -> None:
    key = _ikey(op["args"]["project"], op["args"]["instance"])
    rec = emu.store.get(INSTANCE_KIND, key)
    if rec is None:
        return None
    message = _fail_outcome(emu, op)
    if message is not None:
        rec["state"] = "FAILED"
        emu.store.put(INSTANCE_KIND, key, rec)
        _failed(op, message)
        return None
    cluster = _cluster(emu, rec)
    if cluster is not None:
        try:
            cluster.create(root_password_verifier=op["args"].get("root_verifier"))
        except PostgresError as exc:
            rec["state"] = "FAILED"
            emu.store.put(INSTANCE_KIND, key, rec)
            _failed(op, str(exc))
            return None
    rec["state"] = "RUNNABLE"
    rec["ipAddresses"] = [{"type": "PRIMARY", "ipAddress": "10.0.0.3"}]
    emu.store.put(INSTANCE_KIND, key, rec)
    # every PostgreSQL instance starts with the "postgres" database and user
    p, i = op["args"]["project"], op["args"]["instance"]
    emu.store.put(DATABASE_KIND, f"{p}/{i}/postgres", _db(p, i, "postgres"))
    emu.store.put(USER_KIND, f"{p}/{i}/postgres", _user(p, i, "postgres", "BUILT_IN"))
    return None


@router.route("GET", "/v1/projects/{project}/instances/{instance}")
def get_instance(req: Request, project: str, instance: str) -> dict[str, Any]:
    project_id = _start(req, project)
    return _instance_json(_get_instance(req.emu, project_id, instance))


def _label_filter(rec: dict[str, Any], flt: str) -> bool:
    labels = rec.get("settings", {}).get("userLabels") or {}
    for term in re.split(r"\s+(?:AND\s+)?", flt.strip()):
        if not term:
            continue
        m = re.match(r"^(?:settings\.)?userLabels\.([\w-]+)\s*[:=]\s*(.*)$", term)
        if m:
            value = m.group(2).strip('"')
            if labels.get(m.group(1)) != value and not (value == "*" and m.group(1) in labels):
                return False
            continue
        m = re.match(r"^(name|state|region|databaseVersion)\s*[:=]\s*(.*)$", term)
        if m:
            if str(rec.get(m.group(1))) != m.group(2).strip('"'):
                return False
            continue
        raise _err(400, f"Invalid request: invalid filter ({flt}).", "invalid")
    return True


_PAGING = Paging(
    default_size=500,
    max_size=1000,
    size_param="maxResults",
    error=lambda message: _err(400, f"Invalid request: {message}", "invalid"),
)


@router.route("GET", "/v1/projects/{project}/instances")
def list_instances(req: Request, project: str) -> dict[str, Any]:
    project_id = _start(req, project)
    recs = [v for _, v in req.emu.store.list(INSTANCE_KIND, project_id + "/")]
    flt = req.arg("filter") or ""
    if flt:
        recs = [r for r in recs if _label_filter(r, flt)]
    return paginate(
        req, [_instance_json(r) for r in recs], _PAGING, key="items", kind="sql#instancesList"
    )


@router.route("PATCH", "/v1/projects/{project}/instances/{instance}")
def patch_instance(req: Request, project: str, instance: str) -> dict[str, Any]:
    body = req.json()
    project_id = _start(req, project)
    emu = req.emu
    with emu.store.transaction():
        rec = _get_instance(emu, project_id, instance)
        _busy(emu, project_id, instance)
        for field in ("name", "region", "databaseVersion"):
            if field in body and body[field] != rec.get(field):
                raise _err(
                    400, f"Invalid request: {field} cannot be changed by a patch.", "invalid"
                )
        settings = body.get("settings") or {}
        sent = settings.get("settingsVersion")
        if sent is not None and str(sent) != rec["settings"]["settingsVersion"]:
            raise _err(412, "Precondition check failed.", "staleData")
        if rec["state"] != "RUNNABLE":
            raise _err(
                409,
                "The instance or operation is not in an appropriate state to handle the request.",
                "invalidState",
            )
        patch = {k: v for k, v in settings.items() if k != "settingsVersion"}
        return _operation(
            emu,
            project_id,
            instance,
            "UPDATE",
            "sql.instance.update",
            "sql.instance.update",
            {"settings": patch},
        )


@completer("sql.instance.update")
def _finish_update(emu: Emulator, op: dict[str, Any]) -> None:
    key = _ikey(op["args"]["project"], op["args"]["instance"])
    rec = emu.store.get(INSTANCE_KIND, key)
    if rec is None:
        return None
    message = _fail_outcome(emu, op)
    if message is not None:
        _failed(op, message)
        return None
    labels = op["args"]["settings"].get("userLabels")
    settings = merge_patch(rec["settings"], op["args"]["settings"])
    if labels is not None:
        settings["userLabels"] = {
            k: v for k, v in merge_patch(rec["settings"].get("userLabels", {}), labels).items()
        }
        if not settings["userLabels"]:
            settings.pop("userLabels")
    settings["settingsVersion"] = str(int(rec["settings"]["settingsVersion"]) + 1)
    rec["settings"] = settings
    emu.store.put(INSTANCE_KIND, key, rec)
    return None


@router.route("DELETE", "/v1/projects/{project}/instances/{instance}")
def delete_instance(req: Request, project: str, instance: str) -> dict[str, Any]:
    project_id = _start(req, project)
    emu = req.emu
    with emu.store.transaction():
        rec = _get_instance(emu, project_id, instance)
        _busy(emu, project_id, instance)
        if rec["settings"].get("deletionProtectionEnabled"):
            raise _err(400, PROTECTED, "invalid")
        rec["state"] = "PENDING_DELETE"
        emu.store.put(INSTANCE_KIND, _ikey(project_id, instance), rec)
        return _operation(
            emu, project_id, instance, "DELETE", "sql.instance.delete", "sql.instance.delete", {}
        )


@completer("sql.instance.delete")
def _finish_delete(emu: Emulator, op: dict[str, Any]) -> None:
    p, i = op["args"]["project"], op["args"]["instance"]
    store = emu.store
    rec = store.get(INSTANCE_KIND, _ikey(p, i)) or {}
    store.delete(INSTANCE_KIND, _ikey(p, i))
    retained = bool((rec.get("settings") or {}).get("retainBackupsOnDelete"))
    cluster = _cluster(emu, rec) if rec else None
    if cluster is not None:
        cluster.remove()
    if emu.local.postgres is not None and not retained:
        shutil.rmtree(emu.local.postgres.backup_dir(p, i), ignore_errors=True)
    if retained:
        for k, run in store.list(BACKUP_KIND, f"{p}/{i}/"):
            store.put(RETAINED_KIND, k, run)
    for kind in (DATABASE_KIND, USER_KIND, BACKUP_KIND):  # backups go with it unless retained
        for k, _ in store.list(kind, f"{p}/{i}/"):
            store.delete(kind, k)
    store.put(DELETED_KIND, _ikey(p, i), {"at": emu.clock()})
    return None


# -- databases -----------------------------------------------------------------------------------


def _db(project_id: str, instance: str, name: str) -> dict[str, Any]:
    return {
        "kind": "sql#database",
        "charset": "UTF8",
        "collation": "en_US.UTF8",
        "name": name,
        "instance": instance,
        "selfLink": f"{BASE}/projects/{project_id}/instances/{instance}/databases/{name}",
        "project": project_id,
    }


def _mutable_instance(emu: Emulator, project_id: str, instance: str) -> dict[str, Any]:
    rec = _get_instance(emu, project_id, instance)
    _busy(emu, project_id, instance)
    if rec["state"] != "RUNNABLE":
        raise _err(
            409,
            "The instance or operation is not in an appropriate state to handle the request.",
            "invalidState",
        )
    return rec


@router.route("POST", "/v1/projects/{project}/instances/{instance}/databases")
def insert_database(req: Request, project: str, instance: str) -> dict[str, Any]:
    body = req.json()
    project_id = _start(req, project)
    name = body.get("name") or ""
    if not name or len(name) > 63:
        raise _err(400, "Invalid request: database name is missing or too long.", "invalid")
    return _child_operation(
        req,
        project_id,
        instance,
        DATABASE_KIND,
        name,
        exists=_err(
            409,
            f'Invalid request: database "{name}" already exists on instance {instance}.',
            "alreadyExists",
        ),
        missing=None,
        op_type="CREATE_DATABASE",
        completer_name="sql.database.create",
        args={"charset": body.get("charset"), "collation": body.get("collation")},
    )


@_child_completer("sql.database.create")
def _finish_db_create(emu: Emulator, a: dict[str, Any]) -> None:
    with _realizing(emu, a) as cluster:
        if cluster is not None:
            cluster.create_database(a["name"])
    db = _db(a["project"], a["instance"], a["name"])
    db["charset"] = a.get("charset") or "UTF8"
    db["collation"] = a.get("collation") or "en_US.UTF8"
    emu.store.put(DATABASE_KIND, _child_key(a), db)


def _db_json(db: dict[str, Any]) -> dict[str, Any]:
    return {**db, "etag": _etag(db)}


@router.route("GET", "/v1/projects/{project}/instances/{instance}/databases/{database}")
def get_database(req: Request, project: str, instance: str, database: str) -> dict[str, Any]:
    project_id = _start(req, project)
    _get_instance(req.emu, project_id, instance)
    db = req.emu.store.get(DATABASE_KIND, f"{project_id}/{instance}/{database}")
    if db is None:
        raise _err(404, f"Not Found: database {database} does not exist.", "notFound")
    return _db_json(db)


@router.route("GET", "/v1/projects/{project}/instances/{instance}/databases")
def list_databases(req: Request, project: str, instance: str) -> dict[str, Any]:
    project_id = _start(req, project)
    _get_instance(req.emu, project_id, instance)
    items = [_db_json(v) for _, v in req.emu.store.list(DATABASE_KIND, f"{project_id}/{instance}/")]
    out: dict[str, Any] = {"kind": "sql#databasesList"}
    if items:
        out["items"] = items
    return out


@router.route("DELETE", "/v1/projects/{project}/instances/{instance}/databases/{database}")
def delete_database(req: Request, project: str, instance: str, database: str) -> dict[str, Any]:
    return _child_operation(
        req,
        _start(req, project),
        instance,
        DATABASE_KIND,
        database,
        exists=None,
        missing=_err(404, f"Not Found: database {database} does not exist.", "notFound"),
        op_type="DELETE_DATABASE",
        completer_name="sql.database.delete",
        args={},
    )


@_child_completer("sql.database.delete")
def _finish_db_delete(emu: Emulator, a: dict[str, Any]) -> None:
    with _realizing(emu, a) as cluster:
        if cluster is not None:
            cluster.drop_database(a["name"])
    emu.store.delete(DATABASE_KIND, _child_key(a))


# -- users ---------------------------------------------------------------------------------------


def _user(project_id: str, instance: str, name: str, utype: str = "BUILT_IN") -> dict[str, Any]:
    return {
        "kind": "sql#user",
        "name": name,
        "host": "",
        "instance": instance,
        "project": project_id,
        "type": utype,
    }


def _user_json(u: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in u.items() if not k.startswith("_")}
    out["etag"] = _etag(out)
    return out


@router.route("POST", "/v1/projects/{project}/instances/{instance}/users")
def insert_user(req: Request, project: str, instance: str) -> dict[str, Any]:
    body = req.json()
    project_id = _start(req, project)
    name = body.get("name") or ""
    if not name:
        raise _err(400, "Invalid request: user name is missing.", "invalid")
    return _child_operation(
        req,
        project_id,
        instance,
        USER_KIND,
        name,
        exists=_err(
            409, f"Invalid request: user {name} already exists on {instance}.", "alreadyExists"
        ),
        missing=None,
        op_type="CREATE_USER",
        completer_name="sql.user.create",
        args={
            "type": body.get("type") or "BUILT_IN",
            "set_password": "password" in body,
            **_verifier_arg(req.emu, "verifier", body.get("password")),
        },
    )


@_child_completer("sql.user.create")
def _finish_user_create(emu: Emulator, a: dict[str, Any]) -> None:
    with _realizing(emu, a) as cluster:
        if cluster is not None and a["type"] == "BUILT_IN":
            cluster.create_role(a["name"], verifier=a.get("verifier"))
    u = _user(a["project"], a["instance"], a["name"], a["type"])
    u["_hasPassword"] = a["set_password"]  # the password itself is never stored
    emu.store.put(USER_KIND, _child_key(a), u)


@router.route("GET", "/v1/projects/{project}/instances/{instance}/users")
def list_users(req: Request, project: str, instance: str) -> dict[str, Any]:
    project_id = _start(req, project)
    _get_instance(req.emu, project_id, instance)
    items = [_user_json(v) for _, v in req.emu.store.list(USER_KIND, f"{project_id}/{instance}/")]
    out: dict[str, Any] = {"kind": "sql#usersList"}
    if items:
        out["items"] = items
    return out


@router.route("GET", "/v1/projects/{project}/instances/{instance}/users/{name}")
def get_user(req: Request, project: str, instance: str, name: str) -> dict[str, Any]:
    project_id = _start(req, project)
    _get_instance(req.emu, project_id, instance)
    u = req.emu.store.get(USER_KIND, f"{project_id}/{instance}/{name}")
    if u is None:
        raise _err(404, f"Not Found: user {name} does not exist.", "notFound")
    return _user_json(u)


@router.route("PUT", "/v1/projects/{project}/instances/{instance}/users")
def update_user(req: Request, project: str, instance: str) -> dict[str, Any]:
    body = req.json()
    project_id = _start(req, project)
    name = req.arg("name") or body.get("name") or ""
    return _child_operation(
        req,
        project_id,
        instance,
        USER_KIND,
        name,
        exists=None,
        missing=_err(404, f"Not Found: user {name} does not exist.", "notFound"),
        op_type="UPDATE_USER",
        completer_name="sql.user.update",
        args={
            "set_password": "password" in body,
            **_verifier_arg(req.emu, "verifier", body.get("password")),
        },
    )


@_child_completer("sql.user.update")
def _finish_user_update(emu: Emulator, a: dict[str, Any]) -> None:
    with _realizing(emu, a) as cluster:
        if cluster is not None and a.get("verifier") is not None:
            cluster.set_password(a["name"], a["verifier"])
    u = emu.store.get(USER_KIND, _child_key(a))
    if u is not None:
        u["_hasPassword"] = u.get("_hasPassword") or a["set_password"]
        emu.store.put(USER_KIND, _child_key(a), u)


@router.route("DELETE", "/v1/projects/{project}/instances/{instance}/users")
def delete_user(req: Request, project: str, instance: str) -> dict[str, Any]:
    name = req.arg("name") or ""
    return _child_operation(
        req,
        _start(req, project),
        instance,
        USER_KIND,
        name,
        exists=None,
        missing=_err(404, f"Not Found: user {name} does not exist.", "notFound"),
        op_type="DELETE_USER",
        completer_name="sql.user.delete",
        args={},
    )


@_child_completer("sql.user.delete")
def _finish_user_delete(emu: Emulator, a: dict[str, Any]) -> None:
    with _realizing(emu, a) as cluster:
        if cluster is not None:
            cluster.drop_role(a["name"])
    emu.store.delete(USER_KIND, _child_key(a))


# -- local execution -----------------------------------------------------------------------------
# With execution on (``emu.local``), a PostgreSQL instance is a real cluster
# (deployer/emulator/local/postgres.py): completers realize their effect before the operation is
# DONE, and a failure to realize fails the operation with PostgreSQL's own message. Passwords
# travel in an operation's args as SCRAM verifiers, never in clear.


def _verifier_arg(emu: Emulator, key: str, password: str | None) -> dict[str, str]:
    """``{key: verifier of password}`` for an operation's args when the emulator executes."""
    if password is None or not emu.local.enabled:
        return {}
    return {key: scram_verifier(password)}


def _cluster(emu: Emulator, rec: dict[str, Any]) -> Cluster | None:
    """The instance's cluster when the emulator executes and it is PostgreSQL, else None."""
    pg = emu.local.postgres
    if pg is None or not rec["databaseVersion"].startswith("POSTGRES_"):
        return None
    return pg.cluster(rec["project"], rec["name"], region=rec["region"])


@contextlib.contextmanager
def _realizing(emu: Emulator, a: dict[str, Any]) -> Iterator[Cluster | None]:
    """The cluster of the instance an operation's args name (None: nothing to realize); a
    PostgreSQL error inside fails the operation with its message."""
    rec = emu.store.get(INSTANCE_KIND, _ikey(a["project"], a["instance"]))
    try:
        yield _cluster(emu, rec) if rec is not None else None
    except PostgresError as exc:
        raise ApiError(500, str(exc)) from None


def realize(emu: Emulator) -> None:
    """An emulator start: every RUNNABLE PostgreSQL instance's server runs again; one whose
    cluster is missing (made while execution was off) is made from the stored databases and
    users (those users have no password until one is set)."""
    for key, rec in emu.store.list(INSTANCE_KIND):
        cluster = _cluster(emu, rec)
        if cluster is None or rec["state"] != "RUNNABLE":
            continue
        try:
            if cluster.exists():
                cluster.start()
                continue
            cluster.create(root_password_verifier=None)
            for _, db in emu.store.list(DATABASE_KIND, key + "/"):
                if db["name"] != "postgres":
                    cluster.create_database(db["name"])
            for _, user in emu.store.list(USER_KIND, key + "/"):
                if user["name"] != "postgres" and user["type"] == "BUILT_IN":
                    cluster.create_role(user["name"], verifier=None)
        except PostgresError as exc:
            print(f"djdeploy emulator: instance {key}: {exc}", file=sys.stderr)


# -- backup runs ---------------------------------------------------------------------------------


@router.route("POST", "/v1/projects/{project}/instances/{instance}/backupRuns")
def insert_backup(req: Request, project: str, instance: str) -> dict[str, Any]:
    body = req.json()
    project_id = _start(req, project)
    emu = req.emu
    with emu.store.transaction():
        _mutable_instance(emu, project_id, instance)
        backup_id = str(emu.store.next_id("sql.backup") + 1_700_000_000_000)
        return _operation(
            emu,
            project_id,
            instance,
            "BACKUP_VOLUME",
            "sql.backup.create",
            "sql.backup",
            {"id": backup_id, "description": body.get("description") or "", "t": emu.clock()},
        )


@completer("sql.backup.create")
def _finish_backup(emu: Emulator, op: dict[str, Any]) -> None:
    a = op["args"]
    p, i = a["project"], a["instance"]
    rec = emu.store.get(INSTANCE_KIND, _ikey(p, i))
    message = _fail_outcome(emu, op)
    run: dict[str, Any] = {
        "kind": "sql#backupRun",
        "status": "SUCCESSFUL" if message is None else "FAILED",
        "enqueuedTime": rfc3339(a["t"]),
        "id": a["id"],
        "startTime": rfc3339(a["t"]),
        "endTime": rfc3339(emu.clock()),
        "type": "ON_DEMAND",
        "description": a["description"],
        "windowStartTime": rfc3339(a["t"]),
        "instance": i,
        "selfLink": f"{BASE}/projects/{p}/instances/{i}/backupRuns/{a['id']}",
        "location": rec["region"] if rec else "",
        "backupKind": "SNAPSHOT",
        "databaseVersion": rec["databaseVersion"] if rec else "",
    }
    cluster = _cluster(emu, rec) if rec and message is None else None
    if cluster is not None and emu.local.postgres is not None:
        try:  # the backup is a real dump of the whole cluster
            cluster.dump(emu.local.postgres.backup_dir(p, i) / f"{a['id']}.sql")
        except PostgresError as exc:
            message = str(exc)
            run["status"] = "FAILED"
    if message is not None:
        run["error"] = {"kind": "sql#operationError", "code": "INTERNAL_ERROR", "message": message}
        _failed(op, message)
    emu.store.put(BACKUP_KIND, f"{p}/{i}/{a['id']}", run)
    return None


@router.route("GET", "/v1/projects/{project}/instances/{instance}/backupRuns")
def list_backups(req: Request, project: str, instance: str) -> dict[str, Any]:
    project_id = _start(req, project)
    _get_instance(req.emu, project_id, instance)
    runs = [v for _, v in req.emu.store.list(BACKUP_KIND, f"{project_id}/{instance}/")]
    runs.reverse()  # newest first
    return paginate(req, runs, _PAGING, key="items", kind="sql#backupRunsList")


@router.route("GET", "/v1/projects/{project}/instances/{instance}/backupRuns/{backup_id}")
def get_backup(req: Request, project: str, instance: str, backup_id: str) -> dict[str, Any]:
    project_id = _start(req, project)
    _get_instance(req.emu, project_id, instance)
    run = req.emu.store.get(BACKUP_KIND, f"{project_id}/{instance}/{backup_id}")
    if run is None:
        raise _err(404, f"Not Found: backup run {backup_id} does not exist.", "backupRunNotFound")
    return dict(run)


# -- operations ----------------------------------------------------------------------------------


def _own(op: dict[str, Any] | None, project_id: str) -> bool:
    return (
        op is not None
        and op["completer"].startswith(COMPLETER_PREFIX)
        and op["args"].get("project") == project_id
    )


@router.route("GET", "/v1/projects/{project}/operations/{operation}")
def get_operation(req: Request, project: str, operation: str) -> dict[str, Any]:
    project_id = _start(req, project)
    op = req.emu.ops.get(operation)
    if not _own(op, project_id):
        raise _err(
            404, f"The Cloud SQL operation {operation} does not exist.", "operationDoesNotExist"
        )
    assert op is not None
    return op_json(req.emu, op)


@router.route("GET", "/v1/projects/{project}/operations")
def list_operations(req: Request, project: str) -> dict[str, Any]:
    project_id = _start(req, project)
    instance = req.arg("instance")
    prefix = _target(project_id, instance) if instance else f"sql:{project_id}/"
    ops = [o for o in req.emu.ops.list(prefix) if _own(o, project_id)]
    ops.reverse()  # newest first
    return paginate(
        req, [op_json(req.emu, o) for o in ops], _PAGING, key="items", kind="sql#operationsList"
    )

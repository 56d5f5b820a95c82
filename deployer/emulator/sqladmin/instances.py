"""Cloud SQL instances: create, read, patch and delete, each finished by its operation.

An instance name that exists, or was deleted within the ``sql.instance.name_reuse`` window (a
week, scaled), is refused with 409 ``instanceAlreadyExists``; a patch carrying an old
``settings.settingsVersion`` is 412 ``staleData``; deleting an instance with
``settings.deletionProtectionEnabled`` is 400. Deleting an instance deletes its backups, unless
``settings.retainBackupsOnDelete`` (then they are kept under ``sql.backup.retained``). A failed
CREATE leaves the instance in state FAILED.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from ..formats import merge_patch, rfc3339
from ..latency import register_duration
from ..local.postgres import PostgresError
from ..operations import completer
from ..projects import REGIONS
from . import records
from .errors import (
    ALREADY_EXISTS,
    INVALID_STATE,
    NOT_FOUND,
    PROTECTED,
    RECENTLY_DELETED,
    SqlError,
    invalid,
    not_found,
)
from .operations import SqlOperations, mark_failed, outcome
from .realize import cluster, verifier_arg

if TYPE_CHECKING:
    from ..context import Emulator

register_duration("sql.instance.name_reuse", 7 * 24 * 3600.0)

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,96}$")
_VERSIONS = ("POSTGRES_", "MYSQL_", "SQLSERVER_")
_FIXED = ("name", "region", "databaseVersion")  # a patch cannot change them
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


def _service_account(project_id: str) -> str:
    """The instance's service agent: stable across processes (sha256, not the per-process
    ``hash()``)."""
    n = int(hashlib.sha256(project_id.encode()).hexdigest(), 16) % 10**12
    return f"p{n}-abcdef@gcp-sa-cloud-sql.iam.gserviceaccount.com"


class Instances:
    """A project's Cloud SQL instances."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = emu.store
        self.ops = SqlOperations(emu)

    def get(self, project_id: str, instance: str) -> dict[str, Any]:
        rec = self.store.get(records.INSTANCE_KIND, records.instance_key(project_id, instance))
        if rec is None:
            raise SqlError(404, NOT_FOUND, "instanceDoesNotExist")
        return rec

    def mutable(self, project_id: str, instance: str) -> dict[str, Any]:
        """The instance, when it is RUNNABLE and no operation runs on it."""
        rec = self.get(project_id, instance)
        self.ops.ensure_idle(project_id, instance)
        if rec["state"] != "RUNNABLE":
            raise SqlError(409, INVALID_STATE, "invalidState")
        return rec

    def list(self, project_id: str, flt: str) -> list[dict[str, Any]]:
        recs = [v for _, v in self.store.list(records.INSTANCE_KIND, project_id + "/")]
        return [r for r in recs if _label_filter(r, flt)] if flt else recs

    def create(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record the instance PENDING_CREATE; its CREATE operation makes it RUNNABLE."""
        name = body.get("name") or ""
        if not _NAME_RE.match(name) or name.endswith("-"):
            raise invalid(f"instance name ({name}) is invalid.")
        settings = body.get("settings") or {}
        if not settings.get("tier"):
            raise invalid("Missing tier.")
        version = body.get("databaseVersion") or "MYSQL_8_0"
        if not version.startswith(_VERSIONS):
            raise invalid(f"Invalid database version {version}.")
        region = body.get("region") or "us-central1"
        if region not in REGIONS:
            raise invalid(f"region ({region}) is not valid.")
        emu, store = self.emu, self.store
        key = records.instance_key(project_id, name)
        with store.transaction():
            if store.get(records.INSTANCE_KIND, key) is not None:
                raise SqlError(409, ALREADY_EXISTS, "instanceAlreadyExists")
            deleted = store.get(records.DELETED_KIND, key)
            if deleted is not None:
                if emu.clock() < deleted["at"] + emu.latency.duration("sql.instance.name_reuse"):
                    raise SqlError(409, RECENTLY_DELETED, "instanceAlreadyExists")
                store.delete(records.DELETED_KIND, key)
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
                "selfLink": f"{records.BASE}/projects/{project_id}/instances/{name}",
                "createTime": rfc3339(emu.clock()),
                "serviceAccountEmailAddress": _service_account(project_id),
                "databaseInstalledVersion": version,
            }
            store.put(records.INSTANCE_KIND, key, rec)
            return self.ops.start(
                project_id,
                name,
                "CREATE",
                completer="sql.instance.create",
                duration_kind="sql.instance.create",
                args=verifier_arg(emu, "root_verifier", body.get("rootPassword")),
            )

    def patch(self, project_id: str, instance: str, body: dict[str, Any]) -> dict[str, Any]:
        """Check the patch now; its UPDATE operation merges the settings."""
        with self.store.transaction():
            rec = self.get(project_id, instance)
            self.ops.ensure_idle(project_id, instance)
            for field in _FIXED:
                if field in body and body[field] != rec.get(field):
                    raise invalid(f"{field} cannot be changed by a patch.")
            settings = body.get("settings") or {}
            sent = settings.get("settingsVersion")
            if sent is not None and str(sent) != rec["settings"]["settingsVersion"]:
                raise SqlError(412, "Precondition check failed.", "staleData")
            if rec["state"] != "RUNNABLE":
                raise SqlError(409, INVALID_STATE, "invalidState")
            patch = {k: v for k, v in settings.items() if k != "settingsVersion"}
            return self.ops.start(
                project_id,
                instance,
                "UPDATE",
                completer="sql.instance.update",
                duration_kind="sql.instance.update",
                args={"settings": patch},
            )

    def delete(self, project_id: str, instance: str) -> dict[str, Any]:
        with self.store.transaction():
            rec = self.get(project_id, instance)
            self.ops.ensure_idle(project_id, instance)
            if rec["settings"].get("deletionProtectionEnabled"):
                raise SqlError(400, PROTECTED, "invalid")
            # an outcome rule: the operation fails, the instance left in the state it was in
            failure = self.emu.outcomes.take(
                "delete", f"projects/{project_id}/instances/{instance}"
            )
            args = {} if failure is None else {"failure": failure, "state": rec["state"]}
            rec["state"] = "PENDING_DELETE"
            self.store.put(records.INSTANCE_KIND, records.instance_key(project_id, instance), rec)
            return self.ops.start(
                project_id,
                instance,
                "DELETE",
                completer="sql.instance.delete",
                duration_kind="sql.instance.delete",
                args=args,
            )


class Children:
    """What an instance's databases and users share: read under the instance, and changed by an
    operation (latency kind = the store kind) on a RUNNABLE, idle instance."""

    kind: ClassVar[str]  # the store kind: "sql.database", "sql.user"
    what: ClassVar[str]  # how errors name one: "database", "user"

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = emu.store
        self.instances = Instances(emu)

    def list(self, project_id: str, instance: str) -> list[dict[str, Any]]:
        self.instances.get(project_id, instance)
        prefix = records.children(project_id, instance)
        return [v for _, v in self.store.list(self.kind, prefix)]

    def get(self, project_id: str, instance: str, name: str) -> dict[str, Any]:
        self.instances.get(project_id, instance)
        doc = self.store.get(self.kind, records.child_key(project_id, instance, name))
        if doc is None:
            raise not_found(f"{self.what} {name}")
        return doc

    def start(
        self,
        project_id: str,
        instance: str,
        name: str,
        op_type: str,
        *,
        completer: str,
        args: dict[str, Any],
        exists: SqlError | None = None,
    ) -> dict[str, Any]:
        """Start the operation on child ``name``: a create (refused with ``exists`` when the
        child exists) when ``exists`` is given, else a change of a child that must exist."""
        with self.store.transaction():
            self.instances.mutable(project_id, instance)
            key = records.child_key(project_id, instance, name)
            found = self.store.get(self.kind, key) is not None
            if found and exists is not None:
                raise exists
            if not found and exists is None:
                raise not_found(f"{self.what} {name}")
            return self.instances.ops.start(
                project_id,
                instance,
                op_type,
                completer=completer,
                duration_kind=self.kind,
                args={"name": name, **args},
            )


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
        raise invalid(f"invalid filter ({flt}).")
    return True


# -- completers ----------------------------------------------------------------------------------


@completer("sql.instance.create")
def _finish_create(emu: Emulator, op: dict[str, Any]) -> None:
    p, i = op["args"]["project"], op["args"]["instance"]
    key = records.instance_key(p, i)
    rec = emu.store.get(records.INSTANCE_KIND, key)
    if rec is None:
        return None
    message = outcome(emu, op)
    if message is not None:
        rec["state"] = "FAILED"
        emu.store.put(records.INSTANCE_KIND, key, rec)
        mark_failed(op, message)
        return None
    server = cluster(emu, rec)
    if server is not None:
        try:
            server.create(root_password_verifier=op["args"].get("root_verifier"))
        except PostgresError as exc:
            rec["state"] = "FAILED"
            emu.store.put(records.INSTANCE_KIND, key, rec)
            mark_failed(op, str(exc))
            return None
    rec["state"] = "RUNNABLE"
    rec["ipAddresses"] = [{"type": "PRIMARY", "ipAddress": "10.0.0.3"}]
    emu.store.put(records.INSTANCE_KIND, key, rec)
    # every PostgreSQL instance starts with the "postgres" database and user
    postgres = records.child_key(p, i, "postgres")
    emu.store.put(records.DATABASE_KIND, postgres, records.database(p, i, "postgres"))
    emu.store.put(records.USER_KIND, postgres, records.user(p, i, "postgres", "BUILT_IN"))
    return None


@completer("sql.instance.update")
def _finish_update(emu: Emulator, op: dict[str, Any]) -> None:
    key = records.instance_key(op["args"]["project"], op["args"]["instance"])
    rec = emu.store.get(records.INSTANCE_KIND, key)
    if rec is None:
        return None
    message = outcome(emu, op)
    if message is not None:
        mark_failed(op, message)
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
    emu.store.put(records.INSTANCE_KIND, key, rec)
    return None


@completer("sql.instance.delete")
def _finish_delete(emu: Emulator, op: dict[str, Any]) -> None:
    p, i = op["args"]["project"], op["args"]["instance"]
    store = emu.store
    rec = store.get(records.INSTANCE_KIND, records.instance_key(p, i)) or {}
    if "failure" in op["args"]:  # the instance stays as it was, its data with it
        if rec:
            rec["state"] = op["args"]["state"]
            store.put(records.INSTANCE_KIND, records.instance_key(p, i), rec)
        mark_failed(op, op["args"]["failure"], "FAILED_PRECONDITION")
        return None
    store.delete(records.INSTANCE_KIND, records.instance_key(p, i))
    retained = bool((rec.get("settings") or {}).get("retainBackupsOnDelete"))
    server = cluster(emu, rec) if rec else None
    if server is not None:
        try:
            server.remove()
        except PostgresError as exc:  # the instance is gone from the API all the same
            print(f"djdeploy emulator: instance {p}/{i}: {exc}", file=sys.stderr)
    if emu.local.postgres is not None and not retained:  # the dumps go with the backups
        shutil.rmtree(emu.local.postgres.backup_dir(p, i), ignore_errors=True)
    if retained:
        for k, run in store.list(records.BACKUP_KIND, records.children(p, i)):
            store.put(records.RETAINED_KIND, k, run)
    # backups go with it unless retained
    for kind in (records.DATABASE_KIND, records.USER_KIND, records.BACKUP_KIND):
        for k, _ in store.list(kind, records.children(p, i)):
            store.delete(kind, k)
    store.put(records.DELETED_KIND, records.instance_key(p, i), {"at": emu.clock()})
    return None

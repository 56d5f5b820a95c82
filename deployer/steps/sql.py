"""Cloud SQL: the PostgreSQL instance (or an existing shared one), the tenant's database and
its user.

Cloud SQL runs one operation at a time per instance; a call made meanwhile answers 409
operationInProgress, which the one retry policy waits out. Each step also reports WAIT while an
operation of its own kind runs, so the engine waits instead of re-applying.

destroy keeps all three unless --delete-data. With it: the user, then the database, then (never
for a shared instance) the instance: deletion protection lifted, backups retained on delete, a
final on-demand backup taken, then the delete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployer.errors import Conflict, DeployError, NotOurs
from deployer.steps.base import Action, Change, FieldChange, field_changes

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

BACKUP_START = "03:00"
WAIT_STATES = ("PENDING_CREATE", "PENDING_DELETE", "MAINTENANCE", "ONLINE_MAINTENANCE", "REPAIRING")
FAILED_STATES = ("FAILED", "SUSPENDED")
FINAL_BACKUP = "djdeploy: final backup before delete"


def is_ours(labels: dict[str, str] | None, tenant: str) -> bool:
    labels = labels or {}
    return labels.get("managed-by") == "djdeploy" and labels.get("djdeploy-tenant") == tenant


def _pending(ops: list[dict[str, Any]], types: tuple[str, ...] | None = None) -> list[str]:
    return [
        str(op.get("operationType"))
        for op in ops
        if types is None or op.get("operationType") in types
    ]


@dataclass(frozen=True)
class SqlInstance:
    config: Config
    name: str = field(default="sql-instance", init=False)
    needs: Sequence[str] = field(default=("apis",), init=False)
    data: bool = field(default=True, init=False)

    @property
    def instance(self) -> str:
        return self.config.names.sql_instance

    @property
    def shared(self) -> bool:
        return self.config.names.sql_instance_shared

    def desired_settings(self) -> dict[str, Any]:
        db = self.config.database
        backup: dict[str, Any] = {"enabled": db.backups}
        if db.backups:
            backup["startTime"] = BACKUP_START
        return {
            "tier": db.tier,
            "edition": db.edition,
            "dataDiskSizeGb": str(db.disk_size_gb),
            "backupConfiguration": backup,
            "deletionProtectionEnabled": db.deletion_protection,
            "userLabels": dict(self.config.names.labels),
        }

    def insert_body(self) -> dict[str, Any]:
        settings = {
            **self.desired_settings(),
            "availabilityType": "ZONAL",
            "dataDiskType": "PD_SSD",
            "storageAutoResize": True,
            "ipConfiguration": {"ipv4Enabled": True},
        }
        return {
            "name": self.instance,
            "region": self.config.region,
            "databaseVersion": self.config.database.version,
            "settings": settings,
        }

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        inst = cloud.sql.get_instance(self.instance)
        if inst is None:
            return None
        return {"instance": inst, "pending": _pending(cloud.sql.pending_operations(self.instance))}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        name = self.instance
        if self.shared:
            return self._diff_shared(observed)
        if observed is None:
            return Change(
                self.name,
                name,
                Action.CREATE,
                f"create PostgreSQL instance {name} ({self.config.database.tier})",
            )
        inst = observed["instance"]
        state = inst.get("state", "")
        info = {"connection_name": inst.get("connectionName", ""), "state": state}
        settings = inst.get("settings") or {}
        labels = settings.get("userLabels") or {}
        if not is_ours(labels, self.config.tenant):
            return Change(
                self.name,
                name,
                Action.UPDATE,
                "not ours",
                failure=(
                    f"Cloud SQL instance {name} exists but is not labelled as djdeploy's for "
                    f"tenant {self.config.tenant}: it is not adopted; to use it anyway set "
                    "database.shared_instance, or choose another tenant/app"
                ),
                info=info,
            )
        if state in FAILED_STATES:
            return Change(
                self.name,
                name,
                Action.UPDATE,
                f"instance is {state}",
                failure=f"Cloud SQL instance {name} is in state {state}: see the Cloud SQL "
                "console; delete it with destroy --delete-data and run up again",
                info=info,
            )
        if state in WAIT_STATES or state != "RUNNABLE":
            return Change(self.name, name, Action.WAIT, f"instance {name} is {state}", info=info)
        if observed.get("pending"):
            ops = ", ".join(observed["pending"])
            return Change(
                self.name, name, Action.WAIT, f"operation {ops} running on {name}", info=info
            )
        if inst.get("databaseVersion") != self.config.database.version:
            return Change(
                self.name,
                name,
                Action.UPDATE,
                "databaseVersion differs",
                (
                    FieldChange(
                        "databaseVersion", inst.get("databaseVersion"), self.config.database.version
                    ),
                ),
                failure=(
                    f"instance {name} runs {inst.get('databaseVersion')}, djdeploy needs "
                    f"{self.config.database.version}: upgrade it in Cloud SQL"
                ),
                info=info,
            )
        fields = self._setting_changes(settings)
        if fields:
            return Change(
                self.name,
                name,
                Action.UPDATE,
                "patch " + ", ".join(f.path for f in fields),
                tuple(fields),
                info=info,
            )
        return Change(
            self.name, name, Action.NOOP, f"instance {name} is RUNNABLE and matches", info=info
        )

    def _setting_changes(self, settings: dict[str, Any]) -> list[FieldChange]:
        desired = self.desired_settings()
        try:  # the disk only grows (auto-resize may have grown it): never ask to shrink it
            if int(settings.get("dataDiskSizeGb") or 0) >= int(desired["dataDiskSizeGb"]):
                desired.pop("dataDiskSizeGb")
        except ValueError:
            pass
        return field_changes(desired, settings, "settings")

    def _diff_shared(self, observed: dict[str, Any] | None) -> Change:
        name = self.instance
        if observed is None:
            return Change(
                self.name,
                name,
                Action.UPDATE,
                f"shared instance {name} is missing",
                failure=(
                    f"shared instance {name} does not exist in project {self.config.project}: "
                    "create it, or unset database.shared_instance to let djdeploy create one"
                ),
            )
        inst = observed["instance"]
        state = inst.get("state", "")
        info = {"connection_name": inst.get("connectionName", ""), "state": state}
        if state in FAILED_STATES:
            return Change(
                self.name,
                name,
                Action.UPDATE,
                f"shared instance is {state}",
                failure=f"shared instance {name} is in state {state}",
                info=info,
            )
        if state != "RUNNABLE":
            return Change(
                self.name, name, Action.WAIT, f"shared instance {name} is {state}", info=info
            )
        return Change(
            self.name,
            name,
            Action.NOOP,
            f"shared instance {name} exists (shared: never changed by djdeploy)",
            info=info,
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        if self.shared or change.failure:
            return
        if change.action is Action.CREATE:
            self._create(cloud)
        elif change.action is Action.UPDATE:
            self._patch(cloud, change)

    def _create(self, cloud: Cloud) -> None:
        name = self.instance
        try:
            cloud.sql.insert_instance(self.insert_body())
        except Conflict as exc:
            if exc.reason != "instanceAlreadyExists":
                raise
            found = cloud.sql.get_instance(name)
            if found is None:
                raise DeployError(
                    f"Cloud SQL refuses the instance name {name}: an instance of that name was "
                    "deleted recently (Cloud SQL may keep a deleted name reserved for up to a "
                    "week). Choose another app or tenant name, or wait and run up again"
                ) from None
            labels = (found.get("settings") or {}).get("userLabels")
            if not is_ours(labels, self.config.tenant):
                raise NotOurs(
                    f"Cloud SQL instance {name} already exists without djdeploy's labels for "
                    f"tenant {self.config.tenant}: set database.shared_instance to use it, or "
                    "choose another tenant/app"
                ) from None
            # ours (an earlier run created it): adopt; the engine re-observes

    def _patch(self, cloud: Cloud, change: Change) -> None:
        wanted = {f.path for f in change.fields}
        for _attempt in range(3):
            inst = cloud.sql.get_instance(self.instance)
            if inst is None:
                return
            current = inst.get("settings") or {}
            patch: dict[str, Any] = {}
            for path in wanted:
                keys = path.split(".")[1:]  # drop "settings"
                if keys[0] == "userLabels":
                    labels = {**(current.get("userLabels") or {}), **self.config.names.labels}
                    patch["userLabels"] = labels
                    continue
                value: Any = self.desired_settings()
                for k in keys:
                    value = value[k]
                node = patch
                for k in keys[:-1]:
                    node = node.setdefault(k, {})
                node[keys[-1]] = value
            if "backupConfiguration" in patch:
                patch["backupConfiguration"] = self.desired_settings()["backupConfiguration"]
            patch["settingsVersion"] = current.get("settingsVersion")
            try:
                cloud.sql.patch_instance(self.instance, {"settings": patch})
                return
            except Conflict as exc:
                if exc.reason != "staleData":
                    raise
                # someone changed the settings since we read them: read again and retry
        raise DeployError(f"instance {self.instance}: settings keep changing under us (412)")

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        name = self.instance
        if self.shared:
            return Change(
                self.name,
                name,
                Action.NOOP,
                f"kept: shared instance {name} is never deleted by one tenant's destroy",
            )
        if not delete_data:
            return Change(
                self.name,
                name,
                Action.NOOP,
                f"kept: database instance {name} holds data; --delete-data to delete",
            )
        inst = cloud.sql.get_instance(name)
        if inst is None:
            return Change(self.name, name, Action.NOOP, f"instance {name} already gone")
        settings = inst.get("settings") or {}
        if not is_ours(settings.get("userLabels"), self.config.tenant):
            return Change(
                self.name, name, Action.NOOP, f"kept: instance {name} is not labelled as ours"
            )
        if inst.get("state") == "PENDING_DELETE":
            return Change(self.name, name, Action.DELETE, f"instance {name} is being deleted")
        return self._delete_stage(cloud, inst)

    def _delete_stage(self, cloud: Cloud, inst: dict[str, Any]) -> Change:
        """One stage of deleting an instance, WAIT while its operation runs. Deletion
        protection is lifted and backups retained (deleting an instance deletes its backups
        otherwise), then a final backup is taken, then the instance is deleted."""
        name = self.instance
        settings = inst.get("settings") or {}
        running = cloud.sql.pending_operations(name)
        if running:
            kind = running[0].get("operationType")
            return Change(self.name, name, Action.WAIT, f"waiting for {kind} on {name}")
        if settings.get("deletionProtectionEnabled") or not settings.get("retainBackupsOnDelete"):
            cloud.sql.patch_instance(
                name,
                {
                    "settings": {
                        "deletionProtectionEnabled": False,
                        "retainBackupsOnDelete": True,
                        "settingsVersion": settings.get("settingsVersion"),
                    }
                },
            )
            return Change(self.name, name, Action.WAIT, f"lifting deletion protection of {name}")
        final = [b for b in cloud.sql.list_backups(name) if b.get("description") == FINAL_BACKUP]
        if inst.get("state") == "RUNNABLE" and not final:
            cloud.sql.insert_backup(name, FINAL_BACKUP)
            return Change(self.name, name, Action.WAIT, f"taking a final backup of {name}")
        if cloud.sql.delete_instance(name) is None:
            return Change(self.name, name, Action.NOOP, f"instance {name} already gone")
        backup = " after a final backup (retained after deletion)" if final else ""
        return Change(self.name, name, Action.DELETE, f"deleting instance {name}{backup}")


@dataclass(frozen=True)
class SqlDatabase:
    config: Config
    name: str = field(default="sql-database", init=False)
    needs: Sequence[str] = field(default=("sql-instance",), init=False)
    data: bool = field(default=True, init=False)

    OPS = ("CREATE_DATABASE", "DELETE_DATABASE")

    @property
    def resource(self) -> str:
        n = self.config.names
        return f"{n.sql_instance}/{n.database}"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        n = self.config.names
        db = cloud.sql.get_database(n.sql_instance, n.database)
        pending = _pending(cloud.sql.pending_operations(n.sql_instance), self.OPS)
        if db is None and not pending:
            return None
        return {"database": db, "pending": pending}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        n = self.config.names
        if observed is not None and observed.get("pending"):
            ops = ", ".join(observed["pending"])
            return Change(
                self.name,
                self.resource,
                Action.WAIT,
                f"operation {ops} running on {n.sql_instance}",
            )
        if observed is None or observed.get("database") is None:
            return Change(
                self.name,
                self.resource,
                Action.CREATE,
                f"create database {n.database} on {n.sql_instance}",
            )
        return Change(
            self.name,
            self.resource,
            Action.NOOP,
            f"database {n.database} exists on {n.sql_instance}",
            info={"database": n.database},
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        if change.action is not Action.CREATE:
            return
        n = self.config.names
        try:
            cloud.sql.insert_database(n.sql_instance, n.database)
        except Conflict as exc:
            if exc.reason == "operationInProgress":
                raise
            if cloud.sql.get_database(n.sql_instance, n.database) is None:
                raise
            # it exists (an earlier run's insert landed): databases carry no labels; adopt

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        n = self.config.names
        if not delete_data:
            return Change(
                self.name,
                self.resource,
                Action.NOOP,
                f"kept: database {n.database} holds the app's data; --delete-data to delete",
            )
        if cloud.sql.delete_database(n.sql_instance, n.database) is None:
            return Change(
                self.name, self.resource, Action.NOOP, f"database {n.database} already gone"
            )
        return Change(self.name, self.resource, Action.DELETE, f"deleting database {n.database}")


@dataclass(frozen=True)
class SqlUser:
    config: Config
    name: str = field(default="sql-user", init=False)
    needs: Sequence[str] = field(default=("sql-database", "secrets"), init=False)
    data: bool = field(default=False, init=False)

    OPS = ("CREATE_USER", "DELETE_USER", "UPDATE_USER")

    @property
    def resource(self) -> str:
        n = self.config.names
        return f"{n.sql_instance}/{n.db_user}"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        n = self.config.names
        user = cloud.sql.get_user(n.sql_instance, n.db_user)
        pending = _pending(cloud.sql.pending_operations(n.sql_instance), self.OPS)
        if user is None and not pending:
            return None
        return {"user": user, "pending": pending}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        n = self.config.names
        if observed is not None and observed.get("pending"):
            ops = ", ".join(observed["pending"])
            return Change(
                self.name,
                self.resource,
                Action.WAIT,
                f"operation {ops} running on {n.sql_instance}",
            )
        if observed is None or observed.get("user") is None:
            return Change(
                self.name,
                self.resource,
                Action.CREATE,
                f"create user {n.db_user} with the password in secret {n.secret_db_password}",
            )
        return Change(
            self.name,
            self.resource,
            Action.NOOP,
            f"user {n.db_user} exists (a password cannot be read back, so it is not compared; "
            f"it was set from secret {n.secret_db_password})",
            info={"db_user": n.db_user},
        )

    def _password(self, cloud: Cloud) -> Any:
        sid = self.config.names.secret_db_password
        version = cloud.secrets.latest_version(sid)
        if version is None:
            raise DeployError(
                f"secret {sid} has no enabled version: the database user's password comes from it"
            )
        return cloud.secrets.access(sid, version)

    def apply(self, cloud: Cloud, change: Change) -> None:
        if change.action is not Action.CREATE:
            return
        n = self.config.names
        password = self._password(cloud)
        try:
            cloud.sql.insert_user(n.sql_instance, n.db_user, password)
        except Conflict as exc:
            if exc.reason == "operationInProgress":
                raise
            if cloud.sql.get_user(n.sql_instance, n.db_user) is None:
                raise
            # it exists (an earlier run's insert landed): make sure its password is the secret's
            cloud.sql.set_password(n.sql_instance, n.db_user, password)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        n = self.config.names
        if not delete_data:
            return Change(
                self.name,
                self.resource,
                Action.NOOP,
                f"kept: user {n.db_user} owns the objects in the kept database; "
                "--delete-data to delete",
            )
        if cloud.sql.delete_user(n.sql_instance, n.db_user) is None:
            return Change(self.name, self.resource, Action.NOOP, f"user {n.db_user} already gone")
        return Change(self.name, self.resource, Action.DELETE, f"deleting user {n.db_user}")

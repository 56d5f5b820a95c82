"""Cloud SQL: the PostgreSQL instance (or an existing shared one), the tenant's database and
its user.

Cloud SQL runs one operation at a time per instance; a call made meanwhile answers 409
operationInProgress, which the one retry policy waits out. Each step also reports WAIT while an
operation of its own kind runs, so the engine waits instead of re-applying.

The user's password is the db-password secret's latest enabled version. A password cannot be
read back, so the version it was set from is recorded as a label on that secret
(PASSWORD_LABEL): a newer version (`gcloud secrets versions add`) makes the next up set the
password again.

destroy keeps all three unless --delete-data. With it: the user, then the database, then (never
for a shared instance) the instance: deletion protection lifted, backups retained on delete, a
final on-demand backup taken and found SUCCESSFUL, then the delete. No final backup, no delete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from deployer import errors
from deployer.errors import Conflict, DeployError, MaybeApplied, OperationFailed
from deployer.gcp.secrets import latest_enabled
from deployer.steps.base import (
    Action,
    Broken,
    Change,
    FieldChange,
    NotOurs,
    Operation,
    Secret,
    field_changes,
)

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

BACKUP_START = "03:00"
WAIT_STATES = ("PENDING_CREATE", "PENDING_DELETE", "MAINTENANCE", "ONLINE_MAINTENANCE", "REPAIRING")
FAILED_STATES = ("FAILED", "SUSPENDED")
FINAL_BACKUP = "djdeploy: final backup before delete"
BACKUP_RUNNING = ("ENQUEUED", "PENDING", "RUNNING", "OVERDUE")
# On the db-password secret: the version the SQL user's password was last set from.
PASSWORD_LABEL = "djdeploy-sql-password-version"


def _pending(ops: list[dict[str, Any]], types: tuple[str, ...] | None = None) -> list[str]:
    return [
        str(op.get("operationType"))
        for op in ops
        if types is None or op.get("operationType") in types
    ]


@dataclass(frozen=True)
class SqlInstance(Operation):
    EXPECT: ClassVar[Mapping[Action, str]] = {
        Action.CREATE: "sql.instance.create",
        Action.UPDATE: "sql.instance.update",
    }
    config: Config
    name: str = field(default="sql-instance", init=False)
    needs: Sequence[str] = field(default=("apis",), init=False)

    @property
    def instance(self) -> str:
        return self.config.names.sql_instance

    @property
    def resource(self) -> str:
        return self.instance

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
            return self.create(f"create PostgreSQL instance {name} ({self.config.database.tier})")
        inst = observed["instance"]
        state = inst.get("state", "")
        info = {"connection_name": inst.get("connectionName", ""), "state": state}
        settings = inst.get("settings") or {}
        labels = settings.get("userLabels") or {}
        if not self.config.names.owns(labels):
            return self.refuse(
                NotOurs(
                    f"Cloud SQL instance {name} exists but is not labelled as djdeploy's for "
                    f"tenant {self.config.tenant}: it is not adopted; to use it anyway set "
                    "database.shared_instance, or choose another tenant/app"
                ),
                "not ours",
                info=info,
            )
        if state in FAILED_STATES:
            return self.refuse(
                Broken(
                    f"Cloud SQL instance {name} is in state {state}: see the Cloud SQL "
                    f"console; `djdeploy destroy --tenant {self.config.tenant} --delete-data` "
                    f"deletes it, then `djdeploy up --tenant {self.config.tenant}`"
                ),
                f"instance is {state}",
                info=info,
            )
        if state in WAIT_STATES or state != "RUNNABLE":
            return self.wait(f"instance {name} is {state}", info=info)
        if observed.get("pending"):
            ops = ", ".join(observed["pending"])
            return self.wait(f"operation {ops} running on {name}", info=info)
        if inst.get("databaseVersion") != self.config.database.version:
            return self.refuse(
                Broken(
                    f"instance {name} runs {inst.get('databaseVersion')}, djdeploy needs "
                    f"{self.config.database.version}: upgrade it in Cloud SQL"
                ),
                "databaseVersion differs",
                info=info,
            )
        fields = self._setting_changes(settings)
        if fields:
            return self.update("patch " + ", ".join(f.path for f in fields), fields, info=info)
        return self.noop(f"instance {name} is RUNNABLE and matches", info=info)

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
            return self.refuse(
                Broken(
                    f"shared instance {name} does not exist in project {self.config.project}: "
                    "create it, or unset database.shared_instance to let djdeploy create one"
                ),
                f"shared instance {name} is missing",
            )
        inst = observed["instance"]
        state = inst.get("state", "")
        info = {"connection_name": inst.get("connectionName", ""), "state": state}
        if state in FAILED_STATES:
            return self.refuse(
                Broken(f"shared instance {name} is in state {state}"),
                f"shared instance is {state}",
                info=info,
            )
        if state != "RUNNABLE":
            return self.wait(f"shared instance {name} is {state}", info=info)
        return self.noop(
            f"shared instance {name} exists (shared: never changed by djdeploy)", info=info
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        """CREATE or UPDATE: a shared instance is never either (its diff only refuses, waits
        or finds it)."""
        if change.action is Action.CREATE:
            self._create(cloud)
        else:
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
            if not self.config.names.owns(labels):
                raise errors.NotOurs(
                    f"Cloud SQL instance {name} already exists without djdeploy's labels for "
                    f"tenant {self.config.tenant}: set database.shared_instance to use it, or "
                    "choose another tenant/app"
                ) from None
            # ours (an earlier run created it): adopt; the engine re-observes

    def _patch(self, cloud: Cloud, change: Change) -> None:
        """Patch the settings that differ, against the settings read just before (the gcp
        layer redoes the read-modify-write on 412 staleData)."""
        wanted = {f.path for f in change.fields}
        desired = self.desired_settings()
        ours = dict(self.config.names.labels)

        def make_patch(current: dict[str, Any]) -> dict[str, Any]:
            patch: dict[str, Any] = {}
            for path in wanted:
                keys = path.split(".")[1:]  # drop "settings"
                if keys[0] == "userLabels":  # merged: labels someone else added stay
                    patch["userLabels"] = {**(current.get("userLabels") or {}), **ours}
                    continue
                value: Any = desired
                for k in keys:
                    value = value[k]
                node = patch
                for k in keys[:-1]:
                    node = node.setdefault(k, {})
                node[keys[-1]] = value
            if "backupConfiguration" in patch:
                patch["backupConfiguration"] = desired["backupConfiguration"]
            return patch

        cloud.sql.patch_settings(self.instance, make_patch)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        name = self.instance
        if self.shared:
            return self.noop(
                f"kept: shared instance {name} is never deleted by one tenant's destroy"
            )
        inst = cloud.sql.get_instance(name)
        if inst is None:  # "kept" names only what exists
            return self.noop(f"instance {name} already gone")
        settings = inst.get("settings") or {}
        if not self.config.names.owns(settings.get("userLabels")):
            return self.noop(f"kept: instance {name} is not labelled as ours")
        if not delete_data:
            return self.noop(f"kept: database instance {name} holds data; --delete-data to delete")
        if inst.get("state") == "PENDING_DELETE":
            return self.deleted(f"instance {name} is being deleted")
        return self._delete_stage(cloud, inst)

    def _delete_stage(self, cloud: Cloud, inst: dict[str, Any]) -> Change:
        """One stage of deleting an instance, WAIT while its operation runs. Deletion
        protection is lifted and backups retained (deleting an instance deletes its backups
        otherwise), then a final backup is taken, then, once that backup is SUCCESSFUL, the
        instance is deleted. A failed final backup fails the step; an instance that cannot be
        backed up (not RUNNABLE) is refused: never deleted without its final backup."""
        name = self.instance
        p = self.config.project
        settings = inst.get("settings") or {}
        running = cloud.sql.pending_operations(name)
        if running:
            kind = running[0].get("operationType")
            return self.wait(f"waiting for {kind} on {name}")
        final = newest_final_backup(cloud.sql.list_backups(name))
        status = final.get("status") if final else None
        if final is not None and status == "FAILED":
            error = (final.get("error") or {}).get("message") or "no reason given"
            raise OperationFailed(
                f"the final backup of Cloud SQL instance {name} failed ({error}), so the "
                "instance is not deleted (if its deletion protection was lifted, the next up "
                "turns it back on). Take a backup yourself (gcloud sql backups create "
                f'--instance={name} --project={p} --description="{FINAL_BACKUP}") and run '
                "destroy --delete-data again"
            )
        if status in BACKUP_RUNNING:
            return self.wait(f"waiting for the final backup of {name} ({status})")
        backed_up = status == "SUCCESSFUL"
        state = inst.get("state", "")
        if not backed_up and state != "RUNNABLE":
            if state in WAIT_STATES:
                return self.wait(f"instance {name} is {state}: waiting to back up")
            raise DeployError(
                f"Cloud SQL instance {name} is {state or 'in an unknown state'}, so no final "
                "backup can be taken: it is not deleted. Bring it back to RUNNABLE (start or "
                "repair it) and run destroy --delete-data again, or delete it yourself without "
                f"a backup: gcloud sql instances delete {name} --project={p}"
            )
        if settings.get("deletionProtectionEnabled") or not settings.get("retainBackupsOnDelete"):
            cloud.sql.patch_settings(
                name,
                lambda _: {"deletionProtectionEnabled": False, "retainBackupsOnDelete": True},
            )
            return self.wait(f"lifting deletion protection of {name}")
        if not backed_up:
            with contextlib.suppress(MaybeApplied):  # if it started, the next call finds it
                cloud.sql.insert_backup(name, FINAL_BACKUP)
            return self.wait(f"taking a final backup of {name}")
        if cloud.sql.delete_instance(name) is None:
            return self.noop(f"instance {name} already gone")
        return self.deleted(
            f"deleting instance {name} after a final backup (retained after deletion)"
        )


def newest_final_backup(backups: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest backup run djdeploy took before deleting (by description), whatever its
    status; None when there is none."""
    finals = [b for b in backups if b.get("description") == FINAL_BACKUP]

    def newest(b: dict[str, Any]) -> tuple[str, int]:
        ident = str(b.get("id") or "0")
        return (str(b.get("enqueuedTime") or ""), int(ident) if ident.isdigit() else 0)

    return max(finals, key=newest, default=None)


@dataclass(frozen=True)
class _OnInstance(Operation):
    """A resource living on the instance (the tenant's database or user): observe reads it
    and the instance's pending operations of its kinds (OPS); diff WAITs while one runs and
    answers CREATE when the resource is absent. Subclasses say how to read it (`_get`) and
    what to do once it exists (`_diff_existing`)."""

    config: Config
    name: str = field(default="", init=False)

    OPS: ClassVar[tuple[str, ...]] = ()
    KEY: ClassVar[str] = ""  # the resource's key in the observed dict

    def _get(self, cloud: Cloud) -> dict[str, Any] | None:
        raise NotImplementedError

    def _observe_existing(self, cloud: Cloud) -> dict[str, Any]:
        """More to read once the resource exists (read-only)."""
        return {}

    def _create_reason(self) -> str:
        raise NotImplementedError

    def _diff_existing(self, observed: dict[str, Any]) -> Change:
        raise NotImplementedError

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        found = self._get(cloud)
        pending = _pending(cloud.sql.pending_operations(self.config.names.sql_instance), self.OPS)
        if found is None and not pending:
            return None
        more = self._observe_existing(cloud) if found is not None else {}
        return {self.KEY: found, "pending": pending, **more}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        instance = self.config.names.sql_instance
        if observed is not None and observed.get("pending"):
            ops = ", ".join(observed["pending"])
            return self.wait(f"operation {ops} running on {instance}")
        if observed is None or observed.get(self.KEY) is None:
            return self.create(self._create_reason())
        return self._diff_existing(observed)


@dataclass(frozen=True)
class SqlDatabase(_OnInstance):
    name: str = field(default="sql-database", init=False)
    needs: Sequence[str] = field(default=("sql-instance",), init=False)

    OPS: ClassVar[tuple[str, ...]] = ("CREATE_DATABASE", "DELETE_DATABASE")
    EXPECT: ClassVar[Mapping[Action, str]] = {Action.CREATE: "sql.database"}
    KEY: ClassVar[str] = "database"

    @property
    def resource(self) -> str:
        n = self.config.names
        return f"{n.sql_instance}/{n.database}"

    def _get(self, cloud: Cloud) -> dict[str, Any] | None:
        n = self.config.names
        return cloud.sql.get_database(n.sql_instance, n.database)

    def _create_reason(self) -> str:
        n = self.config.names
        return f"create database {n.database} on {n.sql_instance}"

    def _diff_existing(self, observed: dict[str, Any]) -> Change:
        n = self.config.names
        return self.noop(
            f"database {n.database} exists on {n.sql_instance}", info={"database": n.database}
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
            if self._get(cloud) is None:  # "kept" names only what exists
                return self.noop(f"database {n.database} already gone")
            return self.noop(
                f"kept: database {n.database} holds the app's data; --delete-data to delete"
            )
        if cloud.sql.delete_database(n.sql_instance, n.database) is None:
            # not "already gone": in a destroy the sql-user step, which runs first, deleted it
            return self.noop(
                f"database {n.database} gone (the sql-user step deletes it before its user, "
                "who owns it)"
            )
        return self.deleted(f"deleting database {n.database}")


@dataclass(frozen=True)
class SqlUser(_OnInstance):
    """The tenant's user, its password the db-password secret's latest enabled version.

    A password cannot be read back: the version it was set from is recorded on the secret as
    the label PASSWORD_LABEL (Cloud SQL users carry no labels), written by apply after the
    password is set. observe reads that label and the latest enabled version; diff answers
    UPDATE when they differ (a new version added by hand, or never recorded), and apply sets
    the password again (users.update) and records the version."""

    name: str = field(default="sql-user", init=False)
    needs: Sequence[str] = field(default=("sql-database", "secrets"), init=False)

    OPS: ClassVar[tuple[str, ...]] = ("CREATE_USER", "DELETE_USER", "UPDATE_USER")
    EXPECT: ClassVar[Mapping[Action, str]] = {
        Action.CREATE: "sql.user",
        Action.UPDATE: "sql.user",
    }
    KEY: ClassVar[str] = "user"

    @property
    def resource(self) -> str:
        n = self.config.names
        return f"{n.sql_instance}/{n.db_user}"

    def _get(self, cloud: Cloud) -> dict[str, Any] | None:
        n = self.config.names
        return cloud.sql.get_user(n.sql_instance, n.db_user)

    def _observe_existing(self, cloud: Cloud) -> dict[str, Any]:
        sid = self.config.names.secret_db_password
        secret = cloud.secrets.get_secret(sid)
        if secret is None:
            return {"latest": None, "recorded": None}
        return {
            "latest": latest_enabled(cloud.secrets.list_versions(sid) or []),
            "recorded": (secret.get("labels") or {}).get(PASSWORD_LABEL),
        }

    def _create_reason(self) -> str:
        n = self.config.names
        return f"create user {n.db_user} with the password in secret {n.secret_db_password}"

    def _diff_existing(self, observed: dict[str, Any]) -> Change:
        n = self.config.names
        sid = n.secret_db_password
        latest, recorded = observed.get("latest"), observed.get("recorded")
        if latest is None:
            return self.refuse(
                Broken(
                    f"secret {sid} has no enabled version: the password of user {n.db_user} "
                    "comes from it (see the secrets step)"
                ),
                f"secret {sid} has no enabled version",
            )
        if recorded != latest:
            was = f"version {recorded}" if recorded else "a version not recorded"
            return self.update(
                f"set the password of user {n.db_user} from version {latest} of secret {sid} "
                f"(it was set from {was})",
                [
                    FieldChange(
                        "password",
                        f"secret version {recorded}" if recorded else None,
                        f"secret version {latest}",
                    )
                ],
            )
        return self.noop(
            f"user {n.db_user} exists, its password set from version {latest} of secret {sid} "
            "(a password cannot be read back, so it is not compared)",
            info={"db_user": n.db_user},
        )

    def _latest(self, cloud: Cloud) -> str:
        sid = self.config.names.secret_db_password
        version = cloud.secrets.latest_version(sid)
        if version is None:
            raise DeployError(
                f"secret {sid} has no enabled version: the database user's password comes from it"
            )
        return version

    def _password(self, cloud: Cloud, version: str) -> Secret:
        return cloud.secrets.access(self.config.names.secret_db_password, version)

    def apply(self, cloud: Cloud, change: Change) -> None:
        n = self.config.names
        version = self._latest(cloud)
        password = self._password(cloud, version)
        if change.action is Action.CREATE:
            try:
                cloud.sql.insert_user(n.sql_instance, n.db_user, password)
            except Conflict as exc:
                if exc.reason == "operationInProgress":
                    raise
                if cloud.sql.get_user(n.sql_instance, n.db_user) is None:
                    raise
                # it exists (an earlier run's insert landed): set its password from the secret
                cloud.sql.set_password(n.sql_instance, n.db_user, password)
        else:
            cloud.sql.set_password(n.sql_instance, n.db_user, password)
        cloud.secrets.merge_labels(n.secret_db_password, {PASSWORD_LABEL: version})

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        n = self.config.names
        if not delete_data:
            if self._get(cloud) is None:  # "kept" names only what exists
                return self.noop(f"user {n.db_user} already gone")
            return self.noop(
                f"kept: user {n.db_user} owns the objects in the kept database; "
                "--delete-data to delete"
            )
        # PostgreSQL drops no role that owns objects (the app's tables) or holds privileges
        # (db-init's grants) in a database, and the user goes first in reverse order: so the
        # database goes before it, and the sql-database step then finds it gone
        database = SqlDatabase(self.config)
        found = database.observe(cloud)
        if found is not None:
            if not found["pending"]:
                database.delete(cloud, delete_data=True)
            return self.wait(f"deleting database {n.database} first: user {n.db_user} owns it")
        if cloud.sql.delete_user(n.sql_instance, n.db_user) is None:
            return self.noop(f"user {n.db_user} already gone")
        return self.deleted(f"deleting user {n.db_user}")

"""Cloud SQL backup runs: taken on demand by an operation, listed newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..formats import rfc3339
from ..latency import register_duration
from ..local.postgres import PostgresError
from ..operations import completer
from . import records
from .errors import not_found
from .instances import Instances
from .operations import mark_failed, outcome
from .realize import cluster

if TYPE_CHECKING:
    from ..context import Emulator

register_duration("sql.backup", 60.0)


class BackupRuns:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = emu.store
        self.instances = Instances(emu)

    def list(self, project_id: str, instance: str) -> list[dict[str, Any]]:
        """Newest first."""
        self.instances.get(project_id, instance)
        prefix = records.children(project_id, instance)
        runs = [v for _, v in self.store.list(records.BACKUP_KIND, prefix)]
        runs.reverse()
        return runs

    def get(self, project_id: str, instance: str, backup_id: str) -> dict[str, Any]:
        self.instances.get(project_id, instance)
        run = self.store.get(
            records.BACKUP_KIND, records.child_key(project_id, instance, backup_id)
        )
        if run is None:
            raise not_found(f"backup run {backup_id}", "backupRunNotFound")
        return run

    def create(self, project_id: str, instance: str, description: str) -> dict[str, Any]:
        with self.store.transaction():
            self.instances.mutable(project_id, instance)
            backup_id = str(self.store.next_id("sql.backup") + 1_700_000_000_000)
            return self.instances.ops.start(
                project_id,
                instance,
                "BACKUP_VOLUME",
                completer="sql.backup.create",
                duration_kind="sql.backup",
                args={"id": backup_id, "description": description, "t": self.emu.clock()},
            )


@completer("sql.backup.create")
def _finish(emu: Emulator, op: dict[str, Any]) -> None:
    a = op["args"]
    p, i = a["project"], a["instance"]
    rec = emu.store.get(records.INSTANCE_KIND, records.instance_key(p, i))
    message = outcome(emu, op)
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
        "selfLink": f"{records.BASE}/projects/{p}/instances/{i}/backupRuns/{a['id']}",
        "location": rec["region"] if rec else "",
        "backupKind": "SNAPSHOT",
        "databaseVersion": rec["databaseVersion"] if rec else "",
    }
    server = cluster(emu, rec) if rec and message is None else None
    if server is not None and emu.local.postgres is not None:
        try:  # the backup is a real dump of the whole server
            server.dump(emu.local.postgres.backup_dir(p, i) / f"{a['id']}.sql")
        except PostgresError as exc:
            message = str(exc)
            run["status"] = "FAILED"
    if message is not None:
        run["error"] = {"kind": "sql#operationError", "code": "INTERNAL_ERROR", "message": message}
        mark_failed(op, message)
    emu.store.put(records.BACKUP_KIND, records.child_key(p, i, a["id"]), run)
    return None

"""Cloud SQL databases of an instance; created and deleted by operations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import records
from .errors import SqlError, invalid, not_found
from .instances import Instances
from .operations import child_completer

if TYPE_CHECKING:
    from ..context import Emulator


class Databases:
    def __init__(self, emu: Emulator) -> None:
        self.store = emu.store
        self.instances = Instances(emu)

    def list(self, project_id: str, instance: str) -> list[dict[str, Any]]:
        self.instances.get(project_id, instance)
        prefix = records.children(project_id, instance)
        return [v for _, v in self.store.list(records.DATABASE_KIND, prefix)]

    def get(self, project_id: str, instance: str, database: str) -> dict[str, Any]:
        self.instances.get(project_id, instance)
        db = self.store.get(
            records.DATABASE_KIND, records.child_key(project_id, instance, database)
        )
        if db is None:
            raise not_found(f"database {database}")
        return db

    def create(self, project_id: str, instance: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name") or ""
        if not name or len(name) > 63:
            raise invalid("database name is missing or too long.")
        return self.instances.start_child(
            project_id,
            instance,
            records.DATABASE_KIND,
            name,
            exists=SqlError(
                409,
                f'Invalid request: database "{name}" already exists on instance {instance}.',
                "alreadyExists",
            ),
            missing=None,
            op_type="CREATE_DATABASE",
            completer="sql.database.create",
            args={"charset": body.get("charset"), "collation": body.get("collation")},
        )

    def delete(self, project_id: str, instance: str, database: str) -> dict[str, Any]:
        return self.instances.start_child(
            project_id,
            instance,
            records.DATABASE_KIND,
            database,
            exists=None,
            missing=not_found(f"database {database}"),
            op_type="DELETE_DATABASE",
            completer="sql.database.delete",
            args={},
        )


@child_completer("sql.database.create")
def _finish_create(emu: Emulator, a: dict[str, Any]) -> None:
    db = records.database(a["project"], a["instance"], a["name"])
    db["charset"] = a.get("charset") or "UTF8"
    db["collation"] = a.get("collation") or "en_US.UTF8"
    emu.store.put(records.DATABASE_KIND, records.child_of(a), db)


@child_completer("sql.database.delete")
def _finish_delete(emu: Emulator, a: dict[str, Any]) -> None:
    emu.store.delete(records.DATABASE_KIND, records.child_of(a))

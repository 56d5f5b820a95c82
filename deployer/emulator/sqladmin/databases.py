"""Cloud SQL databases of an instance; created and deleted by operations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import records
from .errors import SqlError, invalid
from .instances import Children
from .operations import child_completer
from .realize import realizing

if TYPE_CHECKING:
    from ..context import Emulator


class Databases(Children):
    kind = records.DATABASE_KIND
    what = "database"

    def create(self, project_id: str, instance: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name") or ""
        if not name or len(name) > 63:
            raise invalid("database name is missing or too long.")
        exists = SqlError(
            409,
            f'Invalid request: database "{name}" already exists on instance {instance}.',
            "alreadyExists",
        )
        args = {"charset": body.get("charset"), "collation": body.get("collation")}
        return self.start(
            project_id,
            instance,
            name,
            "CREATE_DATABASE",
            completer="sql.database.create",
            args=args,
            exists=exists,
        )

    def delete(self, project_id: str, instance: str, database: str) -> dict[str, Any]:
        return self.start(
            project_id,
            instance,
            database,
            "DELETE_DATABASE",
            completer="sql.database.delete",
            args={},
        )


@child_completer("sql.database.create")
def _finish_create(emu: Emulator, a: dict[str, Any]) -> None:
    with realizing(emu, a) as server:
        if server is not None:
            server.create_database(a["name"])
    db = records.database(a["project"], a["instance"], a["name"])
    db["charset"] = a.get("charset") or "UTF8"
    db["collation"] = a.get("collation") or "en_US.UTF8"
    emu.store.put(records.DATABASE_KIND, records.child_of(a), db)


@child_completer("sql.database.delete")
def _finish_delete(emu: Emulator, a: dict[str, Any]) -> None:
    with realizing(emu, a) as server:
        if server is not None:
            server.drop_database(a["name"])
    emu.store.delete(records.DATABASE_KIND, records.child_of(a))

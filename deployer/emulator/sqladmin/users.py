"""Cloud SQL users of an instance; created, updated and deleted by operations. A password is
never stored: a user only remembers that it has one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import records
from .errors import SqlError, invalid
from .instances import Children
from .operations import child_completer
from .realize import realizing, verifier_arg

if TYPE_CHECKING:
    from ..context import Emulator


class Users(Children):
    kind = records.USER_KIND
    what = "user"

    def create(self, project_id: str, instance: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name") or ""
        if not name:
            raise invalid("user name is missing.")
        exists = SqlError(
            409, f"Invalid request: user {name} already exists on {instance}.", "alreadyExists"
        )
        args = {
            "type": body.get("type") or "BUILT_IN",
            "set_password": "password" in body,
            **verifier_arg(self.emu, "verifier", body.get("password")),
        }
        return self.start(
            project_id,
            instance,
            name,
            "CREATE_USER",
            completer="sql.user.create",
            args=args,
            exists=exists,
        )

    def update(
        self, project_id: str, instance: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        args = {
            "set_password": "password" in body,
            **verifier_arg(self.emu, "verifier", body.get("password")),
        }
        return self.start(
            project_id, instance, name, "UPDATE_USER", completer="sql.user.update", args=args
        )

    def delete(self, project_id: str, instance: str, name: str) -> dict[str, Any]:
        return self.start(
            project_id, instance, name, "DELETE_USER", completer="sql.user.delete", args={}
        )


@child_completer("sql.user.create")
def _finish_create(emu: Emulator, a: dict[str, Any]) -> None:
    with realizing(emu, a) as server:
        if server is not None and a["type"] == "BUILT_IN":
            server.create_role(a["name"], verifier=a.get("verifier"))
    u = records.user(a["project"], a["instance"], a["name"], a["type"])
    u["_hasPassword"] = a["set_password"]  # the password itself is never stored
    emu.store.put(records.USER_KIND, records.child_of(a), u)


@child_completer("sql.user.update")
def _finish_update(emu: Emulator, a: dict[str, Any]) -> None:
    with realizing(emu, a) as server:
        if server is not None and a.get("verifier") is not None:
            server.set_password(a["name"], a["verifier"])
    u = emu.store.get(records.USER_KIND, records.child_of(a))
    if u is not None:
        u["_hasPassword"] = u.get("_hasPassword") or a["set_password"]
        emu.store.put(records.USER_KIND, records.child_of(a), u)


@child_completer("sql.user.delete")
def _finish_delete(emu: Emulator, a: dict[str, Any]) -> None:
    with realizing(emu, a) as server:
        if server is not None:
            server.drop_role(a["name"])
    emu.store.delete(records.USER_KIND, records.child_of(a))

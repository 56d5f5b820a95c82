"""Cloud SQL's local execution (docs/emulator.md, "Local execution"): with execution on
(``emu.local``), a PostgreSQL instance is a real cluster (:mod:`deployer.emulator.local.postgres`)
or prefixed roles and databases on a server given by URL (:mod:`deployer.emulator.local.sharedpg`).

The backends' completers realize their effect before the operation is DONE, and a failure to
realize fails the operation with PostgreSQL's own message. Passwords travel in an operation's
args as SCRAM verifiers, never in clear. :func:`realize` brings the servers back when an emulator
starts on a stored state.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..local.postgres import PostgresError, Served, scram_verifier
from . import records

if TYPE_CHECKING:
    from ..context import Emulator


def verifier_arg(emu: Emulator, key: str, password: str | None) -> dict[str, str]:
    """``{key: verifier of password}`` for an operation's args when the emulator executes."""
    if password is None or not emu.local.enabled:
        return {}
    return {key: scram_verifier(password)}


def cluster(emu: Emulator, rec: dict[str, Any]) -> Served | None:
    """The instance's cluster when the emulator executes and it is PostgreSQL, else None."""
    pg = emu.local.postgres
    if pg is None or not rec["databaseVersion"].startswith("POSTGRES_"):
        return None
    return pg.cluster(rec["project"], rec["name"], region=rec["region"])


@contextlib.contextmanager
def realizing(emu: Emulator, a: dict[str, Any]) -> Iterator[Served | None]:
    """The cluster of the instance an operation's args name (None: nothing to realize); a
    PostgreSQL error inside fails the operation with its message."""
    rec = emu.store.get(records.INSTANCE_KIND, records.instance_key(a["project"], a["instance"]))
    try:
        yield cluster(emu, rec) if rec is not None else None
    except PostgresError as exc:
        raise ApiError(500, str(exc)) from None


def realize(emu: Emulator) -> None:
    """An emulator start: every RUNNABLE PostgreSQL instance's server runs again; one whose
    cluster is missing (made while execution was off) is made from the stored databases and
    users (those users have no password until one is set)."""
    for key, rec in emu.store.list(records.INSTANCE_KIND):
        found = cluster(emu, rec)
        if found is None or rec["state"] != "RUNNABLE":
            continue
        try:
            if found.exists():
                found.start()
                continue
            found.create(root_password_verifier=None)
            children = records.children(rec["project"], rec["name"])
            for _, db in emu.store.list(records.DATABASE_KIND, children):
                if db["name"] != "postgres":
                    found.create_database(db["name"])
            for _, user in emu.store.list(records.USER_KIND, children):
                if user["name"] != "postgres" and user["type"] == "BUILT_IN":
                    found.create_role(user["name"], verifier=None)
        except PostgresError as exc:
            print(f"djdeploy emulator: instance {key}: {exc}", file=sys.stderr)

"""db-init: prepare the tenant's database before the first migrate. Idempotent.

Runs as the tenant's own user (DB_USER, DB_PASSWORD) over the socket in DB_HOST: the job has no
other credentials. On Cloud SQL that user is a member of cloudsqlsuperuser, which owns databases
created through the Admin API, so it may create trusted extensions and grant on schema public.

1. CREATE EXTENSION IF NOT EXISTS for each name in DB_EXTENSIONS (only those missing).
2. PostgreSQL 15 no longer grants CREATE on schema public to PUBLIC; the schema belongs to
   pg_database_owner. Give DB_USER an explicit USAGE, CREATE on public unless it holds one, so
   migrate works whatever the database's owner (and keeps working if ownership changes).

Each run reads the state first and changes only what is missing; a second run changes nothing.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from djdeploy_runtime.dbwait import (
    RejectedError,
    connect,
    db_env,
    describe,
    first_line,
    wait_seconds,
)
from djdeploy_runtime.jsonlog import get_logger

log = get_logger("djdeploy.db-init")

_EXTENSION_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")


class DbInitError(Exception):
    pass


def extensions_from_env() -> list[str]:
    names = [n.strip() for n in os.environ.get("DB_EXTENSIONS", "").split(",") if n.strip()]
    bad = [n for n in names if not _EXTENSION_NAME.match(n)]
    if bad:
        raise DbInitError(f"DB_EXTENSIONS has invalid extension names: {', '.join(bad)}")
    return list(dict.fromkeys(names))


def connection_params() -> dict[str, Any]:
    db = db_env()
    return {
        "dbname": db["name"],
        "user": db["user"],
        "password": db["password"],
        "host": db["host"],
        "port": db["port"],
        "application_name": "djdeploy-db-init",
    }


def ensure_extensions(conn: Any, names: list[str]) -> list[str]:
    from psycopg import sql

    present = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
    created = []
    for name in names:
        if name in present:
            continue
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,)
        ).fetchone()
        if available is None:
            raise DbInitError(f"extension {name!r} is not available on this server")
        try:
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))
        except Exception as exc:
            raise DbInitError(f"cannot create extension {name!r}: {first_line(exc)}") from exc
        created.append(name)
    return created


_EXPLICIT_GRANTS = """
    SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a
    WHERE n.nspname = 'public'
      AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = current_user)
      AND a.privilege_type IN ('USAGE', 'CREATE')
"""

_EFFECTIVE_GRANTS = """
    SELECT has_schema_privilege('public', 'USAGE') AND has_schema_privilege('public', 'CREATE')
"""


def ensure_public_schema_grant(conn: Any, user: str) -> bool:
    """True when a grant was made, False when DB_USER already held it.

    A GRANT by a role without the right only warns ("no privileges were granted"), so the
    result is read back rather than trusted.
    """
    if conn.execute(_EXPLICIT_GRANTS).fetchone()[0] == 2:
        return False
    try:
        with conn.transaction():
            conn.execute("GRANT USAGE, CREATE ON SCHEMA public TO CURRENT_USER")
    except Exception as exc:
        reason = first_line(exc)
    else:
        if conn.execute(_EXPLICIT_GRANTS).fetchone()[0] == 2:
            return True
        reason = "no privileges were granted"
    if conn.execute(_EFFECTIVE_GRANTS).fetchone()[0]:
        return False  # held through role membership: migrate works as it is
    raise DbInitError(
        f"cannot grant USAGE, CREATE on schema public to {user} ({reason}); "
        f'a database owner must run: GRANT USAGE, CREATE ON SCHEMA public TO "{user}"'
    )


def main() -> int:
    params = connection_params()
    missing = [k for k in ("dbname", "user", "host") if not params[k]]
    if missing:
        log.error("db-init needs DB_NAME, DB_USER and DB_HOST; missing: %s", ", ".join(missing))
        return 2
    try:
        names = extensions_from_env()
        conn = connect(params, wait_seconds())
    except (DbInitError, TimeoutError, RejectedError) as exc:
        log.error("db-init failed: %s", exc)
        return 1
    try:
        with conn.transaction():
            created = ensure_extensions(conn, names)
            granted = ensure_public_schema_grant(conn, params["user"])
    except DbInitError as exc:
        log.error("db-init failed: %s", exc)
        return 1
    finally:
        conn.close()
    changes = [f"created extension {n}" for n in created]
    if granted:
        changes.append(f"granted USAGE, CREATE on schema public to {params['user']}")
    if changes:
        log.info("db-init on %s: %s", describe(params), "; ".join(changes))
    else:
        log.info(
            "db-init on %s: no changes (extensions %s present, grants in place)",
            describe(params),
            ", ".join(names) or "none requested",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

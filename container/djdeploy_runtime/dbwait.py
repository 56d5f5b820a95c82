"""Wait, for a bounded time, until the database accepts a connection.

``python -m djdeploy_runtime.dbwait`` waits for the database Django is configured with (the
runtime settings) for DB_WAIT_SECONDS (default 30); on timeout it logs one line and exits 1.
A server that answers but rejects the login (wrong password, unknown role or database) is not
waited for: that fails at once, since waiting would not change the answer.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

DEFAULT_WAIT_SECONDS = 30.0

# invalid_password, invalid_authorization_specification, invalid_catalog_name
REJECTED_SQLSTATES = frozenset({"28P01", "28000", "3D000"})
# libpq reports a refused login without its SQLSTATE: the server's (English) message then.
_REJECTED_MESSAGE = re.compile(
    r"password authentication failed|role \S+ does not exist|database \S+ does not exist"
    r"|no pg_hba\.conf entry|permission denied for database"
)


class RejectedError(Exception):
    """The server answered and refused the connection: retrying would not help."""


def db_env() -> dict[str, str]:
    """The database the DB_* variables of the contract name (password included: never log it)."""
    return {
        "name": os.environ.get("DB_NAME", "").strip(),
        "user": os.environ.get("DB_USER", "").strip(),
        "password": os.environ.get("DB_PASSWORD", ""),
        "host": os.environ.get("DB_HOST", "").strip(),
        "port": os.environ.get("DB_PORT", "").strip() or "5432",
    }


def wait_seconds() -> float:
    try:
        value = float(os.environ.get("DB_WAIT_SECONDS", ""))
    except ValueError:
        return DEFAULT_WAIT_SECONDS
    return value if value >= 0 else DEFAULT_WAIT_SECONDS


def describe(params: dict[str, Any]) -> str:
    """Where the database is, for log lines: never the password."""
    host = params.get("host") or "localhost"
    return f"database {params.get('dbname')!r} as {params.get('user')!r} at {host}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def rejected(exc: BaseException) -> bool:
    """Whether a connection error is the server refusing this login (not being unreachable)."""
    if getattr(exc, "sqlstate", None) in REJECTED_SQLSTATES:
        return True
    return bool(_REJECTED_MESSAGE.search(str(exc)))


def connect(params: dict[str, Any], seconds: float, sleep: Callable[[float], None] = time.sleep):
    """psycopg.connect(**params), retried until it succeeds or ``seconds`` have passed.

    Raises TimeoutError with the last error's first line, or RejectedError at once when the
    server refuses the login.
    """
    import psycopg

    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        # libpq's connect_timeout is whole seconds with a minimum of 2.
        attempt = {**params, "connect_timeout": max(2, min(10, math.ceil(remaining)))}
        try:
            return psycopg.connect(**attempt)
        except psycopg.OperationalError as exc:
            last = first_line(exc)
            if rejected(exc):
                raise RejectedError(
                    f"{describe(params)}: the server rejected the connection (check DB_USER, "
                    f"DB_PASSWORD and DB_NAME): {last}"
                ) from None
        if time.monotonic() + 1 > deadline:
            raise TimeoutError(
                f"{describe(params)} did not answer within {seconds:g}s (DB_WAIT_SECONDS): {last}"
            )
        sleep(1)


def main() -> int:
    import django
    from django.db import connections

    from djdeploy_runtime.jsonlog import get_logger

    log = get_logger("djdeploy.dbwait")
    django.setup()
    params = connections["default"].get_connection_params()
    try:
        conn = connect(params, wait_seconds())
    except (TimeoutError, RejectedError) as exc:
        log.error("%s", exc)
        return 1
    conn.close()
    log.info("%s is answering", describe(params))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The migrate job: wait for the database, migrate, collectstatic, then the superuser.

``python -m djdeploy_runtime.migrate`` (the entrypoint execs it, so it is the job's main process
and receives Cloud Run's SIGTERM). One process, one Django setup; each step logs one JSON summary
line (Django's own output is kept at verbosity 0) and the first failure logs one ERROR line and
exits non-zero. collectstatic never runs with --clear: STATIC_ROOT may share storage with uploads.

After migrating it records which migrations this image knows and which the database has applied
(``record_migrations``): a JSON object in the media bucket, written through its mount at
MEDIA_ROOT as ``.djdeploy/migrations/<execution>.json`` (CLOUD_RUN_EXECUTION, set by Cloud Run).
`djdeploy rollback` reads it to refuse a revision whose image does not know a migration the
database has applied (docs/rollback.md). A record that cannot be written is a warning, never a
failed migrate: rollback then says it cannot tell.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

from djdeploy_runtime import dbwait, superuser
from djdeploy_runtime.dbwait import first_line
from djdeploy_runtime.jsonlog import get_logger

log = get_logger("djdeploy.migrate")


def _terminated(signum: int, frame: FrameType | None) -> None:
    # As PID 1 a process ignores SIGTERM unless it handles it: stop, as the job was told to.
    log.error("migrate: stopped by signal %d", signum)
    raise SystemExit(128 + signum)


def run_migrate() -> str:
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections["default"])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    # System checks run first, as with manage.py migrate; their warnings are logged, not printed.
    _call("migrate", interactive=False, verbosity=0, skip_checks=False)
    if not plan:
        return "migrate: no migrations to apply"
    return f"migrate: applied {len(plan)} migration(s)"


def _call(name: str, **options: object) -> str:
    """call_command with Django's output captured; warnings in it are logged as one line."""
    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    call_command(name, stdout=out, stderr=err, **options)
    if err.getvalue().strip():
        log.warning("%s: %s", name, " ".join(err.getvalue().split()))
    return out.getvalue()


def run_collectstatic() -> str:
    from django.apps import apps
    from django.conf import settings

    if not apps.is_installed("django.contrib.staticfiles"):
        return "collectstatic: django.contrib.staticfiles is not installed: nothing to collect"
    # Verbosity 1 prints only the one-line summary ("N static files copied to ..."); no --clear.
    out = _call("collectstatic", interactive=False, verbosity=1, skip_checks=False)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    summary = lines[-1] if lines else f"static files collected into {settings.STATIC_ROOT}"
    return f"collectstatic: {summary}"


#: under MEDIA_ROOT (the media bucket's mount); deployer/rollbacks.py reads the same prefix
RECORD_DIR = ".djdeploy/migrations"
RECORD_VERSION = 1


def migration_record() -> dict[str, Any]:
    """{"known": {app: [names]}, "applied": {app: [names]}}: every migration on disk in this
    image (squashed ones too), and every one the database has applied."""
    from django.db import connections
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connections["default"])

    def by_app(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for app, name in sorted(keys):
            out.setdefault(app, []).append(name)
        return out

    return {
        "version": RECORD_VERSION,
        "known": by_app(loader.disk_migrations),
        "applied": by_app(loader.applied_migrations or ()),
    }


def record_migrations() -> str:
    """Write the record beside the uploads (the media bucket); the summary line to log."""
    execution = os.environ.get("CLOUD_RUN_EXECUTION", "")
    media = os.environ.get("MEDIA_ROOT", "")
    if not execution or not media:
        return "record: not a Cloud Run execution with a media mount: no migration record"
    record = {"execution": execution, **migration_record()}
    folder = Path(media) / RECORD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{execution}.json"
    temp = folder / f".{execution}.json.tmp"
    temp.write_text(json.dumps(record, sort_keys=True))
    temp.replace(path)  # a reader never sees half a record
    known = sum(len(v) for v in record["known"].values())
    return f"record: {known} known migration(s) recorded in {RECORD_DIR}/{execution}.json"


def main() -> int:
    signal.signal(signal.SIGTERM, _terminated)
    if dbwait.main() != 0:
        return 1
    for step in (run_migrate, run_collectstatic):
        try:
            log.info("%s", step())
        except Exception as exc:
            name = step.__name__.removeprefix("run_")
            detail = " ".join(str(exc).split())[:2000] or first_line(exc)
            log.error("migrate: %s failed: %s: %s", name, type(exc).__name__, detail)
            return 1
    if superuser.main() != 0:
        return 1
    try:
        log.info("%s", record_migrations())
    except Exception as exc:  # the migration itself succeeded: rollback will say it cannot tell
        log.warning("record: could not record the migrations: %s: %s", type(exc).__name__, exc)
    log.info("migrate: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

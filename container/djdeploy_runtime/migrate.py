"""The migrate job: wait for the database, migrate, collectstatic, then the superuser.

``python -m djdeploy_runtime.migrate`` (the entrypoint execs it, so it is the job's main process
and receives Cloud Run's SIGTERM). One process, one Django setup; each step logs one JSON summary
line (Django's own output is kept at verbosity 0) and the first failure logs one ERROR line and
exits non-zero. collectstatic never runs with --clear: STATIC_ROOT may share storage with uploads.
"""

from __future__ import annotations

import io
import signal
import sys
from types import FrameType

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
    log.info("migrate: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

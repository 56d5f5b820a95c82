"""Realizers: what turns the emulator's accepted state into running things (docs/emulator.md,
"Local execution"). They know nothing of HTTP or of the Google APIs: the backend that owns a
resource calls its realizer with plain names, and a realizer can be rebuilt from stored state.

:class:`Realizers` is the emulator's set of them (``emu.local``): off unless execution was asked
for, built on first use, stopped with the emulator.
"""

from __future__ import annotations

import fcntl
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO

from .build import LocalBuilds
from .frontdoor import FrontDoor
from .mounts import BUCKETS, Mounts
from .postgres import LocalPostgres, PostgresUnavailable

LOCK_NAME = "local.lock"
BUSY = (
    "another emulator executes on this state dir ({dir}): this one only answers the APIs "
    "(serve one emulator and point djdeploy at it with --endpoint)"
)


class Realizers:
    """The realizers of one emulator. ``execute=False``: none (API-only). A state dir is
    executed by one emulator at a time (an exclusive lock on ``<state>/local.lock``); without
    a state dir the clusters live in a temporary directory removed on :meth:`close`."""

    def __init__(self, state_dir: Path | None, *, execute: bool) -> None:
        self.enabled = execute
        self._temp = state_dir is None and execute
        self.dir = state_dir or (
            Path(tempfile.mkdtemp(prefix="djdeploy-emulator-")) if execute else None
        )
        self._lock: IO[bytes] | None = None
        self._postgres: LocalPostgres | None = None
        self._postgres_missing = False
        #: the front door (local/frontdoor.py): started by the emulator when it executes
        self.frontdoor: FrontDoor | None = None
        self._mounts: Mounts | None = None
        self._builds: LocalBuilds | None = None
        if self.enabled and self.dir is not None:
            self.enabled = self._take_lock(self.dir)

    def _take_lock(self, directory: Path) -> bool:
        lock = (directory / LOCK_NAME).open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            print(BUSY.format(dir=directory), file=sys.stderr)
            return False
        self._lock = lock
        return True

    @property
    def postgres(self) -> LocalPostgres | None:
        """The Cloud SQL realizer; None when execution is off or there is no PostgreSQL (said
        once, on stderr: the APIs keep working)."""
        if not self.enabled or self._postgres_missing or self.dir is None:
            return None
        if self._postgres is None:
            try:
                self._postgres = LocalPostgres.find(self.dir)
            except PostgresUnavailable as exc:
                self._postgres_missing = True
                print(f"djdeploy emulator: {exc}", file=sys.stderr)
                return None
        return self._postgres

    @property
    def builds(self) -> LocalBuilds | None:
        """The Cloud Build realizer (images, shared virtualenvs, pip's cache in the state dir);
        None when execution is off."""
        if not self.enabled or self.dir is None:
            return None
        if self._builds is None:
            self._builds = LocalBuilds(self.dir)
        return self._builds

    @property
    def mounts(self) -> Mounts | None:
        """The GCS FUSE directories (local/mounts.py); None when execution is off."""
        if not self.enabled or self.dir is None:
            return None
        if self._mounts is None:
            self._mounts = Mounts(self.dir / BUCKETS)
        return self._mounts

    def bucket_dir(self, bucket: str) -> Path | None:
        """The directory a GCS FUSE volume of ``bucket`` mounts (``<state>/buckets/<bucket>``):
        its files are the bucket's objects, from the first mount on. None when execution is
        off."""
        mounts = self.mounts
        return None if mounts is None else mounts.mount(bucket)

    def revision_address(self, revision: str) -> tuple[str, int] | None:
        """Where the serving instance of ``revision`` (its full resource name) listens on
        loopback, or None (not running here). Filled in by the serving realizer."""
        return None

    def reset(self) -> None:
        """The emulator forgets everything: nothing it ran is left running or on disk."""
        if self._postgres is not None:
            self._postgres.remove_all()
        if self._mounts is not None:
            self._mounts.remove_all()
        if self._builds is not None:
            self._builds.remove_all()

    def describe(self) -> dict[str, object]:
        """What runs: ``{"executing", "postgres": source or None, "sql": [server, ...],
        "frontdoor": {"url", "port", "token", "hosts"} or None}``."""
        pg = self.postgres
        return {
            "executing": self.enabled,
            "postgres": None if pg is None else pg.binaries.source,
            "sql": [] if pg is None else pg.describe(),
            "frontdoor": None if self.frontdoor is None else self.frontdoor.describe(),
        }

    def close(self) -> None:
        """Stop everything this emulator runs."""
        if self.frontdoor is not None:
            self.frontdoor.stop()
            self.frontdoor = None
        if self._postgres is not None:
            self._postgres.stop_all()
        if self._builds is not None:
            self._builds.stop_all()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self._temp and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.enabled = False

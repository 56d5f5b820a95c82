"""The emulator's set of realizers (``emu.local``): see the package's docstring."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from .build import LocalBuilds
from .buildah import Buildah, engine_from
from .container import ContainerRun, SpecMaker, process_spec, release_short_dir
from .frontdoor import FrontDoor
from .image import BUILDAH
from .jobs import LocalJobs
from .mounts import BUCKETS, Mounts
from .pgwire import URL_ENV, parse_url
from .postgres import (
    Instances,
    LocalPostgres,
    PostgresError,
    stale_postmasters,
    stop_postmaster,
)
from .processes import PROCESSES, Spec, Supervisor, reap_stale, stale
from .redis import UNAVAILABLE as REDIS_UNAVAILABLE
from .redis import LocalRedis, find_server
from .scheduler import Ticker
from .serving import LocalServing
from .sharedpg import SharedServer
from .workers import LocalWorkers

LOCK_NAME = "local.lock"
BUSY = (
    "another emulator executes on this state dir ({dir}): this one only answers the APIs "
    "(serve one emulator and point djdeploy at it with --endpoint)"
)


def find_postgres(
    state_dir: Path, *, url: str | None, environ: Mapping[str, str] = os.environ
) -> Instances:
    """Where Cloud SQL instances are realized: a server given by URL (``url``, else
    DJDEPLOY_EMULATOR_POSTGRES_URL) wins; else clusters of the machine's PostgreSQL, else of
    the ``local`` extra's. PostgresError (one line) when none can be used."""
    given = url or environ.get(URL_ENV)
    if given:
        source = "--postgres-url" if url else URL_ENV
        server = parse_url(given, source=source)
        try:
            return SharedServer.open(state_dir, server)
        except PostgresError as exc:
            raise PostgresError(
                f"{exc}: Cloud SQL instances stay API-only (fix {source})"
            ) from None
    return LocalPostgres.find(state_dir)


def leftovers(state_dir: Path) -> list[str]:
    """What an emulator that was killed left running on ``state_dir`` (processes it recorded,
    PostgreSQL servers on its clusters); observes only."""
    return stale(state_dir / PROCESSES) + [
        f"postgres (pid {pid})" for pid in stale_postmasters(state_dir)
    ]


def reap_leftovers(state_dir: Path) -> list[str]:
    """Stop what :func:`leftovers` finds, unless an emulator executes ``state_dir`` (it holds
    the lock: they are its own); what was stopped."""
    with (state_dir / LOCK_NAME).open("ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []
        stopped = reap_stale(state_dir / PROCESSES)
        for pid in stale_postmasters(state_dir):
            stop_postmaster(pid)
            stopped.append(f"postgres (pid {pid})")
        return stopped


class Realizers:
    """The realizers of one emulator. ``execute=False``: none (API-only). A state dir is
    executed by one emulator at a time (an exclusive lock on ``<state>/local.lock``); without
    a state dir the clusters live in a temporary directory removed on :meth:`close`. What
    builds images (``local``, ``buildah``) is the ``DJDEPLOY_EMULATOR_ENGINE`` setting, read once
    here."""

    def __init__(
        self, state_dir: Path | None, *, execute: bool, postgres_url: str | None = None
    ) -> None:
        self.enabled = execute
        self._postgres_url = postgres_url
        self.engine, problem = engine_from(os.environ)
        if problem is not None and execute:
            print(f"djdeploy emulator: {problem}", file=sys.stderr)
        #: buildah (local/buildah.py): builds with the buildah engine, runs what it built
        self.buildah = Buildah.from_environ(os.environ)
        self._temp = state_dir is None and execute
        self.dir = state_dir or (
            Path(tempfile.mkdtemp(prefix="djdeploy-emulator-")) if execute else None
        )
        self._lock: IO[bytes] | None = None
        self._postgres: Instances | None = None
        self._postgres_missing = False
        #: the front door (local/frontdoor.py): started by the emulator when it executes
        self.frontdoor: FrontDoor | None = None
        self._mounts: Mounts | None = None
        self._builds: LocalBuilds | None = None
        self._making = threading.Lock()
        self._supervisor: Supervisor | None = None
        self._jobs: LocalJobs | None = None
        self._serving: LocalServing | None = None
        self._workers: LocalWorkers | None = None
        self._scheduler: Ticker | None = None
        self._uptime: Ticker | None = None
        self._redis: LocalRedis | None = None
        self._redis_missing = False
        if self.enabled and self.dir is not None:
            self.enabled = self._take_lock(self.dir)
            if self.enabled:
                reap_stale(self.dir / PROCESSES)  # left by an emulator killed on this dir

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
    def postgres(self) -> Instances | None:
        """The Cloud SQL realizer; None when execution is off or there is no PostgreSQL (said
        once, on stderr: the APIs keep working)."""
        if not self.enabled or self._postgres_missing or self.dir is None:
            return None
        if self._postgres is None:
            try:
                self._postgres = find_postgres(self.dir, url=self._postgres_url)
            except PostgresError as exc:
                self._postgres_missing = True
                print(f"djdeploy emulator: {exc}", file=sys.stderr)
                return None
        return self._postgres

    @property
    def processes(self) -> Supervisor | None:
        """The supervisor of the jobs', services' and worker pools' processes; None when
        execution is off."""
        if not self.enabled or self.dir is None:
            return None
        with self._making:  # request threads may ask first at the same time
            if self._supervisor is None:
                self._supervisor = Supervisor(self.dir / PROCESSES)
            return self._supervisor

    @property
    def jobs(self) -> LocalJobs | None:
        """Cloud Run job executions run here (None when execution is off)."""
        supervisor = self.processes
        if supervisor is None:
            return None
        with self._making:
            if self._jobs is None:
                self._jobs = LocalJobs(supervisor)
            return self._jobs

    @property
    def serving(self) -> LocalServing | None:
        """Cloud Run revisions served here (None when execution is off)."""
        supervisor = self.processes
        if supervisor is None:
            return None
        with self._making:
            if self._serving is None:
                self._serving = LocalServing(supervisor)
            return self._serving

    @property
    def workers(self) -> LocalWorkers | None:
        """Cloud Run worker pools run here (None when execution is off)."""
        supervisor = self.processes
        if supervisor is None:
            return None
        with self._making:
            if self._workers is None:
                self._workers = LocalWorkers(supervisor)
            return self._workers

    @property
    def redis(self) -> LocalRedis | None:
        """Memorystore for Redis instances run here as redis-server processes; None when
        execution is off or there is no redis-server (said once, on stderr)."""
        supervisor = self.processes
        if supervisor is None or self._redis_missing or self.dir is None:
            return None
        with self._making:
            if self._redis is None:
                server = find_server()
                if server is None:
                    self._redis_missing = True
                    print(f"djdeploy emulator: {REDIS_UNAVAILABLE}", file=sys.stderr)
                    return None
                self._redis = LocalRedis(self.dir / "redis", supervisor, server=server)
            return self._redis

    @property
    def scheduler(self) -> Ticker | None:
        """The ticker that fires Cloud Scheduler's jobs on their schedule (local/scheduler.py);
        None when execution is off."""
        if not self.enabled:
            return None
        with self._making:
            if self._scheduler is None:
                self._scheduler = Ticker()
            return self._scheduler

    @property
    def uptime(self) -> Ticker | None:
        """The ticker that runs Cloud Monitoring's uptime checks on their period (its own
        thread: a probe waiting on a slow service never delays a scheduled job); None when
        execution is off."""
        if not self.enabled:
            return None
        with self._making:
            if self._uptime is None:
                self._uptime = Ticker("uptime checker")
            return self._uptime

    def cloudsql_dir(self) -> Path | None:
        """What a Cloud SQL volume mounts: the connector layout the PostgreSQL servers'
        sockets are linked into (``<state>/cloudsql``)."""
        if not self.enabled or self.dir is None:
            return None
        path = self.dir / "cloudsql"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def socket_dirs(self, connection_names: list[str]) -> dict[str, Path]:
        """The PostgreSQL socket directories the layout's links of these instances
        (``PROJECT:REGION:INSTANCE``) point into, each by its own path; none without
        PostgreSQL."""
        pg = self.postgres
        out: dict[str, Path] = {}
        if pg is None:
            return out
        for name in connection_names:
            project, _, rest = name.partition(":")
            region, _, instance = rest.partition(":")
            socket_dir = pg.cluster(project, instance, region=region).socket_dir
            out[str(socket_dir)] = socket_dir
        return out

    @property
    def builds(self) -> LocalBuilds | None:
        """The Cloud Build realizer (images, shared virtualenvs, pip's cache in the state dir);
        None when execution is off."""
        if not self.enabled or self.dir is None:
            return None
        if self._builds is None:
            engine = self.buildah if self.engine == BUILDAH else None
            self._builds = LocalBuilds(self.dir, buildah=engine)
        return self._builds

    def process_spec(self, run: ContainerRun) -> Spec:
        """The process that runs ``run.container`` of its image: in the image with buildah
        when buildah built it (local/buildah.py), else with the image's paths moved
        (local/container.py)."""
        maker: SpecMaker = (
            self.buildah.process_spec if run.image.config().engine == BUILDAH else process_spec
        )
        return maker(run)

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
        loopback, or None (not running here, or not Ready yet)."""
        return None if self._serving is None else self._serving.address(revision)

    def _stop_processes(self) -> None:
        if self._redis is not None:
            self._redis.stop_all()
        if self._serving is not None:
            self._serving.stop_all()
        if self._workers is not None:
            self._workers.stop_all()
        if self._jobs is not None:
            self._jobs.stop_all()
        if self._supervisor is not None:
            self._supervisor.close()
        self._serving = self._workers = self._jobs = self._supervisor = self._redis = None
        if self.dir is not None:
            release_short_dir(self.dir / "cloudsql")

    def _remove_postgres(self) -> None:
        """Every instance removed; a server given by URL that fails it is said in one line
        (what is left there goes with the next reset)."""
        assert self._postgres is not None
        try:
            self._postgres.remove_all()
        except PostgresError as exc:
            print(f"djdeploy emulator: {exc}", file=sys.stderr)

    def reset(self) -> None:
        """The emulator forgets everything: nothing it ran is left running or on disk."""
        if self._redis is not None:
            self._redis.remove_all()
        self._stop_processes()
        if self._postgres is not None:
            self._remove_postgres()
        if self._mounts is not None:
            self._mounts.remove_all()
        builds = self.builds  # also what an earlier emulator on this state dir built
        if builds is not None:
            builds.remove_all()

    def describe(self) -> dict[str, object]:
        """What runs: ``{"executing", "engine": "local" | "buildah", "postgres": source or None,
        "sql": [server, ...], "frontdoor": {"url", "port", "token", "hosts"} or None,
        "processes": [{"what", "pid"}, ...], "revisions": {revision: "127.0.0.1:port"},
        "redis": [{"instance", "port", "url"}, ...]}``."""
        pg = self.postgres
        revisions: dict[str, str] = {}
        if self._serving is not None:
            for name in self._serving.revisions():
                address = self._serving.address(name)
                if address is not None:
                    revisions[name] = f"{address[0]}:{address[1]}"
        procs = [] if self._supervisor is None else self._supervisor.running()
        return {
            "executing": self.enabled,
            "engine": self.engine,
            "postgres": None if pg is None else pg.source,
            "sql": [] if pg is None else pg.describe(),
            "frontdoor": None if self.frontdoor is None else self.frontdoor.describe(),
            "processes": [{"what": p.spec.what, "pid": p.pid} for p in procs],
            "revisions": revisions,
            "redis": [] if self._redis is None else self._redis.describe(),
        }

    def close(self) -> None:
        """Stop everything this emulator runs."""
        for ticker in (self._scheduler, self._uptime):  # first: nothing fires while the rest stops
            if ticker is not None:
                ticker.stop()
        self._scheduler = self._uptime = None
        if self.frontdoor is not None:
            self.frontdoor.stop()
            self.frontdoor = None
        self._stop_processes()
        if self._postgres is not None:
            if self._temp:  # what it made on a server given by URL goes with the directory
                self._remove_postgres()
            else:
                self._postgres.stop_all()
        if self._builds is not None:
            self._builds.stop_all()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self._temp and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.enabled = False

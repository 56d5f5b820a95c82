"""The Python API: the same operations as the CLI, for scripts and tests.

    from deployer import Config, Target, up
    result = up(Config(tenant="demo", project="my-proj"), target=Target(emulator=True))

A Target says where API calls go: Google (default, Application Default Credentials), one HTTP
endpoint (an emulator started with `djdeploy emulator serve`), or the built-in emulator, which
runs in this process with its state in the user's data directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import re
import socket
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from deployer import health
from deployer.clock import Clock, RealClock
from deployer.config import EMULATOR_PROJECT, Config
from deployer.config.model import NO_PROJECT
from deployer.config.rules import CRON_NAME_RE
from deployer.engine import Engine, OnEvent, OnSteps, Options, RunResult
from deployer.errors import (
    CloudError,
    ConfigError,
    Conflict,
    DeployError,
    MaybeApplied,
    StepFailed,
    Unreachable,
    means_absent,
)
from deployer.gcp import auth
from deployer.gcp.clients import EVERY_KIND
from deployer.gcp.cloud import Cloud
from deployer.gcp.logging import MAX_PAGE, LogEntry
from deployer.gcp.secrets import enabled_numbers
from deployer.lease import (
    BOOTSTRAP_STEPS,
    Holder,
    Lease,
    LeaseTiming,
    Locked,
    OnNotice,
    current_holder,
    guarded,
    lease_name,
    store_for,
)
from deployer.management import ManageRun
from deployer.preflight import check as check_source
from deployer.rollbacks import Rollback
from deployer.steps import build_steps
from deployer.steps.base import Action, Change, Step
from deployer.steps.ci import CiTrigger
from deployer.steps.container_env import MANAGE, short
from deployer.steps.iam import IamDeployer
from deployer.steps.monitoring import UptimeResult, latest_result
from deployer.steps.rotation import KINDS, ROTATING, Rotated, secret_ids
from deployer.target import (
    ENDPOINT,
    Target,
    default_state_dir,
    state_problem,
)

REACH_TIMEOUT = 5.0  # seconds to open a connection to --endpoint before the first call


def reach(endpoint: str) -> None:
    """Open (and close) a connection to `endpoint`, so that an emulator that is not running
    is one line saying how to start it, not retries and a traceback from the first call."""
    match = ENDPOINT.match(endpoint)
    assert match is not None  # Target checked it
    scheme, host, port = match.groups()
    number = int(port) if port else (443 if scheme == "https" else 80)
    try:
        socket.create_connection((host, number), timeout=REACH_TIMEOUT).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise Unreachable(
            f"nothing answers at {endpoint} ({why}): start the emulator with `djdeploy "
            f"emulator serve --port {number}`, or use the built-in one with --emulator"
        ) from None


@contextlib.contextmanager
def connect(
    project: str,
    region: str,
    target: Target,
    *,
    clock: Clock | None = None,
    kinds: tuple[str, ...] = EVERY_KIND,
) -> Iterator[tuple[Cloud, float]]:
    """A Cloud for `target` and the time scale its waits run at; starts (and stops) the
    built-in emulator when asked. `clock` (default: real time) is the one the deployer waits on
    and the built-in emulator runs on; `kinds`, the GAPIC clients the command builds."""
    clock = clock or RealClock()
    if not target.emulator:
        clients = target.clients(target.endpoint, project, kinds)
        if target.endpoint:
            reach(target.endpoint)
        else:
            auth.ready(clients)
        cloud = Cloud(project, region, clients, clock=clock)
        yield cloud, target.scale
        return
    from deployer.emulator.server import Emulator, serve
    from deployer.emulator.store import StateError

    state_dir = target.state_dir or default_state_dir()
    # an explicit --time-scale changes a stored emulator state; the default keeps its speed
    try:
        emulator = Emulator(
            state_dir=state_dir,
            time_scale=target.scale,
            set_time_scale=target.time_scale is not None,
            execute=target.execute,
            clock=clock,
        )
    except StateError as exc:
        raise state_problem(exc, state_dir) from None
    running = serve(emulator)
    try:
        clients = target.clients(running.url, project, kinds)
        cloud = Cloud(project, region, clients, clock=clock)
        yield cloud, emulator.latency.time_scale  # a stored state keeps its own speed
    finally:
        running.stop()


def local_url(cloud_url: str, target: Target) -> str:
    """Where the front door of an emulator that executes serves `cloud_url`
    (http://HOST.localhost:PORT for https://HOST.run.app; docs/emulator.md), "" for Google, an
    emulator that does not execute, or no URL. The built-in emulator keeps its front door's
    port in its state directory; an emulator at --endpoint says it at /_emulator/local."""
    if not cloud_url or not (target.emulator or target.endpoint):
        return ""
    from deployer.emulator.local import frontdoor

    if target.emulator:
        stored = frontdoor.Stored.read(target.state_dir or default_state_dir())
        return frontdoor.local_url(cloud_url, stored.port) if target.execute and stored else ""
    assert target.endpoint is not None
    admin = target.endpoint.rstrip("/") + "/_emulator/local"
    try:
        with urllib.request.urlopen(admin, timeout=REACH_TIMEOUT) as resp:
            door = json.load(resp).get("frontdoor")
        return frontdoor.local_url(cloud_url, int(door["port"])) if door else ""
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return ""  # not an emulator of this version: no local URL to show


def resolve(config: Config, target: Target) -> Config:
    """``config`` with its project: a Config without one gets the emulator's (djdeploy-demo)
    when the target is an emulator; on Google it is refused before any API call."""
    if config.project:
        return config
    if target.emulator or target.endpoint:
        return dataclasses.replace(config, project=EMULATOR_PROJECT)
    raise ConfigError(NO_PROJECT)


def _engine(session: tuple[Cloud, float], on_event: OnEvent | None) -> Engine:
    cloud, scale = session
    engine = Engine(cloud, options=Options.scaled(scale))
    if on_event is not None:
        engine.on_event = on_event
    return engine


def _lease(
    engine: Engine, config: Config, command: str, *, wait: bool, on_lease: OnNotice | None
) -> Lease:
    lease = Lease(
        store_for(engine.cloud, config),
        config.tenant,
        command,
        clock=engine.clock,
        timing=LeaseTiming.scaled(engine.options),
        wait=wait,
    )
    if on_lease is not None:
        lease.on_notice = on_lease
    return lease


def _bootstrap(engine: Engine, steps: list[Step], config: Config, *, wait: bool) -> RunResult:
    """Converge what the tenant's lease needs, the Storage API and the staging bucket:
    shared by the project's tenants and idempotent, so they run unlocked, before it. Not
    `wait` (--no-wait): a lease someone holds is refused first, so that the refusal is the
    run's only output (acquire() reads it again after the bootstrap: it may change meanwhile;
    no bucket yet reads as no lease)."""
    if not wait:
        holder = current_holder(engine.cloud, config)
        if holder is not None:
            raise Locked(holder)
    return engine.up([s for s in steps if s.name in BOOTSTRAP_STEPS])


def up(
    config: Config,
    *,
    target: Target | None = None,
    on_event: OnEvent | None = None,
    clock: Clock | None = None,
    wait: bool = True,
    on_lease: OnNotice | None = None,
    on_steps: OnSteps | None = None,
) -> RunResult:
    """Deploy: bring every step to its desired state. Safe to run again after any failure.

    The bootstrap (Storage API, staging bucket) converges first, unlocked; everything else
    runs under the tenant's lease. Another run holding it: wait for it (or raise
    lease.Locked when not `wait`). First, before any API call, the source preflight
    (deployer/preflight.py): a project the build would refuse raises PreflightError."""
    target = target or Target()
    config = resolve(config, target)
    check_source(config)
    steps = build_steps(config)
    if on_steps is not None:
        on_steps([step.name for step in steps])
    return _converge(config, steps, target, on_event, clock, wait, on_lease)


def _converge(
    config: Config,
    steps: list[Step],
    target: Target,
    on_event: OnEvent | None,
    clock: Clock | None,
    wait: bool,
    on_lease: OnNotice | None,
) -> RunResult:
    """up's run of ``steps``: the bootstrap, then the rest under the tenant's lease."""
    with connect(config.project, config.region, target, clock=clock) as session:
        engine = _engine(session, on_event)
        start = engine.clock.monotonic()
        boot = _bootstrap(engine, steps, config, wait=wait)
        if not boot.ok:
            return boot
        lease = _lease(engine, config, "up", wait=wait, on_lease=on_lease)
        with lease.held():
            result = engine.up(guarded(steps, lease), converged=BOOTSTRAP_STEPS)
        if not result.ok and lease.lost:
            lease.check()  # raises LeaseLost: the one cause worth saying
    first = {r.step: r for r in boot.results}
    return RunResult(
        [first.get(r.step, r) for r in result.results], engine.clock.monotonic() - start
    )


@dataclass(frozen=True)
class Snapshot:
    """What plan and status observe: every step's diff, and the run holding the tenant's
    lease now, if any (they take none: what they show may be changing)."""

    changes: list[Change]
    holder: Holder | None
    uptime: UptimeResult | None = None  # with uptime=True and [monitoring] on


def snapshot(
    config: Config,
    *,
    target: Target | None = None,
    preflight: bool = False,
    uptime: bool = False,
) -> Snapshot:
    """Observe and diff every step, and read the tenant's lease. Read-only. With `preflight`
    (plan), the source preflight first, before any API call; with `uptime` (status), the
    uptime check's latest result when there is one (docs/monitoring.md)."""
    target = target or Target()
    config = resolve(config, target)
    if preflight:
        check_source(config)
    steps = build_steps(config)
    with connect(config.project, config.region, target) as session:
        changes = _engine(session, None).plan(steps)
        holder = current_holder(session[0], config)
        result = latest_result(session[0], changes) if uptime else None
        return Snapshot(changes, holder, result)


#: the steps that make the tenant's own resources: service accounts first (right after the
#: shared bootstrap), then its labelled ones (what `djdeploy status` lists tenants by)
OWN_STEPS = (
    "service-accounts",
    "secrets",
    "sql-instance",
    "bucket",
    "registry",
    "db-init",
    "migrate",
    "service",
    "worker",
    "redis",
    "alert-channel",
    "uptime-check",
    "alert-policy",
    "domains",
    "ci",
)


def _own(config: Config, step: str) -> bool:
    """A step of the tenant's own resources; a shared instance is nobody's."""
    return step in OWN_STEPS and not (step == "sql-instance" and config.names.sql_instance_shared)


def deployed(config: Config, seen: Snapshot) -> bool:
    """Whether the tenant exists, from what status read anyway: a run holds its lease, or one
    of its own steps found its resource (a first up cut short shows; a misspelt tenant,
    whose every own step finds nothing, does not)."""
    found = (c for c in seen.changes if _own(config, c.step) and c.action is not Action.CREATE)
    return seen.holder is not None or any(found)


def destroyed_anything(config: Config, changes: list[Change]) -> bool:
    """Whether destroy found anything of the tenant: deleted it, or kept it (kept names only
    what exists). The shared bootstrap steps (apis, the staging bucket) and a shared
    instance are nobody's."""
    return any(
        (c.action is Action.DELETE or c.reason.startswith("kept"))
        and c.step not in BOOTSTRAP_STEPS
        and not (c.step == "sql-instance" and config.names.sql_instance_shared)
        for c in changes
    )


def not_deployed(config: Config) -> str:
    return (
        f"no tenant {config.tenant} is deployed in project {config.project}: "
        "`djdeploy status` lists the tenants"
    )


def plan(config: Config, *, target: Target | None = None) -> list[Change]:
    """What `up` would change, step by step. Read-only. A project the build would refuse
    raises PreflightError first (deployer/preflight.py)."""
    return snapshot(config, target=target, preflight=True).changes


@dataclass(frozen=True)
class Status:
    """The tenant's live state, as `status()` reads it.

    ``url``: the service's URL ("" when it does not exist); ``urls``: every URL it answers on
    (the run.app ones, then config.domains); ``healthy``: the service serves a ready revision
    of the current spec (Cloud Run's startup probe on the readiness path passed: the database
    answers); ``health``: the service step's one-line reason; ``steps``: step -> state (ok,
    missing, drift, failed, in-progress, pending-run); ``in_sync``: every step is ok (a plan
    would change nothing); ``changes`` and ``holder`` as snapshot() gives them; ``uptime``:
    the uptime check's latest result ([monitoring] on and the check exists)."""

    tenant: str
    url: str
    urls: tuple[str, ...]
    healthy: bool
    health: str
    steps: dict[str, str]
    in_sync: bool
    changes: list[Change]
    holder: Holder | None
    uptime: UptimeResult | None = None


def status(config: Config, *, target: Target | None = None) -> Status:
    """The tenant's live state: URL, health, each step's state. Read-only."""
    target = target or Target()
    config = resolve(config, target)
    seen = snapshot(config, target=target, uptime=True)
    service = next((c for c in seen.changes if c.step == "service"), None)
    url = service.info.get("url", "") if service else ""
    others = service.info.get("urls", "") if service else ""
    urls = tuple(dict.fromkeys(u for u in (url, *others.split(", ")) if u))
    return Status(
        tenant=config.tenant,
        url=url,
        urls=urls,
        healthy=service is not None and service.state == "ok",
        health=service.reason if service else "no service step",
        steps={c.step: c.state for c in seen.changes},
        in_sync=all(c.state == "ok" for c in seen.changes),
        changes=seen.changes,
        holder=seen.holder,
        uptime=seen.uptime,
    )


def destroy(
    config: Config,
    *,
    delete_data: bool = False,
    target: Target | None = None,
    on_event: OnEvent | None = None,
    clock: Clock | None = None,
    wait: bool = True,
    on_lease: OnNotice | None = None,
    on_steps: OnSteps | None = None,
) -> list[Change]:
    """Delete what `up` made, in reverse order. Data (database, media, secrets) is kept
    unless delete_data.

    Under the tenant's lease, like up, after the same bootstrap: where no up ever ran, that
    enables the APIs and creates the staging bucket, which is what makes a destroy racing a
    project's very first up safe (docs/concurrency.md)."""
    target = target or Target()
    config = resolve(config, target)
    steps = build_steps(config)
    if on_steps is not None:
        on_steps([step.name for step in steps])
    command = "destroy --delete-data" if delete_data else "destroy"
    with connect(config.project, config.region, target, clock=clock) as session:
        engine = _engine(session, on_event)
        failed = [r.error for r in _bootstrap(engine, steps, config, wait=wait).results if r.error]
        if failed:
            raise DeployError(failed[0])
        lease = _lease(engine, config, command, wait=wait, on_lease=on_lease)
        with lease.held():
            try:
                return engine.destroy(guarded(steps, lease), delete_data=delete_data)
            except StepFailed:
                lease.check()  # a lost lease is the cause to report
                raise


def unlock(
    config: Config, *, target: Target | None = None, confirm: Callable[[Holder], bool]
) -> Holder | None:
    """Remove the tenant's lease, for a holder that cannot release it (a killed process,
    a lost machine): returns whom it removed, None when nobody held it. `confirm` sees the
    holder first; a live holder stops at its next heartbeat."""
    target = target or Target()
    config = resolve(config, target)
    with connect(config.project, config.region, target) as (cloud, _):
        store = store_for(cloud, config)
        name = lease_name(config.tenant)
        stored = store.read(name)
        if stored is None:
            return None
        holder = Holder.from_fields(stored.fields, tenant=config.tenant)
        if not confirm(holder):
            raise DeployError("not confirmed: the lease was kept")
        # a live holder rewrites its lease (a new generation) at each heartbeat: delete
        # the generation we read, else the same holder's newer one, never another's
        while stored is not None and stored.fields.get("id") == holder.id:
            if store.delete(name, if_generation=stored.generation):
                return holder
            stored = store.read(name)
        if stored is not None:
            raise DeployError(
                f"the lease on tenant {config.tenant} changed hands while you confirmed "
                "(nothing removed): run unlock again to see its new holder"
            )
        return holder  # its holder released it meanwhile


#: the GAPIC clients _managed's list calls use: the others are not imported
LISTING = ("run.services", "run.jobs", "secretmanager")


def _managed(project: str, region: str, target: Target | None) -> dict[str, list[dict[str, Any]]]:
    """Every labelled resource of the project, by tenant: one list call per kind, whatever the
    number of tenants."""
    found: dict[str, list[dict[str, Any]]] = {}
    with connect(project, region, target or Target(), kinds=LISTING) as (cloud, _):
        # in the order their clients' modules are imported (gcp/clients.py STAGES): the
        # discovery ones' requests go out while Storage's and the GAPIC ones' still import
        apis = (cloud.sql, cloud.registry, cloud.storage, cloud.run, cloud.secrets)
        for api in apis:
            try:
                listed = api.list_managed()
            except CloudError as exc:
                if not means_absent(exc):  # an API not enabled yet holds nothing
                    raise
                listed = []
            for res in listed:
                tenant = res["labels"].get("djdeploy-tenant")
                if tenant:
                    found.setdefault(tenant, []).append(res)
    return found


#: why a service's health is not probed
NO_URL = "no URL yet"
NOT_SERVED = "not served (the emulator does not execute)"


def tenants(
    project: str, region: str, *, target: Target | None = None
) -> list[health.TenantOverview]:
    """Every tenant found in the project by its labels: its resources, and each service's URL
    and health. One list call per kind whatever the number of tenants, then one GET of each
    service's health path, all at once (``health.probe_all``)."""
    target = target or Target()
    found = _managed(project, region, target)
    emulated = bool(target.emulator or target.endpoint)
    services = [
        (t, r, local_url(r["url"], target))
        for t, rs in sorted(found.items())
        for r in rs
        if r["kind"] == "service"
    ]
    # probed where a visitor reaches it: its URL on Google, the front door of an emulator
    where = [local if emulated else r["url"] for _, r, local in services]
    paths = [w + r["health_path"] for w, (_, r, _) in zip(where, services, strict=True) if w]
    answers = iter(health.probe_all(paths))
    served: dict[str, list[health.Served]] = {}
    for w, (t, r, local) in zip(where, services, strict=True):
        state = next(answers) if w else NOT_SERVED if r["url"] else NO_URL
        served.setdefault(t, []).append(health.Served(r["name"], r["url"], local, state))
    return [
        health.TenantOverview(
            t, tuple(sorted(f"{r['kind']} {r['name']}" for r in rs)), tuple(served.get(t, ()))
        )
        for t, rs in sorted(found.items())
    ]


#: `logs --job`: the jobs whose executions it reads (manage: the job `djdeploy manage` runs),
#: and `cron-NAME`, the job of the [[cron]] entry NAME
LOG_JOBS = ("migrate", "db-init", "manage")
CRON_JOB = "cron-"
#: Cloud Logging's severities, lowest first
SEVERITIES = (
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
)
_SINCE = re.compile(r"^([1-9][0-9]*)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class LogQuery:
    """What `logs` reads: the service's revisions, one job's executions (``job``) or the
    [worker]'s pool (``worker``); entries from ``since`` ago ("10m"), at ``severity`` or worse;
    the newest ``limit`` of them. Checked when made, so bad input fails before any API call."""

    job: str | None = None
    since: str | None = None
    severity: str | None = None
    limit: int = 100
    worker: bool = False

    def __post_init__(self) -> None:
        if self.job is not None and self.worker:
            raise ConfigError("--job and --worker name two sources: choose one")
        if self.job is not None and not (self.job in LOG_JOBS or self.cron_entry()):
            raise ConfigError(
                f"--job {self.job!r} is not a job: use one of {', '.join(LOG_JOBS)}, or "
                f"{CRON_JOB}NAME for the [[cron]] entry NAME"
            )
        if self.since is not None and not _SINCE.match(self.since):
            raise ConfigError(
                f"--since {self.since!r} is not a duration: use a number and a unit, "
                "e.g. 30s, 10m, 2h or 1d"
            )
        if self.severity is not None and self.severity.upper() not in SEVERITIES:
            raise ConfigError(
                f"--severity {self.severity!r} is not a severity: use one of "
                + ", ".join(SEVERITIES)
            )
        if not 0 < self.limit <= 10000:
            raise ConfigError(f"--limit {self.limit} is out of range: use 1 to 10000")

    def cron_entry(self) -> str:
        """The [[cron]] entry name of ``--job cron-NAME`` ("" for any other job)."""
        name = (self.job or "").removeprefix(CRON_JOB)
        return name if self.job != name and CRON_NAME_RE.match(name) else ""

    def since_seconds(self) -> int | None:
        m = _SINCE.match(self.since or "")
        return int(m.group(1)) * _UNIT[m.group(2)] if m else None


def _rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: what `logs` reads -> its Logging resource type and the label naming it
_LOG_RESOURCES = {
    "worker pool": ("cloud_run_worker_pool", "worker_pool_name"),
    "service": ("cloud_run_revision", "service_name"),
    "job": ("cloud_run_job", "job_name"),
}


def log_source(config: Config, query: LogQuery) -> tuple[str, str]:
    """Whose entries `query` reads: ("service", name), ("job", name) or ("worker pool", name)."""
    names = config.names
    if query.worker:
        return "worker pool", names.worker_pool
    if query.job is None:
        return "service", names.service
    if query.cron_entry():
        return "job", names.cron_job(query.cron_entry())
    job = {"migrate": names.migrate_job, "db-init": names.db_init_job}.get(
        query.job, f"{names.prefix}-{query.job}"
    )
    return "job", job


def _require_source(cloud: Cloud, config: Config, query: LogQuery) -> None:
    """No entries: say so when what `logs` reads does not exist at all (an unknown tenant, a
    misspelt one), rather than print nothing. A destroyed service's entries still show."""
    kind, name = log_source(config, query)
    get = {
        "worker pool": cloud.run.get_worker_pool,
        "service": cloud.run.get_service,
        "job": cloud.run.get_job,
    }[kind]
    if get(name) is not None:
        return
    if kind != "service" and cloud.run.get_service(config.names.service) is not None:
        # the tenant is deployed: what is missing is only this worker pool or job
        maker = "`djdeploy manage`" if query.job == "manage" else "`djdeploy up`"
        if query.worker:
            maker = "`djdeploy up` with a [worker] table in djdeploy.toml (docs/worker.md)"
        if query.cron_entry():
            maker = (
                f"`djdeploy up` with a [[cron]] entry named {query.cron_entry()} in djdeploy.toml "
                "(docs/cron.md)"
            )
        raise DeployError(
            f"tenant {config.tenant} is deployed but has no {kind} {name} (nor log entries of "
            f"one): {maker} creates it"
        )
    raise DeployError(
        f"{kind} {name} does not exist in project {config.project} and has no log entries: "
        f"is tenant {config.tenant} deployed there? `djdeploy status` lists the tenants"
    )


def log_filter(config: Config, query: LogQuery, *, now: float) -> str:
    """The Logging filter for `query`: the service's revisions, the job's executions or the
    worker pool's instances, then the time and severity bounds."""
    kind, name = log_source(config, query)
    resource, label = _LOG_RESOURCES[kind]
    terms = [f'resource.type="{resource}"', f'resource.labels.{label}="{name}"']
    since = query.since_seconds()
    if since is not None:
        terms.append(f'timestamp>="{_rfc3339(now - since)}"')
    if query.severity is not None:
        terms.append(f"severity>={query.severity.upper()}")
    return " AND ".join(terms)


def logs(
    config: Config,
    *,
    query: LogQuery | None = None,
    target: Target | None = None,
    follow: bool = False,
    poll_seconds: float = 2.0,
    max_polls: int | None = None,
    clock: Clock | None = None,
) -> Iterator[LogEntry]:
    """The tenant's log entries, oldest first: the newest ``query.limit`` that match, then,
    with ``follow``, each new one as it arrives (entries.list polled every ``poll_seconds`` on
    the clock; ``max_polls`` bounds it, None: until interrupted). Read-only."""
    query = query or LogQuery()
    target = target or Target()
    config = resolve(config, target)
    with connect(config.project, config.region, target, clock=clock) as (cloud, _):
        tail = _Tail(cloud, log_filter(config, query, now=cloud.clock.now()))
        newest = tail.newest(query.limit)
        if not newest:
            _require_source(cloud, config, query)
        yield from newest
        polls = 0
        while follow and (max_polls is None or polls < max_polls):
            cloud.clock.sleep(poll_seconds)
            polls += 1
            yield from tail.poll()


class _Tail:
    """The entries of one filter, each once: the newest first (oldest first in what it
    yields), then, at each poll, those at or after the last timestamp seen, skipping the
    insertIds already yielded at that instant."""

    def __init__(self, cloud: Cloud, base: str) -> None:
        self.cloud, self.base = cloud, base
        self.last: str | None = None
        self.seen: set[str] = set()

    def newest(self, limit: int) -> list[LogEntry]:
        batch = self.cloud.logging.list_entries(self.base, newest_first=True, limit=limit)
        batch.reverse()
        self.last = batch[-1].timestamp if batch else None
        self.seen = {e.insert_id for e in batch if e.timestamp == self.last}
        return batch

    def poll(self) -> Iterator[LogEntry]:
        since = f' AND timestamp>="{self.last}"' if self.last else ""
        for entry in self.cloud.logging.list_entries(
            self.base + since, newest_first=False, limit=MAX_PAGE
        ):
            if entry.insert_id in self.seen:
                continue
            if entry.timestamp != self.last:
                self.last, self.seen = entry.timestamp, set()
            self.seen.add(entry.insert_id)
            yield entry


# -- manage ----------------------------------------------------------------------------------


def _until(
    cloud: Cloud, options: Options, fetch: Callable[[], Any], done: Callable[[Any], bool]
) -> Any:
    """Poll ``fetch`` on the cloud's clock (the engine's intervals) until ``done`` holds;
    DeployError after the step deadline."""
    waited = 0.0
    while True:
        value = fetch()
        if done(value):
            return value
        if waited >= options.step_timeout:
            raise DeployError(f"gave up after {waited:.0f}s: run the command again")
        interval = options.poll_delay(waited)
        cloud.clock.sleep(interval)
        waited += interval


def manage(
    config: Config,
    args: list[str],
    *,
    target: Target | None = None,
    wait: bool = True,
    on_entry: Callable[[LogEntry], None] | None = None,
    on_start: Callable[[ManageRun], None] | None = None,
    on_lease: OnNotice | None = None,
    clock: Clock | None = None,
    poll_seconds: float = 2.0,
) -> ManageRun:
    """Run ``manage.py <args>`` as an execution of the tenant's manage job, with the serving
    revision's image, env, secrets and volumes (deployer/management.py, docs/manage.md).

    Refuses, before any API call, no command or one that needs a terminal. The job is brought
    to the serving revision and the execution started under the tenant's lease (never while an
    `up` changes what serves); the lease is released once it runs. With ``wait``, its log
    entries go to ``on_entry`` as they arrive (polled every ``poll_seconds``) until it ends.
    ``on_start`` hears of the execution as soon as it exists (an interrupted wait leaves it
    running: the caller can name it)."""
    from deployer import management as m
    from deployer.steps.jobs import execution_state

    m.check_args(args, tenant=config.tenant)
    target = target or Target()
    with connect(config.project, config.region, target, clock=clock) as session:
        engine = _engine(session, None)
        cloud, jid = engine.cloud, config.names.manage_job
        m.serving_revision(cloud, config)  # nothing deployed: one line, no lease taken
        lease = _lease(engine, config, "manage", wait=True, on_lease=on_lease)
        with lease.held():
            revision = m.serving_revision(cloud, config)
            lease.check()
            if m.sync_job(cloud, config, revision):
                _until(cloud, engine.options, lambda: cloud.run.get_job(jid), m.job_ready)
            lease.check()
            try:
                eid = cloud.run.run_job_with_args(jid, [MANAGE, *args])
            except MaybeApplied:  # never sent twice: a command may not be safe to repeat
                raise DeployError(
                    f"no answer to the request that starts the command, so it may have "
                    f"started: `djdeploy logs --tenant {config.tenant} --job manage` shows "
                    "whether it ran; run it again only if it did not"
                ) from None
        run = ManageRun(eid, jid, short(revision.get("name")), "running")
        if on_start is not None:
            on_start(run)
        if not wait:
            return run
        base = log_filter(config, LogQuery(job="manage"), now=0)
        tail = _Tail(cloud, f'{base} AND labels."run.googleapis.com/execution_name"="{eid}"')
        emit = on_entry or (lambda _: None)
        while True:
            execution = cloud.run.get_execution(jid, eid) or {}
            state = execution_state(execution) if execution else "failed"
            for entry in tail.poll():
                emit(entry)
            if state != "running":
                break
            cloud.clock.sleep(poll_seconds)
        message = "" if state == "succeeded" else m.failure_message(execution)
        return dataclasses.replace(run, state=state, message=message)


# -- rollback --------------------------------------------------------------------------------


def rollback(
    config: Config,
    *,
    to: str | None = None,
    force: bool = False,
    undo: bool = False,
    target: Target | None = None,
    on_lease: OnNotice | None = None,
    clock: Clock | None = None,
) -> Rollback:
    """Move all the service's traffic to the ready revision before the latest (or ``to``) and
    pin it there; ``undo``: unpin, all traffic to the latest ready revision. Refused (one line
    naming them) when the database has applied migrations the target's image does not know,
    unless ``force``. Under the tenant's lease; safe to run again after any failure
    (deployer/rollbacks.py, docs/rollback.md)."""
    from deployer import rollbacks as rb

    check_rollback(to=to, undo=undo)
    target = target or Target()
    n = config.names
    with connect(config.project, config.region, target, clock=clock) as session:
        engine = _engine(session, None)
        cloud = engine.cloud
        if cloud.run.get_service(n.service) is None:
            raise DeployError(
                f"service {n.service} does not exist: nothing to roll back "
                f"(`djdeploy up --tenant {config.tenant}` deploys it)"
            )
        command = "rollback --undo" if undo else "rollback"
        lease = _lease(engine, config, command, wait=True, on_lease=on_lease)
        with lease.held():
            service = _until(
                cloud, engine.options, lambda: cloud.run.get_service(n.service), _settled
            )
            revisions = cloud.run.list_revisions(n.service)
            if undo:
                name = short(service.get("latestReadyRevision"))
            else:
                name = short(rb.choose(service, revisions, to=to, tenant=config.tenant)["name"])
            pin = None if undo else name
            previous = rb.serving(service)
            if rb.is_pinned_to(service, pin):
                return Rollback(n.service, name, previous, pin is not None, changed=False)
            forced: tuple[str, ...] = ()
            unchecked = ""
            if not undo:
                chosen = next(r for r in revisions if short(r.get("name")) == name)
                unreadable = rb.unreadable_secret(
                    rb.pinned_secrets(chosen),
                    lambda secret: {
                        v["name"].rsplit("/", 1)[-1]: v.get("state", "")
                        for v in cloud.secrets.list_versions(secret) or []
                    },
                    revision=name,
                )
                if unreadable is not None:
                    raise unreadable
                image = ((chosen.get("containers") or [{}])[0]).get("image", "")
                try:
                    unknown = rb.check_migrations(
                        rb.Migrations.read(cloud, config),
                        revision=name,
                        image=image,
                    )
                except rb.RollbackRefused as exc:
                    if not force:
                        raise
                    unchecked = exc.why
                    unknown = ()
                if unknown and not force:
                    raise rb.refusal(unknown, revision=name, tenant=config.tenant)
                forced = unknown
            lease.check()
            try:
                cloud.run.update_service(rb.pin_body(service, pin))
            except Conflict:
                # the etag no longer matches: our own write, applied and its answer lost (the
                # retry carried the old etag), or someone else's: the service says which
                if not rb.is_pinned_to(cloud.run.get_service(n.service) or {}, pin):
                    raise DeployError(
                        f"service {n.service} changed while this rollback read it: run the "
                        "same command again"
                    ) from None
            # the service's own condition may still name a failed latest deploy, which a
            # traffic change does not repair: the traffic it now has is what counts
            done = _until(cloud, engine.options, lambda: cloud.run.get_service(n.service), _settled)
            if not rb.is_pinned_to(done, pin):
                raise DeployError(
                    f"service {n.service} did not keep the traffic on {name} (changed by "
                    "someone else meanwhile?): run the same command again"
                )
            return Rollback(
                n.service, name, previous, pin is not None, True, forced, unchecked=unchecked
            )


def check_rollback(*, to: str | None, undo: bool) -> None:
    """rollback's options, refused before any API call (the CLI: before an emulator starts)."""
    if undo and to is not None:
        raise ConfigError("--undo moves traffic to the latest revision: leave out --to")
    if to is not None and not to.strip():
        raise ConfigError(
            "--to is empty: name a revision (`djdeploy status` shows the ready one), or leave "
            "it out to roll back to the one before the latest"
        )


def _settled(service: Any) -> bool:
    from deployer.rollbacks import settled

    return service is not None and settled(service)


@dataclass(frozen=True)
class RotateResult:
    """Each chosen secret's rotation, and the run that did it (or the `up` before, failed)."""

    rotations: list[Rotated]
    run: RunResult

    @property
    def ok(self) -> bool:
        return self.run.ok and all(r.done for r in self.rotations)


def check_kinds(kinds: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`--secret` values: known kinds, each once, in the given order; none means all three."""
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ConfigError(
            f"--secret {bad[0]!r} is not a generated secret: use one of {', '.join(KINDS)} "
            "(or leave it out to rotate all three)"
        )
    return tuple(dict.fromkeys(kinds)) or KINDS


def rotate_secrets(
    config: Config,
    *,
    kinds: list[str] | tuple[str, ...] = (),
    target: Target | None = None,
    on_event: OnEvent | None = None,
    clock: Clock | None = None,
    wait: bool = True,
    on_lease: OnNotice | None = None,
    on_steps: OnSteps | None = None,
) -> RotateResult:
    """Rotate the generated secrets named by ``kinds`` ("db-password", "secret-key",
    "admin-password"; none: all three), under the tenant's lease (docs/rotate.md).

    A secret whose earlier rotation was interrupted has it finished, not a second one started.
    For the others: `up` first (so the new revision differs from the serving one by the secret
    alone; a failure stops here, nothing rotated), then the rotation is recorded on each secret
    (label ROTATING: the version it replaces) and `up` runs again: its secrets step adds the new
    versions, sql-user sets the database password, the jobs and the service pin them, and the
    rotation step disables the old versions once the new revision is ready. First, as for up,
    the source preflight: a project the build would refuse raises PreflightError; then a tenant
    whose service does not exist raises DeployError, nothing written."""
    chosen = check_kinds(kinds)
    target = target or Target()
    config = resolve(config, target)
    check_source(config)  # its ups build the source: refused before any API call, as up's
    steps = build_steps(config)
    if on_steps is not None:
        on_steps([step.name for step in steps])
    ids = secret_ids(config)
    with connect(config.project, config.region, target, clock=clock) as session:
        engine = _engine(session, on_event)
        cloud = engine.cloud
        start = engine.clock.monotonic()
        _require_service(cloud, config)
        boot = _bootstrap(engine, steps, config, wait=wait)
        if not boot.ok:
            return RotateResult([], boot)
        lease = _lease(engine, config, "secrets rotate", wait=wait, on_lease=on_lease)
        with lease.held():
            found = {kind: _rotating_from(cloud, ids[kind]) for kind in chosen}
            fresh = [kind for kind, old in found.items() if old is None]
            guarded_steps = guarded(steps, lease)
            if fresh:
                first = engine.up(guarded_steps, converged=BOOTSTRAP_STEPS)
                if not first.ok:
                    if lease.lost:
                        lease.check()
                    return RotateResult([], first)
                for kind in fresh:
                    found[kind] = _latest_or_fail(cloud, ids[kind])
                    cloud.secrets.merge_labels(ids[kind], {ROTATING: str(found[kind])})
            result = engine.up(guarded_steps, converged=BOOTSTRAP_STEPS)
            if not result.ok and lease.lost:
                lease.check()
            rotations = [
                _rotation(cloud, kind, ids[kind], old=str(found[kind]), resumed=kind not in fresh)
                for kind in chosen
            ]
    run = RunResult(result.results, engine.clock.monotonic() - start)
    return RotateResult(rotations, run)


def _require_service(cloud: Cloud, config: Config) -> None:
    """Read-only, before anything is written: a tenant with no service (misspelt, never
    deployed, or destroyed with its data kept) is refused, not deployed whole by the run's
    `up` and then rotated; so is a service pinned by `djdeploy rollback`: the rotation's new
    revision would get no traffic while the pinned one, which serves, reads the versions the
    rotation retires (the old database password, once the user's password has changed)."""
    from deployer.steps.service import pinned_revision

    name, tenant = config.names.service, config.tenant
    service = cloud.run.get_service(name)
    if service is None:
        raise DeployError(
            f"service {name} does not exist in project {config.project}: nothing to rotate "
            f"(`djdeploy status` lists the tenants; `djdeploy up --tenant {tenant}` deploys it)"
        )
    pinned = pinned_revision(service)
    if pinned:
        raise DeployError(
            f"service {name} is pinned to {pinned} by `djdeploy rollback`, and that revision "
            "would keep the traffic while reading the secret versions the rotation retires: "
            f"run `djdeploy rollback --tenant {tenant} --undo` first, then rotate"
        )


def _rotating_from(cloud: Cloud, secret_id: str) -> str | None:
    """The version an interrupted rotation of the secret replaces, None when none is under way."""
    found = cloud.secrets.get_secret(secret_id)
    return ((found or {}).get("labels") or {}).get(ROTATING)


def _latest_or_fail(cloud: Cloud, secret_id: str) -> str:
    latest = cloud.secrets.latest_version(secret_id)
    if latest is None:  # the up before found it, so someone disabled it meanwhile
        raise DeployError(
            f"secret {secret_id} has no enabled version: nothing to rotate from; enable one "
            "(gcloud secrets versions enable N) and run the command again"
        )
    return latest


def _rotation(cloud: Cloud, kind: str, secret_id: str, *, old: str, resumed: bool) -> Rotated:
    """What the live secret says of its rotation from ``old`` (read afresh after the run)."""
    versions = cloud.secrets.list_versions(secret_id) or []
    enabled = [str(n) for n in enabled_numbers(versions)]
    newest = enabled[0] if enabled and old.isdigit() and int(enabled[0]) > int(old) else None
    done = _rotating_from(cloud, secret_id) is None
    return Rotated(
        kind=kind,
        secret=secret_id,
        old=old,
        new=newest,
        done=done,
        resumed=resumed,
        kept=tuple(enabled[1:]) if newest else (),
    )


def ci_setup(
    config: Config,
    *,
    target: Target | None = None,
    on_event: OnEvent | None = None,
    clock: Clock | None = None,
    wait: bool = True,
    on_lease: OnNotice | None = None,
    on_steps: OnSteps | None = None,
) -> RunResult:
    """Deploy on push now ([ci], docs/ci.md): `up`'s deploy-on-push steps alone (the deployer
    account, its roles, the trigger), under the tenant's lease, without deploying the app."""
    target = target or Target()
    config = resolve(config, target)
    if config.ci is None:
        raise ConfigError(ci_missing())
    wanted = ("apis", "sources-bucket", "service-accounts")
    steps = [s for s in build_steps(config) if s.name in wanted]
    # up's iam-deployer also waits for its retiring steps; here it needs its account alone,
    # as the trigger does
    steps += [IamDeployer(config), CiTrigger(config)]
    if on_steps is not None:
        on_steps([step.name for step in steps])
    return _converge(config, steps, target, on_event, clock, wait, on_lease)


def ci_missing(github: str = "OWNER/REPO", branch: str = "main") -> str:
    """ci_setup's refusal of a Config without [ci], naming what to add."""
    return (
        f'no [ci] table: add [ci] github = "{github}", branch = "{branch}" to djdeploy.toml '
        "(the trigger's build runs up with the repository's config, so [ci] belongs there)"
    )

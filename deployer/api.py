"""The Python API: the same operations as the CLI, for scripts and tests.

    from deployer import Config, Target, up
    result = up(Config(tenant="demo", project="my-proj"), target=Target(emulator=True))

A Target says where API calls go: Google (default, Application Default Credentials), one HTTP
endpoint (an emulator started with `djdeploy emulator serve`), or the built-in emulator, which
runs in this process with its state in the user's data directory.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deployer.clock import Clock, RealClock
from deployer.config import Config
from deployer.engine import Engine, OnEvent, Options, RunResult
from deployer.errors import ConfigError
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps import build_steps
from deployer.steps.base import Change

BUILTIN_TIME_SCALE = 0.01  # a fresh deploy on the built-in emulator takes seconds
_ENDPOINT = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/?$")


@dataclass(frozen=True)
class Target:
    endpoint: str | None = None
    emulator: bool = False
    state_dir: Path | None = None  # built-in emulator only; default: the user's data dir
    time_scale: float | None = None  # how fast the emulator's clock runs (1.0 = real time)
    execute: bool = True  # built-in emulator: run what it deploys (docs/emulator.md)

    def __post_init__(self) -> None:
        if self.endpoint is not None and not _ENDPOINT.match(self.endpoint):
            raise ConfigError(
                f'endpoint "{self.endpoint}" is not an http(s)://host[:port] URL: pass the URL '
                "that `djdeploy emulator serve` printed, e.g. http://127.0.0.1:8089"
            )
        if self.time_scale is not None:
            if not (self.emulator or self.endpoint):
                raise ConfigError(
                    "--time-scale only applies to an emulator: add --emulator or --endpoint URL"
                )
            if not self.time_scale > 0:
                raise ConfigError(
                    f"time scale {self.time_scale} is invalid: use a number above 0 "
                    "(1.0 real durations, 0.001 a thousand times faster)"
                )

    @property
    def scale(self) -> float:
        if self.time_scale is not None:
            return self.time_scale
        return BUILTIN_TIME_SCALE if self.emulator else 1.0


def default_state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("djdeploy")) / "emulator"


@contextlib.contextmanager
def connect(
    project: str, region: str, target: Target, *, clock: Clock | None = None
) -> Iterator[tuple[Cloud, float]]:
    """A Cloud for `target` and the time scale its waits run at; starts (and stops) the
    built-in emulator when asked. `clock` (default: real time) is the one the deployer waits on
    and the built-in emulator runs on."""
    clock = clock or RealClock()
    if not target.emulator:
        clients = ClientFactory(endpoint=target.endpoint, project=project)
        cloud = Cloud(project, region, clients, clock=clock)
        yield cloud, target.scale
        return
    from deployer.emulator.server import Emulator, serve

    state_dir = target.state_dir or default_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True)
    # an explicit --time-scale changes a stored emulator state; the default keeps its speed
    emulator = Emulator(
        state_dir=state_dir,
        time_scale=target.scale,
        set_time_scale=target.time_scale is not None,
        execute=target.execute,
        clock=clock,
    )
    running = serve(emulator)
    try:
        clients = ClientFactory(endpoint=running.url, project=project)
        cloud = Cloud(project, region, clients, clock=clock)
        yield cloud, emulator.latency.time_scale  # a stored state keeps its own speed
    finally:
        running.stop()


def _engine(session: tuple[Cloud, float], on_event: OnEvent | None) -> Engine:
    cloud, scale = session
    engine = Engine(cloud, options=Options.scaled(scale))
    if on_event is not None:
        engine.on_event = on_event
    return engine


def up(
    config: Config,
    *,
    target: Target | None = None,
    on_event: OnEvent | None = None,
    clock: Clock | None = None,
) -> RunResult:
    """Deploy: bring every step to its desired state. Safe to run again after any failure."""
    target = target or Target()
    steps = build_steps(config)
    with connect(config.project, config.region, target, clock=clock) as session:
        return _engine(session, on_event).up(steps)


def plan(config: Config, *, target: Target | None = None) -> list[Change]:
    """What `up` would change, step by step. Read-only."""
    target = target or Target()
    steps = build_steps(config)
    with connect(config.project, config.region, target) as session:
        return _engine(session, None).plan(steps)


status = plan  # the same observation; the CLI renders it as state rather than as a to-do list


def destroy(
    config: Config,
    *,
    delete_data: bool = False,
    target: Target | None = None,
    on_event: OnEvent | None = None,
    clock: Clock | None = None,
) -> list[Change]:
    """Delete what `up` made, in reverse order. Data (database, media, secrets) is kept
    unless delete_data."""
    target = target or Target()
    steps = build_steps(config)
    with connect(config.project, config.region, target, clock=clock) as session:
        return _engine(session, on_event).destroy(steps, delete_data=delete_data)


def tenants(project: str, region: str, *, target: Target | None = None) -> dict[str, list[str]]:
    """Every tenant found in the project by its labels -> its resources ("kind name")."""
    target = target or Target()
    found: dict[str, list[str]] = {}
    with connect(project, region, target) as (cloud, _):
        apis = (cloud.run, cloud.sql, cloud.secrets, cloud.storage, cloud.registry)
        for api in apis:
            for res in api.list_managed():
                tenant = res["labels"].get("djdeploy-tenant")
                if tenant:
                    found.setdefault(tenant, []).append(f"{res['kind']} {res['name']}")
    return found

"""Where a command's API calls go (``Target``), apart from the API layer: the CLI checks its
target and starts the background emulator it names while `deployer.api` (the engine, the
steps, the client wrappers: a tenth of a second of imports) is still importing."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import ConfigError, DeployError
from deployer.gcp.clients import EVERY_KIND, ClientFactory

BUILTIN_TIME_SCALE = 0.01  # a fresh deploy on the built-in emulator takes seconds
ENDPOINT = re.compile(r"^(https?)://([A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?/?$")


def check_time_scale(value: float) -> float:
    """--time-scale, wherever it is given: a finite number above 0."""
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"time scale {value:g} is invalid: use a number above 0 "
            "(1.0 real durations, 0.001 a thousand times faster)"
        )
    return value


@dataclass(frozen=True)
class Target:
    endpoint: str | None = None
    emulator: bool = False
    state_dir: Path | None = None  # built-in emulator only; default: the user's data dir
    time_scale: float | None = None  # how fast the emulator's clock runs (1.0 = real time)
    request_timeout: float | None = None  # seconds per API request (None: ClientFactory's)
    execute: bool = True  # built-in emulator: run what it deploys (docs/emulator.md)

    def __post_init__(self) -> None:
        if self.endpoint is not None and not ENDPOINT.match(self.endpoint):
            raise ConfigError(
                f'endpoint "{self.endpoint}" is not an http(s)://host[:port] URL: pass the URL '
                "that `djdeploy emulator serve` printed, e.g. http://127.0.0.1:8089"
            )
        if self.time_scale is not None:
            if not (self.emulator or self.endpoint):
                raise ConfigError(
                    "--time-scale only applies to an emulator: add --emulator or --endpoint URL"
                )
            check_time_scale(self.time_scale)
        if self.state_dir is not None and not self.emulator:
            raise ConfigError(
                "--state-dir only applies to the built-in emulator: add --emulator "
                "(an emulator at --endpoint keeps the state dir it was started with)"
            )

        if self.request_timeout is not None and not self.request_timeout > 0:
            raise ConfigError(
                f"request timeout {self.request_timeout} is invalid: use a number of seconds "
                "above 0 (default 60)"
            )

    def clients(
        self, endpoint: str | None, project: str, kinds: tuple[str, ...] = EVERY_KIND
    ) -> ClientFactory:
        """The client factory for this target: its endpoint, and its request timeout; the
        GAPIC ``kinds`` the command builds."""
        if self.request_timeout is None:
            return ClientFactory(endpoint=endpoint, project=project, kinds=kinds)
        return ClientFactory(
            endpoint=endpoint,
            project=project,
            request_timeout=self.request_timeout,
            kinds=kinds,
        )

    @property
    def scale(self) -> float:
        if self.time_scale is not None:
            return self.time_scale
        return BUILTIN_TIME_SCALE if self.emulator else 1.0


def default_state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("djdeploy")) / "emulator"


def state_problem(exc: Exception, state_dir: Path) -> DeployError:
    """An emulator state that cannot be used (unreadable, corrupt, settings no emulator
    wrote), as the one line that names it and the way out."""
    option = "" if state_dir == default_state_dir() else f" --state-dir {state_dir}"
    return DeployError(
        f"the emulator state in {state_dir} cannot be used ({exc}): run `djdeploy emulator "
        f"reset{option}` to start afresh, or pass another --state-dir"
    )

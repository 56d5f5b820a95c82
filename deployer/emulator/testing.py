"""pytest plugin: an emulator for tests, and real Google clients pointed at it.

Register with ``pytest_plugins = ["deployer.emulator.testing"]`` (tests/conftest.py does).

Fixtures:
- ``emulator_clock`` (function scope): the clock the emulator runs on. Real time by default; a
  test marked ``virtual_clock`` (``pytestmark = pytest.mark.virtual_clock`` for a module) gets a
  :class:`deployer.clock.VirtualClock`, which stands still until slept on or advanced. Give the
  same object to the deployer (``Cloud(..., clock=emulator.clock)``): the engine's polls and the
  retries' back-off then move the emulator's time, with no real sleep and no timing window. A
  test whose waits no injected clock reaches (a ``djdeploy`` subprocess, the CLI, a client
  library's own operation polling) stays on real time and waits on conditions, never durations.
- ``emulator`` (function scope): a fresh in-memory emulator on a free port for each test (empty
  state, no faults or outcomes, default latency, empty transcript), time scale 0.001 (a 10 min
  SQL instance create takes 0.6 s of the clock), no request delay. Yields an
  :class:`EmulatorHandle` (``.url``, ``.control``, ``.emu``, ``.clock``). Nothing is executed
  (API only).
- ``executing_emulator``: the same with local execution on (docs/emulator.md, "Local
  execution"): slower, for tests that check what runs.

Helpers (usable outside pytest too): :func:`discovery_client`, :func:`gapic_options`,
:func:`storage_client`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from deployer.clock import Clock, RealClock, VirtualClock

from .control import EmulatorControl
from .discovery import load_doc
from .server import Emulator, RunningEmulator, serve

TEST_TIME_SCALE = 0.001


@dataclass
class EmulatorHandle:
    url: str
    control: EmulatorControl
    emu: Emulator
    running: RunningEmulator
    clock: Clock

    def discovery(self, api: str, version: str) -> Any:
        return discovery_client(self.url, api, version)

    def gapic(self) -> dict[str, Any]:
        return gapic_options(self.url)


VIRTUAL_CLOCK_MARKER = "virtual_clock"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{VIRTUAL_CLOCK_MARKER}: the emulator runs on a VirtualClock (emulator.clock), to be "
        "shared with the deployer's Cloud: time moves only when slept on or advanced",
    )


@pytest.fixture
def emulator_clock(request: pytest.FixtureRequest) -> Clock:
    if request.node.get_closest_marker(VIRTUAL_CLOCK_MARKER):
        return VirtualClock()
    return RealClock()


@pytest.fixture
def emulator(emulator_clock: Clock) -> Iterator[EmulatorHandle]:
    # A fresh server per test (about 3 ms): stragglers of an earlier test (a background thread
    # still polling) hit a closed port instead of polluting this test's state and transcript.
    # API only: nothing is executed (fast).
    emu = Emulator(time_scale=TEST_TIME_SCALE, clock=emulator_clock)
    yield from _serving(emu, emulator_clock, wait=False)


@pytest.fixture
def executing_emulator(emulator_clock: Clock) -> Iterator[EmulatorHandle]:
    """Like ``emulator``, with local execution on: Cloud SQL instances are real PostgreSQL
    servers, in a temporary directory stopped and removed when the test ends."""
    emu = Emulator(time_scale=TEST_TIME_SCALE, clock=emulator_clock, execute=True)
    yield from _serving(emu, emulator_clock, wait=True)


def _serving(emu: Emulator, clock: Clock, *, wait: bool) -> Iterator[EmulatorHandle]:
    running = serve(emu)
    try:
        yield EmulatorHandle(running.url, running.control, running.emu, running, clock)
    finally:
        running.control.close()
        running.stop(wait=wait)


def discovery_endpoint(url: str, api: str, version: str) -> str:
    """``api_endpoint`` for a discovery client: it replaces rootUrl + servicePath, so the
    service path (``storage/v1/`` for storage, empty for sqladmin and most others) is kept."""
    service_path = load_doc(api, version).get("servicePath", "")
    return url.rstrip("/") + "/" + service_path


def discovery_client(url: str, api: str, version: str) -> Any:
    """A google-api-python-client resource for ``api`` ``version`` talking to the emulator.

    Not thread-safe (httplib2): build one per thread.
    """
    from google.auth.credentials import AnonymousCredentials
    from googleapiclient.discovery import build

    return build(
        api,
        version,
        static_discovery=True,
        cache_discovery=False,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": discovery_endpoint(url, api, version)},
    )


def gapic_options(url: str) -> dict[str, Any]:
    """Keyword arguments for any GAPIC client: ``run_v2.ServicesClient(**gapic_options(url))``."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    return {
        "client_options": ClientOptions(api_endpoint=url),
        "transport": "rest",
        "credentials": AnonymousCredentials(),
    }


def storage_client(url: str, project: str = "test-project") -> Any:
    """A google-cloud-storage client talking to the emulator."""
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials

    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": url},
    )

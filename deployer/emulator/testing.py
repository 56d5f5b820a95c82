"""pytest plugin: an emulator for tests, and real Google clients pointed at it.

Register with ``pytest_plugins = ["deployer.emulator.testing"]`` (tests/conftest.py does).

Fixtures:
- ``emulator`` (function scope): a fresh in-memory emulator on a free port for each test (empty
  state, no faults or outcomes, default latency, empty transcript), time scale 0.001 (a 10 min
  SQL instance create takes 0.6 s), no request delay. Yields an :class:`EmulatorHandle`
  (``.url``, ``.control``, ``.emu``). Nothing is executed (API only).
- ``executing_emulator``: the same with local execution on (docs/emulator.md, "Local
  execution"): slower, for tests that check what runs.

Helpers (usable outside pytest too): :func:`discovery_client`, :func:`gapic_options`,
:func:`storage_client`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .control import EmulatorControl
from .server import Emulator, RunningEmulator, serve

TEST_TIME_SCALE = 0.001


@dataclass
class EmulatorHandle:
    url: str
    control: EmulatorControl
    emu: Emulator
    running: RunningEmulator

    def discovery(self, api: str, version: str) -> Any:
        return discovery_client(self.url, api, version)

    def gapic(self) -> dict[str, Any]:
        return gapic_options(self.url)


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    # A fresh server per test (about 3 ms): stragglers of an earlier test (a background thread
    # still polling) hit a closed port instead of polluting this test's state and transcript.
    # API only: nothing is executed (fast).
    yield from _serving(Emulator(time_scale=TEST_TIME_SCALE), wait=False)


@pytest.fixture
def executing_emulator() -> Iterator[EmulatorHandle]:
    """Like ``emulator``, with local execution on: Cloud SQL instances are real PostgreSQL
    servers, in a temporary directory stopped and removed when the test ends."""
    yield from _serving(Emulator(time_scale=TEST_TIME_SCALE, execute=True), wait=True)


def _serving(emu: Emulator, *, wait: bool) -> Iterator[EmulatorHandle]:
    running = serve(emu)
    try:
        yield EmulatorHandle(running.url, running.control, running.emu, running)
    finally:
        running.control.close()
        running.stop(wait=wait)


def _discovery_doc(api: str, version: str) -> dict[str, Any]:
    import googleapiclient

    path = (
        Path(googleapiclient.__file__).parent
        / "discovery_cache"
        / "documents"
        / f"{api}.{version}.json"
    )
    return json.loads(path.read_text())


def discovery_endpoint(url: str, api: str, version: str) -> str:
    """``api_endpoint`` for a discovery client: it replaces rootUrl + servicePath, so the
    service path (``storage/v1/`` for storage, empty for sqladmin and most others) is kept."""
    service_path = _discovery_doc(api, version).get("servicePath", "")
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

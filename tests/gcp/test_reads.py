"""One command's shared reads (deployer/gcp/reads.py): first observations share a read, and
nothing read before a write, or outside a first observation, is ever served from the cache."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from deployer.emulator import serviceusage
from deployer.emulator.testing import EmulatorHandle
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.gcp.reads import ReadCache
from deployer.secret import Secret

PROJECT = "acme-prod"
VERSIONS = f"/v1/projects/{PROJECT}/secrets/s1/versions"


def version_lists(emulator: EmulatorHandle) -> int:
    return sum(
        1 for e in emulator.control.transcript() if e["method"] == "GET" and e["path"] == VERSIONS
    )


@pytest.fixture
def cloud(emulator: EmulatorHandle) -> Cloud:
    serviceusage.set_enabled(emulator.emu, PROJECT, "secretmanager.googleapis.com")
    cloud = Cloud(PROJECT, "europe-west1", ClientFactory(endpoint=emulator.url, project=PROJECT))
    cloud.secrets.create_secret("s1", {"managed-by": "djdeploy"})
    cloud.secrets.add_version("s1", Secret("one"))
    emulator.control.clear_transcript()
    return cloud


def test_first_observations_share_a_read_and_a_write_drops_it(
    emulator: EmulatorHandle, cloud: Cloud
) -> None:
    with cloud.reads.sharing():
        assert cloud.secrets.latest_version("s1") == "1"
        assert cloud.secrets.latest_version("s1") == "1"
    assert version_lists(emulator) == 1
    cloud.secrets.add_version("s1", Secret("two"))  # a write through the same Cloud
    emulator.control.clear_transcript()
    with cloud.reads.sharing():
        assert cloud.secrets.latest_version("s1") == "2"
    assert version_lists(emulator) == 1


def test_a_read_outside_a_first_observation_goes_to_the_api_and_refreshes(
    emulator: EmulatorHandle, cloud: Cloud
) -> None:
    with cloud.reads.sharing():
        assert cloud.secrets.latest_version("s1") == "1"
    # someone else adds a version: a poll (not sharing) sees it, every time it asks
    other = Cloud(PROJECT, "europe-west1", ClientFactory(endpoint=emulator.url, project=PROJECT))
    other.secrets.add_version("s1", Secret("two"))
    emulator.control.clear_transcript()
    assert cloud.secrets.latest_version("s1") == "2"
    assert cloud.secrets.latest_version("s1") == "2"
    assert version_lists(emulator) == 2
    with cloud.reads.sharing():  # the newest value seen, without a request
        assert cloud.secrets.latest_version("s1") == "2"
    assert version_lists(emulator) == 2


def test_an_absent_resource_is_shared_as_absent(emulator: EmulatorHandle, cloud: Cloud) -> None:
    with cloud.reads.sharing():
        assert cloud.secrets.get_secret("nope") is None
        assert cloud.secrets.get_secret("nope") is None
    gets = [e for e in emulator.control.transcript() if e["path"].endswith("/secrets/nope")]
    assert len(gets) == 1


def test_a_read_spanning_a_write_is_not_stored() -> None:
    cache = ReadCache()
    fetched: list[int] = []

    def fetch_during_write() -> int:
        fetched.append(1)
        cache.invalidate()  # a write lands while the read is on the wire
        return len(fetched)

    with cache.sharing():
        assert cache.read("k", fetch_during_write) == 1
        assert cache.read("k", fetch_during_write) == 2
    assert len(fetched) == 2


def test_a_failed_read_is_not_stored() -> None:
    cache = ReadCache()
    calls: list[int] = []

    def fail_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("reset")
        return "ok"

    with cache.sharing():
        with pytest.raises(RuntimeError):
            cache.read("k", fail_once)
        assert cache.read("k", fail_once) == "ok"
    assert len(calls) == 2


def test_callers_get_copies() -> None:
    cache = ReadCache()
    with cache.sharing():
        first: dict[str, Any] = cache.read("k", lambda: {"bindings": []})
        first["bindings"].append("changed")
        assert cache.read("k", lambda: {"bindings": ["fetched again"]}) == {"bindings": []}


def test_two_first_observations_asking_at_once_make_one_request() -> None:
    cache = ReadCache()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []
    answers: list[str] = []

    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait(timeout=60)
        return "policy"

    def observe() -> None:
        with cache.sharing():
            answers.append(cache.read("k", slow))

    first = threading.Thread(target=observe)
    first.start()
    started.wait(timeout=60)
    second = threading.Thread(target=observe)
    second.start()  # finds the read in flight (or done): never a second request
    release.set()
    first.join()
    second.join()
    assert answers == ["policy", "policy"]
    assert len(calls) == 1

"""Memorystore for Redis v1 in the emulator, driven through the discovery client: an instance
is CREATING until its operation completes, then READY with a host and port; a patch leaves it
UPDATING; a delete DELETING, then gone; the operations are served at the regional path. With
local execution the instance is a local redis-server that answers on its host and port."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from deployer.emulator import Emulator, serve, serviceusage
from deployer.emulator.local.redis import find_server
from deployer.emulator.testing import TEST_TIME_SCALE, discovery_client
from tests.contract import check_transcript

PROJECT = "redis-proj"
REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
NAME = f"{PARENT}/instances/t1-django-redis"
BODY = {"tier": "BASIC", "memorySizeGb": 1, "labels": {"managed-by": "djdeploy"}}


def _api(emulator: Any) -> Any:
    serviceusage.set_enabled(emulator.emu, PROJECT, "redis.googleapis.com")
    return discovery_client(emulator.url, "redis", "v1").projects().locations()


@pytest.fixture
def redis(emulator: Any) -> Any:
    yield _api(emulator)
    assert check_transcript(emulator.emu.transcript.entries()) == []


def _status(call: Any) -> int:
    with pytest.raises(HttpError) as info:
        call.execute()
    return int(info.value.status_code)


def _done(emulator: Any, redis: Any, op: dict[str, Any]) -> dict[str, Any]:
    op_id = op["name"].rsplit("/", 1)[-1]
    emulator.emu.ops.complete_now(op_id)
    done: dict[str, Any] = redis.operations().get(name=op["name"]).execute()
    assert done["done"] is True
    return done


def test_instance_lifecycle(emulator: Any, redis: Any) -> None:
    instances = redis.instances()
    op = instances.create(parent=PARENT, instanceId="t1-django-redis", body=BODY).execute()
    assert op["name"].startswith(f"{PARENT}/operations/") and not op.get("done")
    assert op["metadata"]["verb"] == "create" and op["metadata"]["target"] == NAME
    got = instances.get(name=NAME).execute()
    assert got["state"] == "CREATING" and "host" not in got
    assert got["authorizedNetwork"] == f"projects/{PROJECT}/global/networks/default"
    assert _status(instances.create(parent=PARENT, instanceId="t1-django-redis", body=BODY)) == 409
    done = _done(emulator, redis, op)
    assert done["response"]["name"] == NAME
    got = instances.get(name=NAME).execute()
    assert got["state"] == "READY" and got["port"] == 6379 and got["host"].startswith("10.")
    assert [i["name"] for i in instances.list(parent=PARENT).execute()["instances"]] == [NAME]

    op = instances.patch(name=NAME, updateMask="memorySizeGb", body={"memorySizeGb": 2}).execute()
    assert instances.get(name=NAME).execute()["state"] == "UPDATING"
    assert _status(instances.patch(name=NAME, updateMask="tier", body={"tier": "BASIC"})) == 400
    _done(emulator, redis, op)
    assert instances.get(name=NAME).execute()["memorySizeGb"] == 2
    assert _status(instances.patch(name=NAME, updateMask="tier", body={"tier": "BASIC"})) == 400

    op = instances.delete(name=NAME).execute()
    assert instances.get(name=NAME).execute()["state"] == "DELETING"
    _done(emulator, redis, op)
    assert _status(instances.get(name=NAME)) == 404
    assert _status(instances.delete(name=NAME)) == 404


def test_a_delete_outcome_fails_the_operation_and_keeps_the_instance(
    emulator: Any, redis: Any
) -> None:
    instances = redis.instances()
    _done(
        emulator,
        redis,
        instances.create(parent=PARENT, instanceId="t1-django-redis", body=BODY).execute(),
    )
    emulator.control.fail("delete", "/instances/t1-django-redis", "instance is in maintenance")
    op = instances.delete(name=NAME).execute()
    assert instances.get(name=NAME).execute()["state"] == "DELETING"
    done = _done(emulator, redis, op)
    assert done["error"] == {"code": 9, "message": "instance is in maintenance"}
    assert instances.get(name=NAME).execute()["state"] == "READY"
    _done(emulator, redis, instances.delete(name=NAME).execute())  # the rule is used up
    assert _status(instances.get(name=NAME)) == 404


def test_auth_string_is_shown_only_by_get_auth_string(emulator: Any, redis: Any) -> None:
    """AUTH at create gives a UUID; get never shows it; a patch turning AUTH off empties it,
    turning it on again makes a new one; the transcript never holds it."""
    instances = redis.instances()
    body = {**BODY, "authEnabled": True}
    _done(
        emulator,
        redis,
        instances.create(parent=PARENT, instanceId="t1-django-redis", body=body).execute(),
    )
    got = instances.get(name=NAME).execute()
    assert got["authEnabled"] is True and "authString" not in json.dumps(got)
    first = instances.getAuthString(name=NAME).execute()["authString"]
    assert str(uuid.UUID(first)) == first and len(first) == 36

    off = instances.patch(name=NAME, updateMask="authEnabled", body={"authEnabled": False})
    _done(emulator, redis, off.execute())
    assert instances.get(name=NAME).execute()["authEnabled"] is False
    assert instances.getAuthString(name=NAME).execute() == {}
    on = instances.patch(name=NAME, updateMask="authEnabled", body={"authEnabled": True})
    _done(emulator, redis, on.execute())
    second = instances.getAuthString(name=NAME).execute()["authString"]
    assert second != first and len(second) == 36
    assert _status(instances.getAuthString(name=f"{PARENT}/instances/absent")) == 404
    recorded = json.dumps(emulator.emu.transcript.entries())
    assert first not in recorded and second not in recorded


def test_checks(redis: Any) -> None:
    instances = redis.instances()
    bad_id = instances.create(parent=PARENT, instanceId="Bad_Id", body=BODY)
    assert _status(bad_id) == 400
    no_tier = {"memorySizeGb": 1}
    assert _status(instances.create(parent=PARENT, instanceId="a1", body=no_tier)) == 400
    too_big = {**BODY, "memorySizeGb": 301}
    assert _status(instances.create(parent=PARENT, instanceId="a1", body=too_big)) == 400
    nowhere = redis.instances().list(parent=f"projects/{PROJECT}/locations/moon-1")
    assert _status(nowhere) == 501


def test_the_api_must_be_enabled(emulator: Any) -> None:
    instances = discovery_client(emulator.url, "redis", "v1").projects().locations().instances()
    assert _status(instances.get(name=f"projects/other-proj/locations/{REGION}/instances/x")) == 403
    assert check_transcript(emulator.emu.transcript.entries()) == []


def _ping(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64)


def _eventually(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds within 30 s (polled)."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _answers(port: int) -> bool:
    try:
        return _ping("127.0.0.1", port).startswith(b"+PONG")
    except OSError:
        return False


def _ready(instances: Any) -> dict[str, Any]:
    """The instance once READY (polled: a local server takes real time to answer)."""
    deadline = time.monotonic() + 60
    got: dict[str, Any] = instances.get(name=NAME).execute()
    while got["state"] != "READY" and time.monotonic() < deadline:
        time.sleep(0.05)
        got = instances.get(name=NAME).execute()
    return got


needs_redis = pytest.mark.skipif(find_server() is None, reason="no redis-server here")


@pytest.mark.slow
@needs_redis
def test_local_execution_runs_a_redis_server(executing_emulator: Any) -> None:
    instances = _api(executing_emulator).instances()
    instances.create(parent=PARENT, instanceId="t1-django-redis", body=BODY).execute()
    got = _ready(instances)
    assert got["host"] == "127.0.0.1"
    assert _ping(got["host"], got["port"]).startswith(b"+PONG")
    described = executing_emulator.emu.local.describe()["redis"]
    assert [r["instance"] for r in described] == [NAME]
    instances.delete(name=NAME).execute()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            instances.get(name=NAME).execute()
        except HttpError:
            break
        time.sleep(0.05)
    assert executing_emulator.emu.local.describe()["redis"] == []
    assert _eventually(lambda: not _answers(got["port"]))  # stopped in the background
    assert check_transcript(executing_emulator.emu.transcript.entries()) == []


def _auth_ping(port: int, password: str) -> bytes:
    """PING after AUTH, in RESP: the server's two replies."""
    auth = f"*2\r\n$4\r\nAUTH\r\n${len(password)}\r\n{password}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(auth + b"PING\r\n")
        replies = b""
        while replies.count(b"\r\n") < 2:
            chunk = s.recv(64)
            if not chunk:
                break
            replies += chunk
        return replies


@pytest.mark.slow
@needs_redis
def test_local_server_requires_the_auth_string(executing_emulator: Any) -> None:
    """With AUTH the local redis-server refuses a client without the AUTH string, which never
    appears in its command line; a patch turning AUTH off (then on) changes the live server."""
    instances = _api(executing_emulator).instances()
    body = {**BODY, "authEnabled": True}
    instances.create(parent=PARENT, instanceId="t1-django-redis", body=body).execute()
    port = _ready(instances)["port"]
    password = instances.getAuthString(name=NAME).execute()["authString"]
    assert _ping("127.0.0.1", port).startswith(b"-NOAUTH")
    assert _auth_ping(port, password) == b"+OK\r\n+PONG\r\n"
    assert _auth_ping(port, "wrong").startswith(b"-WRONGPASS")
    [proc] = executing_emulator.emu.local.processes.running()
    assert password not in " ".join(proc.spec.argv)

    instances.patch(name=NAME, updateMask="authEnabled", body={"authEnabled": False}).execute()
    assert _ready(instances)["port"] == port
    assert _ping("127.0.0.1", port).startswith(b"+PONG")
    instances.patch(name=NAME, updateMask="authEnabled", body={"authEnabled": True}).execute()
    assert _ready(instances)["port"] == port
    again = instances.getAuthString(name=NAME).execute()["authString"]
    assert _ping("127.0.0.1", port).startswith(b"-NOAUTH")
    assert _auth_ping(port, again) == b"+OK\r\n+PONG\r\n"
    instances.delete(name=NAME).execute()
    assert check_transcript(executing_emulator.emu.transcript.entries()) == []


@pytest.mark.slow
@needs_redis
def test_an_emulator_restart_brings_the_server_back(tmp_path: Path) -> None:
    first = serve(Emulator(state_dir=tmp_path, time_scale=TEST_TIME_SCALE, execute=True))
    try:
        instances = _api(first).instances()
        instances.create(parent=PARENT, instanceId="t1-django-redis", body=BODY).execute()
        port = _ready(instances)["port"]
        assert _answers(port)
    finally:
        first.stop()
    assert not _answers(port)  # stopped with its emulator
    again = serve(Emulator(state_dir=tmp_path, execute=True))
    try:
        instances = _api(again).instances()
        got = instances.get(name=NAME).execute()
        assert got["state"] == "READY" and _answers(got["port"])
        instances.patch(name=NAME, updateMask="authEnabled", body={"authEnabled": True}).execute()
        password = instances.getAuthString(name=NAME).execute()["authString"]
        port = _ready(instances)["port"]
    finally:
        again.stop()
    third = serve(Emulator(state_dir=tmp_path, execute=True))  # its password comes back too
    try:
        got = _api(third).instances().get(name=NAME).execute()
        assert _ping("127.0.0.1", got["port"]).startswith(b"-NOAUTH")
        assert _auth_ping(got["port"], password) == b"+OK\r\n+PONG\r\n"
        assert got["port"] == port
    finally:
        third.stop()

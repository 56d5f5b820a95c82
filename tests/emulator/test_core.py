"""The emulator core: routing, errors, store, operations, latency, faults, outcomes, transcript,
policies, projects, admin API, concurrency."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from deployer.clock import VirtualClock
from deployer.emulator import ApiError, Emulator, Router, policies, serve
from deployer.emulator.control import EmulatorControlError
from deployer.emulator.operations import NotYet, completer
from deployer.emulator.projects import (
    check_location,
    ensure_project,
    project_number,
    valid_project_id,
)
from deployer.emulator.routing import Headers, RouteTable, compile_template
from deployer.emulator.store import Store
from deployer.emulator.testing import discovery_client, gapic_options
from deployer.emulator.transcript import redact


def raw(url: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    """One request over http.client: (status, headers, parsed JSON body)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), json.loads(payload) if payload else None


def call(emu: Emulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request straight into emu.handle (no HTTP)."""
    p, _, qs = path.partition("?")
    data = json.dumps(body).encode() if body is not None else b""
    out = emu.handle(method, p, qs, Headers({}), data)
    r = out.response
    return r.status, json.loads(r.encoded()) if r.encoded() else None


# -- routing ---------------------------------------------------------------------------------


def test_route_templates():
    rx, rest, _ = compile_template("/v2/projects/{project}/locations/{location}/services/{service}")
    m = rx.match("/v2/projects/p/locations/l/services/s")
    assert m and m.groupdict() == {"project": "p", "location": "l", "service": "s"}
    assert rest == 0
    assert not rx.match("/v2/projects/p/locations/l/services/s/x")
    assert not rx.match("/v2/projects/p/locations/l/services/s:run")

    rx, rest, _ = compile_template("/v1/{name=**}")
    assert rest == 1
    assert rx.match("/v1/a/b/c").group("name") == "a/b/c"

    rx, _, _ = compile_template("/v1/projects/{project}/services/{service}:enable")
    assert rx.match("/v1/projects/p/services/run.googleapis.com:enable").group("service") == (
        "run.googleapis.com"
    )
    assert not rx.match("/v1/projects/p/services/run.googleapis.com")


def test_route_table_prefers_specific_and_decodes():
    r = Router()

    @r.route("GET", "/storage/v1/b/{bucket}/o/{obj}")
    def get_obj(req, bucket, obj):
        return {"which": "obj", "bucket": bucket, "obj": obj}

    @r.route("GET", "/storage/v1/b/{bucket}/o/{obj}/acl")
    def acl(req, bucket, obj):
        return {"which": "acl"}

    @r.route("GET", "/storage/v1/{rest=**}")
    def catch_all(req, rest):
        return {"which": "rest", "rest": rest}

    table = RouteTable([r])
    route, params = table.match("GET", "/storage/v1/b/bk/o/a%2Fb%3Ac.txt")
    assert route.handler is get_obj and params == {"bucket": "bk", "obj": "a/b:c.txt"}
    route, _ = table.match("GET", "/storage/v1/b/bk/o/x/acl")
    assert route.handler is acl
    route, params = table.match("GET", "/storage/v1/b/bk/o/x/y/z")
    assert route.handler is catch_all and params["rest"] == "b/bk/o/x/y/z"
    assert table.match("POST", "/storage/v1/b/bk/o/x") is None

    with pytest.raises(ValueError, match="twice"):
        RouteTable([r, r])
    other = Router()
    other.route("GET", "/storage/v1/b/{b}/o/{o}")(get_obj)  # same shape, other names
    with pytest.raises(ValueError, match="twice"):
        RouteTable([r, other])


def test_request_json_and_args(emulator):
    r = Router()

    @r.route("POST", "/v1/echo/{thing}")
    def echo(req, thing):
        return {"thing": thing, "body": req.json(), "q": req.arg("q"), "h": req.headers["X-Y"]}

    emu = emulator.emu
    old = emu.routes
    emu.routes = RouteTable([r])
    try:
        out = emu.handle("POST", "/v1/echo/t", "q=1&q=2", Headers({"x-y": "z"}), b'{"a": 1}')
        assert json.loads(out.response.encoded()) == {
            "thing": "t",
            "body": {"a": 1},
            "q": "1",
            "h": "z",
        }
        out = emu.handle("POST", "/v1/echo/t", "", Headers({"X-Y": "z"}), b"")
        assert json.loads(out.response.encoded())["body"] == {}
        out = emu.handle("POST", "/v1/echo/t", "", Headers({"X-Y": "z"}), b"{nope")
        assert out.response.status == 400
        assert json.loads(out.response.encoded())["error"]["status"] == "INVALID_ARGUMENT"
    finally:
        emu.routes = old


# -- errors ----------------------------------------------------------------------------------


def test_error_body_shapes():
    e = ApiError(409, "busy", reason="operationInProgress", legacy=True, retry_after=2.4)
    assert e.body() == {
        "error": {
            "code": 409,
            "message": "busy",
            "errors": [{"message": "busy", "domain": "global", "reason": "operationInProgress"}],
            "status": "ALREADY_EXISTS",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "operationInProgress",
                    "domain": "googleapis.com",
                    "metadata": {},
                }
            ],
        }
    }
    assert e.headers() == {"Retry-After": "2"}
    assert ApiError(404, "x").body() == {
        "error": {"code": 404, "message": "x", "status": "NOT_FOUND"}
    }
    assert ApiError(409, "x", status="ABORTED").status == "ABORTED"
    for code, status in [
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
        (412, "FAILED_PRECONDITION"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (401, "UNAUTHENTICATED"),
    ]:
        assert ApiError(code, "m").status == status
    legacy = ApiError(404, "gone", legacy=True).body()["error"]["errors"][0]
    assert legacy["reason"] == "notFound"


def test_unknown_route_is_google_404_through_discovery_client(emulator):
    from googleapiclient.errors import HttpError

    crm = discovery_client(emulator.url, "cloudresourcemanager", "v3")
    with pytest.raises(HttpError) as ei:  # folders are not emulated
        crm.folders().get(name="folders/123").execute()
    assert ei.value.resp.status == 404
    body = json.loads(ei.value.content)
    assert body["error"]["status"] == "NOT_FOUND"


def test_handler_crash_is_500_with_traceback(emulator, capsys):
    r = Router()

    @r.route("GET", "/v1/boom")
    def boom(req):
        raise RuntimeError("kaboom")

    emu = emulator.emu
    old = emu.routes
    emu.routes = RouteTable([r, *[_router_of(m) for m in ("serviceusage",)]])
    try:
        status, _, body = raw(emulator.url, "GET", "/v1/boom")
    finally:
        emu.routes = old
    assert status == 500
    assert body == {
        "error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}
    }
    assert "kaboom" in capsys.readouterr().err


def _router_of(module: str) -> Router:
    import importlib

    return importlib.import_module(f"deployer.emulator.{module}").router


def test_gapic_client_maps_errors(emulator):
    from google.api_core import exceptions
    from google.cloud import run_v2

    from deployer.emulator.serviceusage import set_enabled

    set_enabled(emulator.emu, "my-proj", "run.googleapis.com")
    client = run_v2.ServicesClient(**gapic_options(emulator.url))
    name = "projects/my-proj/locations/us-central1/services/nope"
    with pytest.raises(exceptions.NotFound):
        client.get_service(name=name)
    emulator.control.add_fault(
        method="GET", path="/services/nope$", code=409, reason="MY_REASON", times=1
    )
    with pytest.raises(exceptions.Conflict) as ei:
        client.get_service(name=name)
    assert ei.value.reason == "MY_REASON"
    emulator.control.add_fault(method="GET", path="/services/nope$", code=429, times=1)
    with pytest.raises(exceptions.TooManyRequests):
        client.get_service(name=name)


# -- store -----------------------------------------------------------------------------------


def test_store_basics():
    s = Store()
    s.put("k", "b", {"v": 2})
    s.put("k", "a", {"v": 1})
    s.put("k", "a/x", {"v": 3})
    s.put("other", "a", {"v": 9})
    assert s.get("k", "a") == {"v": 1}
    assert s.get("k", "zz") is None
    assert s.list("k") == [("a", {"v": 1}), ("a/x", {"v": 3}), ("b", {"v": 2})]
    assert [k for k, _ in s.list("k", "a")] == ["a", "a/x"]
    assert s.delete("k", "a") and not s.delete("k", "a")
    assert s.next_id("c") == 1 and s.next_id("c") == 2 and s.next_id("d") == 1
    assert s.dump() == {"k": {"a/x": {"v": 3}, "b": {"v": 2}}, "other": {"a": {"v": 9}}}
    with pytest.raises(RuntimeError), s.transaction():
        s.put("k", "tx", {})
        raise RuntimeError
    assert s.get("k", "tx") is None  # rolled back
    with s.transaction(), s.transaction():  # re-entrant
        s.put("k", "tx", {})
    assert s.get("k", "tx") == {}
    s.reset()
    assert s.dump() == {} and s.next_id("c") == 1


def test_store_transactions_serialize_threads(tmp_path):
    for s in (Store(), Store(tmp_path)):
        s.put("n", "x", {"n": 0})

        def bump(s=s):
            for _ in range(50):
                with s.transaction():
                    v = s.get("n", "x")
                    s.put("n", "x", {"n": v["n"] + 1})

        threads = [threading.Thread(target=bump) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert s.get("n", "x") == {"n": 500}


def test_state_persists_across_emulators(tmp_path):
    a = Emulator(state_dir=tmp_path, time_scale=0.0)
    ensure_project(a, "shared-proj")
    policies.set_policy(
        a,
        "projects/shared-proj",
        {"bindings": [{"role": "roles/viewer", "members": ["user:a@example.com"]}]},
    )
    b = Emulator(state_dir=tmp_path)
    assert b.store.get("project", "shared-proj")["projectNumber"] == project_number("shared-proj")
    assert policies.get_policy(b, "projects/shared-proj")["bindings"][0]["role"] == "roles/viewer"


_CHILD = """
import sys
from deployer.emulator.store import Store
s = Store(sys.argv[1])
for _ in range(100):
    with s.transaction():
        v = s.get("n", "x") or {"n": 0}
        s.put("n", "x", {"n": v["n"] + 1})
"""


@pytest.mark.slow
def test_store_transactions_serialize_processes(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)]) for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    assert Store(tmp_path).get("n", "x") == {"n": 300}


# -- operations + latency --------------------------------------------------------------------

_calls: list[str] = []


@completer("test.core.finish")
def _finish(emu: Emulator, op: dict) -> dict | None:
    if op["args"].get("fail"):
        raise ApiError(400, "it failed")
    if op["args"].get("crash"):
        raise RuntimeError("completer bug")
    emu.store.put("thing", op["target"], {"made": True})
    _calls.append(op["target"])
    return {"target": op["target"]}


def test_operations_follow_latency_and_clock():
    clock = VirtualClock()
    emu = Emulator(time_scale=0.5, clock=clock)
    assert emu.latency.duration("sql.instance.create") == 300.0
    with pytest.raises(KeyError):
        emu.latency.duration("sql.instance.craete")
    op = emu.ops.start(
        completer="test.core.finish", duration_kind="sql.database", target="t/1", args={}
    )
    assert op["done_at"] == clock.now() + 5.0 and op["done"] is False
    assert set(op) >= {
        "id",
        "completer",
        "target",
        "args",
        "metadata",
        "created",
        "done_at",
        "done",
        "response",
        "error",
    }
    assert [o["id"] for o in emu.ops.running("t/")] == [op["id"]]
    clock.advance(4.9)
    call(emu, "GET", "/v3/projects/any-proj")  # every request advances operations
    assert emu.ops.get(op["id"])["done"] is False
    clock.advance(0.2)
    call(emu, "GET", "/v3/projects/any-proj")
    done = emu.ops.get(op["id"])
    assert done["done"] and done["response"] == {"target": "t/1"} and done["error"] is None
    assert emu.store.get("thing", "t/1") == {"made": True}
    assert emu.ops.running("t/") == []
    assert [o["id"] for o in emu.ops.list("t/")] == [op["id"]]


_work_done: set[str] = set()


@completer("test.core.real_work")
def _after_real_work(emu: Emulator, op: dict) -> dict | None:
    emu.store.put("thing", op["target"], {"half": True})  # undone while the work goes on
    if op["target"] not in _work_done:
        raise NotYet(delay=3.0)
    return {"target": op["target"]}


def test_operation_waits_for_real_work_and_undoes_partial_effects():
    clock = VirtualClock()
    emu = Emulator(time_scale=0.5, clock=clock)
    op = emu.ops.start(
        completer="test.core.real_work", duration_kind="sql.database", target="w/1", args={}
    )
    clock.advance(5.0)
    call(emu, "GET", "/v3/projects/any-proj")
    pending = emu.ops.get(op["id"])
    assert pending["done"] is False and pending["done_at"] == clock.now() + 3.0
    assert emu.store.get("thing", "w/1") is None
    _work_done.add("w/1")
    clock.advance(2.9)
    call(emu, "GET", "/v3/projects/any-proj")
    assert emu.ops.get(op["id"])["done"] is False  # not asked again before its delay
    clock.advance(0.1)
    call(emu, "GET", "/v3/projects/any-proj")
    done = emu.ops.get(op["id"])
    assert done["done"] and done["response"] == {"target": "w/1"}
    assert emu.store.get("thing", "w/1") == {"half": True}


def test_operations_complete_in_done_at_order_and_fail():
    clock = VirtualClock()
    emu = Emulator(time_scale=1.0, clock=clock)
    emu.latency.set(durations={"sql.user": 1.0})
    _calls.clear()
    slow = emu.ops.start(
        completer="test.core.finish", duration_kind="sql.database", target="slow", args={}
    )
    fast = emu.ops.start(
        completer="test.core.finish", duration_kind="sql.user", target="fast", args={}
    )
    bad = emu.ops.start(
        completer="test.core.finish", duration_kind="sql.user", target="bad", args={"fail": True}
    )
    crash = emu.ops.start(
        completer="test.core.finish", duration_kind="sql.user", target="crash", args={"crash": True}
    )
    clock.advance(100)
    emu.ops.advance()
    assert _calls == ["fast", "slow"]
    assert emu.ops.get(bad["id"])["error"] == {
        "code": 400,
        "message": "it failed",
        "status": "INVALID_ARGUMENT",
    }
    assert emu.store.get("thing", "bad") is None
    assert emu.ops.get(crash["id"])["error"]["code"] == 500
    assert emu.ops.get(slow["id"])["done"] and emu.ops.get(fast["id"])["done"]


def test_operation_started_in_one_process_completes_in_another(tmp_path):
    clock = VirtualClock()
    a = Emulator(state_dir=tmp_path, time_scale=1.0, clock=clock)
    op = a.ops.start(completer="test.core.finish", duration_kind="sql.user", target="x", args={})
    b = Emulator(state_dir=tmp_path, time_scale=1.0, clock=clock)
    clock.advance(6)
    b.ops.advance()
    assert a.ops.get(op["id"])["done"] is True
    assert a.store.get("thing", "x") == {"made": True}


@pytest.mark.virtual_clock
def test_latency_settings_over_admin_api(emulator):
    c = emulator.control
    got = c.set_latency(time_scale=0.01, request_delay=0.02, durations={"build": 10})
    assert got["time_scale"] == 0.01 and got["request_delay"] == 0.02
    assert got["durations"]["build"] == 10 and got["durations"]["sql.user"] == 5
    assert emulator.emu.latency.duration("build") == pytest.approx(0.1)
    t0 = emulator.clock.monotonic()
    raw(emulator.url, "GET", "/v3/projects/lat-proj")
    assert emulator.clock.monotonic() - t0 == pytest.approx(0.02)  # waited on the clock
    with pytest.raises(EmulatorControlError) as ei:
        c.set_latency(durations={"no.such.kind": 1})
    assert ei.value.status == 400
    c.reset()
    assert c.latency()["time_scale"] == 0.001 and c.latency()["request_delay"] == 0


# -- faults ----------------------------------------------------------------------------------


def test_fault_error_n_times_with_retry_after(emulator):
    from googleapiclient.errors import HttpError

    emulator.control.add_fault(
        method="GET", path=r"/v3/projects/", code=429, retry_after=3, times=2
    )
    for _ in range(2):
        status, headers, body = raw(emulator.url, "GET", "/v3/projects/fault-proj")
        assert status == 429 and headers["Retry-After"] == "3"
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert raw(emulator.url, "GET", "/v3/projects/fault-proj")[0] == 200
    assert emulator.control.faults() == []

    emulator.control.add_fault(
        method="POST", path=":enable$", code=503, times=1, body_contains="nothing-like-this"
    )
    emulator.control.add_fault(method="POST", path=":enable$", code=503, times=1)
    su = discovery_client(emulator.url, "serviceusage", "v1")
    with pytest.raises(HttpError) as ei:
        su.services().enable(name="projects/fault-proj/services/run.googleapis.com").execute()
    assert ei.value.resp.status == 503
    assert len(emulator.control.faults()) == 1  # the body_contains rule never matched
    emulator.control.clear_faults()
    assert emulator.control.faults() == []


@pytest.mark.virtual_clock
def test_fault_until_expires(emulator):
    emulator.control.add_fault(path="/v3/", code=500, until=emulator.clock.now() - 1)
    assert raw(emulator.url, "GET", "/v3/projects/until-proj")[0] == 200
    emulator.control.add_fault(path="/v3/", code=500, until=emulator.clock.now() + 60)
    assert raw(emulator.url, "GET", "/v3/projects/until-proj")[0] == 500
    rule = emulator.control.faults()[0]
    emulator.control.remove_fault(rule["id"])
    assert raw(emulator.url, "GET", "/v3/projects/until-proj")[0] == 200


@pytest.mark.virtual_clock
def test_fault_delay(emulator):
    emulator.control.add_fault(action="delay", seconds=0.2, path="/v3/", times=1)
    t0 = emulator.clock.monotonic()
    assert raw(emulator.url, "GET", "/v3/projects/delay-proj")[0] == 200
    assert emulator.clock.monotonic() - t0 == pytest.approx(0.2)  # waited on the clock


@pytest.mark.virtual_clock
def test_fault_delay_holds_at_most_until_the_deadline_the_request_names(emulator):
    """Google's X-Server-Timeout: the server gives up on the request after that long, so a
    held write lands by then or never (djdeploy sends it with writes not safe to repeat)."""
    emulator.control.add_fault(action="delay", seconds=60, path="/v3/", times=1)
    t0 = emulator.clock.monotonic()
    headers = Headers({"X-Server-Timeout": "5"})
    outcome = emulator.emu.handle("GET", "/v3/projects/deadline-proj", "", headers, b"")
    assert outcome.response.status == 200
    assert emulator.clock.monotonic() - t0 == pytest.approx(5)


def test_fault_drop_applies_then_closes(emulator):
    import requests

    emulator.control.add_fault(action="drop", method="POST", path=":setIamPolicy$", times=1)
    policy = {"policy": {"bindings": [{"role": "roles/viewer", "members": ["user:a@example.com"]}]}}
    with pytest.raises(requests.ConnectionError):
        requests.post(emulator.url + "/v3/projects/drop-proj:setIamPolicy", json=policy, timeout=10)
    # the write happened although the client saw a connection error
    got = policies.get_policy(emulator.emu, "projects/drop-proj")
    assert got["bindings"] == policy["policy"]["bindings"]
    last = emulator.control.transcript()[-1]
    assert last["dropped"] is True and last["status"] is None


def test_bad_fault_rule_refused(emulator):
    with pytest.raises(EmulatorControlError):
        emulator.control.add_fault(action="explode")
    with pytest.raises(EmulatorControlError):
        emulator.control.add_fault(path="(")
    with pytest.raises(EmulatorControlError):
        emulator.control.add_fault(colour="red")


# -- outcomes --------------------------------------------------------------------------------


def test_outcomes(emulator):
    emu = emulator.emu
    emulator.control.fail("build", "abc", "Step #0 failed", times=2)
    emu.outcomes.add("execution", "migrate", "Task failed")
    assert emu.outcomes.take("build", "nomatch") is None
    assert emu.outcomes.take("execution", "build-abc") is None
    assert emu.outcomes.peek("build", "x-abc-y") == "Step #0 failed"
    assert emu.outcomes.take("build", "x-abc-y") == "Step #0 failed"
    assert emu.outcomes.take("build", "abc") == "Step #0 failed"
    assert emu.outcomes.take("build", "abc") is None
    assert [o["kind"] for o in emulator.control.outcomes()] == ["execution"]
    emulator.control.clear_outcomes()
    assert emu.outcomes.take("execution", "demo-migrate-x") is None


# -- transcript ------------------------------------------------------------------------------


def test_redaction():
    body = {
        "payload": {"data": "c2VjcmV0", "dataCrc32c": "1"},
        "password": "p",
        "settings": {"rootPassword": "r", "data": "keep"},
        "items": [{"password": "q"}],
    }
    assert redact(body) == {
        "payload": {"data": "***", "dataCrc32c": "1"},
        "password": "***",
        "settings": {"rootPassword": "***", "data": "keep"},
        "items": [{"password": "***"}],
    }


def test_transcript_records_in_order_and_redacts(emulator):
    r = Router()

    @r.route("GET", "/v1/test-only/{p}/secrets/{s}/versions/{v}:access")
    def access(req, p, s, v):
        return {
            "name": f"projects/{p}/secrets/{s}/versions/1",
            "payload": {"data": "c2VjcmV0", "dataCrc32c": "123"},
        }

    emu = emulator.emu
    old = emu.routes
    emu.routes = RouteTable([r, *old_routers()])
    try:
        raw(emulator.url, "GET", "/v1/test-only/t-proj/secrets/s/versions/latest:access")
        raw(emulator.url, "POST", "/v1/not/emulated", {"name": "u", "password": "hunter2"})
        raw(emulator.url, "GET", "/v3/projects/t-proj?fields=name")
        emulator.control.health()  # admin: not recorded
    finally:
        emu.routes = old
    entries = emulator.control.transcript()
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["response"]["payload"] == {"data": "***", "dataCrc32c": "123"}
    assert entries[1]["body"] == {"name": "u", "password": "***"}
    assert entries[1]["status"] == 404
    assert entries[2]["query"] == {"fields": ["name"]}
    assert entries[2]["response"]["projectId"] == "t-proj"
    assert "hunter2" not in json.dumps(entries) and "c2VjcmV0" not in json.dumps(entries)
    assert emulator.emu.transcript.entries() == entries
    emulator.control.clear_transcript()
    assert emulator.control.transcript() == []


def old_routers() -> list[Router]:
    from deployer.emulator.server import load_routers

    return load_routers()


def test_non_json_bodies_recorded_as_sizes(emulator):
    host, port = emulator.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("POST", "/upload/storage/v1/b/bk/o?uploadType=media&name=x", body=b"\x00\x01abc")
    conn.getresponse().read()
    entry = emulator.control.transcript()[-1]
    assert entry["body"] == {"_bytes": 5}


# -- policies --------------------------------------------------------------------------------


def _sa(emu: Emulator, email: str, visible_at: float) -> None:
    emu.store.put("iam.sa", email, {"email": email, "_visibleAt": visible_at})


def test_policy_etags_and_conflicts():
    clock = VirtualClock()
    emu = Emulator(clock=clock)
    p0 = policies.get_policy(emu, "projects/p")
    assert p0 == {"version": 1, "etag": "ACAB", "bindings": []}
    p1 = policies.set_policy(
        emu,
        "projects/p",
        {
            "etag": "ACAB",
            "bindings": [
                {"role": "roles/viewer", "members": ["user:b@x.com", "user:a@x.com"]},
                {"role": "roles/viewer", "members": ["group:g@x.com"]},
                {"role": "roles/editor", "members": []},
            ],
        },
    )
    assert p1["etag"] != "ACAB"
    assert p1["bindings"] == [
        {"role": "roles/viewer", "members": ["group:g@x.com", "user:a@x.com", "user:b@x.com"]}
    ]
    assert policies.get_policy(emu, "projects/p") == p1
    with pytest.raises(ApiError) as ei:
        policies.set_policy(emu, "projects/p", {"etag": "ACAB", "bindings": []})
    assert ei.value.code == 409 and ei.value.status == "ABORTED"
    assert "concurrent policy changes" in ei.value.message
    with pytest.raises(ApiError) as ei:
        policies.set_policy(emu, "b/bucket", {"etag": "BwXXXX", "bindings": []}, conflict_code=412)
    assert ei.value.code == 412 and ei.value.status == "FAILED_PRECONDITION"
    p2 = policies.set_policy(emu, "projects/p", {"bindings": []})  # no etag: unconditional
    assert p2["etag"] not in ("ACAB", p1["etag"])
    for member in (
        "allUsers",
        "allAuthenticatedUsers",
        "projectOwner:p",
        "domain:x.com",
        "serviceAccount:123@cloudbuild.gserviceaccount.com",
        "serviceAccount:service-1@gcp-sa-run.iam.gserviceaccount.com",
    ):
        policies.set_policy(emu, "r", {"bindings": [{"role": "roles/x", "members": [member]}]})
    with pytest.raises(ApiError) as ei:
        policies.set_policy(emu, "r", {"bindings": [{"role": "roles/x", "members": ["bob"]}]})
    assert ei.value.code == 400


def test_policy_refuses_invisible_service_account_and_tracks_grants():
    clock = VirtualClock()
    emu = Emulator(clock=clock, time_scale=1.0)
    email = "runtime@p-proj.iam.gserviceaccount.com"
    member = f"serviceAccount:{email}"
    binding = {"bindings": [{"role": "roles/secretmanager.secretAccessor", "members": [member]}]}
    with pytest.raises(ApiError) as ei:
        policies.set_policy(emu, "projects/p-proj/secrets/s", binding)
    assert ei.value.code == 400
    assert ei.value.message == f"Service account {email} does not exist."
    _sa(emu, email, clock.now() + 60)
    with pytest.raises(ApiError):
        policies.set_policy(emu, "projects/p-proj/secrets/s", binding)
    clock.advance(60)
    policies.set_policy(emu, "projects/p-proj/secrets/s", binding)
    key, role = "projects/p-proj/secrets/s", "roles/secretmanager.secretAccessor"
    assert policies.granted_since(emu, key, role, member) == clock.now()
    assert policies.has_binding(emu, key, role, member)
    assert not policies.effective(emu, key, role, member)
    clock.advance(119)
    assert not policies.effective(emu, key, role, member)
    clock.advance(1)
    assert policies.effective(emu, key, role, member)
    # re-setting the same binding keeps the original grant time
    policies.set_policy(emu, key, binding)
    assert policies.granted_since(emu, key, role, member) == clock.now() - 120
    policies.set_policy(emu, key, {"bindings": []})
    assert policies.granted_since(emu, key, role, member) is None


# -- projects --------------------------------------------------------------------------------


def test_projects():
    emu = Emulator()
    assert project_number("my-proj") == project_number("my-proj")
    assert len(project_number("my-proj")) == 12
    assert project_number("my-proj") != project_number("my-proj2")
    p = ensure_project(emu, "my-proj")
    assert ensure_project(emu, p["projectNumber"]) == p
    assert ensure_project(emu, f"projects/{p['projectNumber']}") == p
    for bad in ("My-Proj", "ab", "1abcdef", "proj-", "a" * 31, "under_score"):
        assert not valid_project_id(bad)
        with pytest.raises(ApiError) as ei:
            ensure_project(emu, bad)
        assert ei.value.code == 400
    with pytest.raises(ApiError) as ei:
        ensure_project(emu, "999999999999")
    assert ei.value.code == 403
    check_location("europe-west1")
    with pytest.raises(ApiError) as ei:
        check_location("europe-west99")
    assert ei.value.code == 501 and ei.value.status == "UNIMPLEMENTED"


# -- admin -----------------------------------------------------------------------------------


def test_admin_state_and_reset(emulator):
    c = emulator.control
    raw(emulator.url, "GET", "/v3/projects/state-proj")
    assert "state-proj" in c.state()["project"]
    assert list(c.state("project")) == ["project"]
    c.add_fault(path="/nothing", code=500)
    c.fail("build", "x", "boom")
    c.reset()
    assert c.state() == {
        "_emulator": {"latency": {"time_scale": 0.001, "request_delay": 0.0, "durations": {}}}
    }
    assert c.faults() == [] and c.outcomes() == [] and c.transcript() == []
    status, _, body = raw(emulator.url, "GET", "/_emulator/nope")
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"


def test_fixture_isolation_first(emulator):
    emulator.control.add_fault(path="/v3/", code=500)
    raw(emulator.url, "GET", "/v3/projects/iso-proj")


def test_fixture_isolation_second(emulator):
    assert emulator.control.faults() == []
    assert emulator.control.transcript() == []
    assert emulator.emu.store.get("project", "iso-proj") is None


# -- serving ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_fifty_concurrent_clients(emulator):

    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def client(i: int) -> None:
        try:
            crm = discovery_client(emulator.url, "cloudresourcemanager", "v3")
            barrier.wait(timeout=30)
            for _ in range(5):
                got = crm.projects().get(name=f"projects/conc-proj-{i % 5}").execute()
                assert got["projectId"] == f"conc-proj-{i % 5}"
                crm.projects().getIamPolicy(
                    resource=f"projects/conc-proj-{i % 5}", body={}
                ).execute()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(emulator.control.transcript()) == 500


def test_serve_stop_and_keepalive():
    running = serve(Emulator(time_scale=0))
    host, port = running.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    for _ in range(3):  # one connection, several requests
        conn.request("GET", "/_emulator/health")
        assert conn.getresponse().read()
    running.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/_emulator/health")
        conn.getresponse().read()


@pytest.mark.slow
def test_main_serve_in_another_process_shares_state(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from deployer.emulator import main_serve; import sys; "
            "main_serve(host='127.0.0.1', port=0, state_dir=sys.argv[1], time_scale=0.0)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.split("listening on ", 1)[1].split()[0]
        status, _, _ = raw(
            url, "POST", "/v1/projects/xproc-proj/services/run.googleapis.com:enable"
        )
        assert status == 200
        raw(url, "GET", "/v3/projects/xproc-proj")  # completes the (zero-length) operation
        local = Emulator(state_dir=tmp_path, time_scale=0.0)
        from deployer.emulator.serviceusage import is_enabled

        assert is_enabled(local, "xproc-proj", "run.googleapis.com")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_state_dir_default_layout(tmp_path: Path):
    Emulator(state_dir=tmp_path / "nested" / "dir")
    assert (tmp_path / "nested" / "dir" / "emulator.sqlite3").exists()


def test_completed_operations_are_pruned_after_an_hour():
    clock = VirtualClock()
    emu = Emulator(time_scale=0.0, clock=clock)
    old = emu.ops.start(
        completer="test.core.finish", duration_kind="sql.database", target="t/1", args={}
    )
    call(emu, "GET", "/v3/projects/any-proj")  # completes it
    assert emu.ops.get(old["id"])["done"]  # readable right after it completes
    clock.advance(1800)
    new = emu.ops.start(
        completer="test.core.finish", duration_kind="sql.database", target="t/2", args={}
    )
    call(emu, "GET", "/v3/projects/any-proj")
    clock.advance(1800.5)  # old completed 3600.5 s ago, new 1800.5 s ago
    call(emu, "GET", "/v3/projects/any-proj")
    assert emu.ops.get(old["id"]) is None
    assert [o["id"] for o in emu.ops.list("t/")] == [new["id"]]
    assert emu.ops.get(new["id"])["done"]
    # a running operation is never pruned, whatever its age
    emu.latency.set(time_scale=1.0)
    slow = emu.ops.start(
        completer="test.core.finish", duration_kind="sql.database", target="t/3", args={}
    )
    clock.advance(7200)
    assert emu.ops.prune() == 1  # new, not slow
    assert emu.ops.get(slow["id"]) is not None


def test_transcript_is_bounded(emulator):
    assert emulator.control.transcript_info() == {
        "limit": 100_000,
        "size": 0,
        "dropped_entries": 0,
    }
    emulator.control.set_transcript_limit(3)
    for _ in range(5):
        raw(emulator.url, "GET", "/v3/projects/any-proj")
    entries = emulator.control.transcript()
    assert [e["seq"] for e in entries] == [3, 4, 5]
    assert emulator.control.transcript_info() == {"limit": 3, "size": 3, "dropped_entries": 2}
    emulator.control.set_transcript_limit(1)
    assert emulator.control.transcript_info()["dropped_entries"] == 4
    with pytest.raises(EmulatorControlError):
        emulator.control.set_transcript_limit(0)
    small = Emulator(transcript_limit=2)
    for _ in range(3):
        call(small, "GET", "/v3/projects/any-proj")
    assert small.transcript.info() == {"limit": 2, "size": 2, "dropped_entries": 1}
    small.store.close()


def _raw_bytes(url: str, data: bytes) -> bytes:
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v3/projects/p HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /v3/projects/p HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v3/projects/p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_bad_framing_is_a_google_400(emulator, capsys, request_bytes):
    answer = _raw_bytes(emulator.url, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in head
    err = json.loads(body)["error"]
    assert err["code"] == 400 and err["status"] == "INVALID_ARGUMENT"
    assert "Traceback" not in capsys.readouterr().err


def test_unknown_methods_are_json_not_html(emulator):
    for method in ("OPTIONS", "TRACE", "PROPFIND"):
        status, headers, body = raw(emulator.url, method, "/v3/projects/any-proj")
        assert status == 404, method
        assert headers["Content-Type"].startswith("application/json")
        assert body["error"]["status"] == "NOT_FOUND"
    answer = _raw_bytes(emulator.url, b"GARBAGE\r\n\r\n")  # a bad request line
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and json.loads(body)["error"]["code"] == 400


def test_opening_a_state_dir_keeps_its_time_scale(tmp_path):
    serving = Emulator(state_dir=tmp_path, time_scale=0.01, set_time_scale=True)
    assert serving.latency.time_scale == 0.01
    # another process opening the same state (djdeploy status --emulator) changes nothing
    other = Emulator(state_dir=tmp_path, time_scale=1.0)
    assert other.latency.time_scale == serving.latency.time_scale == 0.01
    # unless asked to; a new state takes the given scale
    Emulator(state_dir=tmp_path, time_scale=0.5, set_time_scale=True).store.close()
    assert serving.latency.time_scale == 0.5
    assert Emulator(state_dir=tmp_path / "new", time_scale=0.2).latency.time_scale == 0.2
    other.store.close()
    serving.store.close()


def test_stop_closes_the_store(tmp_path):
    import sqlite3

    running = serve(Emulator(state_dir=tmp_path, time_scale=0))
    running.stop()
    with pytest.raises(sqlite3.ProgrammingError):
        running.emu.store.get("x", "y")


def test_main_serve_default_port_is_the_cli_one():
    import inspect

    from deployer.cli import emulator_serve
    from deployer.emulator import main_serve

    cli_port = inspect.signature(emulator_serve).parameters["port"].default
    assert inspect.signature(main_serve).parameters["port"].default == cli_port == 8089


def test_outcome_kinds_are_checked(emulator):
    with pytest.raises(ValueError, match="unknown outcome kind"):
        emulator.emu.outcomes.add("bulid", "x", "typo")
    with pytest.raises(EmulatorControlError):
        emulator.control.fail("revisoin", "web", "typo")


def test_state_dump_shows_secret_sizes_not_values(emulator):
    from deployer.emulator import serviceusage
    from deployer.emulator.testing import gapic_options

    serviceusage.set_enabled(emulator.emu, "dump-proj", "secretmanager.googleapis.com")
    from google.cloud import secretmanager

    sm = secretmanager.SecretManagerServiceClient(**gapic_options(emulator.url))
    sm.create_secret(
        parent="projects/dump-proj", secret_id="pw", secret={"replication": {"automatic": {}}}
    )
    sm.add_secret_version(parent="projects/dump-proj/secrets/pw", payload={"data": b"hunter22"})
    dump = emulator.control.state(kind="secretmanager.version")
    (version,) = dump["secretmanager.version"].values()
    assert version["_data"] == {"_bytes": 8}
    assert "aHVudGVyMjI" not in json.dumps(emulator.control.state())


@pytest.mark.slow
def test_cloud_sql_service_account_is_stable_across_processes():
    code = """
import json
from deployer.emulator import Emulator, serviceusage
from deployer.emulator.routing import Headers
emu = Emulator(time_scale=0)
serviceusage.set_enabled(emu, "sa-proj", "sqladmin.googleapis.com")
body = {"name": "db1", "region": "europe-west1", "databaseVersion": "POSTGRES_15",
        "settings": {"tier": "db-f1-micro"}}
emu.handle("POST", "/v1/projects/sa-proj/instances", "", Headers({}), json.dumps(body).encode())
out = emu.handle("GET", "/v1/projects/sa-proj/instances/db1", "", Headers({}), b"")
print(json.loads(out.response.encoded())["serviceAccountEmailAddress"])
"""
    emails = {
        subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(emails) == 1 and next(iter(emails)).endswith(".iam.gserviceaccount.com")


def test_health_names_the_apis_this_emulator_serves(emulator):
    from deployer.emulator import API_MODULES

    assert emulator.control.health()["apis"] == list(API_MODULES)
    running = serve(Emulator(modules=("serviceusage", "sqladmin")))
    try:
        assert running.control.health()["apis"] == ["serviceusage", "sqladmin"]
        status, _, _ = raw(running.url, "GET", "/v1/projects/p-proj/serviceAccounts")
        assert status == 404  # iam is not served here
    finally:
        running.control.close()
        running.stop()

"""The front door (docs/emulator.md, "The front door and the local URL"): Cloud Run services
deployed through the real run_v2 client, served by host at the front door, to stand-in instances
(tiny HTTP servers this test starts and makes ``revision_address`` answer for)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from http.cookiejar import CookieJar, DefaultCookiePolicy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2

from deployer import api
from deployer.emulator import serviceusage
from deployer.emulator.local.frontdoor import Stored, local_url
from deployer.emulator.local.postgres import UNAVAILABLE, find_binaries
from deployer.emulator.server import Emulator
from deployer.emulator.testing import EmulatorHandle, gapic_options
from tests import test_scenarios as scenarios
from tests.contract import check_transcript

PROJECT = "door-proj"
REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
POLL = DEFAULT_POLLING.with_delay(initial=0.005, maximum=0.05).with_timeout(20)


class Instance:
    """A stand-in for a revision's instance: answers every request with what it received (and
    its own name), a Location to the cloud host and a cookie for it; ``/stream`` answers in
    chunks without a length."""

    def __init__(self, name: str) -> None:
        self.name = name
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding") != "chunked":
                    n = int(self.headers.get("Content-Length") or 0)
                    return self.rfile.read(n) if n else b""
                parts = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(parts)

            def _any(self) -> None:
                body = self._body()
                if self.path == "/stream":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (b"one ", b"two ", b"three"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                host = self.headers["Host"]
                doc = {
                    "instance": outer.name,
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode(),
                }
                payload = json.dumps(doc).encode()
                self.send_response(302 if self.path == "/login" else 200)
                self.send_header("Location", f"https://{host}/admin/?next=/")
                self.send_header("Set-Cookie", f"csrftoken=x; Domain={host}; Path=/; Secure")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = ("127.0.0.1", int(self.server.server_address[1]))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def instances(
    executing_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Instance]]:
    """Revision full name -> its stand-in instance (what revision_address answers)."""
    running: dict[str, Instance] = {}

    def address(revision: str) -> tuple[str, int] | None:
        inst = running.get(revision)
        return None if inst is None else inst.address

    monkeypatch.setattr(executing_emulator.emu.local, "revision_address", address)
    yield running
    for inst in running.values():
        inst.close()


@pytest.fixture
def services(executing_emulator: EmulatorHandle) -> Iterator[run_v2.ServicesClient]:
    serviceusage.set_enabled(executing_emulator.emu, PROJECT, "run.googleapis.com")
    yield run_v2.ServicesClient(**gapic_options(executing_emulator.url))
    assert check_transcript(executing_emulator.emu.transcript.entries()) == []


def deploy(
    services: run_v2.ServicesClient, sid: str, image: str = "gcr.io/demo/app:1"
) -> run_v2.Service:
    template = run_v2.RevisionTemplate(containers=[run_v2.Container(image=image)])
    try:
        current = services.get_service(name=f"{PARENT}/services/{sid}")
    except Exception:
        op = services.create_service(
            parent=PARENT, service=run_v2.Service(template=template), service_id=sid
        )
    else:
        current.template = template
        op = services.update_service(service=current)
    return op.result(polling=POLL)


def make_public(services: run_v2.ServicesClient, name: str) -> None:
    binding = policy_pb2.Binding(role="roles/run.invoker", members=["allUsers"])
    services.set_iam_policy(
        request=iam_policy_pb2.SetIamPolicyRequest(
            resource=name, policy=policy_pb2.Policy(bindings=[binding])
        )
    )


def door(handle: EmulatorHandle) -> Any:
    fd = handle.emu.local.frontdoor
    assert fd is not None
    return fd


def get(
    handle: EmulatorHandle,
    host: str,
    path: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", door(handle).port, timeout=20)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.msg, resp.read()
    finally:
        conn.close()


def host_of(svc: run_v2.Service, handle: EmulatorHandle) -> str:
    """The local host of the service's deterministic URL, port included."""
    return local_url(svc.urls[0], door(handle).port).removeprefix("http://")


def serve(instances: dict[str, Instance], revision: str) -> Instance:
    instances[revision] = Instance(revision.rsplit("/", 1)[-1])
    return instances[revision]


def test_routes_by_host_and_the_app_sees_the_cloud_origin(
    executing_emulator: EmulatorHandle,
    services: run_v2.ServicesClient,
    instances: dict[str, Instance],
) -> None:
    svc = deploy(services, "web")
    make_public(services, svc.name)
    serve(instances, svc.latest_ready_revision)
    other = deploy(services, "other")
    make_public(services, other.name)
    serve(instances, other.latest_ready_revision)
    host = host_of(svc, executing_emulator)
    cloud = svc.urls[0].removeprefix("https://")
    assert host == cloud.removesuffix(".run.app") + f".localhost:{door(executing_emulator).port}"

    status, headers, body = get(
        executing_emulator,
        host,
        "/form/?x=1",
        method="POST",
        headers={
            "Origin": f"http://{host}",
            "Referer": f"http://{host}/form/",
            "X-Forwarded-For": "10.1.2.3",
        },
        body=b"a=1",
    )
    assert status == 200
    seen = json.loads(body)
    assert seen["instance"] == svc.latest_ready_revision.rsplit("/", 1)[-1]
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/form/?x=1", "a=1")
    h = seen["headers"]
    assert h["host"] == cloud
    assert h["x-forwarded-proto"] == "https"
    assert h["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    assert h["origin"] == f"https://{cloud}"
    assert h["referer"] == f"https://{cloud}/form/"
    # what the app answers for its cloud host comes back for the local one
    assert headers["Location"] == f"http://{host}/admin/?next=/"
    local_name = host.rsplit(":", 1)[0]
    assert headers["Set-Cookie"] == f"csrftoken=x; Domain={local_name}; Path=/; Secure"

    # the other service by its own host; the short form while the name is unique; the a.run.app
    status, _, body = get(executing_emulator, host_of(other, executing_emulator))
    assert json.loads(body)["instance"] == other.latest_ready_revision.rsplit("/", 1)[-1]
    port = door(executing_emulator).port
    status, _, body = get(executing_emulator, f"web.localhost:{port}")
    assert json.loads(body)["headers"]["host"] == cloud
    uri_host = svc.uri.removeprefix("https://").removesuffix(".run.app")
    status, _, body = get(executing_emulator, f"{uri_host}.localhost:{port}")
    assert status == 200
    assert json.loads(body)["headers"]["host"] == cloud  # the host ALLOWED_HOSTS holds

    status, _, body = get(executing_emulator, f"nothing.localhost:{port}")
    assert status == 404 and b"No Cloud Run service answers" in body


def test_streaming_answers_and_keep_alive(
    executing_emulator: EmulatorHandle,
    services: run_v2.ServicesClient,
    instances: dict[str, Instance],
) -> None:
    svc = deploy(services, "web")
    make_public(services, svc.name)
    serve(instances, svc.latest_ready_revision)
    host = host_of(svc, executing_emulator)
    conn = http.client.HTTPConnection("127.0.0.1", door(executing_emulator).port, timeout=20)
    try:
        for _ in range(3):  # one connection, several requests
            conn.request("GET", "/stream", headers={"Host": host})
            resp = conn.getresponse()
            assert resp.getheader("Transfer-Encoding") == "chunked"
            assert resp.read() == b"one two three"
        big = b"x" * 300_000
        conn.request("PUT", "/upload", body=iter([big[:1000], big[1000:]]), headers={"Host": host})
        resp = conn.getresponse()
        assert len(json.loads(resp.read())["body"]) == len(big)  # a chunked upload, whole
        # an answer with a length, then a POST (not replayable) on the same instance connection
        conn.request("GET", "/sized", headers={"Host": host})
        assert json.loads(conn.getresponse().read())["path"] == "/sized"
        conn.request("POST", "/form", body=b"a=1", headers={"Host": host})
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["body"] == "a=1"
    finally:
        conn.close()


def test_a_split_and_tags(
    executing_emulator: EmulatorHandle,
    services: run_v2.ServicesClient,
    instances: dict[str, Instance],
) -> None:
    first = deploy(services, "web")
    make_public(services, first.name)
    old = first.latest_ready_revision
    svc = deploy(services, "web", image="gcr.io/demo/app:2")
    new = svc.latest_ready_revision
    assert new != old
    svc.traffic = [
        run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
            revision=old.rsplit("/", 1)[-1],
            percent=50,
            tag="blue",
        ),
        run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST,
            percent=50,
            tag="green",
        ),
    ]
    svc = services.update_service(service=svc).result(polling=POLL)
    serve(instances, old)
    serve(instances, new)
    host = host_of(svc, executing_emulator)
    seen = [json.loads(get(executing_emulator, host)[2])["instance"] for _ in range(100)]
    assert seen.count(old.rsplit("/", 1)[-1]) == seen.count(new.rsplit("/", 1)[-1]) == 50

    cloud = svc.urls[0].removeprefix("https://")
    for tag, rev in (("blue", old), ("green", new)):
        for _ in range(3):
            status, _, body = get(executing_emulator, f"{tag}---{host}")
            assert status == 200
            got = json.loads(body)
            assert got["instance"] == rev.rsplit("/", 1)[-1]
            assert got["headers"]["host"] == f"{tag}---{cloud}"
    assert get(executing_emulator, f"red---{host}")[0] == 404


def test_the_traffic_moves_when_its_deploy_is_done(
    executing_emulator: EmulatorHandle,
    services: run_v2.ServicesClient,
    instances: dict[str, Instance],
) -> None:
    """A traffic change (a rollback) asked but not yet done: requests still reach the revision
    that serves (trafficStatuses), not the one asked for (traffic)."""
    first = deploy(services, "web")
    make_public(services, first.name)
    old = first.latest_ready_revision
    svc = deploy(services, "web", image="gcr.io/demo/app:2")
    new = svc.latest_ready_revision
    serve(instances, old)
    serve(instances, new)
    executing_emulator.control.set_latency(durations={"run.service.deploy": 1e6})
    pin = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
    svc.traffic = [run_v2.TrafficTarget(type_=pin, revision=old.rsplit("/", 1)[-1], percent=100)]
    pending = services.update_service(service=svc)
    assert not pending.done()
    status, _, body = get(executing_emulator, host_of(svc, executing_emulator))
    assert status == 200 and json.loads(body)["instance"] == new.rsplit("/", 1)[-1]


def test_a_private_service_needs_the_token(
    executing_emulator: EmulatorHandle,
    services: run_v2.ServicesClient,
    instances: dict[str, Instance],
) -> None:
    svc = deploy(services, "private")
    serve(instances, svc.latest_ready_revision)
    host = host_of(svc, executing_emulator)
    status, _, body = get(executing_emulator, host)
    assert status == 403 and b"Forbidden" in body
    for wrong in ("Bearer nope", "Bearer caf\u00e9", "Basic abc"):
        assert get(executing_emulator, host, headers={"Authorization": wrong})[0] == 403
    token = executing_emulator.control.local()["frontdoor"]["token"]
    status, _, body = get(executing_emulator, host, headers={"Authorization": f"Bearer {token}"})
    assert status == 200
    assert json.loads(body)["headers"]["authorization"] == f"Bearer {token}"
    make_public(services, svc.name)
    assert get(executing_emulator, host)[0] == 200  # the next request sees the IAM change


def test_503_without_a_ready_or_running_revision(
    executing_emulator: EmulatorHandle,
    services: run_v2.ServicesClient,
    instances: dict[str, Instance],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc = deploy(services, "web")
    make_public(services, svc.name)
    host = host_of(svc, executing_emulator)
    status, _, body = get(executing_emulator, host)  # revision_address answers None
    short = svc.latest_ready_revision.rsplit("/", 1)[-1]
    assert status == 503
    assert f"Revision {short} is not running locally" in body.decode()

    with socket.socket() as s:  # a port nothing listens on: an instance that died
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()
    monkeypatch.setattr(executing_emulator.emu.local, "revision_address", lambda rev: dead)
    status, _, body = get(executing_emulator, host)
    assert status == 503 and b"The instance did not answer" in body

    executing_emulator.control.fail("revision", "broken-", "Container failed to start.")
    with pytest.raises(Exception, match="failed to start"):
        services.create_service(
            parent=PARENT,
            service=run_v2.Service(
                template=run_v2.RevisionTemplate(
                    containers=[run_v2.Container(image="gcr.io/demo/app:1")]
                )
            ),
            service_id="broken-app",
        ).result(polling=POLL)
    broken = services.get_service(name=f"{PARENT}/services/broken-app")
    make_public(services, broken.name)
    status, _, body = get(executing_emulator, host_of(broken, executing_emulator))
    assert status == 503 and b"no ready revision" in body


def test_the_port_and_token_are_kept_across_restarts(tmp_path: Any) -> None:
    first = Emulator(state_dir=tmp_path, execute=True)
    try:
        assert first.local.frontdoor is not None
        port, token = first.local.frontdoor.port, first.local.frontdoor.token
    finally:
        first.close()
    with pytest.raises(ConnectionRefusedError):  # stopped with the emulator
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert Stored.read(tmp_path) == Stored(port, token)
    again = Emulator(state_dir=tmp_path, execute=True)
    try:
        assert again.local.frontdoor is not None
        assert (again.local.frontdoor.port, again.local.frontdoor.token) == (port, token)
    finally:
        again.close()
    api_only = Emulator(state_dir=tmp_path, execute=False)
    try:
        assert api_only.local.frontdoor is None
    finally:
        api_only.close()


def test_the_deployer_learns_the_local_url(
    executing_emulator: EmulatorHandle, emulator: EmulatorHandle
) -> None:
    cloud = "https://demo-django-123456789012.europe-west1.run.app"
    port = door(executing_emulator).port
    want = f"http://demo-django-123456789012.europe-west1.localhost:{port}"
    assert api.local_url(cloud, api.Target(endpoint=executing_emulator.url)) == want
    assert api.local_url(cloud, api.Target(endpoint=emulator.url)) == ""  # API only
    assert api.local_url(cloud, api.Target()) == ""  # Google
    assert api.local_url("", api.Target(endpoint=executing_emulator.url)) == ""
    state = executing_emulator.emu.local.dir
    builtin = api.Target(emulator=True, state_dir=state)
    assert api.local_url(cloud, builtin) == want  # from the port its state keeps
    assert api.local_url(cloud, replace(builtin, execute=False)) == ""


@pytest.mark.slow  # a whole up, executing
@pytest.mark.skipif(find_binaries() is None, reason=UNAVAILABLE)
def test_up_and_status_print_the_local_url(executing_emulator: EmulatorHandle) -> None:
    code, output = scenarios.up(executing_emulator)
    assert code == 0, output
    port = door(executing_emulator).port
    [line] = [x for x in output.splitlines() if x.startswith("local url: ")]
    assert line.startswith("local url: http://demo-django-")
    assert line.endswith(f".europe-west1.localhost:{port}")
    doc = scenarios.status_json(executing_emulator)
    assert doc["local_url"] == line.removeprefix("local url: ")
    assert doc["local_url"] == local_url(doc["url"], port)


DJANGO_APP = """
import os
from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.urls import path

HOST = os.environ["CLOUD_HOST"]
settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only",
    ALLOWED_HOSTS=[HOST],
    CSRF_TRUSTED_ORIGINS=["https://" + HOST],
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    SECURE_SSL_REDIRECT=True,
    CSRF_COOKIE_SECURE=True,
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
)


def form(request):
    if request.method == "POST":
        return HttpResponseRedirect("/done/")
    return HttpResponse(get_token(request))


def done(request):
    return HttpResponse("done")


urlpatterns = [path("form/", form), path("done/", done)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
"""


class Loopback(urllib.request.HTTPHandler):
    """Every *.localhost name to 127.0.0.1, as browsers and curl resolve them (this machine's
    resolver may not)."""

    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.Connection, req)


@pytest.mark.slow  # a real Django under gunicorn
def test_a_django_app_behind_the_front_door_passes_its_host_and_csrf_checks(
    executing_emulator: EmulatorHandle,
    services: run_v2.ServicesClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    svc = deploy(services, "web")
    make_public(services, svc.name)
    cloud = svc.urls[0].removeprefix("https://")
    (tmp_path / "djapp.py").write_text(DJANGO_APP)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "djapp:application"],
        cwd=tmp_path,
        env={**os.environ, "CLOUD_HOST": cloud},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # a condition with a generous deadline: gunicorn is up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        monkeypatch.setattr(
            executing_emulator.emu.local, "revision_address", lambda rev: ("127.0.0.1", port)
        )
        base = local_url(svc.urls[0], door(executing_emulator).port)
        jar = CookieJar(DefaultCookiePolicy(secure_protocols=("https", "wss", "http")))
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(jar), urllib.request.ProxyHandler({}), Loopback()
        )
        with opener.open(f"{base}/form/", timeout=30) as resp:  # ALLOWED_HOSTS, no redirect
            token = resp.read().decode()
        assert [c.name for c in jar] == ["csrftoken"]
        post = urllib.request.Request(
            f"{base}/form/",
            data=f"csrfmiddlewaretoken={token}".encode(),
            headers={"Origin": base, "Referer": f"{base}/form/"},
        )
        with opener.open(post, timeout=30) as resp:  # CSRF passes; the redirect stays local
            assert resp.url == f"{base}/done/"
            assert resp.read() == b"done"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_concurrent_requests_each_get_their_answer(
    executing_emulator: EmulatorHandle,
    services: run_v2.ServicesClient,
    instances: dict[str, Instance],
) -> None:
    svc = deploy(services, "web")
    make_public(services, svc.name)
    serve(instances, svc.latest_ready_revision)
    host = host_of(svc, executing_emulator)
    answers: list[str] = []

    def one(i: int) -> None:
        status, _, body = get(executing_emulator, host, f"/item/{i}")
        answers.append(json.loads(body)["path"] if status == 200 else str(status))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(answers) == sorted(f"/item/{i}" for i in range(24))

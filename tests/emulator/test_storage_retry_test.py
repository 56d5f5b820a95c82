"""The storage-testbench retry-test API: /retry_test resources and x-retry-test-id faults, with
google-cloud-storage doing its own retries as in the cross-language conformance tests."""

from __future__ import annotations

import http.client
import json

import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from tests.contract import UNVALIDATABLE_ROUTES, check_transcript, route_of

PROJECT = "retry-proj"
#: the library's default retry, with short waits (no real seconds in tests)
FAST = DEFAULT_RETRY.with_delay(initial=0.001, maximum=0.002)


def _call(emulator, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    host, port = emulator.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def _create(emulator, instructions: dict) -> str:
    status, raw = _call(emulator, "POST", "/retry_test", {"instructions": instructions})
    assert status == 200, raw
    test = json.loads(raw)
    assert test["completed"] is False and test["transport"] == "HTTP"
    assert test["instructions"] == instructions
    return str(test["id"])


def _test(emulator, test_id: str) -> dict:
    status, raw = _call(emulator, "GET", f"/retry_test/{test_id}")
    assert status == 200
    return json.loads(raw)


def _client(emulator, test_id: str) -> storage.Client:
    return storage.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emulator.url},
        extra_headers={"x-retry-test-id": test_id},
    )


def _contract(emulator) -> None:
    """The storage exchanges validate; the retry-test resource is no Google API."""
    entries = [
        e
        for e in emulator.emu.transcript.entries()
        if route_of(e["method"], e["path"]) not in UNVALIDATABLE_ROUTES
    ]
    assert check_transcript(entries) == []


@pytest.fixture
def bucket(emulator):
    plain = storage.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emulator.url},
    )
    made = plain.create_bucket("retry-bucket", location="europe-west1")
    made.blob("a.txt").upload_from_string(b"0123456789" * 100)
    return made


def test_resource_lifecycle(emulator):
    first = _create(emulator, {"storage.objects.get": ["return-503"]})
    second = _create(emulator, {"storage.buckets.list": ["return-429", "return-500"]})
    status, raw = _call(emulator, "GET", "/retry_tests")
    assert status == 200
    assert {t["id"] for t in json.loads(raw)["retry_test"]} == {first, second}
    assert _call(emulator, "DELETE", f"/retry_test/{first}")[0] == 200
    assert _call(emulator, "GET", f"/retry_test/{first}")[0] == 404

    # what the emulator cannot honour is refused when the test is created, naming it
    for bad in (
        {},
        {"instructions": {}},
        {"instructions": {"storage.hmacKey.list": ["return-503"]}},
        {"instructions": {"storage.objects.get": ["stall-for-10s-after-0K"]}},
        {"instructions": {"storage.objects.get": ["return-503"]}, "transport": "GRPC"},
    ):
        status, raw = _call(emulator, "POST", "/retry_test", bad)
        assert status == 400, bad
    assert (
        b"stall-for-10s-after-0K"
        in _call(
            emulator,
            "POST",
            "/retry_test",
            {"instructions": {"storage.objects.get": ["stall-for-10s-after-0K"]}},
        )[1]
    )


def test_errors_then_success_completes(emulator, bucket):
    test_id = _create(emulator, {"storage.objects.get": ["return-503", "return-503"]})
    client = _client(emulator, test_id)
    blob = client.bucket(bucket.name).get_blob("a.txt", retry=FAST)
    assert blob is not None and blob.size == 1000
    statuses = [
        e["status"]
        for e in emulator.emu.transcript.entries()
        if e["path"].endswith("/o/a.txt") and e["method"] == "GET"
    ]
    assert statuses == [503, 503, 200]
    assert _test(emulator, test_id)["completed"] is True
    # without retries the instruction reaches the caller
    again = _create(emulator, {"storage.buckets.get": ["return-400"]})
    with pytest.raises(gexc.BadRequest) as info:
        _client(emulator, again).get_bucket(bucket.name, retry=None)
    assert "Retry Test: Caused a 400" in str(info.value)
    _contract(emulator)


def test_reset_connection_drops_without_applying(emulator, bucket):
    """The connection closes without an answer and the upload is not applied: the library's
    retry of a conditional upload (ifGenerationMatch=0) then succeeds instead of 412."""
    test_id = _create(emulator, {"storage.objects.insert": ["return-reset-connection"]})
    client = _client(emulator, test_id)
    client.bucket(bucket.name).blob("new.txt").upload_from_string(
        b"fresh", if_generation_match=0, retry=FAST
    )
    posts = [
        e for e in emulator.emu.transcript.entries() if e["method"] == "POST" and "/o" in e["path"]
    ]
    assert [e.get("dropped", False) for e in posts[-2:]] == [True, False]
    assert posts[-1]["status"] == 200
    assert bucket.blob("new.txt").download_as_bytes() == b"fresh"
    assert _test(emulator, test_id)["completed"] is True

    # raw HTTP: no status line at all
    raw = _create(emulator, {"storage.buckets.get": ["return-reset-connection"]})
    host, port = emulator.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", f"/storage/v1/b/{bucket.name}", headers={"x-retry-test-id": raw})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()
    _contract(emulator)


def test_broken_stream_download_is_retried(emulator, bucket):
    """The head and 4 bytes arrive, then the connection closes: the library retries."""
    test_id = _create(emulator, {"storage.objects.get": ["return-broken-stream"]})
    client = _client(emulator, test_id)
    data = client.bucket(bucket.name).blob("a.txt").download_as_bytes(retry=FAST)
    assert data == b"0123456789" * 100
    downloads = [
        e["status"] for e in emulator.emu.transcript.entries() if e["path"].startswith("/download/")
    ]
    assert len(downloads) == 2  # the cut response, then the retry
    assert _test(emulator, test_id)["completed"] is True


def test_unknown_test_id_is_404(emulator, bucket):
    with pytest.raises(gexc.NotFound) as info:
        _client(emulator, "no-such-test").get_bucket(bucket.name, retry=None)
    assert "Retry Test no-such-test" in str(info.value)

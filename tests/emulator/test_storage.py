"""Cloud Storage JSON v1 in the emulator, driven through google-cloud-storage."""

from __future__ import annotations

import base64
import hashlib

import google_crc32c
import pytest
from google.api_core import exceptions as gexc
from google.api_core.iam import Policy

from deployer.emulator import policies
from deployer.emulator.testing import storage_client
from tests.contract import check_transcript

PROJECT = "storage-proj"
OTHER = "other-proj"


def _contract(emulator) -> None:
    """Every exchange validates against storage.v1.json. Two kinds are outside the discovery
    document and skipped: the client's media URL (/download/storage/v1/...) and the PUTs of a
    resumable upload session (the protocol, not a JSON method)."""
    entries = [
        e
        for e in emulator.emu.transcript.entries()
        if not e["path"].startswith("/download/")
        and not (e["method"] == "PUT" and e["path"].startswith("/upload/"))
    ]
    assert check_transcript(entries) == []


@pytest.fixture
def client(emulator):
    return storage_client(emulator.url, PROJECT)


def _new_bucket(client, name: str, **labels: str):
    bucket = client.bucket(name)
    bucket.labels = labels or {"managed-by": "djdeploy"}
    bucket.iam_configuration.uniform_bucket_level_access_enabled = True
    bucket.iam_configuration.public_access_prevention = "enforced"
    return client.create_bucket(bucket, location="europe-west1")


def test_bucket_lifecycle(emulator, client):
    created = _new_bucket(client, "media-one", **{"managed-by": "djdeploy", "tenant": "demo"})
    assert created.location == "EUROPE-WEST1"  # GCS upper-cases locations
    assert created.location_type == "region"

    got = client.get_bucket("media-one")
    assert got.labels == {"managed-by": "djdeploy", "tenant": "demo"}
    assert got.iam_configuration.uniform_bucket_level_access_enabled is True
    assert got.iam_configuration.bucket_policy_only_enabled is True  # mirrored
    assert got.iam_configuration.public_access_prevention == "enforced"
    assert got.metageneration == 1
    assert got._properties["projectNumber"].isdigit()

    # patch: the client sends null for a removed label (JSON merge patch)
    got.labels = {"managed-by": "djdeploy", "extra": "x"}
    got.patch()
    again = client.get_bucket("media-one")
    assert again.labels == {"managed-by": "djdeploy", "extra": "x"}
    assert again.metageneration == 2

    got.lifecycle_rules = [{"action": {"type": "Delete"}, "condition": {"age": 30}}]
    got.patch()
    assert list(client.get_bucket("media-one").lifecycle_rules) == [
        {"action": {"type": "Delete"}, "condition": {"age": 30}}
    ]

    names = [b.name for b in client.list_buckets()]
    assert names == ["media-one"]
    assert [b.name for b in storage_client(emulator.url, OTHER).list_buckets()] == []

    client.get_bucket("media-one").delete()
    with pytest.raises(gexc.NotFound) as info:
        client.get_bucket("media-one")
    assert "The specified bucket does not exist." in str(info.value)
    with pytest.raises(gexc.NotFound):
        client.bucket("media-one").delete()
    _contract(emulator)


def test_bucket_names_are_global(emulator, client):
    _new_bucket(client, "global-name")
    with pytest.raises(gexc.Conflict) as mine:
        _new_bucket(client, "global-name")
    assert "you already own it" in str(mine.value)
    with pytest.raises(gexc.Conflict) as theirs:
        _new_bucket(storage_client(emulator.url, OTHER), "global-name")
    assert "The requested bucket name is not available" in str(theirs.value)
    with pytest.raises(gexc.BadRequest):
        _new_bucket(client, "bad_name_Upper")
    with pytest.raises(gexc.BadRequest):
        client.create_bucket("somewhere-else", location="mars-1")
    _contract(emulator)


def test_bucket_iam_etag(emulator, client):
    bucket = _new_bucket(client, "iam-bucket")
    policy = bucket.get_iam_policy(requested_policy_version=3)
    roles = {b["role"] for b in policy.bindings}
    assert "roles/storage.legacyBucketOwner" in roles  # a new bucket's default policy
    stale_etag = policy.etag

    policy.bindings.append(
        {"role": "roles/storage.objectAdmin", "members": {"serviceAccount:x@y.com"}}
    )
    updated = bucket.set_iam_policy(policy)
    assert updated.etag != stale_etag
    got = bucket.get_iam_policy(requested_policy_version=3)
    assert {"serviceAccount:x@y.com"} == set(
        next(b["members"] for b in got.bindings if b["role"] == "roles/storage.objectAdmin")
    )
    raw = emulator.emu.transcript.entries()[-1]["response"]
    assert raw["kind"] == "storage#policy"
    assert raw["resourceId"] == "projects/_/buckets/iam-bucket"

    stale = Policy.from_api_repr(
        {"etag": stale_etag, "version": 1, "bindings": [{"role": "roles/x", "members": []}]}
    )
    with pytest.raises(gexc.PreconditionFailed) as info:
        bucket.set_iam_policy(stale)
    assert "concurrent policy changes" in str(info.value)

    public = bucket.get_iam_policy(requested_policy_version=3)
    public.bindings.append({"role": "roles/storage.objectViewer", "members": {"allUsers"}})
    with pytest.raises(gexc.PreconditionFailed):  # public access prevention
        bucket.set_iam_policy(public)

    # unknown new service account in a binding: 400 from the shared policy rules
    sa = f"ghost@{PROJECT}.iam.gserviceaccount.com"
    fresh = bucket.get_iam_policy(requested_policy_version=3)
    fresh.bindings.append(
        {"role": "roles/storage.objectViewer", "members": {f"serviceAccount:{sa}"}}
    )
    with pytest.raises(gexc.BadRequest) as bad:
        bucket.set_iam_policy(fresh)
    assert "does not exist" in str(bad.value)
    bucket.delete()
    assert emulator.emu.store.get(policies.POLICY_KIND, "b/iam-bucket") is None
    _contract(emulator)


def _checks(data: bytes) -> tuple[str, str]:
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    crc = base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
    return md5, crc


def test_objects_upload_download_list_delete(emulator, client):
    bucket = _new_bucket(client, "objects-bucket")
    small = b"hello world"
    blob = bucket.blob("dir/a.txt")
    blob.upload_from_string(small, content_type="text/plain")  # multipart
    assert blob.generation and blob.md5_hash == _checks(small)[0]
    assert blob.crc32c == _checks(small)[1]

    big = bytes(range(256)) * (9 * 4096 + 7)  # > 8 MiB: the client goes resumable
    assert len(big) > 8 * 1024 * 1024
    bucket.blob("dir/big.bin").upload_from_string(big, content_type="application/octet-stream")

    chunked = bucket.blob("dir/sub/chunked.bin", chunk_size=256 * 1024)  # resumable, 3 PUTs
    payload = b"x" * (600 * 1024)
    chunked.upload_from_string(payload)
    methods = [
        (e["method"], e["query"].get("uploadType")) for e in emulator.emu.transcript.entries()
    ]
    assert ("POST", ["multipart"]) in methods and ("POST", ["resumable"]) in methods

    meta = bucket.get_blob("dir/big.bin")
    assert meta.size == len(big)
    assert (meta.md5_hash, meta.crc32c) == _checks(big)
    assert meta.download_as_bytes() == big  # mediaLink
    assert bucket.blob("dir/a.txt").download_as_bytes() == small  # /download/ URL
    assert bucket.blob("dir/sub/chunked.bin").download_as_bytes() == payload

    # a new write makes a new generation
    first = bucket.get_blob("dir/a.txt").generation
    bucket.blob("dir/a.txt").upload_from_string(b"v2")
    assert bucket.get_blob("dir/a.txt").generation > first
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("dir/a.txt").upload_from_string(b"v3", if_generation_match=0)

    bucket.blob("top.txt").upload_from_string(b"t")
    names = [b.name for b in client.list_blobs("objects-bucket", prefix="dir/")]
    assert names == ["dir/a.txt", "dir/big.bin", "dir/sub/chunked.bin"]
    it = client.list_blobs("objects-bucket", delimiter="/")
    assert [b.name for b in it] == ["top.txt"] and it.prefixes == {"dir/"}
    paged = client.list_blobs("objects-bucket", max_results=10, page_size=2)
    assert len(list(paged)) == 4
    assert emulator.emu.transcript.entries()[-1]["query"].get("pageToken")

    with pytest.raises(gexc.NotFound):
        bucket.blob("missing").download_as_bytes()
    with pytest.raises(gexc.Conflict) as info:
        bucket.delete()
    assert "The bucket you tried to delete is not empty." in str(info.value)

    for b in client.list_blobs("objects-bucket"):
        b.delete()
    with pytest.raises(gexc.NotFound):
        bucket.blob("top.txt").delete()
    bucket.delete()
    _contract(emulator)


def test_errors_are_legacy_format(emulator, client):
    with pytest.raises(gexc.NotFound):
        client.get_bucket("nothing-here")
    body = emulator.emu.transcript.entries()[-1]["response"]
    assert body["error"]["errors"][0]["reason"] == "notFound"
    assert body["error"]["errors"][0]["domain"] == "global"
    _contract(emulator)


def test_resumable_chunks_and_enable_are_transactions(emulator, client, monkeypatch):
    """The read-modify-writes of an upload session and of a service enable happen inside one
    store transaction (two chunks, or two enables, cannot interleave)."""
    from deployer.emulator import serviceusage, storage

    store = emulator.emu.store
    seen: list[tuple[str, int]] = []
    real_put, real_get = store.put, store.get

    def put(kind, key, value):
        if kind == storage.UPLOAD_KIND:
            seen.append((kind, store._depth))
        real_put(kind, key, value)

    def get(kind, key):
        if kind == serviceusage.KIND:  # enable's read of the service state
            seen.append((kind, store._depth))
        return real_get(kind, key)

    monkeypatch.setattr(store, "put", put)
    monkeypatch.setattr(store, "get", get)
    import http.client

    bucket = _new_bucket(client, "storage-proj-chunks")
    host, port = emulator.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(
        "POST",
        f"/upload/storage/v1/b/{bucket.name}/o?uploadType=resumable&name=c.bin",
        body=b"{}",
        headers={"Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    resp.read()
    session = resp.getheader("Location").split(emulator.url, 1)[-1]
    for crange, data in (("bytes 0-4/*", b"hello"), ("bytes 5-10/11", b" world")):
        conn.request("PUT", session, body=data, headers={"Content-Range": crange})
        conn.getresponse().read()
    conn.close()
    assert bucket.get_blob("c.bin").download_as_bytes() == b"hello world"
    # the first write creates the session (POST); the chunk's update must be in a transaction
    chunk_writes = [d for k, d in seen if k == storage.UPLOAD_KIND][1:]
    assert chunk_writes and all(d > 0 for d in chunk_writes)
    seen.clear()
    su = emulator.discovery("serviceusage", "v1")
    su.services().enable(name=f"projects/{PROJECT}/services/run.googleapis.com", body={}).execute()
    reads = [d for k, d in seen if k == serviceusage.KIND]
    assert reads and all(d > 0 for d in reads)

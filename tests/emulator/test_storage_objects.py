"""Cloud Storage object fidelity, driven through google-cloud-storage: generations and
versioning, preconditions on every object method (downloads too), ETag, Range, 304, legacy ACLs
on uniform access, list filters, and fields the emulator does not model."""

from __future__ import annotations

import datetime
import http.client

import pytest
from google.api_core import exceptions as gexc

from deployer.emulator.testing import storage_client
from tests.contract import check_transcript

PROJECT = "objects-proj"


def _contract(emulator) -> None:
    """Every exchange validates against storage.v1.json (the /download/ media URL has no
    discovery method: skipped)."""
    entries = [
        e for e in emulator.emu.transcript.entries() if not e["path"].startswith("/download/")
    ]
    assert check_transcript(entries) == []


@pytest.fixture
def client(emulator):
    return storage_client(emulator.url, PROJECT)


def _bucket(client, name: str, *, versioned: bool = False, uniform: bool = True):
    bucket = client.bucket(name)
    bucket.iam_configuration.uniform_bucket_level_access_enabled = uniform
    bucket.versioning_enabled = versioned
    return client.create_bucket(bucket, location="europe-west1")


def _statuses(emulator, method: str = "GET") -> list[int | None]:
    return [e["status"] for e in emulator.emu.transcript.entries() if e["method"] == method]


def test_versioned_bucket_keeps_noncurrent_generations(emulator, client):
    bucket = _bucket(client, "versioned-media", versioned=True)
    first = bucket.blob("a.txt")
    first.upload_from_string(b"one")
    second = bucket.blob("a.txt")
    second.upload_from_string(b"two")
    assert second.generation > first.generation

    versions = list(client.list_blobs(bucket, versions=True))
    assert [(b.name, b.generation) for b in versions] == [
        ("a.txt", first.generation),
        ("a.txt", second.generation),
    ]
    assert versions[0].time_deleted is not None and versions[1].time_deleted is None
    assert [b.generation for b in client.list_blobs(bucket)] == [second.generation]

    # a generation reads (metadata and bytes) while noncurrent
    old = bucket.get_blob("a.txt", generation=first.generation)
    assert old.generation == first.generation
    assert old.download_as_bytes() == b"one"
    assert bucket.blob("a.txt", generation=first.generation).download_as_bytes() == b"one"
    assert bucket.blob("a.txt").download_as_bytes() == b"two"

    # deleting one generation deletes that one only
    bucket.blob("a.txt", generation=first.generation).delete()
    assert [b.generation for b in client.list_blobs(bucket, versions=True)] == [second.generation]
    with pytest.raises(gexc.NotFound):
        bucket.blob("a.txt", generation=first.generation).download_as_bytes()

    # deleting the live object keeps it as noncurrent: the bucket is not empty yet
    bucket.blob("a.txt").delete()
    assert bucket.get_blob("a.txt") is None
    assert [b.generation for b in client.list_blobs(bucket, versions=True)] == [second.generation]
    with pytest.raises(gexc.Conflict):
        bucket.delete()
    bucket.blob("a.txt", generation=second.generation).delete()
    bucket.delete()
    _contract(emulator)


def test_unversioned_overwrite_keeps_one_generation(emulator, client):
    bucket = _bucket(client, "plain-media")
    bucket.blob("a.txt").upload_from_string(b"one")
    live = bucket.blob("a.txt")
    live.upload_from_string(b"two")
    assert [b.generation for b in client.list_blobs(bucket, versions=True)] == [live.generation]
    live.delete()
    assert list(client.list_blobs(bucket, versions=True)) == []
    bucket.delete()
    _contract(emulator)


def test_versions_page_by_name_and_generation(emulator, client):
    bucket = _bucket(client, "paged-versions", versioned=True)
    written = []
    for name in ("a", "b"):
        for body in (b"1", b"2", b"3"):
            blob = bucket.blob(name)
            blob.upload_from_string(body)
            written.append((name, blob.generation))
    listed = [(b.name, b.generation) for b in client.list_blobs(bucket, versions=True, page_size=2)]
    assert listed == written
    _contract(emulator)


def test_preconditions_on_downloads_and_reads(emulator, client):
    bucket = _bucket(client, "conditions")
    blob = bucket.blob("a.txt")
    blob.upload_from_string(b"hello")
    gen, meta = blob.generation, blob.metageneration

    assert blob.download_as_bytes(if_generation_match=gen) == b"hello"
    assert blob.download_as_bytes(if_metageneration_match=meta) == b"hello"
    with pytest.raises(gexc.PreconditionFailed):
        blob.download_as_bytes(if_generation_match=gen + 1)
    with pytest.raises(gexc.PreconditionFailed):
        blob.download_as_bytes(if_metageneration_match=meta + 1)
    with pytest.raises(gexc.PreconditionFailed):
        blob.download_as_bytes(if_etag_match="not-the-etag")
    # not-match conditions that fail on a read: 304 Not Modified
    with pytest.raises(gexc.NotModified):
        blob.download_as_bytes(if_generation_not_match=gen)
    with pytest.raises(gexc.NotModified):
        blob.download_as_bytes(if_etag_not_match=blob.etag)
    with pytest.raises(gexc.NotModified):
        blob.reload(if_metageneration_not_match=meta)
    with pytest.raises(gexc.NotModified):
        blob.reload(if_etag_not_match=blob.etag)
    assert 304 in _statuses(emulator)
    blob.reload(if_generation_not_match=gen + 1, if_etag_match=blob.etag)
    with pytest.raises(gexc.NotModified):  # buckets: the metageneration conditions
        client.get_bucket(bucket.name, if_metageneration_not_match=bucket.metageneration)
    with pytest.raises(gexc.PreconditionFailed):
        bucket.patch(if_metageneration_match=bucket.metageneration + 1)

    # writes: the same conditions are 412
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("a.txt").upload_from_string(b"x", if_generation_not_match=gen)
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("a.txt").delete(if_metageneration_match=meta + 1)
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("a.txt").delete(if_generation_match=gen + 1)
    bucket.blob("a.txt").delete(if_generation_match=gen)
    # ifGenerationNotMatch needs a live object (0: "only if one exists")
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("a.txt").upload_from_string(b"x", if_generation_not_match=0)
    bucket.blob("a.txt").upload_from_string(b"x", if_generation_match=0)
    bucket.blob("a.txt").upload_from_string(b"y", if_generation_not_match=0)
    _contract(emulator)


def test_xml_style_condition_headers(emulator, client):
    """The x-goog-if-* header forms hold like the query parameters (raw HTTP: the client
    always sends query parameters)."""
    bucket = _bucket(client, "header-conditions")
    blob = bucket.blob("a.txt")
    blob.upload_from_string(b"hello")
    host, port = emulator.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    path = f"/download/storage/v1/b/{bucket.name}/o/a.txt?alt=media"
    seen = {}
    for header, value in (
        ("x-goog-if-generation-match", blob.generation),
        ("x-goog-if-generation-match", blob.generation + 1),
        ("x-goog-if-metageneration-match", 2),
        ("x-goog-if-generation-not-match", blob.generation),
        ("x-goog-if-metageneration-not-match", 1),
    ):
        conn.request("GET", path, headers={header: str(value)})
        resp = conn.getresponse()
        resp.read()
        seen[(header, value)] = resp.status
    conn.close()
    assert list(seen.values()) == [200, 412, 412, 304, 304]


def test_download_etag_and_range(emulator, client):
    bucket = _bucket(client, "ranges")
    data = bytes(range(200))
    bucket.blob("r.bin").upload_from_string(data)
    meta = bucket.get_blob("r.bin")

    blob = bucket.blob("r.bin")
    assert blob.download_as_bytes() == data
    assert blob.etag.strip('"') == meta.etag  # from the download's ETag header
    assert blob.generation == meta.generation

    assert bucket.blob("r.bin").download_as_bytes(start=10, end=19) == data[10:20]
    assert bucket.blob("r.bin").download_as_bytes(start=190) == data[190:]
    assert bucket.blob("r.bin").download_as_bytes(end=4) == data[:5]
    assert _statuses(emulator)[-3:] == [206, 206, 206]
    with pytest.raises(gexc.RequestRangeNotSatisfiable):
        bucket.blob("r.bin").download_as_bytes(start=500)

    host, port = emulator.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(
        "GET", f"/storage/v1/b/{bucket.name}/o/r.bin?alt=media", headers={"Range": "bytes=-5"}
    )
    resp = conn.getresponse()
    assert resp.status == 206 and resp.read() == data[-5:]
    assert resp.getheader("Content-Range") == "bytes 195-199/200"
    assert resp.getheader("ETag") == f'"{meta.etag}"'
    conn.request(
        "GET",
        f"/storage/v1/b/{bucket.name}/o/r.bin?alt=media",
        headers={"If-None-Match": f'"{meta.etag}"'},
    )
    resp = conn.getresponse()
    assert resp.status == 304 and resp.read() == b""
    conn.close()
    _contract(emulator)


def test_object_patch_bumps_metageneration(emulator, client):
    bucket = _bucket(client, "patching")
    blob = bucket.blob("a.txt")
    blob.upload_from_string(b"hello")
    etag_before = blob.etag
    blob.metadata = {"owner": "media"}
    blob.content_language = "en"
    blob.patch(if_metageneration_match=1)
    assert blob.metageneration == 2 and blob.etag != etag_before
    got = bucket.get_blob("a.txt")
    assert got.metadata == {"owner": "media"} and got.content_language == "en"
    assert got.generation == blob.generation
    blob.metadata = {"owner": "other"}
    with pytest.raises(gexc.PreconditionFailed):
        blob.patch(if_metageneration_match=1)
    assert bucket.blob("a.txt").download_as_bytes(if_metageneration_match=2) == b"hello"
    _contract(emulator)


def test_legacy_acls(emulator, client):
    uniform = _bucket(client, "uniform-acl")
    uniform.blob("a.txt").upload_from_string(b"x")
    for acl in (uniform.acl, uniform.default_object_acl, uniform.blob("a.txt").acl):
        with pytest.raises(gexc.BadRequest) as info:
            acl.reload()
        assert "uniform bucket-level access" in str(info.value)

    fine = _bucket(client, "fine-grained-acl", uniform=False)
    fine.blob("a.txt").upload_from_string(b"x")
    fine.acl.reload()
    number = fine._properties["projectNumber"]
    assert fine.acl.get_entity(f"project-owners-{number}") is not None
    fine.default_object_acl.reload()
    blob = fine.blob("a.txt")
    blob.acl.reload()
    roles = {e["entity"]: e["role"] for e in blob.acl}
    assert roles[f"project-viewers-{number}"] == "READER"
    _contract(emulator)


def test_list_filters(emulator, client):
    bucket = _bucket(client, "filters")
    for name in ("a/", "a/1.txt", "a/2.jpg", "a/b/3.txt", "b.txt", "c.txt", "d.jpg"):
        bucket.blob(name).upload_from_string(b".")

    def names(**kw) -> list[str]:
        return [b.name for b in client.list_blobs(bucket, **kw)]

    assert names(start_offset="b", end_offset="d") == ["b.txt", "c.txt"]
    assert names(match_glob="**.txt") == ["a/1.txt", "a/b/3.txt", "b.txt", "c.txt"]
    assert names(match_glob="*.txt") == ["b.txt", "c.txt"]
    assert names(match_glob="a/*.{jpg,txt}") == ["a/1.txt", "a/2.jpg"]
    assert names(match_glob="?.[bc]*") == []
    assert names(match_glob="[bc].txt") == ["b.txt", "c.txt"]

    plain = client.list_blobs(bucket, delimiter="/")
    assert [b.name for b in plain] == ["b.txt", "c.txt", "d.jpg"] and plain.prefixes == {"a/"}
    trailing = client.list_blobs(bucket, delimiter="/", include_trailing_delimiter=True)
    assert [b.name for b in trailing] == ["a/", "b.txt", "c.txt", "d.jpg"]
    assert trailing.prefixes == {"a/"}
    nested = client.list_blobs(bucket, prefix="a/", delimiter="/", page_size=1)
    assert [b.name for b in nested] == ["a/", "a/1.txt", "a/2.jpg"]
    assert nested.prefixes == {"a/b/"}
    _contract(emulator)


def test_unmodelled_fields_are_refused(emulator, client):
    bucket = client.bucket("unmodelled")
    bucket.retention_period = 3600
    with pytest.raises(gexc.BadRequest) as info:
        client.create_bucket(bucket, location="europe-west1")
    assert "retentionPolicy" in str(info.value)

    made = _bucket(client, "unmodelled")
    made.default_event_based_hold = True
    with pytest.raises(gexc.BadRequest) as patched:
        made.patch()
    assert "defaultEventBasedHold" in str(patched.value)
    assert client.get_bucket("unmodelled").default_event_based_hold is None

    blob = made.blob("a.txt")
    blob.custom_time = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    with pytest.raises(gexc.BadRequest) as custom:
        blob.upload_from_string(b"x")
    assert "customTime" in str(custom.value)
    assert made.get_blob("a.txt") is None
    _contract(emulator)

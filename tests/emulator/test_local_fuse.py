"""GCS FUSE, locally (docs/emulator.md, "Media (GCS FUSE)"): a mounted bucket's directory and
its objects stay in step, through the real google-cloud-storage client."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from deployer.emulator import Emulator, serve
from deployer.emulator.testing import EmulatorHandle, storage_client
from tests.contract import check_transcript

PROJECT = "fuse-proj"


@pytest.fixture
def client(executing_emulator: EmulatorHandle) -> Any:
    yield storage_client(executing_emulator.url, PROJECT)
    entries = [
        e
        for e in executing_emulator.emu.transcript.entries()
        if not e["path"].startswith("/download/")
    ]
    assert check_transcript(entries) == []


def mount(handle: EmulatorHandle, client: Any, name: str = "media-bucket") -> tuple[Any, Path]:
    bucket = client.create_bucket(name, location="europe-west1")
    root = handle.emu.local.bucket_dir(name)
    assert root is not None
    return bucket, root


def test_objects_uploaded_appear_as_files_and_go_with_delete(
    executing_emulator: EmulatorHandle, client: Any
) -> None:
    bucket = client.create_bucket("media-bucket", location="europe-west1")
    bucket.blob("before/mount.txt").upload_from_string(b"already there")
    root = executing_emulator.emu.local.bucket_dir("media-bucket")
    assert root is not None
    assert (root / "before" / "mount.txt").read_bytes() == b"already there"  # on first mount

    blob = bucket.blob("uploads/2026/photo.jpg")
    blob.upload_from_string(b"\xff\xd8jpeg", content_type="image/jpeg")
    path = root / "uploads" / "2026" / "photo.jpg"
    assert path.read_bytes() == b"\xff\xd8jpeg"
    blob.upload_from_string(b"rewritten")
    assert path.read_bytes() == b"rewritten"
    blob.delete()
    assert not path.exists()
    assert not (root / "uploads").exists()  # implicit directories go with their last object
    assert [b.name for b in client.list_blobs("media-bucket")] == ["before/mount.txt"]


def test_files_written_become_objects(executing_emulator: EmulatorHandle, client: Any) -> None:
    bucket, root = mount(executing_emulator, client)
    data = os.urandom(200_000)
    (root / "avatars").mkdir()
    (root / "avatars" / "me.png").write_bytes(data)
    (root / "notes.txt").write_text("hello")
    (root / "empty").mkdir()

    listed = {b.name: b for b in client.list_blobs("media-bucket")}
    assert sorted(listed) == ["avatars/me.png", "empty/", "notes.txt"]
    assert listed["avatars/me.png"].content_type == "image/png"
    assert listed["notes.txt"].content_type == "text/plain"
    assert bucket.blob("avatars/me.png").download_as_bytes() == data  # byte-identical
    first = bucket.get_blob("notes.txt").generation

    (root / "notes.txt").write_text("hello again")  # another size: a new generation
    again = bucket.get_blob("notes.txt")
    assert again.generation > first
    assert again.download_as_bytes() == b"hello again"
    assert bucket.get_blob("notes.txt").generation == again.generation  # nothing changed since

    (root / "notes.txt").unlink()
    assert bucket.get_blob("notes.txt") is None
    assert sorted(b.name for b in client.list_blobs("media-bucket")) == [
        "avatars/me.png",
        "empty/",
    ]


def test_api_only_mounts_nothing(emulator: EmulatorHandle) -> None:
    client = storage_client(emulator.url, PROJECT)
    bucket = client.create_bucket("media-bucket", location="europe-west1")
    assert emulator.emu.local.bucket_dir("media-bucket") is None
    bucket.blob("a.txt").upload_from_string(b"x")
    assert [b.name for b in client.list_blobs("media-bucket")] == ["a.txt"]


def test_a_bucket_with_files_is_not_empty_and_its_directory_goes_with_it(
    executing_emulator: EmulatorHandle, client: Any
) -> None:
    bucket, root = mount(executing_emulator, client)
    (root / "late.txt").write_text("written by the app")
    with pytest.raises(gexc.Conflict):
        bucket.delete()
    for blob in client.list_blobs("media-bucket"):  # the listing syncs the file in first
        blob.delete()
    bucket.delete()
    assert not root.exists()


def test_an_emulator_start_brings_mounted_directories_up_to_date(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with serve(Emulator(state_dir=state, execute=True)) as running:
        client = storage_client(running.url, PROJECT)
        bucket = client.create_bucket("media-bucket", location="europe-west1")
        root = running.emu.local.bucket_dir("media-bucket")
        assert root is not None
        bucket.blob("kept.txt").upload_from_string(b"kept")
    with serve(Emulator(state_dir=state, execute=False)) as api_only:  # no mirror meanwhile
        storage_client(api_only.url, PROJECT).bucket("media-bucket").blob(
            "while-off.txt"
        ).upload_from_string(b"written while nothing ran")
    assert not (root / "while-off.txt").exists()
    with serve(Emulator(state_dir=state, execute=True)):
        assert (root / "while-off.txt").read_bytes() == b"written while nothing ran"
        assert (root / "kept.txt").read_bytes() == b"kept"


def test_a_new_bucket_starts_empty_over_a_stale_directory(
    executing_emulator: EmulatorHandle, client: Any
) -> None:
    mounts = executing_emulator.emu.local.mounts
    assert mounts is not None
    stale = mounts.root / "media-bucket"  # left by a state that was reset
    stale.mkdir(parents=True)
    (stale / "old.txt").write_text("from before")
    _, root = mount(executing_emulator, client)
    assert list(client.list_blobs("media-bucket")) == []
    assert not (root / "old.txt").exists()

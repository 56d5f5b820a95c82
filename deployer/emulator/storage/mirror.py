"""GCS FUSE: a mounted bucket's objects and its directory (local/mounts.py) kept in step, only
while the emulator executes and only for a bucket some volume mounted.

- an object written through the API is written as a file at once (its modification time the
  object's ``updated``), a deleted one removed; the object remembers the file's size and
  modification time (``_file``);
- at each storage request on the bucket (a lazy sync): a file whose size or modification time
  is not the one its object remembers becomes a new generation (contentType guessed from the
  name), a new file a new object, an object whose file is gone is deleted; an empty directory
  becomes a ``dir/`` placeholder object, as ``mkdir`` through GCS FUSE makes one;
- an object that has no file yet (written while nothing was mounted) is written out.
"""

from __future__ import annotations

import mimetypes
import shutil
from typing import TYPE_CHECKING, Any, Protocol

from .model import BUCKET_KIND, OBJECT_KIND

if TYPE_CHECKING:
    from pathlib import Path

    from ..context import Emulator
    from ..local.mounts import Mounts

FILE = "_file"  # the object's [size, mtime_ns] as last mirrored


class Objects(Protocol):
    """What the sync needs of the objects backend (objects.Objects)."""

    emu: Emulator

    def store_from_file(
        self, bucket: str, name: str, data: bytes, stat: tuple[int, int], content_type: str
    ) -> None: ...

    def remove_for_file(self, bucket: str, name: str) -> None: ...

    @staticmethod
    def media(doc: dict[str, Any]) -> bytes: ...


def guess_type(name: str) -> str:
    if name.endswith("/"):
        return "application/octet-stream"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _mounted(emu: Emulator, bucket: str) -> tuple[Mounts, Path] | None:
    mounts = emu.local.mounts
    if mounts is None:
        return None
    root = mounts.mounted(bucket)
    return None if root is None else (mounts, root)


def written(emu: Emulator, doc: dict[str, Any], data: bytes) -> None:
    """An object was written through the API: its file too (before the object is stored)."""
    found = _mounted(emu, doc["bucket"])
    if found is None:
        doc.pop(FILE, None)
        return
    mounts, root = found
    stat = mounts.write(root, doc["name"], data, mtime=emu.clock())
    if stat is None:
        doc.pop(FILE, None)
    else:
        doc[FILE] = list(stat)


def deleted(emu: Emulator, bucket: str, name: str) -> None:
    """The live object ``name`` is gone: its file too."""
    found = _mounted(emu, bucket)
    if found is not None:
        mounts, root = found
        mounts.remove(root, name, keep=_placeholders(emu, bucket))


def _placeholders(emu: Emulator, bucket: str) -> set[str]:
    return {
        d["name"] for _, d in emu.store.list(OBJECT_KIND, f"{bucket}/") if d["name"].endswith("/")
    }


def holds_files(emu: Emulator, bucket: str) -> bool:
    """The bucket's directory holds a file (an object, or one to be: deleting the bucket is a
    409 then)."""
    found = _mounted(emu, bucket)
    return found is not None and bool(found[0].scan(found[1]).files)


def unmount(emu: Emulator, bucket: str) -> None:
    """The bucket is deleted, or made anew over a directory a forgotten state left: the
    directory goes (a new bucket starts empty; a volume mounts it again)."""
    found = _mounted(emu, bucket)
    if found is not None:
        shutil.rmtree(found[1], ignore_errors=True)


def sync(objects: Objects, bucket: str) -> None:
    """Bring the bucket's live objects and its directory into step (see the module)."""
    emu = objects.emu
    found = _mounted(emu, bucket)
    if found is None or emu.store.get(BUCKET_KIND, bucket) is None:
        return
    mounts, root = found
    with emu.store.transaction():
        scan = mounts.scan(root)
        live = {d["name"]: d for _, d in emu.store.list(OBJECT_KIND, f"{bucket}/")}
        for name, stat in scan.files.items():
            doc = live.get(name)
            if doc is not None and doc.get(FILE) is None:
                continue  # an object the file has not caught up with: the object wins, below
            if doc is None or tuple(doc[FILE]) != stat:
                data = mounts.read(root, name)
                if data is not None:
                    objects.store_from_file(bucket, name, data, stat, guess_type(name))
        for name in scan.empty_dirs - live.keys():
            objects.store_from_file(bucket, name, b"", (0, 0), guess_type(name))
        for name, doc in live.items():
            present = name in scan.dirs if name.endswith("/") else name in scan.files
            if doc.get(FILE) is not None and not present:
                objects.remove_for_file(bucket, name)
            elif doc.get(FILE) is None:
                made = mounts.write(root, name, objects.media(doc), mtime=emu.clock())
                if made is not None:
                    emu.store.put(OBJECT_KIND, f"{bucket}/{name}", {**doc, FILE: list(made)})

"""Cloud Storage objects, every generation of them, and resumable upload sessions: state and
behaviour, no HTTP."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..checksums import storage_hashes
from ..formats import merge_patch
from . import mirror
from .buckets import Buckets
from .errors import Invalid, NotFound, Required
from .listing import ListPage, ListQuery, walk
from .model import (
    NONCURRENT_KIND,
    OBJECT_KIND,
    UPLOAD_KIND,
    next_generation,
    refuse_unmodelled,
    timestamp,
)
from .preconditions import Conditions, etag

if TYPE_CHECKING:
    from ..context import Emulator

#: object fields the emulator keeps (the rest of the Object schema is refused when sent)
OBJECT_FIELDS = frozenset(
    {
        "name",
        "contentType",
        "cacheControl",
        "contentDisposition",
        "contentEncoding",
        "contentLanguage",
        "metadata",
        "md5Hash",
        "crc32c",
        "storageClass",
    }
)
_OBJECT_PATCHABLE = OBJECT_FIELDS - {"name", "md5Hash", "crc32c", "storageClass"}


def _object_key(bucket: str, name: str) -> str:
    return f"{bucket}/{name}"


def _noncurrent_key(bucket: str, name: str, generation: int) -> str:
    return f"{bucket}/{name}#{generation:020d}"


def _check_object_name(name: str) -> None:
    if not name:
        raise Required("Required")
    if len(name.encode()) > 1024 or "\n" in name or "\r" in name:
        raise Invalid(f"Invalid object name: {name}")


@dataclass(frozen=True)
class Upload:
    """What an upload carries besides its bytes."""

    metadata: dict[str, Any]
    conditions: Conditions


class Objects:
    """Cloud Storage objects on the emulator's store and clock."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = emu.store
        self.buckets = Buckets(emu)

    def _versioned(self, bucket: dict[str, Any]) -> bool:
        return bool((bucket.get("versioning") or {}).get("enabled"))

    def _retire(self, bucket: dict[str, Any], live: dict[str, Any], now: float) -> None:
        """The live generation stops being live: kept as noncurrent when versioning is on."""
        if self._versioned(bucket):
            old = {**live, "timeDeleted": timestamp(now)}
            key = _noncurrent_key(bucket["name"], live["name"], int(live["generation"]))
            self.store.put(NONCURRENT_KIND, key, old)

    def write_object(self, bucket: str, name: str, data: bytes, upload: Upload) -> dict[str, Any]:
        """A new generation of ``name``; the previous live one becomes noncurrent on a
        versioned bucket, is gone otherwise."""
        mirror.sync(self, bucket)
        return self._write(bucket, name, data, upload, file=None)

    def store_from_file(
        self, bucket: str, name: str, data: bytes, stat: tuple[int, int], content_type: str
    ) -> None:
        """A file an app wrote through a GCS FUSE mount (storage/mirror.py): a new
        generation of its object that remembers the file it came from."""
        upload = Upload({"contentType": content_type}, Conditions())
        self._write(bucket, name, data, upload, file=stat)

    def remove_for_file(self, bucket: str, name: str) -> None:
        """An app removed the file of a live object through the mount: the object goes (kept
        as noncurrent on a versioned bucket)."""
        with self.store.transaction():
            bdoc = self.buckets.bucket(bucket)
            doc = self.store.get(OBJECT_KIND, _object_key(bucket, name))
            if doc is not None:
                self.store.delete(OBJECT_KIND, _object_key(bucket, name))
                self._retire(bdoc, doc, self.emu.clock())

    def _write(
        self,
        bucket: str,
        name: str,
        data: bytes,
        upload: Upload,
        *,
        file: tuple[int, int] | None,
    ) -> dict[str, Any]:
        """``file``: the stat of the mounted file the bytes come from; None: the API wrote
        them, and they go to the mount too."""
        _check_object_name(name)
        metadata = upload.metadata
        refuse_unmodelled(metadata, OBJECT_FIELDS, "object")
        md5, crc = storage_hashes(data)
        for key, have in (("md5Hash", md5), ("crc32c", crc)):
            sent = metadata.get(key)
            if sent and sent != have:
                raise Invalid(f'Provided {key} "{sent}" doesn\'t match calculated {key} "{have}".')
        with self.store.transaction():
            bdoc = self.buckets.bucket(bucket)
            current = self.store.get(OBJECT_KIND, _object_key(bucket, name))
            upload.conditions.check(current)
            now = self.emu.clock()
            generation = next_generation(self.emu)
            doc: dict[str, Any] = {
                "kind": "storage#object",
                "id": f"{bucket}/{name}/{generation}",
                "name": name,
                "bucket": bucket,
                "generation": str(generation),
                "metageneration": "1",
                "contentType": metadata.get("contentType") or "application/octet-stream",
                "storageClass": metadata.get("storageClass") or bdoc["storageClass"],
                "size": str(len(data)),
                "md5Hash": md5,
                "crc32c": crc,
                "etag": etag(generation=generation, metageneration=1),
                "timeCreated": timestamp(now),
                "updated": timestamp(now),
                "timeStorageClassUpdated": timestamp(now),
                "timeFinalized": timestamp(now),
                "_data": base64.b64encode(data).decode(),
            }
            for key in ("cacheControl", "contentDisposition", "contentEncoding", "contentLanguage"):
                if metadata.get(key):
                    doc[key] = metadata[key]
            if metadata.get("metadata"):
                doc["metadata"] = dict(metadata["metadata"])
            if current is not None:
                self._retire(bdoc, current, now)
            if file is None:
                mirror.written(self.emu, doc, data)
            else:
                doc[mirror.FILE] = list(file)
            self.store.put(OBJECT_KIND, _object_key(bucket, name), doc)
        return doc

    def get_object(
        self,
        bucket: str,
        name: str,
        *,
        generation: int | None,
        conditions: Conditions,
        read: bool = True,
    ) -> dict[str, Any]:
        """The live object, or the given generation (live or noncurrent)."""
        self.buckets.bucket(bucket)
        mirror.sync(self, bucket)
        doc = self.store.get(OBJECT_KIND, _object_key(bucket, name))
        if generation is not None and (doc is None or int(doc["generation"]) != generation):
            doc = self.store.get(NONCURRENT_KIND, _noncurrent_key(bucket, name, generation))
        if doc is None:
            raise NotFound(f"No such object: {bucket}/{name}")
        conditions.check(doc, read=read)
        return doc

    @staticmethod
    def media(doc: dict[str, Any]) -> bytes:
        return base64.b64decode(doc["_data"])

    def patch_object(
        self,
        bucket: str,
        name: str,
        patch: dict[str, Any],
        *,
        generation: int | None,
        conditions: Conditions,
    ) -> dict[str, Any]:
        """Metadata only: a new metageneration, the same generation and bytes."""
        refuse_unmodelled(patch, _OBJECT_PATCHABLE | {"name"}, "object")
        if patch.get("name") not in (None, name):
            raise Invalid("Object names cannot be changed by a patch.")
        with self.store.transaction():
            doc = self.get_object(
                bucket, name, generation=generation, conditions=conditions, read=False
            )
            if "timeDeleted" in doc:
                raise Invalid("A noncurrent object version cannot be patched.")
            new = merge_patch(doc, {k: v for k, v in patch.items() if k in _OBJECT_PATCHABLE})
            meta = int(doc["metageneration"]) + 1
            new["metageneration"] = str(meta)
            new["etag"] = etag(generation=int(doc["generation"]), metageneration=meta)
            new["updated"] = timestamp(self.emu.clock())
            self.store.put(OBJECT_KIND, _object_key(bucket, name), new)
        return new

    def delete_object(
        self, bucket: str, name: str, *, generation: int | None, conditions: Conditions
    ) -> None:
        """Without a generation: the live object (kept as noncurrent on a versioned bucket).
        With one: that generation, live or noncurrent, for good."""
        with self.store.transaction():
            bdoc = self.buckets.bucket(bucket)
            doc = self.get_object(
                bucket, name, generation=generation, conditions=conditions, read=False
            )
            if "timeDeleted" in doc:
                self.store.delete(
                    NONCURRENT_KIND, _noncurrent_key(bucket, name, int(doc["generation"]))
                )
                return
            self.store.delete(OBJECT_KIND, _object_key(bucket, name))
            mirror.deleted(self.emu, bucket, name)
            if generation is None:
                self._retire(bdoc, doc, self.emu.clock())

    def list_objects(self, bucket: str, query: ListQuery) -> ListPage:
        self.buckets.bucket(bucket)
        mirror.sync(self, bucket)
        prefix = f"{bucket}/{query.prefix}"
        docs = [d for _, d in self.store.list(OBJECT_KIND, prefix)]
        if query.versions:
            docs += [d for _, d in self.store.list(NONCURRENT_KIND, prefix)]
        docs.sort(key=lambda d: (d["name"], int(d["generation"])))
        return walk(docs, query)

    def object_acl(self, bucket: str, name: str, *, generation: int | None) -> list[dict[str, Any]]:
        """An object's ACL: the bucket's default object ACL it was written with."""
        items = self.buckets.legacy_acl(bucket, default=True)
        doc = self.get_object(bucket, name, generation=generation, conditions=Conditions())
        return [{**item, "object": name, "generation": doc["generation"]} for item in items]

    # -- resumable uploads -------------------------------------------------------------------

    def start_upload(self, bucket: str, name: str, upload: Upload) -> str:
        """A resumable session; its conditions are checked when the last byte arrives."""
        self.buckets.bucket(bucket)
        _check_object_name(name)
        refuse_unmodelled(upload.metadata, OBJECT_FIELDS, "object")
        upload_id = uuid.uuid4().hex
        self.store.put(
            UPLOAD_KIND,
            upload_id,
            {
                "bucket": bucket,
                "name": name,
                "metadata": upload.metadata,
                "data": "",
                "conditions": upload.conditions.stored(),
            },
        )
        return upload_id

    def put_chunk(
        self, bucket: str, upload_id: str, *, start: int | None, total: int | None, body: bytes
    ) -> dict[str, Any] | int:
        """Append a chunk at ``start`` (None: the whole body); the new object once ``total``
        bytes are in, else how many bytes the session holds."""
        with self.store.transaction():  # two chunks of one session must not interleave
            sess = self.store.get(UPLOAD_KIND, upload_id)
            if sess is None or sess["bucket"] != bucket:
                raise NotFound("No such upload session.")
            data = base64.b64decode(sess["data"])
            if start is not None:
                if start > len(data):
                    raise Invalid("Chunk starts past the bytes received so far.")
                data = data[:start] + body
            if total is not None and len(data) >= total:
                self.store.delete(UPLOAD_KIND, upload_id)
                upload = Upload(sess["metadata"], Conditions.from_stored(sess["conditions"]))
                return self.write_object(bucket, sess["name"], data[:total], upload)
            sess["data"] = base64.b64encode(data).decode()
            self.store.put(UPLOAD_KIND, upload_id, sess)
            return len(data)

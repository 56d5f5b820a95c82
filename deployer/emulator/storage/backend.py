"""Cloud Storage's state and behaviour, with no HTTP: buckets, bucket IAM, objects and every
generation of them, resumable upload sessions.

Documents in the store: a bucket under ``BUCKET_KIND`` by name; the live generation of an
object under ``OBJECT_KIND`` at ``{bucket}/{name}`` (Cloud Build reads its sources there);
noncurrent generations (kept when the bucket's versioning is on) under ``NONCURRENT_KIND`` at
``{bucket}/{name}#{generation:020d}``, with ``timeDeleted``. Fields starting with ``_`` are
internal (the object's bytes, the bucket's project) and never rendered.
"""

from __future__ import annotations

import base64
import copy
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import policies
from ..checksums import storage_hashes
from ..errors import ApiError
from ..projects import REGIONS
from ..routing import merge_patch
from .errors import Conflict, Invalid, NotFound, PreconditionFailed, Required
from .listing import ListPage, ListQuery, walk
from .preconditions import Conditions, etag

if TYPE_CHECKING:
    from ..server import Emulator

BUCKET_KIND = "storage.bucket"
OBJECT_KIND = "storage.object"
NONCURRENT_KIND = "storage.object.noncurrent"
UPLOAD_KIND = "storage.upload"
META_KIND = "storage.meta"

MULTI_REGIONS = frozenset({"US", "EU", "ASIA"})
DUAL_REGIONS = frozenset({"NAM4", "EUR4", "ASIA1", "EUR5", "EUR7", "EUR8"})
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")

NOT_EMPTY = "The bucket you tried to delete is not empty."
OWNED = "Your previous request to create the named bucket succeeded and you already own it."
TAKEN = (
    "The requested bucket name is not available. The bucket namespace is shared by all users "
    "of the system. Please select a different name and try again."
)
NO_BUCKET = "The specified bucket does not exist."
UNIFORM_ACL = (
    "Cannot get legacy ACL for a bucket that has uniform bucket-level access. Read more at "
    "https://cloud.google.com/storage/docs/uniform-bucket-level-access"
)

#: bucket fields the emulator keeps and answers; a client may set them
BUCKET_FIELDS = frozenset(
    {
        "name",
        "labels",
        "location",
        "storageClass",
        "iamConfiguration",
        "lifecycle",
        "versioning",
        "cors",
        "website",
        "logging",
        "rpo",
    }
)
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
#: fields only the server sets: sent back by a client (a read-modify-write), they are ignored,
#: as Google ignores output-only fields
_OUTPUT_ONLY = frozenset(
    {
        "kind",
        "id",
        "selfLink",
        "mediaLink",
        "bucket",
        "etag",
        "generation",
        "metageneration",
        "projectNumber",
        "timeCreated",
        "updated",
        "timeFinalized",
        "timeStorageClassUpdated",
        "timeDeleted",
        "locationType",
        "size",
    }
)
_OBJECT_PATCHABLE = OBJECT_FIELDS - {"name", "md5Hash", "crc32c", "storageClass"}


def refuse_unmodelled(body: dict[str, Any], modelled: frozenset[str], what: str) -> None:
    """A field the emulator does not keep is a 400 naming it, never silently dropped."""
    for key in sorted(body):
        if key not in modelled and key not in _OUTPUT_ONLY:
            raise Invalid(
                f"The djdeploy emulator does not model the {what} field '{key}': remove it "
                "from the request (the emulator would otherwise drop it)."
            )


def timestamp(t: float) -> str:
    """GCS timestamps: RFC 3339, milliseconds, 'Z'."""
    d = datetime.fromtimestamp(t, tz=UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def bucket_policy_key(bucket: str) -> str:
    return f"b/{bucket}"


def _object_key(bucket: str, name: str) -> str:
    return f"{bucket}/{name}"


def _noncurrent_key(bucket: str, name: str, generation: int) -> str:
    return f"{bucket}/{name}#{generation:020d}"


def _check_location(location: str) -> tuple[str, str]:
    loc = location.upper()
    if loc in MULTI_REGIONS:
        return loc, "multi-region"
    if loc in DUAL_REGIONS:
        return loc, "dual-region"
    if location.lower() in REGIONS:
        return loc, "region"
    raise Invalid("The specified location constraint is not valid.")


def _check_labels(labels: Any) -> None:
    if not isinstance(labels, dict):
        raise Invalid("Invalid argument: labels must be an object.")
    if len(labels) > 64:
        raise Invalid("A bucket may have at most 64 labels.")
    for k, v in labels.items():
        if not re.match(r"^[a-z][a-z0-9_-]{0,62}$", k) or (
            v is not None and not re.match(r"^[a-z0-9_-]{0,63}$", str(v))
        ):
            raise Invalid(f"Invalid argument: label {k}={v}")


def _check_object_name(name: str) -> None:
    if not name:
        raise Required("Required")
    if len(name.encode()) > 1024 or "\n" in name or "\r" in name:
        raise Invalid(f"Invalid object name: {name}")


def _normalize_iam_config(cfg: dict[str, Any], now: float) -> dict[str, Any]:
    ubla = dict(cfg.get("uniformBucketLevelAccess") or cfg.get("bucketPolicyOnly") or {})
    enabled = bool(ubla.get("enabled", False))
    ubla = {"enabled": enabled}
    if enabled:
        ubla["lockedTime"] = timestamp(now + 90 * 86400)
    pap = cfg.get("publicAccessPrevention") or "inherited"
    if pap == "unspecified":
        pap = "inherited"
    if pap not in ("inherited", "enforced"):
        raise Invalid(f"Invalid value for publicAccessPrevention: {pap}")
    return {
        "bucketPolicyOnly": dict(ubla),
        "uniformBucketLevelAccess": dict(ubla),
        "publicAccessPrevention": pap,
    }


def _default_policy(project_id: str) -> dict[str, Any]:
    """A new bucket's policy: the legacy roles of the project's basic roles."""
    return {
        "version": 1,
        "bindings": [
            {
                "role": "roles/storage.legacyBucketOwner",
                "members": [f"projectEditor:{project_id}", f"projectOwner:{project_id}"],
            },
            {
                "role": "roles/storage.legacyBucketReader",
                "members": [f"projectViewer:{project_id}"],
            },
        ],
    }


@dataclass(frozen=True)
class Upload:
    """What an upload carries besides its bytes."""

    metadata: dict[str, Any]
    conditions: Conditions


class StorageBackend:
    """Cloud Storage on the emulator's store and clock."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.store = emu.store

    # -- buckets ---------------------------------------------------------------------------

    def bucket(self, name: str, *, visible_only: bool = True) -> dict[str, Any]:
        doc = self.store.get(BUCKET_KIND, name)
        if doc is None or (visible_only and float(doc.get("_visibleAt", 0.0)) > self.emu.clock()):
            raise NotFound(NO_BUCKET)
        return doc

    def insert_bucket(
        self, *, project_id: str, number: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        name = body.get("name")
        if not name:
            raise Required("Required")
        if not _BUCKET_RE.match(name) or name.startswith("goog") or "google" in name:
            raise Invalid(f"Invalid bucket name: '{name}'")
        refuse_unmodelled(body, BUCKET_FIELDS, "bucket")
        location, location_type = _check_location(body.get("location") or "US")
        if body.get("labels") is not None:
            _check_labels(body["labels"])
        now = self.emu.clock()
        with self.store.transaction():
            existing = self.store.get(BUCKET_KIND, name)
            if existing is not None:
                raise Conflict(OWNED if existing["_project"] == project_id else TAKEN)
            doc: dict[str, Any] = {
                "kind": "storage#bucket",
                "id": name,
                "name": name,
                "projectNumber": number,
                "generation": str(self._next_generation()),
                "metageneration": "1",
                "location": location,
                "locationType": location_type,
                "storageClass": body.get("storageClass") or "STANDARD",
                "timeCreated": timestamp(now),
                "updated": timestamp(now),
                "softDeletePolicy": {
                    "retentionDurationSeconds": "604800",
                    "effectiveTime": timestamp(now),
                },
                "iamConfiguration": _normalize_iam_config(body.get("iamConfiguration") or {}, now),
                "rpo": body.get("rpo") or "DEFAULT",
                "etag": etag(metageneration=1),
                "_project": project_id,
                "_visibleAt": now + self.emu.latency.duration("storage.bucket.visibility"),
            }
            for key in ("labels", "lifecycle", "versioning", "cors", "website", "logging"):
                if body.get(key) is not None:
                    doc[key] = copy.deepcopy(body[key])
            if doc.get("labels") is not None:
                doc["labels"] = {k: v for k, v in doc["labels"].items() if v is not None}
            self.store.put(BUCKET_KIND, name, doc)
            policies.set_policy(self.emu, bucket_policy_key(name), _default_policy(project_id))
        return doc

    def list_buckets(
        self, project_id: str, *, prefix: str, max_results: int, token: str
    ) -> tuple[list[dict[str, Any]], str]:
        """(one page of the project's buckets, the next page token or "")."""
        docs = [
            d
            for k, d in self.store.list(BUCKET_KIND, prefix)
            if d["_project"] == project_id and k > token
        ]
        page = docs[:max_results]
        return page, page[-1]["name"] if len(docs) > max_results else ""

    def patch_bucket(
        self, name: str, patch: dict[str, Any], conditions: Conditions
    ) -> dict[str, Any]:
        refuse_unmodelled(patch, BUCKET_FIELDS, "bucket")
        patch = {k: v for k, v in patch.items() if k in BUCKET_FIELDS}
        with self.store.transaction():
            doc = self.bucket(name)
            conditions.check(doc)
            if "name" in patch and patch["name"] != name:
                raise Invalid("Bucket names cannot be changed.")
            if patch.get("location") and patch["location"].upper() != doc["location"]:
                raise Invalid("The bucket's location cannot be changed.")
            if isinstance(patch.get("labels"), dict):
                _check_labels(patch["labels"])
            now = self.emu.clock()
            new = merge_patch(doc, patch)
            if "iamConfiguration" in patch:
                new["iamConfiguration"] = self._patched_iam_config(
                    doc["iamConfiguration"], patch["iamConfiguration"] or {}, now
                )
            if not new.get("labels"):
                new.pop("labels", None)
            meta = int(doc["metageneration"]) + 1
            new["metageneration"] = str(meta)
            new["etag"] = etag(metageneration=meta)
            new["updated"] = timestamp(now)
            self.store.put(BUCKET_KIND, name, new)
        return new

    @staticmethod
    def _patched_iam_config(
        was: dict[str, Any], patch: dict[str, Any], now: float
    ) -> dict[str, Any]:
        cfg = dict(patch)
        if "bucketPolicyOnly" in cfg and "uniformBucketLevelAccess" not in cfg:
            cfg["uniformBucketLevelAccess"] = cfg["bucketPolicyOnly"]
        merged = merge_patch(was, cfg)
        merged.pop("bucketPolicyOnly", None)
        out = _normalize_iam_config(merged, now)
        if (
            was["uniformBucketLevelAccess"].get("enabled")
            and out["uniformBucketLevelAccess"]["enabled"]
        ):  # keep the original lock deadline
            for key in ("bucketPolicyOnly", "uniformBucketLevelAccess"):
                out[key]["lockedTime"] = was["uniformBucketLevelAccess"]["lockedTime"]
        return out

    def delete_bucket(self, name: str, conditions: Conditions) -> None:
        """409 while any generation, live or noncurrent, remains (as on Google)."""
        with self.store.transaction():
            doc = self.bucket(name, visible_only=False)
            conditions.check(doc)
            prefix = f"{name}/"
            if self.store.list(OBJECT_KIND, prefix, limit=1) or self.store.list(
                NONCURRENT_KIND, prefix, limit=1
            ):
                raise Conflict(NOT_EMPTY)
            self.store.delete(BUCKET_KIND, name)
            policies.delete_policy(self.emu, bucket_policy_key(name))

    def legacy_acl(self, bucket: str, *, default: bool = False) -> list[dict[str, Any]]:
        """A bucket's (or its default object) ACL: the project-team entries a new bucket
        gets. Uniform bucket-level access has no ACLs to read: 400, as on Google."""
        doc = self.bucket(bucket)
        if doc["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"]:
            raise Invalid(UNIFORM_ACL)
        number = doc["projectNumber"]
        kind = "storage#objectAccessControl" if default else "storage#bucketAccessControl"
        roles = (("owners", "OWNER"), ("editors", "OWNER"), ("viewers", "READER"))
        return [
            {
                "kind": kind,
                "bucket": bucket,
                "entity": f"project-{team}-{number}",
                "role": role,
                "projectTeam": {"projectNumber": number, "team": team},
                "etag": doc["etag"],
            }
            for team, role in roles
        ]

    def object_acl(self, bucket: str, name: str, *, generation: int | None) -> list[dict[str, Any]]:
        """An object's ACL: the bucket's default object ACL it was written with."""
        items = self.legacy_acl(bucket, default=True)
        doc = self.get_object(bucket, name, generation=generation, conditions=Conditions())
        return [{**item, "object": name, "generation": doc["generation"]} for item in items]

    # -- bucket IAM ------------------------------------------------------------------------

    def get_policy(self, bucket: str) -> dict[str, Any]:
        self.bucket(bucket)
        return policies.get_policy(self.emu, bucket_policy_key(bucket))

    def set_policy(self, bucket: str, policy: dict[str, Any]) -> dict[str, Any]:
        doc = self.bucket(bucket)
        ubla = doc["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"]
        pap = doc["iamConfiguration"]["publicAccessPrevention"] == "enforced"
        for b in policy.get("bindings") or []:
            if b.get("condition") and not ubla:
                raise Invalid(
                    "IAM conditions can only be used on buckets with uniform bucket-level access."
                )
            if pap and {"allUsers", "allAuthenticatedUsers"} & set(b.get("members") or []):
                raise PreconditionFailed(
                    "Public access prevention is enforced on this bucket: allUsers and "
                    "allAuthenticatedUsers cannot be granted access."
                )
        try:
            return policies.set_policy(
                self.emu, bucket_policy_key(bucket), policy, conflict_code=412
            )
        except ApiError as exc:  # re-answer in storage's legacy format
            if exc.code == 412:
                raise PreconditionFailed(exc.message) from None
            raise ApiError(exc.code, exc.message, legacy=True) from None

    # -- objects ---------------------------------------------------------------------------

    def _next_generation(self) -> int:
        """Microseconds since the epoch, strictly increasing (as GCS generations are)."""
        with self.store.transaction():
            last = (self.store.get(META_KIND, "generation") or {}).get("value", 0)
            gen = max(int(self.emu.clock() * 1e6), int(last) + 1)
            self.store.put(META_KIND, "generation", {"value": gen})
        return gen

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
        _check_object_name(name)
        metadata = upload.metadata
        refuse_unmodelled(metadata, OBJECT_FIELDS, "object")
        md5, crc = storage_hashes(data)
        for key, have in (("md5Hash", md5), ("crc32c", crc)):
            sent = metadata.get(key)
            if sent and sent != have:
                raise Invalid(f'Provided {key} "{sent}" doesn\'t match calculated {key} "{have}".')
        with self.store.transaction():
            bdoc = self.bucket(bucket)
            current = self.store.get(OBJECT_KIND, _object_key(bucket, name))
            upload.conditions.check(current)
            now = self.emu.clock()
            generation = self._next_generation()
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
        self.bucket(bucket)
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
            bdoc = self.bucket(bucket)
            doc = self.get_object(
                bucket, name, generation=generation, conditions=conditions, read=False
            )
            if "timeDeleted" in doc:
                self.store.delete(
                    NONCURRENT_KIND, _noncurrent_key(bucket, name, int(doc["generation"]))
                )
                return
            self.store.delete(OBJECT_KIND, _object_key(bucket, name))
            if generation is None:
                self._retire(bdoc, doc, self.emu.clock())

    def list_objects(self, bucket: str, query: ListQuery) -> ListPage:
        self.bucket(bucket)
        prefix = f"{bucket}/{query.prefix}"
        docs = [d for _, d in self.store.list(OBJECT_KIND, prefix)]
        if query.versions:
            docs += [d for _, d in self.store.list(NONCURRENT_KIND, prefix)]
        docs.sort(key=lambda d: (d["name"], int(d["generation"])))
        return walk(docs, query)

    # -- resumable uploads -------------------------------------------------------------------

    def start_upload(self, bucket: str, name: str, upload: Upload) -> str:
        """A resumable session; its conditions are checked when the last byte arrives."""
        self.bucket(bucket)
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

"""Cloud Storage JSON API v1: buckets, bucket IAM and objects (legacy error format).

    POST   /storage/v1/b?project=p                       buckets.insert
    GET    /storage/v1/b?project=p[&prefix&maxResults&pageToken]   buckets.list
    GET    /storage/v1/b/{b}                             buckets.get
    PATCH  /storage/v1/b/{b}                             buckets.patch (JSON merge patch)
    DELETE /storage/v1/b/{b}                             buckets.delete (409 when not empty)
    GET    /storage/v1/b/{b}/iam                         buckets.getIamPolicy (storage#policy)
    PUT    /storage/v1/b/{b}/iam                         buckets.setIamPolicy (stale etag: 412)
    POST   /upload/storage/v1/b/{b}/o?uploadType=media|multipart|resumable   objects.insert
    PUT    /upload/storage/v1/b/{b}/o?uploadType=resumable&upload_id=...     resumable chunks
    GET    /storage/v1/b/{b}/o[?prefix&delimiter&maxResults&pageToken]      objects.list
    GET    /storage/v1/b/{b}/o/{o}[?alt=media]           objects.get (metadata or bytes)
    GET    /download/storage/v1/b/{b}/o/{o}?alt=media    download (the client's media URL)
    DELETE /storage/v1/b/{b}/o/{o}                       objects.delete

Behaviour copied from Google: bucket names are global across projects (409 "you already own
it" for the same project, "not available" for another); locations come back upper-case;
uniform bucket-level access mirrors into ``bucketPolicyOnly``; a new bucket's policy holds the
legacy project-role bindings; ``PATCH`` is a JSON merge patch (``null`` removes a label);
deleting a bucket that still holds objects is 409; generations grow with every write; objects
carry ``md5Hash`` and ``crc32c`` (base64, big-endian) and downloads an ``X-Goog-Hash`` header.
Errors carry the ``errors[]`` list of discovery-era APIs.
"""

from __future__ import annotations

import base64
import copy
import email.parser
import email.policy
import json
import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import policies
from .checksums import storage_hashes
from .errors import ApiError
from .projects import REGIONS, resolve
from .routing import Request, Response, Router, merge_patch
from .serviceusage import require_enabled

if TYPE_CHECKING:
    from .context import Emulator

router = Router()

BUCKET_KIND = "storage.bucket"
OBJECT_KIND = "storage.object"
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
PRECONDITION = "At least one of the pre-conditions you specified did not hold."

#: fields a client may set on insert / patch (the rest are server-owned)
_WRITABLE = frozenset(
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
        "retentionPolicy",
        "softDeletePolicy",
        "autoclass",
        "hierarchicalNamespace",
        "rpo",
        "billing",
        "encryption",
        "defaultEventBasedHold",
        "customPlacementConfig",
    }
)


def _err(code: int, message: str, reason: str | None = None, **kw: Any) -> ApiError:
    return ApiError(code, message, legacy=True, legacy_reason=reason, **kw)


# -- helpers -------------------------------------------------------------------------------------


def _ts(t: float) -> str:
    """GCS timestamps: RFC 3339, milliseconds, 'Z'."""
    d = datetime.fromtimestamp(t, tz=UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _etag(metageneration: int) -> str:
    """GCS etags are a base64 protobuf varint: "CAE=" for metageneration 1."""
    return base64.b64encode(b"\x08" + _varint(metageneration)).decode()


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in doc.items() if not k.startswith("_")}


def _base_url(req: Request) -> str:
    host = req.headers.get("host") or "127.0.0.1"
    return f"http://{host}"


def _check_location(location: str) -> tuple[str, str]:
    loc = location.upper()
    if loc in MULTI_REGIONS:
        return loc, "multi-region"
    if loc in DUAL_REGIONS:
        return loc, "dual-region"
    if location.lower() in REGIONS:
        return loc, "region"
    raise _err(400, "The specified location constraint is not valid.", "invalid")


def _int_arg(req: Request, name: str) -> int | None:
    raw = req.arg(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _err(400, f"Invalid value for {name}: {raw}", "invalid") from None


# -- buckets -------------------------------------------------------------------------------------


def bucket_policy_key(bucket: str) -> str:
    return f"b/{bucket}"


def _bucket(emu: Emulator, name: str, *, visible_only: bool = True) -> dict[str, Any]:
    doc = emu.store.get(BUCKET_KIND, name)
    if doc is None or (visible_only and float(doc.get("_visibleAt", 0.0)) > emu.clock()):
        raise _err(404, NO_BUCKET, "notFound")
    return doc


def _normalize_iam_config(cfg: dict[str, Any], now: float) -> dict[str, Any]:
    ubla = dict(cfg.get("uniformBucketLevelAccess") or cfg.get("bucketPolicyOnly") or {})
    enabled = bool(ubla.get("enabled", False))
    ubla = {"enabled": enabled}
    if enabled:
        ubla["lockedTime"] = _ts(now + 90 * 86400)
    pap = cfg.get("publicAccessPrevention") or "inherited"
    if pap == "unspecified":
        pap = "inherited"
    if pap not in ("inherited", "enforced"):
        raise _err(400, f"Invalid value for publicAccessPrevention: {pap}", "invalid")
    return {
        "bucketPolicyOnly": dict(ubla),
        "uniformBucketLevelAccess": dict(ubla),
        "publicAccessPrevention": pap,
    }


def _render_bucket(req: Request, doc: dict[str, Any]) -> dict[str, Any]:
    out = _public(doc)
    out["selfLink"] = f"{_base_url(req)}/storage/v1/b/{doc['name']}"
    return out


def _check_labels(labels: Any) -> None:
    if not isinstance(labels, dict):
        raise _err(400, "Invalid argument: labels must be an object.", "invalid")
    if len(labels) > 64:
        raise _err(400, "A bucket may have at most 64 labels.", "invalid")
    for k, v in labels.items():
        if not re.match(r"^[a-z][a-z0-9_-]{0,62}$", k) or (
            v is not None and not re.match(r"^[a-z0-9_-]{0,63}$", str(v))
        ):
            raise _err(400, f"Invalid argument: label {k}={v}", "invalid")


@router.route("POST", "/storage/v1/b")
def insert_bucket(req: Request) -> dict[str, Any]:
    project = req.arg("project")
    if not project:
        raise _err(400, "Required parameter: project", "required")
    emu = req.emu
    project_id, number = resolve(emu, project)
    require_enabled(emu, project_id, "storage.googleapis.com", legacy=True)
    body = req.json()
    name = body.get("name")
    if not name:
        raise _err(400, "Required", "required")
    if not _BUCKET_RE.match(name) or name.startswith("goog") or "google" in name:
        raise _err(400, f"Invalid bucket name: '{name}'", "invalid")
    unknown = set(body) - _WRITABLE - {"kind", "id", "acl", "defaultObjectAcl"}
    if unknown:
        raise _err(400, f"Invalid argument: unknown field {sorted(unknown)[0]}", "invalid")
    location, location_type = _check_location(body.get("location") or "US")
    if body.get("labels") is not None:
        _check_labels(body["labels"])
    now = emu.clock()
    with emu.store.transaction():
        existing = emu.store.get(BUCKET_KIND, name)
        if existing is not None:
            if existing["_project"] == project_id:
                raise _err(409, OWNED, "conflict")
            raise _err(409, TAKEN, "conflict")
        doc: dict[str, Any] = {
            "kind": "storage#bucket",
            "id": name,
            "name": name,
            "projectNumber": number,
            "generation": str(_next_generation(emu)),
            "metageneration": "1",
            "location": location,
            "locationType": location_type,
            "storageClass": body.get("storageClass") or "STANDARD",
            "timeCreated": _ts(now),
            "updated": _ts(now),
            "softDeletePolicy": {"retentionDurationSeconds": "604800", "effectiveTime": _ts(now)},
            "iamConfiguration": _normalize_iam_config(body.get("iamConfiguration") or {}, now),
            "rpo": "DEFAULT",
            "etag": _etag(1),
            "_project": project_id,
            "_visibleAt": now + emu.latency.duration("storage.bucket.visibility"),
        }
        for key in ("labels", "lifecycle", "versioning", "cors", "website", "logging"):
            if body.get(key) is not None:
                doc[key] = copy.deepcopy(body[key])
        if doc.get("labels") is not None:
            doc["labels"] = {k: v for k, v in doc["labels"].items() if v is not None}
        emu.store.put(BUCKET_KIND, name, doc)
        # a new bucket's policy: the legacy roles of the project's basic roles
        policies.set_policy(
            emu,
            bucket_policy_key(name),
            {
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
            },
        )
    return _render_bucket(req, doc)


@router.route("GET", "/storage/v1/b")
def list_buckets(req: Request) -> dict[str, Any]:
    project = req.arg("project")
    if not project:
        raise _err(400, "Required parameter: project", "required")
    emu = req.emu
    project_id, _ = resolve(emu, project)
    require_enabled(emu, project_id, "storage.googleapis.com", legacy=True)
    prefix = req.arg("prefix") or ""
    max_results = _int_arg(req, "maxResults") or 1000
    token = req.arg("pageToken") or ""
    docs = [
        d
        for k, d in emu.store.list(BUCKET_KIND, prefix)
        if d["_project"] == project_id and k > token
    ]
    page = docs[:max_results]
    out: dict[str, Any] = {"kind": "storage#buckets"}
    if page:
        out["items"] = [_render_bucket(req, d) for d in page]
    if len(docs) > max_results:
        out["nextPageToken"] = page[-1]["name"]
    return out


@router.route("GET", "/storage/v1/b/{bucket}")
def get_bucket(req: Request, bucket: str) -> dict[str, Any]:
    return _render_bucket(req, _bucket(req.emu, bucket))


def _check_metageneration(req: Request, doc: dict[str, Any]) -> None:
    want = _int_arg(req, "ifMetagenerationMatch")
    if want is not None and want != int(doc["metageneration"]):
        raise _err(412, PRECONDITION, "conditionNotMet")


@router.route("PATCH", "/storage/v1/b/{bucket}")
def patch_bucket(req: Request, bucket: str) -> dict[str, Any]:
    emu = req.emu
    body = req.json()
    with emu.store.transaction():
        doc = _bucket(emu, bucket)
        _check_metageneration(req, doc)
        patch = {k: v for k, v in body.items() if k in _WRITABLE}
        if "name" in patch and patch["name"] != bucket:
            raise _err(400, "Bucket names cannot be changed.", "invalid")
        if (
            "location" in patch
            and patch["location"]
            and patch["location"].upper() != doc["location"]
        ):
            raise _err(400, "The bucket's location cannot be changed.", "invalid")
        if isinstance(patch.get("labels"), dict):
            _check_labels(patch["labels"])
        now = emu.clock()
        new = merge_patch(doc, patch)
        if "iamConfiguration" in patch:
            cfg = dict(patch["iamConfiguration"] or {})
            if "bucketPolicyOnly" in cfg and "uniformBucketLevelAccess" not in cfg:
                cfg["uniformBucketLevelAccess"] = cfg["bucketPolicyOnly"]
            merged = merge_patch(doc["iamConfiguration"], cfg)
            merged.pop("bucketPolicyOnly", None)
            was = doc["iamConfiguration"]["uniformBucketLevelAccess"]
            new["iamConfiguration"] = _normalize_iam_config(merged, now)
            if (
                was.get("enabled")
                and new["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"]
            ):  # keep the original lock deadline
                for key in ("bucketPolicyOnly", "uniformBucketLevelAccess"):
                    new["iamConfiguration"][key]["lockedTime"] = was["lockedTime"]
        if not new.get("labels"):
            new.pop("labels", None)
        meta = int(doc["metageneration"]) + 1
        new["metageneration"] = str(meta)
        new["etag"] = _etag(meta)
        new["updated"] = _ts(now)
        emu.store.put(BUCKET_KIND, bucket, new)
    return _render_bucket(req, new)


@router.route("DELETE", "/storage/v1/b/{bucket}")
def delete_bucket(req: Request, bucket: str) -> Response:
    emu = req.emu
    with emu.store.transaction():
        doc = _bucket(emu, bucket, visible_only=False)
        _check_metageneration(req, doc)
        if emu.store.list(OBJECT_KIND, f"{bucket}/"):
            raise _err(409, NOT_EMPTY, "conflict")
        emu.store.delete(BUCKET_KIND, bucket)
        policies.delete_policy(emu, bucket_policy_key(bucket))
    return Response(204, None)


# -- bucket IAM ----------------------------------------------------------------------------------


def _render_policy(bucket: str, policy: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "storage#policy",
        "resourceId": f"projects/_/buckets/{bucket}",
        "version": policy.get("version", 1),
        "etag": policy["etag"],
    }
    if policy.get("bindings"):
        out["bindings"] = policy["bindings"]
    return out


@router.route("GET", "/storage/v1/b/{bucket}/iam")
def get_bucket_iam(req: Request, bucket: str) -> dict[str, Any]:
    _bucket(req.emu, bucket)
    version = _int_arg(req, "optionsRequestedPolicyVersion") or 1
    if version not in (1, 3):
        raise _err(400, f"Invalid requested policy version {version}.", "invalid")
    return _render_policy(bucket, policies.get_policy(req.emu, bucket_policy_key(bucket)))


@router.route("PUT", "/storage/v1/b/{bucket}/iam")
def set_bucket_iam(req: Request, bucket: str) -> dict[str, Any]:
    body = req.json()
    doc = _bucket(req.emu, bucket)
    ubla = doc["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"]
    pap = doc["iamConfiguration"]["publicAccessPrevention"] == "enforced"
    policy: dict[str, Any] = {k: body[k] for k in ("version", "etag", "bindings") if k in body}
    for b in policy.get("bindings") or []:
        if b.get("condition") and not ubla:
            raise _err(
                400,
                "IAM conditions can only be used on buckets with uniform bucket-level access.",
                "invalid",
            )
        if pap and {"allUsers", "allAuthenticatedUsers"} & set(b.get("members") or []):
            raise _err(
                412,
                "Public access prevention is enforced on this bucket: allUsers and "
                "allAuthenticatedUsers cannot be granted access.",
                "conditionNotMet",
            )
    try:
        stored = policies.set_policy(req.emu, bucket_policy_key(bucket), policy, conflict_code=412)
    except ApiError as exc:  # re-answer in storage's legacy format
        raise _err(exc.code, exc.message, "conditionNotMet" if exc.code == 412 else None) from None
    return _render_policy(bucket, stored)


# -- objects -------------------------------------------------------------------------------------


def _object_key(bucket: str, name: str) -> str:
    return f"{bucket}/{name}"


def _render_object(req: Request, doc: dict[str, Any]) -> dict[str, Any]:
    out = _public(doc)
    base = _base_url(req)
    enc = quote(doc["name"], safe="")
    out["selfLink"] = f"{base}/storage/v1/b/{doc['bucket']}/o/{enc}"
    out["mediaLink"] = (
        f"{base}/download/storage/v1/b/{doc['bucket']}/o/{enc}"
        f"?generation={doc['generation']}&alt=media"
    )
    return out


def _next_generation(emu: Emulator) -> int:
    """Microseconds since the epoch, strictly increasing (as GCS generations are)."""
    with emu.store.transaction():
        last = (emu.store.get(META_KIND, "generation") or {}).get("value", 0)
        gen = max(int(emu.clock() * 1e6), int(last) + 1)
        emu.store.put(META_KIND, "generation", {"value": gen})
    return gen


def _check_generation_preconditions(req: Request, current: dict[str, Any] | None) -> None:
    want = _int_arg(req, "ifGenerationMatch")
    if want is not None:
        have = int(current["generation"]) if current else 0
        if want != have:
            raise _err(412, PRECONDITION, "conditionNotMet")
    not_want = _int_arg(req, "ifGenerationNotMatch")
    if not_want is not None and current is not None and int(current["generation"]) == not_want:
        raise _err(412, PRECONDITION, "conditionNotMet")
    meta = _int_arg(req, "ifMetagenerationMatch")
    if meta is not None and (current is None or int(current["metageneration"]) != meta):
        raise _err(412, PRECONDITION, "conditionNotMet")


def _write_object(
    req: Request, bucket: str, name: str, metadata: dict[str, Any], data: bytes
) -> dict[str, Any]:
    emu = req.emu
    if not name:
        raise _err(400, "Required", "required")
    if len(name.encode()) > 1024 or "\n" in name or "\r" in name:
        raise _err(400, f"Invalid object name: {name}", "invalid")
    with emu.store.transaction():
        _bucket(emu, bucket)
        current = emu.store.get(OBJECT_KIND, _object_key(bucket, name))
        _check_generation_preconditions(req, current)
        md5, crc = storage_hashes(data)
        for key, have in (("md5Hash", md5), ("crc32c", crc)):
            sent = metadata.get(key)
            if sent and sent != have:
                raise _err(
                    400,
                    f'Provided {key} "{sent}" doesn\'t match calculated {key} "{have}".',
                    "invalid",
                )
        now = emu.clock()
        generation = _next_generation(emu)
        doc: dict[str, Any] = {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{generation}",
            "name": name,
            "bucket": bucket,
            "generation": str(generation),
            "metageneration": "1",
            "contentType": metadata.get("contentType") or "application/octet-stream",
            "storageClass": "STANDARD",
            "size": str(len(data)),
            "md5Hash": md5,
            "crc32c": crc,
            "etag": base64.b64encode(b"\x08" + _varint(generation % (1 << 63))).decode(),
            "timeCreated": _ts(now),
            "updated": _ts(now),
            "timeStorageClassUpdated": _ts(now),
            "timeFinalized": _ts(now),
            "_data": base64.b64encode(data).decode(),
        }
        for key in ("cacheControl", "contentDisposition", "contentEncoding", "contentLanguage"):
            if metadata.get(key):
                doc[key] = metadata[key]
        if metadata.get("metadata"):
            doc["metadata"] = dict(metadata["metadata"])
        emu.store.put(OBJECT_KIND, _object_key(bucket, name), doc)
    return doc


def _parse_multipart(req: Request) -> tuple[dict[str, Any], bytes]:
    ctype = req.headers.get("content-type") or ""
    if not ctype.startswith("multipart/"):
        raise _err(400, "Content-Type must be multipart/related for uploadType=multipart.")
    head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + req.body)
    parts = list(msg.iter_parts()) if msg.is_multipart() else []
    if len(parts) != 2:
        raise _err(400, "Multipart upload needs exactly two parts: metadata and media.")
    raw_meta = parts[0].get_payload(decode=True) or b"{}"
    assert isinstance(raw_meta, bytes)
    try:
        metadata = json.loads(raw_meta)
    except ValueError:
        raise _err(400, "Invalid JSON in the metadata part.") from None
    data = parts[1].get_payload(decode=True) or b""
    assert isinstance(data, bytes)
    if not metadata.get("contentType") and parts[1].get_content_type():
        metadata["contentType"] = parts[1].get_content_type()
    return metadata, data


@router.route("POST", "/upload/storage/v1/b/{bucket}/o")
def upload(req: Request, bucket: str) -> Response | dict[str, Any]:
    kind = req.arg("uploadType") or ""
    emu = req.emu
    if kind == "media":
        meta = {"contentType": req.headers.get("content-type")}
        doc = _write_object(req, bucket, req.arg("name") or "", meta, req.body)
        return _render_object(req, doc)
    if kind == "multipart":
        metadata, data = _parse_multipart(req)
        name = metadata.get("name") or req.arg("name") or ""
        return _render_object(req, _write_object(req, bucket, name, metadata, data))
    if kind == "resumable":
        _bucket(emu, bucket)
        metadata = req.json()
        name = metadata.get("name") or req.arg("name") or ""
        if not name:
            raise _err(400, "Required", "required")
        if req.headers.get("x-upload-content-type") and not metadata.get("contentType"):
            metadata["contentType"] = req.headers["x-upload-content-type"]
        upload_id = uuid.uuid4().hex
        query = {
            k: v[0]
            for k, v in req.query.items()
            if k in ("ifGenerationMatch", "ifGenerationNotMatch", "ifMetagenerationMatch")
        }
        emu.store.put(
            UPLOAD_KIND,
            upload_id,
            {"bucket": bucket, "name": name, "metadata": metadata, "data": "", "query": query},
        )
        location = (
            f"{_base_url(req)}/upload/storage/v1/b/{bucket}/o?uploadType=resumable"
            f"&upload_id={upload_id}"
        )
        return Response(200, b"", headers={"Location": location}, content_type="text/plain")
    raise _err(400, f"Invalid upload type: {kind or '(none)'}", "invalid")


_RANGE_RE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


@router.route("PUT", "/upload/storage/v1/b/{bucket}/o")
def upload_chunk(req: Request, bucket: str) -> Response | dict[str, Any]:
    emu = req.emu
    upload_id = req.arg("upload_id") or ""
    with emu.store.transaction():  # two chunks of one session must not interleave
        return _upload_chunk(req, bucket, upload_id)


def _upload_chunk(req: Request, bucket: str, upload_id: str) -> Response | dict[str, Any]:
    emu = req.emu
    sess = emu.store.get(UPLOAD_KIND, upload_id)
    if sess is None or sess["bucket"] != bucket:
        raise _err(404, "No such upload session.", "notFound")
    data = base64.b64decode(sess["data"])
    crange = req.headers.get("content-range") or ""
    m = _RANGE_RE.match(crange.strip()) if crange else None
    if crange and m is None:
        raise _err(400, f"Invalid Content-Range: {crange}", "invalid")
    start = int(m.group(1)) if m and m.group(1) is not None else None
    total = int(m.group(3)) if m and m.group(3) != "*" else None
    if start is not None:
        if start > len(data):
            raise _err(400, "Chunk starts past the bytes received so far.", "invalid")
        data = data[:start] + req.body
    elif not crange:
        data = req.body
        total = len(data)
    if total is not None and len(data) >= total:
        emu.store.delete(UPLOAD_KIND, upload_id)
        saved = req.query
        req.query = {**saved, **{k: [v] for k, v in sess["query"].items()}}
        try:
            doc = _write_object(req, bucket, sess["name"], sess["metadata"], data[:total])
        finally:
            req.query = saved
        return _render_object(req, doc)
    sess["data"] = base64.b64encode(data).decode()
    emu.store.put(UPLOAD_KIND, upload_id, sess)
    headers = {"Range": f"bytes=0-{len(data) - 1}"} if data else {}
    return Response(308, b"", headers=headers, content_type="text/plain")


@router.route("GET", "/storage/v1/b/{bucket}/o")
def list_objects(req: Request, bucket: str) -> dict[str, Any]:
    emu = req.emu
    _bucket(emu, bucket)
    prefix = req.arg("prefix") or ""
    delimiter = req.arg("delimiter") or ""
    max_results = _int_arg(req, "maxResults") or 1000
    token = req.arg("pageToken") or ""
    items: list[dict[str, Any]] = []
    prefixes: list[str] = []
    next_token = ""
    for _key, doc in emu.store.list(OBJECT_KIND, f"{bucket}/{prefix}"):
        name = doc["name"]
        if token and name <= token:
            continue
        if delimiter:
            rest = name[len(prefix) :]
            cut = rest.find(delimiter)
            if cut >= 0:
                p = prefix + rest[: cut + len(delimiter)]
                if p not in prefixes:
                    if len(items) + len(prefixes) >= max_results:
                        next_token = name
                        break
                    prefixes.append(p)
                continue
        if len(items) + len(prefixes) >= max_results:
            next_token = items[-1]["name"] if items else name
            break
        items.append(_render_object(req, doc))
    out: dict[str, Any] = {"kind": "storage#objects"}
    if items:
        out["items"] = items
    if prefixes:
        out["prefixes"] = prefixes
    if next_token:
        out["nextPageToken"] = next_token
    return out


def _object(emu: Emulator, bucket: str, name: str) -> dict[str, Any]:
    _bucket(emu, bucket)
    doc = emu.store.get(OBJECT_KIND, _object_key(bucket, name))
    if doc is None:
        raise _err(404, f"No such object: {bucket}/{name}", "notFound")
    return doc


def _media(req: Request, doc: dict[str, Any]) -> Response:
    data = base64.b64decode(doc["_data"])
    return Response(
        200,
        data,
        headers={
            "X-Goog-Hash": f"crc32c={doc['crc32c']},md5={doc['md5Hash']}",
            "X-Goog-Generation": doc["generation"],
            "X-Goog-Metageneration": doc["metageneration"],
            "X-Goog-Stored-Content-Length": doc["size"],
            "X-Goog-Storage-Class": doc["storageClass"],
        },
        content_type=doc["contentType"],
    )


@router.route("GET", "/storage/v1/b/{bucket}/o/{obj}")
def get_object(req: Request, bucket: str, obj: str) -> Response | dict[str, Any]:
    doc = _object(req.emu, bucket, obj)
    _check_generation_preconditions(req, doc)
    gen = _int_arg(req, "generation")
    if gen is not None and gen != int(doc["generation"]):
        raise _err(404, f"No such object: {bucket}/{obj}", "notFound")
    if req.arg("alt") == "media":
        return _media(req, doc)
    return _render_object(req, doc)


@router.route("GET", "/download/storage/v1/b/{bucket}/o/{obj}")
def download_object(req: Request, bucket: str, obj: str) -> Response:
    doc = _object(req.emu, bucket, obj)
    gen = _int_arg(req, "generation")
    if gen is not None and gen != int(doc["generation"]):
        raise _err(404, f"No such object: {bucket}/{obj}", "notFound")
    return _media(req, doc)


@router.route("DELETE", "/storage/v1/b/{bucket}/o/{obj}")
def delete_object(req: Request, bucket: str, obj: str) -> Response:
    emu = req.emu
    with emu.store.transaction():
        doc = _object(emu, bucket, obj)
        _check_generation_preconditions(req, doc)
        emu.store.delete(OBJECT_KIND, _object_key(bucket, obj))
    return Response(204, None)

"""Cloud Storage JSON API v1 over HTTP: each handler parses the request, calls the backend and
renders; the behaviour lives in the backends, :mod:`.buckets` and :mod:`.objects`.

    POST   /storage/v1/b?project=p                       buckets.insert
    GET    /storage/v1/b?project=p[&prefix&maxResults&pageToken]   buckets.list
    GET    /storage/v1/b/{b}                             buckets.get
    PATCH  /storage/v1/b/{b}                             buckets.patch (JSON merge patch)
    DELETE /storage/v1/b/{b}                             buckets.delete (409 when not empty)
    GET    /storage/v1/b/{b}/iam                         buckets.getIamPolicy (storage#policy)
    PUT    /storage/v1/b/{b}/iam                         buckets.setIamPolicy (stale etag: 412)
    GET    /storage/v1/b/{b}/acl | /defaultObjectAcl     legacy ACLs (400 on uniform access)
    POST   /upload/storage/v1/b/{b}/o?uploadType=media|multipart|resumable   objects.insert
    PUT    /upload/storage/v1/b/{b}/o?uploadType=resumable&upload_id=...     resumable chunks
    GET    /storage/v1/b/{b}/o[?prefix&delimiter&versions&startOffset...]   objects.list
    GET    /storage/v1/b/{b}/o/{o}[?alt=media&generation] objects.get (metadata or bytes)
    GET    /download/storage/v1/b/{b}/o/{o}?alt=media    download (the client's media URL)
    PATCH  /storage/v1/b/{b}/o/{o}                       objects.patch (metadata)
    DELETE /storage/v1/b/{b}/o/{o}[?generation]          objects.delete
    GET    /storage/v1/b/{b}/o/{o}/acl                   object ACL (400 on uniform access)

Each route names its discovery method (``storage.objects.get``...): the retry-test API
(:mod:`.retry_test`) injects its faults by that name.
"""

from __future__ import annotations

import email.parser
import email.policy
import functools
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ..projects import resolve
from ..routing import Request, Response, Router
from ..serviceusage import require_enabled
from . import retry_test
from .buckets import Buckets
from .errors import Invalid, NotModified, RangeNotSatisfiable, Required
from .listing import ListQuery
from .objects import Objects, Upload
from .preconditions import Conditions

router = Router()

_GENERATION_CONDITIONS = (
    "ifGenerationMatch",
    "ifGenerationNotMatch",
    "ifMetagenerationMatch",
    "ifMetagenerationNotMatch",
)
_METAGENERATION_CONDITIONS = _GENERATION_CONDITIONS[2:]


def route(method: str, template: str, api_method: str) -> Callable[[Callable[..., Any]], Any]:
    """Register a handler for ``api_method``: retry-test instructions apply first, and a
    backend NotModified answers 304 with no body."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def handler(req: Request, **params: str) -> Any:
            def run() -> Any:
                try:
                    return fn(req, **params)
                except NotModified:
                    return Response(304, None, content_type="text/plain")

            return retry_test.apply(req, api_method, run)

        if api_method not in retry_test.METHODS:
            raise ValueError(f"{api_method} missing from retry_test.METHODS")
        router.route(method, template)(handler)
        return fn

    return deco


def _buckets(req: Request) -> Buckets:
    return Buckets(req.emu)


def _objects(req: Request) -> Objects:
    return Objects(req.emu)


# -- parsing -------------------------------------------------------------------------------------


def _int(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise Invalid(f"Invalid value for {name}: {raw}") from None


def _int_arg(req: Request, name: str) -> int | None:
    return _int(name, req.arg(name))


def _flag(req: Request, name: str) -> bool:
    """A boolean query parameter (the Python client sends ``True``, others ``true``)."""
    return (req.arg(name) or "").lower() == "true"


def _header_name(param: str) -> str:
    """ifGenerationMatch -> x-goog-if-generation-match (the XML API's spelling)."""
    return "x-goog-" + re.sub(r"(?<!^)(?=[A-Z])", "-", param).lower()


def _conditions(req: Request, params: tuple[str, ...] = _GENERATION_CONDITIONS) -> Conditions:
    """The query parameters, or their x-goog-if-* header forms, and the etag headers."""
    values = {
        p: _int(p, req.arg(p) if req.arg(p) is not None else req.headers.get(_header_name(p)))
        for p in params
    }
    return Conditions.from_values(
        values,
        if_match=req.headers.get("if-match"),
        if_none_match=req.headers.get("if-none-match"),
    )


def _base_url(req: Request) -> str:
    host = req.headers.get("host") or "127.0.0.1"
    return f"http://{host}"


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _project(req: Request) -> tuple[str, str]:
    project = req.arg("project")
    if not project:
        raise Required("Required parameter: project")
    project_id, number = resolve(req.emu, project)
    require_enabled(req.emu, project_id, "storage.googleapis.com", legacy=True)
    return project_id, number


# -- rendering -----------------------------------------------------------------------------------


def _render_bucket(req: Request, doc: dict[str, Any]) -> dict[str, Any]:
    return {**_public(doc), "selfLink": f"{_base_url(req)}/storage/v1/b/{doc['name']}"}


def _render_object(req: Request, doc: dict[str, Any]) -> dict[str, Any]:
    base = _base_url(req)
    enc = quote(doc["name"], safe="")
    return {
        **_public(doc),
        "selfLink": f"{base}/storage/v1/b/{doc['bucket']}/o/{enc}",
        "mediaLink": (
            f"{base}/download/storage/v1/b/{doc['bucket']}/o/{enc}"
            f"?generation={doc['generation']}&alt=media"
        ),
    }


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


_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``Range: bytes=a-b`` (or ``a-``, ``-n``) as an inclusive (first, last); None for the
    whole object (no header, or one this form does not cover, as HTTP says to ignore)."""
    m = _RANGE_RE.match((header or "").strip())
    if m is None or m.groups() == ("", ""):
        return None
    first, last = m.groups()
    if first == "":  # the last n bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable()
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable()
    return start, end


def _media(req: Request, doc: dict[str, Any]) -> Response:
    """The object's bytes: the headers the client reads back (ETag, generation, hashes of the
    whole object), 206 with Content-Range for a Range request."""
    data = Objects.media(doc)
    headers = {
        "ETag": f'"{doc["etag"]}"',
        "X-Goog-Hash": f"crc32c={doc['crc32c']},md5={doc['md5Hash']}",
        "X-Goog-Generation": doc["generation"],
        "X-Goog-Metageneration": doc["metageneration"],
        "X-Goog-Stored-Content-Length": doc["size"],
        "X-Goog-Storage-Class": doc["storageClass"],
        "Accept-Ranges": "bytes",
    }
    for field, header in (
        ("cacheControl", "Cache-Control"),
        ("contentEncoding", "Content-Encoding"),
        ("contentLanguage", "Content-Language"),
        ("contentDisposition", "Content-Disposition"),
    ):
        if doc.get(field):
            headers[header] = doc[field]
    span = _byte_range(req.headers.get("range"), len(data))
    if span is None:
        return Response(200, data, headers=headers, content_type=doc["contentType"])
    first, last = span
    headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
    return Response(206, data[first : last + 1], headers=headers, content_type=doc["contentType"])


# -- buckets -------------------------------------------------------------------------------------


@route("POST", "/storage/v1/b", "storage.buckets.insert")
def insert_bucket(req: Request) -> dict[str, Any]:
    project_id, number = _project(req)
    doc = _buckets(req).insert_bucket(project_id=project_id, number=number, body=req.json())
    return _render_bucket(req, doc)


@route("GET", "/storage/v1/b", "storage.buckets.list")
def list_buckets(req: Request) -> dict[str, Any]:
    project_id, _ = _project(req)
    docs, token = _buckets(req).list_buckets(
        project_id,
        prefix=req.arg("prefix") or "",
        max_results=_int_arg(req, "maxResults") or 1000,
        token=req.arg("pageToken") or "",
    )
    out: dict[str, Any] = {"kind": "storage#buckets"}
    if docs:
        out["items"] = [_render_bucket(req, d) for d in docs]
    if token:
        out["nextPageToken"] = token
    return out


@route("GET", "/storage/v1/b/{bucket}", "storage.buckets.get")
def get_bucket(req: Request, bucket: str) -> dict[str, Any]:
    doc = _buckets(req).bucket(bucket)
    _conditions(req, _METAGENERATION_CONDITIONS).check(doc, read=True)
    return _render_bucket(req, doc)


@route("PATCH", "/storage/v1/b/{bucket}", "storage.buckets.patch")
def patch_bucket(req: Request, bucket: str) -> dict[str, Any]:
    conditions = _conditions(req, _METAGENERATION_CONDITIONS)
    return _render_bucket(req, _buckets(req).patch_bucket(bucket, req.json(), conditions))


@route("DELETE", "/storage/v1/b/{bucket}", "storage.buckets.delete")
def delete_bucket(req: Request, bucket: str) -> Response:
    _buckets(req).delete_bucket(bucket, _conditions(req, _METAGENERATION_CONDITIONS))
    return Response(204, None)


@route("GET", "/storage/v1/b/{bucket}/iam", "storage.buckets.getIamPolicy")
def get_bucket_iam(req: Request, bucket: str) -> dict[str, Any]:
    policy = _buckets(req).get_policy(bucket)
    version = _int_arg(req, "optionsRequestedPolicyVersion") or 1
    if version not in (1, 3):
        raise Invalid(f"Invalid requested policy version {version}.")
    return _render_policy(bucket, policy)


@route("PUT", "/storage/v1/b/{bucket}/iam", "storage.buckets.setIamPolicy")
def set_bucket_iam(req: Request, bucket: str) -> dict[str, Any]:
    body = req.json()
    policy: dict[str, Any] = {k: body[k] for k in ("version", "etag", "bindings") if k in body}
    return _render_policy(bucket, _buckets(req).set_policy(bucket, policy))


@route("GET", "/storage/v1/b/{bucket}/acl", "storage.bucket_acl.list")
def list_bucket_acl(req: Request, bucket: str) -> dict[str, Any]:
    items = _buckets(req).legacy_acl(bucket)
    return {"kind": "storage#bucketAccessControls", "items": items}


@route("GET", "/storage/v1/b/{bucket}/defaultObjectAcl", "storage.default_object_acl.list")
def list_default_object_acl(req: Request, bucket: str) -> dict[str, Any]:
    items = _buckets(req).legacy_acl(bucket, default=True)
    return {"kind": "storage#objectAccessControls", "items": items}


# -- objects -------------------------------------------------------------------------------------


def _parse_multipart(req: Request) -> tuple[dict[str, Any], bytes]:
    ctype = req.headers.get("content-type") or ""
    if not ctype.startswith("multipart/"):
        raise Invalid("Content-Type must be multipart/related for uploadType=multipart.")
    head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + req.body)
    parts = list(msg.iter_parts()) if msg.is_multipart() else []
    if len(parts) != 2:
        raise Invalid("Multipart upload needs exactly two parts: metadata and media.")
    raw_meta = parts[0].get_payload(decode=True) or b"{}"
    assert isinstance(raw_meta, bytes)
    try:
        metadata = json.loads(raw_meta)
    except ValueError:
        raise Invalid("Invalid JSON in the metadata part.") from None
    data = parts[1].get_payload(decode=True) or b""
    assert isinstance(data, bytes)
    if not metadata.get("contentType") and parts[1].get_content_type():
        metadata["contentType"] = parts[1].get_content_type()
    return metadata, data


@route("POST", "/upload/storage/v1/b/{bucket}/o", "storage.objects.insert")
def upload(req: Request, bucket: str) -> Response | dict[str, Any]:
    kind = req.arg("uploadType") or ""
    objects = _objects(req)
    conditions = _conditions(req)
    if kind == "media":
        meta = {"contentType": req.headers.get("content-type")}
        doc = objects.write_object(
            bucket, req.arg("name") or "", req.body, Upload(meta, conditions)
        )
        return _render_object(req, doc)
    if kind == "multipart":
        metadata, data = _parse_multipart(req)
        name = metadata.get("name") or req.arg("name") or ""
        doc = objects.write_object(bucket, name, data, Upload(metadata, conditions))
        return _render_object(req, doc)
    if kind == "resumable":
        metadata = req.json()
        name = metadata.get("name") or req.arg("name") or ""
        if req.headers.get("x-upload-content-type") and not metadata.get("contentType"):
            metadata["contentType"] = req.headers["x-upload-content-type"]
        upload_id = objects.start_upload(bucket, name, Upload(metadata, conditions))
        location = (
            f"{_base_url(req)}/upload/storage/v1/b/{bucket}/o?uploadType=resumable"
            f"&upload_id={upload_id}"
        )
        return Response(200, b"", headers={"Location": location}, content_type="text/plain")
    raise Invalid(f"Invalid upload type: {kind or '(none)'}")


_CONTENT_RANGE_RE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


@route("PUT", "/upload/storage/v1/b/{bucket}/o", "storage.objects.insert")
def upload_chunk(req: Request, bucket: str) -> Response | dict[str, Any]:
    crange = (req.headers.get("content-range") or "").strip()
    start: int | None
    total: int | None
    if not crange:  # the whole object in one request
        start, total = 0, len(req.body)
    else:
        m = _CONTENT_RANGE_RE.match(crange)
        if m is None:
            raise Invalid(f"Invalid Content-Range: {crange}")
        start = int(m.group(1)) if m.group(1) is not None else None
        total = int(m.group(3)) if m.group(3) != "*" else None
    result = _objects(req).put_chunk(
        bucket, req.arg("upload_id") or "", start=start, total=total, body=req.body
    )
    if isinstance(result, dict):
        return _render_object(req, result)
    headers = {"Range": f"bytes=0-{result - 1}"} if result else {}
    return Response(308, b"", headers=headers, content_type="text/plain")


def _list_query(req: Request) -> ListQuery:
    max_results = _int_arg(req, "maxResults") or 1000
    if max_results < 0:
        raise Invalid(f"Invalid value for maxResults: {max_results}")
    if _flag(req, "softDeleted"):
        raise Invalid("The djdeploy emulator does not model soft-deleted objects (softDeleted).")
    return ListQuery(
        prefix=req.arg("prefix") or "",
        delimiter=req.arg("delimiter") or "",
        start_offset=req.arg("startOffset") or "",
        end_offset=req.arg("endOffset") or "",
        match_glob=req.arg("matchGlob") or "",
        include_trailing_delimiter=_flag(req, "includeTrailingDelimiter"),
        versions=_flag(req, "versions"),
        max_results=min(max_results, 1000),
        page_token=req.arg("pageToken") or "",
    )


@route("GET", "/storage/v1/b/{bucket}/o", "storage.objects.list")
def list_objects(req: Request, bucket: str) -> dict[str, Any]:
    page = _objects(req).list_objects(bucket, _list_query(req))
    out: dict[str, Any] = {"kind": "storage#objects"}
    if page.items:
        out["items"] = [_render_object(req, d) for d in page.items]
    if page.prefixes:
        out["prefixes"] = page.prefixes
    if page.next_page_token:
        out["nextPageToken"] = page.next_page_token
    return out


def _read_object(req: Request, bucket: str, obj: str) -> dict[str, Any]:
    return _objects(req).get_object(
        bucket, obj, generation=_int_arg(req, "generation"), conditions=_conditions(req)
    )


@route("GET", "/storage/v1/b/{bucket}/o/{obj}", "storage.objects.get")
def get_object(req: Request, bucket: str, obj: str) -> Response | dict[str, Any]:
    doc = _read_object(req, bucket, obj)
    if req.arg("alt") == "media":
        return _media(req, doc)
    return _render_object(req, doc)


@route("GET", "/download/storage/v1/b/{bucket}/o/{obj}", "storage.objects.get")
def download_object(req: Request, bucket: str, obj: str) -> Response:
    return _media(req, _read_object(req, bucket, obj))


@route("PATCH", "/storage/v1/b/{bucket}/o/{obj}", "storage.objects.patch")
def patch_object(req: Request, bucket: str, obj: str) -> dict[str, Any]:
    doc = _objects(req).patch_object(
        bucket,
        obj,
        req.json(),
        generation=_int_arg(req, "generation"),
        conditions=_conditions(req),
    )
    return _render_object(req, doc)


@route("DELETE", "/storage/v1/b/{bucket}/o/{obj}", "storage.objects.delete")
def delete_object(req: Request, bucket: str, obj: str) -> Response:
    _objects(req).delete_object(
        bucket, obj, generation=_int_arg(req, "generation"), conditions=_conditions(req)
    )
    return Response(204, None)


@route("GET", "/storage/v1/b/{bucket}/o/{obj}/acl", "storage.object_acl.list")
def list_object_acl(req: Request, bucket: str, obj: str) -> dict[str, Any]:
    items = _objects(req).object_acl(bucket, obj, generation=_int_arg(req, "generation"))
    return {"kind": "storage#objectAccessControls", "items": items}

"""Secret Manager v1 over HTTP: each handler parses the request (base64 payloads, durations,
timestamps), calls a backend and renders (private bookkeeping and payloads left out)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any

from .. import policies
from ..checksums import crc32c
from ..errors import InvalidArgument
from ..pagination import Paging, paginate
from ..routing import Request, Response, Router
from .secrets import Expiration, Secrets, policy_key
from .versions import STATES, Versions

router = Router()

SECRET = "/v1/projects/{project}/secrets/{secret}"
VERSION = SECRET + "/versions/{version}"

_PAGING = Paging(default_size=25000, max_size=25000, total_size=True)
_DURATION_RE = re.compile(r"^(\d+)(\.\d{1,9})?s$")
_STATE_FILTER_RE = re.compile(rf"^state[:=]({'|'.join(STATES)})$")


# -- parsing and rendering -----------------------------------------------------------------------


def _duration(value: Any, field: str) -> float:
    """A google.protobuf.Duration in JSON ("600s", "1.5s"): seconds, > 0."""
    m = _DURATION_RE.match(value) if isinstance(value, str) else None
    if not m or float(value[:-1]) <= 0:
        raise InvalidArgument(
            f"Invalid value at 'secret.{field}' (type.googleapis.com/google.protobuf."
            f'Duration): {value!r}: a positive duration such as "86400s" is required.'
        )
    return float(value[:-1])


def _timestamp(value: Any, field: str) -> float:
    """An RFC 3339 timestamp (up to nanoseconds): clock seconds."""
    try:
        text = re.sub(r"(\.\d{6})\d+", r"\1", str(value)).replace("Z", "+00:00")
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidArgument(
            f"Invalid value at 'secret.{field}' (type.googleapis.com/google.protobuf.Timestamp): "
            f"{value!r}"
        ) from None


def _expiration(body: dict[str, Any]) -> Expiration | None:
    """A Secret's expiration: ``ttl`` xor ``expireTime``, or None."""
    if "ttl" in body and "expireTime" in body:
        raise InvalidArgument(
            "Invalid JSON payload received. oneof field 'expiration' is already set."
        )
    if body.get("ttl") is not None:
        return Expiration(_duration(body["ttl"], "ttl"), relative=True)
    if body.get("expireTime") is not None:
        return Expiration(_timestamp(body["expireTime"], "expire_time"), relative=False)
    return None


def _destroy_ttl(body: dict[str, Any]) -> float | None:
    value = body.get("versionDestroyTtl")
    return None if value is None else _duration(value, "version_destroy_ttl")


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    """A secret or version as answered: private bookkeeping and the payload left out."""
    out = {k: v for k, v in rec.items() if not k.startswith("_")}
    if not out.get("labels"):
        out.pop("labels", None)
    return out


# -- secrets -------------------------------------------------------------------------------------


@router.route("POST", "/v1/projects/{project}/secrets")
def create_secret(req: Request, project: str) -> dict[str, Any]:
    body = req.json()
    secret = req.arg("secretId") or ""
    if not secret:
        raise InvalidArgument("The request is missing the required field secret_id.")
    expiration = _expiration(body)
    destroy_ttl = _destroy_ttl(body)
    backend = Secrets(req.emu)
    project_id, number = backend.project(project)
    rec = backend.create(
        project_id, number, secret, body, expiration=expiration, destroy_ttl=destroy_ttl
    )
    return _public(rec)


@router.route("GET", SECRET)
def get_secret(req: Request, project: str, secret: str) -> dict[str, Any]:
    backend = Secrets(req.emu)
    project_id, number = backend.project(project)
    return _public(backend.get(project_id, number, secret))


@router.route("GET", "/v1/projects/{project}/secrets")
def list_secrets(req: Request, project: str) -> dict[str, Any]:
    backend = Secrets(req.emu)
    project_id, _ = backend.project(project)
    recs = backend.list(project_id, req.arg("filter") or "")
    return paginate(req, [_public(r) for r in recs], _PAGING, key="secrets")


@router.route("PATCH", SECRET)
def patch_secret(req: Request, project: str, secret: str) -> dict[str, Any]:
    body = req.json()
    mask = [m.strip() for m in (req.arg("updateMask") or "").split(",") if m.strip()]
    expiration = _expiration(body)
    destroy_ttl = _destroy_ttl(body)
    backend = Secrets(req.emu)
    project_id, number = backend.project(project)
    rec = backend.patch(
        project_id,
        number,
        secret,
        body,
        mask=mask,
        expiration=expiration,
        destroy_ttl=destroy_ttl,
    )
    return _public(rec)


@router.route("DELETE", SECRET)
def delete_secret(req: Request, project: str, secret: str) -> dict[str, Any]:
    backend = Secrets(req.emu)
    project_id, number = backend.project(project)
    backend.delete(project_id, number, secret, etag=req.arg("etag"))
    return {}


# -- versions ------------------------------------------------------------------------------------


@router.route("POST", SECRET + ":addVersion")
def add_version(req: Request, project: str, secret: str) -> dict[str, Any]:
    payload = req.json().get("payload")
    if not isinstance(payload, dict) or "data" not in payload:
        raise InvalidArgument("The request is missing the required field payload.data.")
    try:
        data = base64.b64decode(payload["data"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidArgument("Invalid value at 'payload.data' (TYPE_BYTES): not base64.") from None
    crc: int | None = None
    if payload.get("dataCrc32c") is not None:
        try:
            crc = int(payload["dataCrc32c"])
        except (TypeError, ValueError):
            raise InvalidArgument("Invalid value at 'payload.data_crc32c' (TYPE_INT64).") from None
    project_id, number = Secrets(req.emu).project(project)
    return _public(Versions(req.emu).add(project_id, number, secret, data, crc=crc))


@router.route("GET", SECRET + "/versions")
def list_versions(req: Request, project: str, secret: str) -> dict[str, Any]:
    flt = (req.arg("filter") or "").replace(" ", "")
    m = _STATE_FILTER_RE.match(flt)
    if flt and not m:
        raise InvalidArgument(f"Invalid filter: {flt}")
    project_id, number = Secrets(req.emu).project(project)
    versions = Versions(req.emu).list(project_id, number, secret, state=m.group(1) if m else None)
    return paginate(req, [_public(v) for v in versions], _PAGING, key="versions")


@router.route("GET", VERSION)
def get_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    project_id, number = Secrets(req.emu).project(project)
    return _public(Versions(req.emu).get(project_id, number, secret, version))


@router.route("GET", VERSION + ":access")
def access_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    project_id, number = Secrets(req.emu).project(project)
    v = Versions(req.emu).access(project_id, number, secret, version)
    data = base64.b64decode(v["_data"])
    return {"name": v["name"], "payload": {"data": v["_data"], "dataCrc32c": str(crc32c(data))}}


def _transition(req: Request, project: str, secret: str, version: str, to: str) -> dict[str, Any]:
    etag = req.json().get("etag")
    project_id, number = Secrets(req.emu).project(project)
    v = Versions(req.emu).transition(project_id, number, secret, version, to=to, etag=etag)
    return _public(v)


@router.route("POST", VERSION + ":disable")
def disable_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    return _transition(req, project, secret, version, "DISABLED")


@router.route("POST", VERSION + ":enable")
def enable_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    return _transition(req, project, secret, version, "ENABLED")


@router.route("POST", VERSION + ":destroy")
def destroy_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    return _transition(req, project, secret, version, "DESTROYED")


# -- IAM -----------------------------------------------------------------------------------------


@router.route("GET", SECRET + ":getIamPolicy")
def get_iam_policy(req: Request, project: str, secret: str) -> dict[str, Any]:
    version = int(req.arg("options.requestedPolicyVersion") or 0)
    if version not in (0, 1, 3):
        raise InvalidArgument(f"Invalid requested policy version {version}.")
    backend = Secrets(req.emu)
    project_id, number = backend.project(project)
    backend.get(project_id, number, secret)
    return policies.render(policies.get_policy(req.emu, policy_key(project_id, secret)))


@router.route("POST", SECRET + ":setIamPolicy")
def set_iam_policy(req: Request, project: str, secret: str) -> Response | dict[str, Any]:
    policy = req.json().get("policy")
    if not isinstance(policy, dict):
        raise InvalidArgument("Request contains an invalid argument: policy is required.")
    backend = Secrets(req.emu)
    project_id, number = backend.project(project)
    backend.get(project_id, number, secret)
    return policies.render(policies.set_policy(req.emu, policy_key(project_id, secret), policy))

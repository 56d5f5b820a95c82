"""Secret Manager v1: secrets, their versions, and IAM on secrets.

    POST   /v1/projects/{p}/secrets?secretId=ID                 body Secret -> Secret
    GET    /v1/projects/{p}/secrets/{s}                          -> Secret
    GET    /v1/projects/{p}/secrets[?filter=&pageSize=&pageToken=] -> ListSecretsResponse
    PATCH  /v1/projects/{p}/secrets/{s}?updateMask=labels,...   body Secret -> Secret
    DELETE /v1/projects/{p}/secrets/{s}[?etag=]                 -> Empty (versions go with it)
    POST   /v1/projects/{p}/secrets/{s}:addVersion              body {payload} -> SecretVersion
    GET    /v1/projects/{p}/secrets/{s}/versions[?filter=state:ENABLED] -> newest first
    GET    /v1/projects/{p}/secrets/{s}/versions/{v}            v = number or "latest"
    GET    /v1/projects/{p}/secrets/{s}/versions/{v}:access     -> {name, payload{data, dataCrc32c}}
    POST   /v1/projects/{p}/secrets/{s}/versions/{v}:disable|:enable|:destroy  body {etag?}
    GET    /v1/projects/{p}/secrets/{s}:getIamPolicy[?options.requestedPolicyVersion=3]
    POST   /v1/projects/{p}/secrets/{s}:setIamPolicy            body {policy, updateMask?}

Every call is synchronous (no operations). Behaviour copied from Google: resource names use the
project *number*; versions are numbered 1, 2, ... per secret and never reused while the secret
lives; ``latest`` is the most recently created version whatever its state; accessing a disabled
or destroyed version is 400 FAILED_PRECONDITION; ``payload.dataCrc32c`` is checked when sent
(mismatch: 400 INVALID_ARGUMENT, nothing stored); payloads are at most 64 KiB; ``replication`` is
required on create; the API must be enabled (403 SERVICE_DISABLED).

Other emulator modules (Cloud Run checking secret references) use :func:`policy_key`,
:func:`find_version` and :func:`version_state`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from . import policies
from .checksums import crc32c
from .errors import ApiError
from .pagination import Paging, paginate
from .projects import resolve
from .routing import Request, Response, Router, rfc3339
from .serviceusage import require_enabled

if TYPE_CHECKING:
    from .context import Emulator

router = Router()

SERVICE = "secretmanager.googleapis.com"
SECRET_KIND = "secretmanager.secret"
VERSION_KIND = "secretmanager.version"
MAX_PAYLOAD = 65536
_SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_LABEL_KEY_RE = re.compile(r"^[\w-]{1,63}$")  # letters (any case in Secret Manager), digits, _ -
_MUTABLE = {"labels", "annotations", "versionAliases", "expireTime", "ttl", "topics", "rotation"}


# -- keys and lookups ----------------------------------------------------------------------------


def policy_key(project_id: str, secret: str) -> str:
    """The IAM resource key (policies.py) of a secret."""
    return f"projects/{project_id}/secrets/{secret}"


def _key(project_id: str, secret: str) -> str:
    return f"{project_id}/{secret}"


def _vkey(project_id: str, secret: str, number: int) -> str:
    return f"{project_id}/{secret}/{number:010d}"


def _etag(value: Any) -> str:
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
    return f'"{digest}"'


def _check_id(secret: str) -> None:
    if not _SECRET_ID_RE.match(secret):
        raise ApiError(
            400,
            f"Secret ID '{secret}' is invalid: it must be 1-255 characters of letters, digits, "
            "'_' or '-'.",
        )


def _start(req: Request, project: str) -> tuple[str, str]:
    project_id, number = resolve(req.emu, project)
    require_enabled(req.emu, project_id, SERVICE)
    return project_id, number


def _get_secret(emu: Emulator, project_id: str, number: str, secret: str) -> dict[str, Any]:
    rec = emu.store.get(SECRET_KIND, _key(project_id, secret))
    if rec is None:
        raise ApiError(404, f"Secret [projects/{number}/secrets/{secret}] not found.")
    return rec


def _versions(emu: Emulator, project_id: str, secret: str) -> list[dict[str, Any]]:
    """The secret's versions, oldest first."""
    return [v for _, v in emu.store.list(VERSION_KIND, _key(project_id, secret) + "/")]


def find_version(
    emu: Emulator, project_id: str, secret: str, version: str
) -> dict[str, Any] | None:
    """The stored version (number or "latest"), or None. For other emulator modules."""
    if version == "latest":
        versions = _versions(emu, project_id, secret)
        return versions[-1] if versions else None
    if not version.isdigit():
        return None
    return emu.store.get(VERSION_KIND, _vkey(project_id, secret, int(version)))


def version_state(emu: Emulator, project_id: str, secret: str, version: str) -> str | None:
    """ENABLED / DISABLED / DESTROYED, or None when the secret or version does not exist."""
    if emu.store.get(SECRET_KIND, _key(project_id, secret)) is None:
        return None
    v = find_version(emu, project_id, secret, version)
    return None if v is None else str(v["state"])


def _version(
    emu: Emulator, project_id: str, number: str, secret: str, version: str
) -> dict[str, Any]:
    _get_secret(emu, project_id, number, secret)
    v = find_version(emu, project_id, secret, version)
    if v is None:
        raise ApiError(
            404,
            f"Secret Version [projects/{number}/secrets/{secret}/versions/{version}] not found.",
        )
    return v


# -- rendering -----------------------------------------------------------------------------------


def _secret_json(rec: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in rec.items() if not k.startswith("_")}
    if not out.get("labels"):
        out.pop("labels", None)
    return out


def _version_json(v: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in v.items() if not k.startswith("_")}


# -- secrets -------------------------------------------------------------------------------------


def _check_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict) or len(labels) > 64:
        raise ApiError(400, "Secret labels must be a map of at most 64 entries.")
    for k, v in labels.items():
        if not isinstance(k, str) or not _LABEL_KEY_RE.match(k) or not isinstance(v, str):
            raise ApiError(400, f"Invalid label key or value: {k!r}.")
        if len(v) > 63:
            raise ApiError(400, f"Label value for {k!r} is longer than 63 characters.")
    return dict(labels)


@router.route("POST", "/v1/projects/{project}/secrets")
def create_secret(req: Request, project: str) -> dict[str, Any]:
    body = req.json()
    secret = req.arg("secretId") or ""
    if not secret:
        raise ApiError(400, "The request is missing the required field secret_id.")
    _check_id(secret)
    project_id, number = _start(req, project)
    replication = body.get("replication")
    if not isinstance(replication, dict) or not (
        "automatic" in replication or "userManaged" in replication
    ):
        raise ApiError(400, "Secret.replication is required: set automatic or userManaged.")
    labels = _check_labels(body.get("labels"))
    store = req.emu.store
    with store.transaction():
        if store.get(SECRET_KIND, _key(project_id, secret)) is not None:
            raise ApiError(409, f"Secret [projects/{number}/secrets/{secret}] already exists.")
        rec: dict[str, Any] = {
            "name": f"projects/{number}/secrets/{secret}",
            "replication": replication,
            "createTime": rfc3339(req.emu.clock()),
        }
        if labels:
            rec["labels"] = labels
        for k in ("annotations", "topics", "ttl", "expireTime", "rotation", "versionAliases"):
            if k in body:
                rec[k] = body[k]
        rec["etag"] = _etag(rec)
        store.put(SECRET_KIND, _key(project_id, secret), rec)
    return _secret_json(rec)


@router.route("GET", "/v1/projects/{project}/secrets/{secret}")
def get_secret(req: Request, project: str, secret: str) -> dict[str, Any]:
    project_id, number = _start(req, project)
    return _secret_json(_get_secret(req.emu, project_id, number, secret))


def _matches(rec: dict[str, Any], flt: str) -> bool:
    """The subset of the list filter syntax we need: terms joined by spaces / AND, each
    ``labels.KEY=VALUE``, ``labels.KEY:VALUE``, ``labels.KEY:*`` or ``name:TEXT``."""
    labels = rec.get("labels") or {}
    for term in re.split(r"\s+(?:AND\s+)?", flt.strip()):
        if not term:
            continue
        m = re.match(r"^labels\.([\w-]+)\s*([:=])\s*(.*)$", term)
        if m:
            key, op, value = m.group(1), m.group(2), m.group(3).strip('"')
            if key not in labels:
                return False
            if value == "*":
                continue
            if op == "=" and labels[key] != value:
                return False
            if op == ":" and value not in labels[key]:
                return False
            continue
        m = re.match(r"^name\s*:\s*(.*)$", term)
        if m:
            if m.group(1).strip('"') not in rec["name"].rsplit("/", 1)[-1]:
                return False
            continue
        raise ApiError(400, f"Invalid filter: {flt}")
    return True


_PAGING = Paging(default_size=25000, max_size=25000, total_size=True)


@router.route("GET", "/v1/projects/{project}/secrets")
def list_secrets(req: Request, project: str) -> dict[str, Any]:
    project_id, _ = _start(req, project)
    flt = req.arg("filter") or ""
    recs = [v for _, v in req.emu.store.list(SECRET_KIND, project_id + "/")]
    if flt:
        recs = [r for r in recs if _matches(r, flt)]
    return paginate(req, [_secret_json(r) for r in recs], _PAGING, key="secrets")


def _check_etag(rec: dict[str, Any], etag: str | None) -> None:
    """A stale ``etag`` sent with a patch or delete is 400 FAILED_PRECONDITION."""
    if etag and etag != rec["etag"]:
        raise ApiError(
            400,
            "The etag provided in the request does not match the current etag of the secret.",
            status="FAILED_PRECONDITION",
        )


@router.route("PATCH", "/v1/projects/{project}/secrets/{secret}")
def patch_secret(req: Request, project: str, secret: str) -> dict[str, Any]:
    body = req.json()
    mask = [m.strip() for m in (req.arg("updateMask") or "").split(",") if m.strip()]
    if not mask:
        raise ApiError(400, "update_mask is required.")
    for m in mask:
        if m not in _MUTABLE:
            raise ApiError(400, f"The update_mask path '{m}' is not supported.")
    project_id, number = _start(req, project)
    store = req.emu.store
    with store.transaction():
        rec = _get_secret(req.emu, project_id, number, secret)
        _check_etag(rec, body.get("etag"))
        for m in mask:
            value = body.get(m)
            if m == "labels":
                value = _check_labels(value)
            if value in (None, {}, []):
                rec.pop(m, None)
            else:
                rec[m] = value
        rec.pop("etag", None)
        rec["etag"] = _etag(rec)
        store.put(SECRET_KIND, _key(project_id, secret), rec)
    return _secret_json(rec)


@router.route("DELETE", "/v1/projects/{project}/secrets/{secret}")
def delete_secret(req: Request, project: str, secret: str) -> dict[str, Any]:
    project_id, number = _start(req, project)
    store = req.emu.store
    with store.transaction():
        rec = _get_secret(req.emu, project_id, number, secret)
        _check_etag(rec, req.arg("etag"))
        for k, _ in store.list(VERSION_KIND, _key(project_id, secret) + "/"):
            store.delete(VERSION_KIND, k)
        store.delete(SECRET_KIND, _key(project_id, secret))
        policies.delete_policy(req.emu, policy_key(project_id, secret))
    return {}


# -- versions ------------------------------------------------------------------------------------


@router.route("POST", "/v1/projects/{project}/secrets/{secret}:addVersion")
def add_version(req: Request, project: str, secret: str) -> dict[str, Any]:
    body = req.json()
    payload = body.get("payload")
    if not isinstance(payload, dict) or "data" not in payload:
        raise ApiError(400, "The request is missing the required field payload.data.")
    try:
        data = base64.b64decode(payload["data"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ApiError(400, "Invalid value at 'payload.data' (TYPE_BYTES): not base64.") from None
    if len(data) > MAX_PAYLOAD:
        raise ApiError(400, f"Secret payload exceeds the maximum size of {MAX_PAYLOAD} bytes.")
    given = payload.get("dataCrc32c")
    if given is not None:
        try:
            given_int = int(given)
        except (TypeError, ValueError):
            raise ApiError(400, "Invalid value at 'payload.data_crc32c' (TYPE_INT64).") from None
        if given_int != crc32c(data):
            raise ApiError(400, "Checksum mismatch: data_crc32c does not match the payload data.")
    project_id, number = _start(req, project)
    store = req.emu.store
    with store.transaction():
        _get_secret(req.emu, project_id, number, secret)
        versions = _versions(req.emu, project_id, secret)
        n = (int(versions[-1]["name"].rsplit("/", 1)[-1]) + 1) if versions else 1
        v: dict[str, Any] = {
            "name": f"projects/{number}/secrets/{secret}/versions/{n}",
            "createTime": rfc3339(req.emu.clock()),
            "state": "ENABLED",
            "replicationStatus": {"automatic": {}},
            "clientSpecifiedPayloadChecksum": given is not None,
            "_data": base64.b64encode(data).decode(),
        }
        v["etag"] = _etag({"name": v["name"], "state": v["state"], "t": v["createTime"]})
        store.put(VERSION_KIND, _vkey(project_id, secret, n), v)
    return _version_json(v)


@router.route("GET", "/v1/projects/{project}/secrets/{secret}/versions")
def list_versions(req: Request, project: str, secret: str) -> dict[str, Any]:
    project_id, number = _start(req, project)
    _get_secret(req.emu, project_id, number, secret)
    versions = list(reversed(_versions(req.emu, project_id, secret)))  # newest first
    flt = (req.arg("filter") or "").replace(" ", "")
    if flt:
        m = re.match(r"^state[:=](ENABLED|DISABLED|DESTROYED)$", flt)
        if not m:
            raise ApiError(400, f"Invalid filter: {flt}")
        versions = [v for v in versions if v["state"] == m.group(1)]
    return paginate(req, [_version_json(v) for v in versions], _PAGING, key="versions")


@router.route("GET", "/v1/projects/{project}/secrets/{secret}/versions/{version}")
def get_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    project_id, number = _start(req, project)
    return _version_json(_version(req.emu, project_id, number, secret, version))


@router.route("GET", "/v1/projects/{project}/secrets/{secret}/versions/{version}:access")
def access_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    project_id, number = _start(req, project)
    v = _version(req.emu, project_id, number, secret, version)
    if v["state"] != "ENABLED":
        raise ApiError(
            400,
            f"Secret Version [{v['name']}] is in {v['state']} state.",
            status="FAILED_PRECONDITION",
        )
    data = base64.b64decode(v["_data"])
    return {
        "name": v["name"],
        "payload": {"data": v["_data"], "dataCrc32c": str(crc32c(data))},
    }


def _transition(req: Request, project: str, secret: str, version: str, state: str) -> Any:
    body = req.json()
    project_id, number = _start(req, project)
    store = req.emu.store
    with store.transaction():
        v = _version(req.emu, project_id, number, secret, version)
        if body.get("etag") and body["etag"] != v["etag"]:
            raise ApiError(
                400,
                "The etag provided in the request does not match the current etag of the "
                "secret version.",
                status="FAILED_PRECONDITION",
            )
        if v["state"] == "DESTROYED" and state != "DESTROYED":
            raise ApiError(
                400,
                f"Secret Version [{v['name']}] is in DESTROYED state.",
                status="FAILED_PRECONDITION",
            )
        v["state"] = state
        if state == "DESTROYED":
            v.pop("_data", None)
            v["destroyTime"] = rfc3339(req.emu.clock())
        v["etag"] = _etag({"name": v["name"], "state": state, "t": req.emu.clock()})
        n = int(v["name"].rsplit("/", 1)[-1])
        store.put(VERSION_KIND, _vkey(project_id, secret, n), v)
    return _version_json(v)


@router.route("POST", "/v1/projects/{project}/secrets/{secret}/versions/{version}:disable")
def disable_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    return _transition(req, project, secret, version, "DISABLED")  # type: ignore[no-any-return]


@router.route("POST", "/v1/projects/{project}/secrets/{secret}/versions/{version}:enable")
def enable_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    return _transition(req, project, secret, version, "ENABLED")  # type: ignore[no-any-return]


@router.route("POST", "/v1/projects/{project}/secrets/{secret}/versions/{version}:destroy")
def destroy_version(req: Request, project: str, secret: str, version: str) -> dict[str, Any]:
    return _transition(req, project, secret, version, "DESTROYED")  # type: ignore[no-any-return]


# -- IAM -----------------------------------------------------------------------------------------


@router.route("GET", "/v1/projects/{project}/secrets/{secret}:getIamPolicy")
def get_iam_policy(req: Request, project: str, secret: str) -> dict[str, Any]:
    version = int(req.arg("options.requestedPolicyVersion") or 0)
    if version not in (0, 1, 3):
        raise ApiError(400, f"Invalid requested policy version {version}.")
    project_id, number = _start(req, project)
    _get_secret(req.emu, project_id, number, secret)
    return policies.render(policies.get_policy(req.emu, policy_key(project_id, secret)))


@router.route("POST", "/v1/projects/{project}/secrets/{secret}:setIamPolicy")
def set_iam_policy(req: Request, project: str, secret: str) -> Response | dict[str, Any]:
    body = req.json()
    policy = body.get("policy")
    if not isinstance(policy, dict):
        raise ApiError(400, "Request contains an invalid argument: policy is required.")
    project_id, number = _start(req, project)
    _get_secret(req.emu, project_id, number, secret)
    return policies.render(policies.set_policy(req.emu, policy_key(project_id, secret), policy))

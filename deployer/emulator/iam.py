"""IAM v1: service accounts and their IAM policies.

    POST   /v1/projects/{p}/serviceAccounts                     create {accountId, serviceAccount}
    GET    /v1/projects/{p}/serviceAccounts[?pageSize&pageToken] list
    GET    /v1/projects/{p|-}/serviceAccounts/{email|uniqueId}  get
    PATCH  /v1/projects/{p|-}/serviceAccounts/{sa}              patch {serviceAccount, updateMask}
    DELETE /v1/projects/{p|-}/serviceAccounts/{sa}              delete
    POST   /v1/projects/{p|-}/serviceAccounts/{sa}:getIamPolicy  (actAs is granted here)
    POST   /v1/projects/{p|-}/serviceAccounts/{sa}:setIamPolicy

Behaviour copied from Google: the API must be enabled (403 SERVICE_DISABLED otherwise); an
account id is 6-30 characters; a second create of the same id is 409 ALREADY_EXISTS; a new
account is eventually consistent: until ``_visibleAt`` (created + the ``iam.sa.propagation``
latency) GET answers 404 and IAM policies refuse bindings naming it (policies.py), while a
create of the same id already answers 409; deleting an account rewrites the bindings that
named it to ``deleted:serviceAccount:<email>?uid=<uniqueId>``, as getIamPolicy shows them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING, Any

from . import policies
from .errors import ApiError
from .pagination import Paging, paginate
from .projects import resolve
from .routing import Request, Router
from .serviceusage import require_enabled

if TYPE_CHECKING:
    from .context import Emulator

router = Router()
_PAGING = Paging(default_size=20, max_size=100)

SA_KIND = policies.SA_KIND  # "iam.sa", keyed by email
UID_KIND = "iam.sa.uid"  # uniqueId -> {"email"}
SERVICE = "iam.googleapis.com"
_ACCOUNT_ID_RE = re.compile(r"^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$")
_PATCHABLE = ("displayName", "description")


def sa_policy_key(email: str) -> str:
    return f"serviceAccounts/{email}"


def _unique_id(email: str, n: int) -> str:
    h = int.from_bytes(hashlib.sha256(f"{email}#{n}".encode()).digest()[:8], "big")
    return str(100_000_000_000_000_000_000 + h % 900_000_000_000_000_000_000)


def _render(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    for key in ("displayName", "description"):
        if not out.get(key):
            out.pop(key, None)
    if not out.get("disabled"):
        out.pop("disabled", None)
    return out


def _not_found() -> ApiError:
    return ApiError(404, "Unknown service account", status="NOT_FOUND")


def _lookup(
    emu: Emulator, project: str, ident: str, *, visible_only: bool = True
) -> dict[str, Any]:
    """The account by email or uniqueId, in ``project`` ("-" = any project)."""
    if project != "-":
        project_id, _ = resolve(emu, project)
        require_enabled(emu, project_id, SERVICE)
    else:
        project_id = "-"
    email = ident
    if ident.isdigit():
        ref = emu.store.get(UID_KIND, ident)
        if ref is None:
            raise _not_found()
        email = ref["email"]
    doc = emu.store.get(SA_KIND, email)
    if doc is None or (project_id != "-" and doc["projectId"] != project_id):
        raise _not_found()
    if visible_only and float(doc.get("_visibleAt", 0.0)) > emu.clock():
        raise _not_found()
    return doc


@router.route("POST", "/v1/projects/{project}/serviceAccounts")
def create(req: Request, project: str) -> dict[str, Any]:
    emu = req.emu
    project_id, _ = resolve(emu, project)
    require_enabled(emu, project_id, SERVICE)
    body = req.json()
    account_id = body.get("accountId") or ""
    if not _ACCOUNT_ID_RE.match(account_id):
        raise ApiError(
            400,
            f'Invalid value for field "accountId": "{account_id}". It must be 6 to 30 '
            "characters of lowercase letters, digits and hyphens, start with a letter and not "
            "end with a hyphen.",
        )
    sa = body.get("serviceAccount") or {}
    display = sa.get("displayName") or ""
    if len(display) > 100:
        raise ApiError(400, "displayName must be at most 100 characters.")
    description = sa.get("description") or ""
    if len(description) > 256:
        raise ApiError(400, "description must be at most 256 characters.")
    email = f"{account_id}@{project_id}.iam.gserviceaccount.com"
    with emu.store.transaction():
        if emu.store.get(SA_KIND, email) is not None:
            raise ApiError(
                409,
                f"Service account {account_id} already exists within project "
                f"projects/{project_id}.",
                status="ALREADY_EXISTS",
            )
        uid = _unique_id(email, emu.store.next_id("iam.sa"))
        etag = base64.b64encode(hashlib.sha256(uid.encode()).digest()[:8]).decode()
        doc = {
            "name": f"projects/{project_id}/serviceAccounts/{email}",
            "projectId": project_id,
            "uniqueId": uid,
            "email": email,
            "displayName": display,
            "description": description,
            "etag": etag,
            "oauth2ClientId": uid,
            "_visibleAt": emu.clock() + emu.latency.duration("iam.sa.propagation"),
        }
        emu.store.put(SA_KIND, email, doc)
        emu.store.put(UID_KIND, uid, {"email": email})
    return _render(doc)


@router.route("GET", "/v1/projects/{project}/serviceAccounts")
def list_accounts(req: Request, project: str) -> dict[str, Any]:
    emu = req.emu
    project_id, _ = resolve(emu, project)
    require_enabled(emu, project_id, SERVICE)
    docs = [_render(d) for _, d in emu.store.list(SA_KIND) if d["projectId"] == project_id]
    return paginate(req, docs, _PAGING, key="accounts")


@router.route("GET", "/v1/projects/{project}/serviceAccounts/{sa}")
def get(req: Request, project: str, sa: str) -> dict[str, Any]:
    return _render(_lookup(req.emu, project, sa))


@router.route("PATCH", "/v1/projects/{project}/serviceAccounts/{sa}")
def patch(req: Request, project: str, sa: str) -> dict[str, Any]:
    emu = req.emu
    body = req.json()
    fields = [f for f in (body.get("updateMask") or "").split(",") if f]
    if not fields:
        raise ApiError(400, "updateMask is required.")
    for f in fields:
        if f not in _PATCHABLE:
            raise ApiError(400, f"Invalid updateMask field: {f}")
    new = body.get("serviceAccount") or {}
    with emu.store.transaction():
        doc = _lookup(emu, project, sa)
        for f in fields:
            doc[f] = new.get(f) or ""
        emu.store.put(SA_KIND, doc["email"], doc)
    return _render(doc)


@router.route("DELETE", "/v1/projects/{project}/serviceAccounts/{sa}")
def delete(req: Request, project: str, sa: str) -> dict[str, Any]:
    emu = req.emu
    with emu.store.transaction():
        doc = _lookup(emu, project, sa, visible_only=False)
        email = doc["email"]
        emu.store.delete(SA_KIND, email)
        policies.delete_policy(emu, sa_policy_key(email))
        _tombstone_members(emu, email, doc["uniqueId"])
    return {}


def _tombstone_members(emu: Emulator, email: str, uid: str) -> None:
    """Bindings naming a deleted account now read ``deleted:serviceAccount:<email>?uid=<id>``."""
    old = f"serviceAccount:{email}"
    new = f"deleted:serviceAccount:{email}?uid={uid}"
    for key, policy in emu.store.list(policies.POLICY_KIND):
        changed = False
        for b in policy.get("bindings", []):
            if old in b.get("members", []):
                b["members"] = sorted({new if m == old else m for m in b["members"]})
                policies.move_grant(emu, key, b["role"], old, new)
                changed = True
        if changed:
            policy["etag"] = policies.new_etag(emu)  # the policy changed: a read etag is stale
            emu.store.put(policies.POLICY_KIND, key, policy)


@router.route("POST", "/v1/projects/{project}/serviceAccounts/{sa}:getIamPolicy")
def get_iam_policy(req: Request, project: str, sa: str) -> dict[str, Any]:
    req.json()
    version = int(req.arg("options.requestedPolicyVersion") or 0)
    if version not in (0, 1, 3):
        raise ApiError(400, f"Invalid requested policy version {version}.")
    doc = _lookup(req.emu, project, sa)
    return policies.render(policies.get_policy(req.emu, sa_policy_key(doc["email"])))


@router.route("POST", "/v1/projects/{project}/serviceAccounts/{sa}:setIamPolicy")
def set_iam_policy(req: Request, project: str, sa: str) -> dict[str, Any]:
    body = req.json()
    policy = body.get("policy")
    if not isinstance(policy, dict):
        raise ApiError(400, "Request contains an invalid argument: policy is required.")
    doc = _lookup(req.emu, project, sa)
    return policies.render(policies.set_policy(req.emu, sa_policy_key(doc["email"]), policy))

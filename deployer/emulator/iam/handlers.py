"""IAM's routes: parse the request, call the backend, render its answer."""

from __future__ import annotations

from typing import Any

from .. import policies
from ..errors import InvalidArgument
from ..pagination import Paging, paginate
from ..routing import Request, Router
from .accounts import ServiceAccounts, sa_policy_key

router = Router()
_PAGING = Paging(default_size=20, max_size=100)
_ACCOUNT = "/v1/projects/{project}/serviceAccounts/{sa}"


def _render(doc: dict[str, Any]) -> dict[str, Any]:
    """An account as IAM answers it: empty optional fields left out."""
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    for key in ("displayName", "description"):
        if not out.get(key):
            out.pop(key, None)
    if not out.get("disabled"):
        out.pop("disabled", None)
    return out


@router.route("POST", "/v1/projects/{project}/serviceAccounts")
def create(req: Request, project: str) -> dict[str, Any]:
    accounts = ServiceAccounts(req.emu)
    project_id = accounts.project(project)
    return _render(accounts.create(project_id, req.json()))


@router.route("GET", "/v1/projects/{project}/serviceAccounts")
def list_accounts(req: Request, project: str) -> dict[str, Any]:
    accounts = ServiceAccounts(req.emu)
    docs = [_render(d) for d in accounts.list(accounts.project(project))]
    return paginate(req, docs, _PAGING, key="accounts")


@router.route("GET", _ACCOUNT)
def get(req: Request, project: str, sa: str) -> dict[str, Any]:
    return _render(ServiceAccounts(req.emu).lookup(project, sa))


@router.route("PATCH", _ACCOUNT)
def patch(req: Request, project: str, sa: str) -> dict[str, Any]:
    body = req.json()
    fields = [f for f in (body.get("updateMask") or "").split(",") if f]
    new = body.get("serviceAccount") or {}
    return _render(ServiceAccounts(req.emu).patch(project, sa, fields, new))


@router.route("DELETE", _ACCOUNT)
def delete(req: Request, project: str, sa: str) -> dict[str, Any]:
    ServiceAccounts(req.emu).delete(project, sa)
    return {}


@router.route("POST", _ACCOUNT + ":getIamPolicy")
def get_iam_policy(req: Request, project: str, sa: str) -> dict[str, Any]:
    req.json()
    version = int(req.arg("options.requestedPolicyVersion") or 0)
    if version not in (0, 1, 3):
        raise InvalidArgument(f"Invalid requested policy version {version}.")
    doc = ServiceAccounts(req.emu).lookup(project, sa)
    return policies.render(policies.get_policy(req.emu, sa_policy_key(doc["email"])))


@router.route("POST", _ACCOUNT + ":setIamPolicy")
def set_iam_policy(req: Request, project: str, sa: str) -> dict[str, Any]:
    policy = req.json().get("policy")
    if not isinstance(policy, dict):
        raise InvalidArgument("Request contains an invalid argument: policy is required.")
    doc = ServiceAccounts(req.emu).lookup(project, sa)
    key = sa_policy_key(doc["email"])
    return policies.render(policies.set_policy(req.emu, key, policy))

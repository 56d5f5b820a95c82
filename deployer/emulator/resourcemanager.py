"""Cloud Resource Manager v3: the project and its IAM policy.

    GET  /v3/projects/{project}                    -> Project (by id or number)
    POST /v3/projects/{project}:getIamPolicy       body {"options": {"requestedPolicyVersion"}}
    POST /v3/projects/{project}:setIamPolicy       body {"policy": ..., "updateMask"?}

The project's policy is stored under the resource key ``projects/<project id>`` whichever way
the project was addressed (policies.py).
"""

from __future__ import annotations

from typing import Any

from . import policies
from .errors import InvalidArgument
from .formats import digest
from .projects import ensure_project
from .routing import Request, Router

router = Router()


def policy_key(project_id: str) -> str:
    return f"projects/{project_id}"


def project_json(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": f"projects/{p['projectNumber']}",
        "projectId": p["projectId"],
        "state": p["state"],
        "displayName": p["displayName"],
        "createTime": p["createTime"],
        "updateTime": p["updateTime"],
    }
    if p.get("labels"):
        out["labels"] = p["labels"]
    out["etag"] = f'W/"{digest(out).hex()[:20]}"'
    return out


@router.route("GET", "/v3/projects/{project}")
def get_project(req: Request, project: str) -> dict[str, Any]:
    return project_json(ensure_project(req.emu, project))


@router.route("POST", "/v3/projects/{project}:getIamPolicy")
def get_iam_policy(req: Request, project: str) -> dict[str, Any]:
    body = req.json()
    version = (body.get("options") or {}).get("requestedPolicyVersion", 0)
    if version not in (0, 1, 3):
        raise InvalidArgument(f"Invalid requested policy version {version}.")
    p = ensure_project(req.emu, project)
    return policies.render(policies.get_policy(req.emu, policy_key(p["projectId"])))


@router.route("POST", "/v3/projects/{project}:setIamPolicy")
def set_iam_policy(req: Request, project: str) -> dict[str, Any]:
    body = req.json()
    policy = body.get("policy")
    if not isinstance(policy, dict):
        raise InvalidArgument("Request contains an invalid argument: policy is required.")
    p = ensure_project(req.emu, project)
    return policies.render(policies.set_policy(req.emu, policy_key(p["projectId"]), policy))

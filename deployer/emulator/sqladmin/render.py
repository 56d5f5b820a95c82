"""Cloud SQL Admin's JSON: stored documents and operations as the API answers them."""

from __future__ import annotations

from typing import Any

from ..formats import digest, rfc3339
from .records import BASE


def resource(doc: dict[str, Any]) -> dict[str, Any]:
    """An instance, database or user: its public fields and an etag of them."""
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    out["etag"] = digest(out).hex()
    return out


def listing(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """An unpaged list (databases, users): ``items`` left out when empty."""
    out: dict[str, Any] = {"kind": kind}
    if items:
        out["items"] = [resource(d) for d in items]
    return out


def operation(op: dict[str, Any], now: float) -> dict[str, Any]:
    """An operation in the sql#operation shape: PENDING for its first tenth, then RUNNING,
    then DONE (with ``error.errors[]`` when it failed)."""
    project_id, instance = op["args"]["project"], op["args"]["instance"]
    out: dict[str, Any] = {
        "kind": "sql#operation",
        "targetLink": f"{BASE}/projects/{project_id}/instances/{instance}",
        "user": "user@example.com",
        "insertTime": rfc3339(op["created"]),
        "operationType": op["metadata"]["operationType"],
        "name": op["id"],
        "targetId": instance,
        "selfLink": f"{BASE}/projects/{project_id}/operations/{op['id']}",
        "targetProject": project_id,
    }
    if op["done"]:
        out["status"] = "DONE"
        out["startTime"] = rfc3339(op["created"])
        out["endTime"] = rfc3339(op.get("completed", op["done_at"]))
        if op["error"]:
            out["error"] = {
                "kind": "sql#operationErrors",
                "errors": [
                    {
                        "kind": "sql#operationError",
                        "code": op["error"].get("reason") or "INTERNAL_ERROR",
                        "message": op["error"]["message"],
                    }
                ],
            }
    elif now < op["created"] + 0.1 * (op["done_at"] - op["created"]):
        out["status"] = "PENDING"
    else:
        out["status"] = "RUNNING"
        out["startTime"] = rfc3339(op["created"])
    return out

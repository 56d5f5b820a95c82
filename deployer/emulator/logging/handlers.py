"""Cloud Logging's routes: parse the request, call the backend, render its answer."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument
from ..pagination import Paging, page
from ..routing import Request, Router
from .entries import LogEntries

router = Router()
_PAGING = Paging(default_size=50, max_size=1000)


@router.route("POST", "/v2/entries:write")
def write(req: Request) -> dict[str, Any]:
    body = req.json()
    entries = body.get("entries")
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument("entries: at least one log entry is required.")
    LogEntries(req.emu).write(
        entries,
        log_name=body.get("logName"),
        resource=body.get("resource"),
        labels=body.get("labels"),
        dry_run=bool(body.get("dryRun")),
    )
    return {}


@router.route("POST", "/v2/entries:list")
def list_(req: Request) -> dict[str, Any]:
    body = req.json()
    names = list(body.get("resourceNames") or [])
    names += [f"projects/{p}" for p in body.get("projectIds") or []]
    found = LogEntries(req.emu).list(
        names, body.get("filter") or "", body.get("orderBy") or "timestamp asc"
    )
    size = body.get("pageSize")
    return page(
        found,
        _PAGING,
        key="entries",
        size=str(size) if size else None,
        token=body.get("pageToken"),
    )

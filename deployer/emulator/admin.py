"""The admin API, under /_emulator/ on the emulator's own port (not recorded in the transcript,
no faults, no latency):

    GET    /_emulator/health
    POST   /_emulator/reset
    GET    /_emulator/faults            -> {"faults": [rule, ...]}
    POST   /_emulator/faults            body: a rule (see faults.py) -> the stored rule
    DELETE /_emulator/faults            clear all;  DELETE /_emulator/faults/{id}: one
    GET    /_emulator/latency           -> {"time_scale", "request_delay", "durations"}
    PUT    /_emulator/latency           body: any of those keys (durations merge)
    GET    /_emulator/transcript        -> {"entries": [...], "limit", "size", "dropped_entries"}
    PUT    /_emulator/transcript        body: {"limit": N} -> {"limit", "size", "dropped_entries"}
    DELETE /_emulator/transcript
    GET    /_emulator/state[?kind=K]    -> {kind: {key: value}}
    GET    /_emulator/local             -> {"executing", "postgres", "sql": [...], "frontdoor"}
    GET    /_emulator/outcomes          -> {"outcomes": [...]}
    POST   /_emulator/outcomes          body: {"kind", "match", "message", "times"?, "status"?}
    DELETE /_emulator/outcomes
    POST   /_emulator/github-connections  body: {"project", "repository": "OWNER/REPO"}: stands
                                          for connecting the repository to Cloud Build
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import wraps
from typing import Any

from .cloudbuild import connect_github
from .errors import InvalidArgument, NotFound
from .routing import Request, Router
from .secretmanager import VERSION_KIND

router = Router()


def _bad_input(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(req: Request, **kw: Any) -> Any:
        try:
            return fn(req, **kw)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgument(f"{type(exc).__name__}: {exc}") from None

    return wrapper


@router.route("GET", "/_emulator/health")
def health(req: Request) -> dict[str, Any]:
    return {
        "status": "ok",
        "apis": list(req.emu.apis),
        "state_dir": str(req.emu.state_dir) if req.emu.state_dir else None,
        "time_scale": req.emu.latency.time_scale,
        "time": req.emu.clock(),
    }


@router.route("POST", "/_emulator/reset")
def reset(req: Request) -> dict[str, Any]:
    req.emu.reset()
    return {}


@router.route("GET", "/_emulator/faults")
def list_faults(req: Request) -> dict[str, Any]:
    return {"faults": req.emu.faults.list()}


@router.route("POST", "/_emulator/faults")
@_bad_input
def add_fault(req: Request) -> dict[str, Any]:
    return req.emu.faults.add(**req.json())


@router.route("DELETE", "/_emulator/faults")
def clear_faults(req: Request) -> dict[str, Any]:
    req.emu.faults.clear()
    return {}


@router.route("DELETE", "/_emulator/faults/{rule_id}")
@_bad_input
def delete_fault(req: Request, rule_id: str) -> dict[str, Any]:
    if not req.emu.faults.remove(int(rule_id)):
        raise NotFound(f"no fault rule {rule_id}")
    return {}


@router.route("GET", "/_emulator/latency")
def get_latency(req: Request) -> dict[str, Any]:
    return req.emu.latency.get()


@router.route("PUT", "/_emulator/latency")
@_bad_input
def put_latency(req: Request) -> dict[str, Any]:
    body = req.json()
    unknown = set(body) - {"time_scale", "request_delay", "durations"}
    if unknown:
        raise ValueError(f"unknown latency settings: {sorted(unknown)}")
    return req.emu.latency.set(**body)


@router.route("GET", "/_emulator/transcript")
def get_transcript(req: Request) -> dict[str, Any]:
    t = req.emu.transcript
    return {"entries": t.entries(), **t.info()}


@router.route("PUT", "/_emulator/transcript")
@_bad_input
def put_transcript(req: Request) -> dict[str, Any]:
    body = req.json()
    unknown = set(body) - {"limit"}
    if unknown:
        raise ValueError(f"unknown transcript settings: {sorted(unknown)}")
    if "limit" in body:
        req.emu.transcript.set_limit(body["limit"])
    return req.emu.transcript.info()


@router.route("DELETE", "/_emulator/transcript")
def clear_transcript(req: Request) -> dict[str, Any]:
    req.emu.transcript.clear()
    return {}


@router.route("GET", "/_emulator/state")
def state(req: Request) -> dict[str, Any]:
    dump = _without_secret_values(req.emu.store.dump())
    kind = req.arg("kind")
    if kind is not None:
        return {kind: dump.get(kind, {})}
    return dump


def _without_secret_values(dump: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Secret payloads never leave the emulator: a version's ``_data`` becomes its size."""
    for doc in dump.get(VERSION_KIND, {}).values():
        if "_data" in doc:
            doc["_data"] = {"_bytes": len(base64.b64decode(doc["_data"]))}
    return dump


@router.route("GET", "/_emulator/local")
def local(req: Request) -> dict[str, Any]:
    """Local execution: whether it is on, which PostgreSQL, and each running Cloud SQL server's
    socket and loopback port."""
    return req.emu.local.describe()


@router.route("GET", "/_emulator/outcomes")
def list_outcomes(req: Request) -> dict[str, Any]:
    return {"outcomes": req.emu.outcomes.list()}


@router.route("POST", "/_emulator/outcomes")
@_bad_input
def add_outcome(req: Request) -> dict[str, Any]:
    b = req.json()
    return req.emu.outcomes.add(
        b["kind"], b["match"], b["message"], int(b.get("times", 1)), b.get("status")
    )


@router.route("DELETE", "/_emulator/outcomes")
def clear_outcomes(req: Request) -> dict[str, Any]:
    req.emu.outcomes.clear()
    return {}


@router.route("POST", "/_emulator/github-connections")
@_bad_input
def add_github_connection(req: Request) -> dict[str, Any]:
    b = req.json()
    connect_github(req.emu, str(b["project"]), str(b["repository"]))
    return {}

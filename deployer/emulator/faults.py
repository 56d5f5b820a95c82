"""Faults on demand: rules that make matching requests fail, slow down or lose their response.

A rule::

    {"method": "POST" | "*", "path": regex (re.search on the raw path, no query string),
     "body_contains": str | None, "times": int | None, "until": epoch seconds | None,
     "action": "error" | "delay" | "drop",
     "code": 503, "status": "UNAVAILABLE", "message": "...", "reason": None, "retry_after": None,
     "seconds": 0.0}

- error: answer that error instead of handling the request (Retry-After header when given);
- delay: wait ``seconds`` on the emulator's clock (not scaled), then handle;
- drop: handle the request (its effect is applied), then close the connection without answering.

``times`` counts down on each match and the rule vanishes at 0; a rule past ``until`` (on the
emulator's clock) vanishes too. Rules match in insertion order; the first match wins. Rules live
in the store, so every process on a state directory applies them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import STATUS_BY_CODE, ApiError
from .store import Rules

if TYPE_CHECKING:
    from .context import Emulator

KIND = "_fault"
ACTIONS = ("error", "delay", "drop")

_DEFAULTS: dict[str, Any] = {
    "method": "*",
    "path": "",
    "body_contains": None,
    "times": None,
    "until": None,
    "action": "error",
    "code": 503,
    "status": None,
    "message": None,
    "reason": None,
    "retry_after": None,
    "seconds": 0.0,
}


def normalize(rule: dict[str, Any]) -> dict[str, Any]:
    unknown = set(rule) - set(_DEFAULTS) - {"id"}
    if unknown:
        raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
    r = {**_DEFAULTS, **rule}
    if r["action"] not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {r['action']!r}")
    r["method"] = str(r["method"]).upper()
    re.compile(r["path"])  # fail now on a bad regex
    r["code"] = int(r["code"])
    if r["status"] is None:
        r["status"] = STATUS_BY_CODE.get(r["code"], "UNKNOWN")
    if r["message"] is None:
        r["message"] = _default_message(r["code"])
    if r["times"] is not None:
        r["times"] = int(r["times"])
        if r["times"] <= 0:
            raise ValueError("times must be positive")
    r["seconds"] = float(r["seconds"] or 0.0)
    return r


def _default_message(code: int) -> str:
    return {
        429: "Quota exceeded.",
        500: "Internal error encountered.",
        502: "Bad Gateway",
        503: "The service is currently unavailable.",
        504: "Deadline exceeded.",
    }.get(code, f"Injected fault {code}.")


class Faults(Rules):
    def __init__(self, emu: Emulator) -> None:
        super().__init__(emu.store, KIND, "fault")
        self.emu = emu

    def add(self, **rule: Any) -> dict[str, Any]:
        return self._add(normalize(rule))

    def _expired(self, rule: dict[str, Any]) -> bool:
        return rule["until"] is not None and self.emu.clock() > float(rule["until"])

    def match(self, method: str, path: str, body: bytes) -> dict[str, Any] | None:
        """The first rule matching this request (consuming one of its ``times``), or None."""
        text: list[str] = []  # the body decoded once, when a rule asks for it

        def matches(r: dict[str, Any]) -> bool:
            if r["method"] not in ("*", method.upper()):
                return False
            if r["path"] and not re.search(r["path"], path):
                return False
            if r["body_contains"]:
                if not text:
                    text.append(body.decode("utf-8", "replace"))
                return bool(r["body_contains"] in text[0])
            return True

        return self._take(matches)


def as_error(rule: dict[str, Any]) -> ApiError:
    return ApiError(
        rule["code"],
        rule["message"],
        status=rule["status"],
        reason=rule["reason"],
        retry_after=rule["retry_after"],
    )

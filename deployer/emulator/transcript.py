"""The transcript: every (non-admin) request the emulator handled, in order, secrets redacted.

An entry: {"seq", "method", "path", "query", "body", "status", "response"}; bodies are parsed
JSON, None when empty, or {"_bytes": n} when not JSON. Redacted before storing: any value under a
"data" key inside a "payload" object (Secret Manager payloads), any "password" / "rootPassword"
key, a Redis instance's "authString", and the payload of Secret Manager ``:access`` responses.
Kept in memory in the server process, bounded: the newest ``limit`` entries (default
:data:`DEFAULT_LIMIT`) are kept, older ones are evicted and counted in ``dropped_entries``
(``seq`` keeps counting, so a gap shows where).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

REDACTED = "***"
DEFAULT_LIMIT = 100_000
_SECRET_KEYS = frozenset({"password", "rootPassword", "authString"})


def redact(value: Any, *, in_payload: bool = False) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in _SECRET_KEYS or (in_payload and k == "data"):
                out[k] = REDACTED
            else:
                out[k] = redact(v, in_payload=(k == "payload"))
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def parse_body(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"_bytes": len(body)}


class Transcript:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=_check_limit(limit))
        self._seq = 0
        self.dropped_entries = 0

    @property
    def limit(self) -> int:
        return self._entries.maxlen or 0

    def set_limit(self, limit: int) -> None:
        """Keep at most ``limit`` entries (the oldest beyond it are evicted and counted)."""
        limit = _check_limit(limit)
        with self._lock:
            excess = max(0, len(self._entries) - limit)
            self.dropped_entries += excess
            self._entries = deque(list(self._entries)[excess:], maxlen=limit)

    def info(self) -> dict[str, int]:
        with self._lock:
            return {
                "limit": self.limit,
                "size": len(self._entries),
                "dropped_entries": self.dropped_entries,
            }

    def record(
        self,
        *,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes | None,
        status: int | None,
        response: bytes | None,
        dropped: bool = False,
        response_is_json: bool = True,
    ) -> dict[str, Any]:
        req = redact(parse_body(body))
        if response and not response_is_json:
            resp: Any = {"_bytes": len(response)}
        else:
            resp = redact(parse_body(response))
        if path.endswith(":access") and isinstance(resp, dict):
            payload = resp.get("payload")
            if isinstance(payload, dict):
                resp = {**resp, "payload": {**payload, "data": REDACTED}}
            elif "payload" in resp:
                resp = {**resp, "payload": REDACTED}
        entry: dict[str, Any] = {
            "seq": 0,
            "method": method,
            "path": path,
            "query": query,
            "body": req,
            "status": status,
            "response": resp,
        }
        if dropped:
            entry["dropped"] = True
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            if len(self._entries) == self._entries.maxlen:
                self.dropped_entries += 1
            self._entries.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._seq = 0
            self.dropped_entries = 0


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"transcript limit must be a positive integer, not {limit!r}")
    return limit

"""Google's JSON conventions every API shares: timestamps, PATCH semantics, and the digest
content etags are cut from (no HTTP)."""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import re
from typing import Any

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def rfc3339(t: float) -> str:
    """Google's timestamp format: UTC, 'Z', up to nanosecond digits (we give microseconds)."""
    d = _dt.datetime.fromtimestamp(t, tz=_dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(value: str) -> float:
    """An RFC 3339 timestamp ("2026-01-02T03:04:05.123456789Z") as epoch seconds; nanosecond
    digits past the sixth are dropped. ValueError when it is none."""
    text = _FRACTION.sub(r"\1", value, count=1).replace("z", "Z")
    return _dt.datetime.fromisoformat(text).timestamp()


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics (RFC 7396): objects merge recursively, null removes, anything else
    replaces. Neither argument is changed."""
    out = copy.deepcopy(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_patch(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def digest(value: Any) -> bytes:
    """The sha256 of ``value`` as canonical JSON (keys sorted): the same resource always gives
    the same bytes, in every process. Each API cuts its etag from it in its own format."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()

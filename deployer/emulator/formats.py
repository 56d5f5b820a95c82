"""Google's JSON conventions every API shares: timestamps, PATCH semantics, resource labels,
and the digest content etags are cut from (no HTTP)."""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import re
from typing import Any

from .errors import InvalidArgument

_FRACTION = re.compile(r"(\.\d{1,6})\d*")
_LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")


def check_labels(labels: Any, *, what: str) -> dict[str, str]:
    """A resource's ``labels`` under Google's common rules (at most 64; keys 1-63 lowercase
    letters, digits, ``_`` or ``-`` starting with a letter; values 0-63 of the same), as a
    dict ({} when absent); 400 naming the first bad one. ``what``: the resource, for the
    message ("repository")."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise InvalidArgument("Invalid JSON payload received. 'labels' must be an object.")
    if len(labels) > 64:
        raise InvalidArgument(f"A {what} can have at most 64 labels.")
    for k, v in labels.items():
        if not _LABEL_KEY_RE.match(k) or not isinstance(v, str) or not _LABEL_VALUE_RE.match(v):
            raise InvalidArgument(f"Invalid label {k}={v!r}.")
    return dict(labels)


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

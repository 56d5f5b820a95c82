"""List pagination, one implementation; each API's quirks are data (a ``Paging``).

Google's list methods take a page size (``pageSize``; ``maxResults`` on the discovery-era APIs)
and an opaque ``pageToken``, and answer the page plus ``nextPageToken`` when more remain. What
differs per API is the parameter name, the default and largest page, and extra fields (Secret
Manager's ``totalSize``). Tokens here are offsets into the caller's already filtered and ordered
list, rendered as decimal strings. Storage pages by object name and keeps its own walk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ApiError

if TYPE_CHECKING:
    from .routing import Request


def _invalid(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass(frozen=True)
class Paging:
    """How one API pages its lists."""

    default_size: int
    max_size: int
    size_param: str = "pageSize"
    total_size: bool = False  # answer totalSize (Secret Manager)
    error: Callable[[str], ApiError] = _invalid  # how the API words a 400


def page(
    items: Sequence[dict[str, Any]],
    paging: Paging,
    *,
    key: str,
    size: str | None,
    token: str | None,
    kind: str = "",
) -> dict[str, Any]:
    """The response for one page of ``items`` under ``key``; ``size``/``token`` are the raw query
    values; ``kind`` is a discovery-era list's ``kind`` field ("sql#instancesList").

    A size of 0 or none means the default; one larger than the API allows is clamped, as
    Google's list methods do; a size or token that is not a number is a 400 (never a 500)."""
    try:
        want = int(size) if size else 0
        start = int(token) if token else 0
    except ValueError:
        raise paging.error(f"Invalid {paging.size_param} or pageToken.") from None
    if want < 0 or start < 0:
        raise paging.error(f"Invalid {paging.size_param} or pageToken.")
    want = min(want or paging.default_size, paging.max_size)
    chunk = list(items[start : start + want])
    out: dict[str, Any] = {"kind": kind} if kind else {}
    if chunk:
        out[key] = chunk
    if start + want < len(items):
        out["nextPageToken"] = str(start + want)
    if paging.total_size:
        out["totalSize"] = len(items)
    return out


def paginate(
    req: Request, items: Sequence[dict[str, Any]], paging: Paging, *, key: str, kind: str = ""
) -> dict[str, Any]:
    """``page`` with the size and token read from the request's query."""
    return page(
        items,
        paging,
        key=key,
        kind=kind,
        size=req.arg(paging.size_param),
        token=req.arg("pageToken"),
    )

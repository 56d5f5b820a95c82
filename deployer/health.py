"""A service's health as a visitor sees it: one GET of its health path, with a short timeout.

``probe(url)`` answers in a word or two: "ok" (2xx or 3xx), the HTTP status otherwise ("503",
"403"), "unreachable" when nothing answers in time. ``probe_all`` probes many URLs at once (a
thread each, at most ``WORKERS``), so ``status`` over every tenant waits about one timeout,
whatever the number of tenants. A host under ``.localhost`` (the emulator's front door) is this
machine, whatever the resolver says.
"""

from __future__ import annotations

import http.client
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

#: seconds a probe waits for an answer
TIMEOUT = 3.0
WORKERS = 16
UNREACHABLE = "unreachable"


def probe(url: str, *, timeout: float = TIMEOUT) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    connect = "127.0.0.1" if host == "localhost" or host.endswith(".localhost") else host
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(connect, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers={"Host": parts.netloc})
        code = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return UNREACHABLE
    finally:
        conn.close()
    return "ok" if 200 <= code < 400 else str(code)


def probe_all(urls: Sequence[str], *, timeout: float = TIMEOUT) -> list[str]:
    """``probe`` of each URL, in parallel, in the order given."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(urls))) as pool:
        return list(pool.map(lambda u: probe(u, timeout=timeout), urls))


@dataclass(frozen=True)
class Served:
    """One service of a tenant, as ``status`` without --tenant shows it."""

    service: str
    url: str  # its run.app URL ("" before its first ready revision)
    local_url: str  # where an executing emulator's front door serves it, else ""
    health: (
        str  # a GET of its health path: ok, an HTTP status ("503"), unreachable; or why not probed
    )


@dataclass(frozen=True)
class TenantOverview:
    """One tenant, as ``status`` without --tenant shows it."""

    tenant: str
    resources: tuple[str, ...]  # "kind name"
    services: tuple[Served, ...]

"""An uptime checker's request, locally: one HTTP GET (or HEAD, POST) through the front door
(local/frontdoor.py) to a service's cloud host, as Google's checkers send it from outside
(docs/emulator.md, "Uptime checks, locally").

It knows nothing of the Google APIs: it is handed the front door's port, the cloud host, the
path and a timeout, and answers with the status and the time it took. Standard library only.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

from .frontdoor import BIND_HOST, CLOUD_SUFFIX, LOCAL_SUFFIX

#: what Google's checkers send as their User-Agent (they are recognisable in access logs)
USER_AGENT = "GoogleStackdriverMonitoring-UptimeChecks(https://cloud.google.com/monitoring)"


@dataclass(frozen=True)
class Probe:
    """One request's outcome: the HTTP status (None: no answer, ``error`` says why) and how
    long it took, in milliseconds."""

    status: int | None
    latency_ms: float
    error: str = ""


def local_host(cloud_host: str, port: int) -> str | None:
    """The Host the front door serves ``cloud_host`` under (None: not a run.app host)."""
    if not cloud_host.endswith(CLOUD_SUFFIX):
        return None
    return f"{cloud_host.removesuffix(CLOUD_SUFFIX)}{LOCAL_SUFFIX}:{port}"


def probe(*, port: int, host: str, path: str, method: str = "GET", timeout: float) -> Probe:
    """Send the request to the front door on ``port`` with ``host`` (its local form); redirects
    are not followed."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(BIND_HOST, port, timeout=timeout)
    try:
        conn.putrequest(method, path or "/", skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        conn.putheader("User-Agent", USER_AGENT)
        conn.putheader("Content-Length", "0")
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        status: int | None = resp.status
        error = ""
    except TimeoutError:
        status, error = None, f"no answer within {timeout:g} s"
    except (OSError, http.client.HTTPException) as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return Probe(status, (time.monotonic() - started) * 1000.0, error)

"""EmulatorControl: the admin API from Python, over HTTP (stdlib only, no google.*)."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import quote, urlsplit


class EmulatorControlError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"emulator admin API answered {status}: {body}")
        self.status = status
        self.body = body


class EmulatorControl:
    """Drive an emulator (in this process or another) through ``/_emulator/``."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"emulator URL must be http://host:port, not {url!r}")
        self.url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout = timeout
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):  # one retry on a stale keep-alive connection
            conn = self._conn()
            try:
                conn.request(method, "/_emulator/" + path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        parsed = json.loads(raw) if raw else None
        if resp.status >= 400:
            raise EmulatorControlError(resp.status, parsed)
        return parsed

    # -- the admin API --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def reset(self) -> None:
        self._call("POST", "reset")

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        """Add a fault rule (faults.py): e.g. ``add_fault(method="POST", path="/builds$",
        code=429, retry_after=1, times=2)``; returns it with its ``id``."""
        return self._call("POST", "faults", rule)

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")["faults"]

    def remove_fault(self, rule_id: int) -> None:
        self._call("DELETE", f"faults/{int(rule_id)}")

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def latency(self) -> dict[str, Any]:
        return self._call("GET", "latency")

    def set_latency(
        self,
        *,
        time_scale: float | None = None,
        request_delay: float | None = None,
        durations: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if time_scale is not None:
            body["time_scale"] = time_scale
        if request_delay is not None:
            body["request_delay"] = request_delay
        if durations is not None:
            body["durations"] = durations
        return self._call("PUT", "latency", body)

    def transcript(self) -> list[dict[str, Any]]:
        return self._call("GET", "transcript")["entries"]

    def transcript_info(self) -> dict[str, int]:
        """{"limit", "size", "dropped_entries"}: entries beyond the limit are evicted."""
        return dict(self._call("PUT", "transcript", {}))

    def set_transcript_limit(self, limit: int) -> dict[str, int]:
        return dict(self._call("PUT", "transcript", {"limit": limit}))

    def clear_transcript(self) -> None:
        self._call("DELETE", "transcript")

    def state(self, kind: str | None = None) -> dict[str, dict[str, Any]]:
        return self._call("GET", "state" + (f"?kind={quote(kind)}" if kind else ""))

    def local(self) -> dict[str, Any]:
        """Local execution: ``{"executing", "postgres", "sql": [{"connectionName", "port",
        "layoutSocket", "socketDir", "psql", ...}], "frontdoor": {"url", "port", "token",
        "hosts"} or None}`` (docs/emulator.md, "Local execution")."""
        return dict(self._call("GET", "local"))

    def fail(
        self, kind: str, match: str, message: str, times: int = 1, status: str | None = None
    ) -> dict[str, Any]:
        """Make the next ``times`` outcomes of ``kind`` ("build", "execution", "revision",
        "sql.operation", "delete") whose name contains ``match`` fail with ``message``; for builds,
        ``status`` is the failed status (FAILURE, INTERNAL_ERROR, TIMEOUT, EXPIRED)."""
        rule: dict[str, Any] = {"kind": kind, "match": match, "message": message, "times": times}
        if status is not None:
            rule["status"] = status
        return self._call("POST", "outcomes", rule)

    def outcomes(self) -> list[dict[str, Any]]:
        return self._call("GET", "outcomes")["outcomes"]

    def clear_outcomes(self) -> None:
        self._call("DELETE", "outcomes")

    def connect_github(self, project: str, repository: str) -> None:
        """Stand for connecting OWNER/REPO to the project's Cloud Build (a console step): its
        GitHub triggers may be created from now on."""
        self._call("POST", "github-connections", {"project": project, "repository": repository})

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

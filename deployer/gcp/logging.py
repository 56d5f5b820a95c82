"""Cloud Logging v2 through the discovery client: read entries (entries.list).

entries.tail is a streaming gRPC method (the REST document lists it, but a JSON response does not
stream), so following a log polls entries.list for entries newer than the last one seen.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from deployer.gcp.context import Context, execute

#: the largest page entries.list answers
MAX_PAGE = 1000


@dataclass(frozen=True)
class LogEntry:
    """One line as `djdeploy logs` shows it: when, how bad, which revision/execution/build
    printed it, and what it said."""

    timestamp: str
    severity: str
    source: str  # the revision, execution or build that wrote it
    message: str
    insert_id: str
    trace: str | None = None

    @classmethod
    def from_api(cls, entry: dict[str, Any]) -> LogEntry:
        labels = entry.get("labels") or {}
        resource = (entry.get("resource") or {}).get("labels") or {}
        source = (
            labels.get("run.googleapis.com/execution_name")
            or resource.get("revision_name")
            or resource.get("build_id")
            or resource.get("job_name")
            or resource.get("service_name")
            or ""
        )
        return cls(
            timestamp=entry.get("timestamp", ""),
            severity=entry.get("severity", "DEFAULT"),
            source=source,
            message=_message(entry),
            insert_id=entry.get("insertId", ""),
            trace=entry.get("trace"),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _message(entry: dict[str, Any]) -> str:
    """The readable text: a JSON line's message (its other fields as JSON when it has none),
    a text line as is, a request log line (Cloud Run's ``requests`` log) as method, status and
    URL."""
    request = entry.get("httpRequest")
    if request and "textPayload" not in entry and "jsonPayload" not in entry:
        parts = (request.get("requestMethod"), request.get("status"), request.get("requestUrl"))
        return " ".join(str(p) for p in parts if p is not None)
    if "textPayload" in entry:
        return str(entry["textPayload"]).rstrip("\n")
    payload = entry.get("jsonPayload")
    if isinstance(payload, dict):
        if "message" in payload:
            return str(payload["message"])
        return json.dumps(payload, sort_keys=True)
    proto = entry.get("protoPayload") or {}
    return str(proto.get("methodName") or "")


class LoggingApi:
    def __init__(self, cloud: Context) -> None:
        self.cloud = cloud

    def list_entries(self, filter_text: str, *, newest_first: bool, limit: int) -> list[LogEntry]:
        """Up to ``limit`` entries of the project matching ``filter_text``, in the order asked
        (pages until ``limit`` or the end)."""
        entries = self.cloud.clients.discovery("logging", "v2").entries()
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{self.cloud.project}"],
            "filter": filter_text,
            "orderBy": "timestamp desc" if newest_first else "timestamp asc",
            "pageSize": min(limit, MAX_PAGE),
        }
        out: list[LogEntry] = []
        while len(out) < limit:
            page = self.cloud.call(execute(entries.list(body=body)))
            out += [LogEntry.from_api(e) for e in page.get("entries", [])]
            if not page.get("nextPageToken"):
                break
            body["pageToken"] = page["nextPageToken"]
        return out[:limit]

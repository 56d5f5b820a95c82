"""Log entries: stored per project in timestamp order, listed through the filter subset (no
HTTP)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument
from ..formats import rfc3339
from ..projects import resolve
from ..serviceusage import require_enabled
from . import filters

if TYPE_CHECKING:
    from ..context import Emulator

SERVICE = "logging.googleapis.com"
KIND = "logging.entry"
_LOG_NAME = re.compile(r"^projects/([^/]+)/logs/[^/]+$")
_RESOURCE_NAME = re.compile(r"^projects/([^/]+)$")
#: orderBy values Logging accepts
ORDERS = {"timestamp asc": False, "timestamp desc": True}


class LogEntries:
    """One emulator's Cloud Logging: entries keyed ``<project id>/<timestamp>/<seq>``, so a
    project's entries are one range scan in time order."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def write(
        self,
        entries: list[dict[str, Any]],
        *,
        log_name: str | None = None,
        resource: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        dry_run: bool = False,
    ) -> None:
        """Store every entry, or none: one that lacks a logName or resource (its own or the
        default) refuses the whole request, as partialSuccess=false does; ``dry_run`` checks
        them and stores nothing."""
        ready = [self._complete(e, i, log_name, resource, labels) for i, e in enumerate(entries)]
        if dry_run:
            return
        with self.emu.store.transaction():
            for project_id, entry in ready:
                seq = self.emu.store.next_id(KIND)
                entry.setdefault("insertId", f"{seq:016x}")
                stamp = rfc3339(filters.parse_time(entry["timestamp"]))
                self.emu.store.put(KIND, f"{project_id}/{stamp}/{seq:012d}", entry)

    def _complete(
        self,
        entry: dict[str, Any],
        index: int,
        log_name: str | None,
        resource: dict[str, Any] | None,
        labels: dict[str, str] | None,
    ) -> tuple[str, dict[str, Any]]:
        out = dict(entry)
        out["logName"] = out.get("logName") or log_name
        out["resource"] = out.get("resource") or resource
        if labels:
            out["labels"] = {**labels, **(out.get("labels") or {})}
        m = _LOG_NAME.match(out["logName"] or "")
        if m is None:
            raise InvalidArgument(
                f"entries[{index}].logName: a log name 'projects/PROJECT_ID/logs/LOG_ID' is "
                "required (on the entry or the request)."
            )
        if not isinstance(out["resource"], dict) or not out["resource"].get("type"):
            raise InvalidArgument(
                f"entries[{index}].resource: a monitored resource with a type is required (on "
                "the entry or the request)."
            )
        severity = str(out.get("severity") or "DEFAULT").upper()
        if severity not in filters.SEVERITIES:
            raise InvalidArgument(f"entries[{index}].severity: unknown severity {severity!r}.")
        out["severity"] = severity
        project_id, _ = resolve(self.emu, m.group(1))
        require_enabled(self.emu, project_id, SERVICE)
        now = rfc3339(self.emu.clock())
        out["timestamp"] = out.get("timestamp") or now
        filters.parse_time(out["timestamp"])
        out["receiveTimestamp"] = now
        return project_id, out

    def list(
        self, resource_names: list[str], filter_text: str, order_by: str
    ) -> list[dict[str, Any]]:
        """The matching entries of the named projects, ordered by timestamp."""
        if not resource_names:
            raise InvalidArgument("resourceNames: at least one resource name is required.")
        if order_by not in ORDERS:
            raise InvalidArgument(
                f"orderBy: {order_by!r} is not supported; use 'timestamp asc' or 'timestamp desc'."
            )
        terms = filters.parse(filter_text)
        found: list[tuple[str, dict[str, Any]]] = []
        for name in resource_names:
            m = _RESOURCE_NAME.match(name)
            if m is None:
                raise InvalidArgument(
                    f"resourceNames: {name!r} is not supported; the emulator serves "
                    "'projects/PROJECT_ID'."
                )
            project_id, _ = resolve(self.emu, m.group(1))
            require_enabled(self.emu, project_id, SERVICE)
            for key, entry in self.emu.store.list(KIND, project_id + "/"):
                if filters.matches(terms, entry):
                    found.append((key.split("/", 1)[1], entry))
        found.sort(key=lambda pair: pair[0], reverse=ORDERS[order_by])
        return [entry for _, entry in found]

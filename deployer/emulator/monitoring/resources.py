"""Cloud Monitoring v3: state and behaviour (no HTTP) of uptime checks, alert policies and
notification channels; the rules are listed in the package docstring."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, FailedPrecondition, InvalidArgument, NotFound
from ..formats import rfc3339
from ..projects import resolve
from ..serviceusage import require_enabled

if TYPE_CHECKING:
    from ..context import Emulator

SERVICE = "monitoring.googleapis.com"
PROBE_KIND = "monitoring.probe"  # an uptime check's results (local execution), by check/time
DUE_KIND = "monitoring.uptime_due"  # when a check's next probe is due, by check name
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_DURATION = re.compile(r"^(\d+)(?:\.\d+)?s$")
_CHECK_ID_IN_FILTER = re.compile(r'metric\.labels?\.(?:"check_id"|check_id)\s*=\s*"([^"]+)"')

UPTIME_PERIODS = ("60s", "300s", "600s", "900s")
#: the fields Google documents as updatable on an uptime check
UPTIME_PATCHABLE = frozenset(
    {"displayName", "httpCheck", "tcpCheck", "timeout", "contentMatchers", "selectedRegions"}
)
POLICY_PATCHABLE = frozenset(
    {
        "displayName",
        "documentation",
        "userLabels",
        "conditions",
        "combiner",
        "enabled",
        "notificationChannels",
        "alertStrategy",
        "severity",
    }
)
CHANNEL_PATCHABLE = frozenset(
    {"displayName", "description", "labels", "userLabels", "enabled", "type"}
)
#: channel types the emulator knows, with the labels each requires
CHANNEL_TYPES: dict[str, tuple[str, ...]] = {"email": ("email_address",)}


def camel(field: str) -> str:
    """A field mask entry as the JSON name ("display_name" -> "displayName")."""
    head, *rest = field.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _invalid(message: str) -> ApiError:
    return InvalidArgument(message)


def duration_seconds(value: object, field: str) -> int:
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None:
        raise _invalid(f"Invalid duration for field {field}: {value!r}.")
    return int(m.group(1))


def _check_labels(labels: object, field: str = "userLabels") -> None:
    if labels is None:
        return
    if not isinstance(labels, dict) or len(labels) > 64:
        raise _invalid(f"Field {field} must be a map of at most 64 entries.")
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise _invalid(
                f"Field {field} has an invalid entry {key!r}: keys and values contain only "
                "lowercase letters, numerals, underscores and dashes; keys begin with a letter."
            )


class MonitoringBackend:
    """The state of one emulator's Cloud Monitoring: three kinds of documents keyed by name."""

    UPTIME = "monitoring.uptime"
    POLICY = "monitoring.policy"
    CHANNEL = "monitoring.channel"

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def project(self, project: str) -> str:
        project_id, _ = resolve(self.emu, project)
        require_enabled(self.emu, project_id, SERVICE)
        return project_id

    def _record(self) -> dict[str, str]:
        return {"mutateTime": rfc3339(self.emu.clock()), "mutatedBy": "djdeploy-emulator"}

    def get(self, kind: str, name: str, what: str) -> dict[str, Any]:
        doc = self.emu.store.get(kind, name)
        if doc is None:
            raise NotFound(f"{what} {name} does not exist.")
        return doc

    def in_project(self, kind: str, project_id: str) -> list[dict[str, Any]]:
        return [d for _, d in self.emu.store.list(kind, f"projects/{project_id}/")]

    def patch(
        self, kind: str, name: str, what: str, body: dict[str, Any], fields: list[str]
    ) -> dict[str, Any]:
        """Set ``fields`` from ``body`` (all of body when empty: a replace), check, store."""
        with self.emu.store.transaction():
            doc = self.get(kind, name, what)
            server: dict[str, Any] = {k: doc[k] for k in ("name", "creationRecord") if k in doc}
            new = {**doc, **{f: body[f] for f in fields if f in body}} if fields else dict(body)
            for f in fields:
                if f not in body:
                    new.pop(f, None)  # named in the mask but absent: cleared
            new.update(server)
            self.check(kind, new)
            if kind == self.POLICY:
                new["mutationRecord"] = self._record()
                self._server_fields(new)
            self.emu.store.put(kind, name, new)
            return new

    def check(self, kind: str, doc: dict[str, Any]) -> None:
        {
            self.UPTIME: self.check_uptime,
            self.POLICY: self.check_policy,
            self.CHANNEL: self.check_channel,
        }[kind](doc)

    # -- uptime checks ----------------------------------------------------------------------

    def check_uptime(self, doc: dict[str, Any]) -> None:
        if not doc.get("displayName"):
            raise _invalid("Field displayName is required.")
        timeout = duration_seconds(doc.get("timeout"), "timeout")
        if not 1 <= timeout <= 60:
            raise _invalid("Field timeout must be between 1 and 60 seconds.")
        if doc.get("period", "60s") not in UPTIME_PERIODS:
            raise _invalid("Field period must be one of 60s, 300s, 600s or 900s.")
        if ("httpCheck" in doc) == ("tcpCheck" in doc):
            raise _invalid("Exactly one of httpCheck or tcpCheck must be set.")
        resource = doc.get("monitoredResource") or {}
        if resource.get("type") == "uptime_url" and not (resource.get("labels") or {}).get("host"):
            raise _invalid("A monitored resource of type uptime_url needs a host label.")
        _check_labels(doc.get("userLabels"))

    def create_uptime(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = {k: v for k, v in body.items() if k != "name"}
        doc.setdefault("period", "60s")
        doc.setdefault("checkerType", "STATIC_IP_CHECKERS")
        http = doc.get("httpCheck")
        if isinstance(http, dict):
            http.setdefault("port", 443 if http.get("useSsl") else 80)
            http.setdefault("requestMethod", "GET")
        self.check_uptime(doc)
        slug = re.sub(r"[^a-z0-9]+", "-", doc["displayName"].lower()).strip("-")[:50]
        doc["name"] = f"projects/{project_id}/uptimeCheckConfigs/{slug}-{uuid.uuid4().hex[:11]}"
        self.emu.store.put(self.UPTIME, doc["name"], doc)
        return doc

    def delete_uptime(self, name: str) -> None:
        with self.emu.store.transaction():
            self.get(self.UPTIME, name, "Uptime check")
            check_id = name.rsplit("/", 1)[1]
            project = name.split("/")[1]
            for policy in self.in_project(self.POLICY, project):
                if check_id in self.checks_named(policy):
                    raise FailedPrecondition(
                        f"Uptime check {name} cannot be deleted: alerting policy "
                        f"{policy['name']} refers to it.",
                    )
            self.emu.store.delete(self.UPTIME, name)
            self.emu.store.delete(DUE_KIND, name)  # its results go with it in the emulator
            for key, _ in self.emu.store.list(PROBE_KIND, f"{name}/"):
                self.emu.store.delete(PROBE_KIND, key)

    # -- alert policies ---------------------------------------------------------------------

    @staticmethod
    def checks_named(policy: dict[str, Any]) -> set[str]:
        """The uptime check ids a policy's threshold filters name."""
        out: set[str] = set()
        for c in policy.get("conditions") or []:
            out.update(
                _CHECK_ID_IN_FILTER.findall((c.get("conditionThreshold") or {}).get("filter", ""))
            )
        return out

    def check_policy(self, doc: dict[str, Any]) -> None:
        if not doc.get("displayName"):
            raise _invalid("Field displayName is required.")
        conditions = doc.get("conditions") or []
        if not 1 <= len(conditions) <= 6:
            raise _invalid("An alerting policy must have between 1 and 6 conditions.")
        if len(conditions) > 1 and doc.get("combiner") in (None, "COMBINE_UNSPECIFIED"):
            raise _invalid("Field combiner is required when there is more than one condition.")
        for i, c in enumerate(conditions):
            if not c.get("displayName"):
                raise _invalid(f"Field conditions[{i}].displayName is required.")
            threshold = c.get("conditionThreshold")
            if threshold is None:
                raise _invalid(f"conditions[{i}]: the emulator serves threshold conditions only.")
            if not threshold.get("filter"):
                raise _invalid(f"Field conditions[{i}].conditionThreshold.filter is required.")
            if threshold.get("comparison") in (None, "COMPARISON_UNSPECIFIED"):
                raise _invalid(f"Field conditions[{i}].conditionThreshold.comparison is required.")
            duration = duration_seconds(threshold.get("duration"), f"conditions[{i}].duration")
            if duration % 60:
                raise _invalid(f"conditions[{i}].duration must be a whole number of minutes.")
        for channel in doc.get("notificationChannels") or []:
            if self.emu.store.get(self.CHANNEL, channel) is None:
                raise _invalid(f"Notification channel {channel} does not exist.")
        _check_labels(doc.get("userLabels"))

    def _server_fields(self, doc: dict[str, Any]) -> None:
        """What the server fills in: condition names; an empty channel list is left out, as
        proto3 JSON does."""
        if not doc.get("notificationChannels"):
            doc.pop("notificationChannels", None)
        for c in doc.get("conditions") or []:
            if not c.get("name"):
                c["name"] = f"{doc['name']}/conditions/{self.emu.store.next_id('monitoring')}"

    def create_policy(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = {k: v for k, v in body.items() if k != "name"}
        doc.setdefault("enabled", True)
        self.check_policy(doc)
        doc["name"] = f"projects/{project_id}/alertPolicies/{self._number()}"
        doc["creationRecord"] = doc["mutationRecord"] = self._record()
        self._server_fields(doc)
        self.emu.store.put(self.POLICY, doc["name"], doc)
        return doc

    def delete(self, kind: str, name: str, *, force: bool) -> None:
        """Delete by kind; ``force`` only means something for a channel."""
        if kind == self.UPTIME:
            self.delete_uptime(name)
        elif kind == self.CHANNEL:
            self.delete_channel(name, force=force)
        else:
            self.delete_policy(name)

    def delete_policy(self, name: str) -> None:
        with self.emu.store.transaction():
            self.get(self.POLICY, name, "Alerting policy")
            self.emu.store.delete(self.POLICY, name)

    def _number(self) -> str:
        return str(10_000_000_000_000_000_000 + self.emu.store.next_id("monitoring") * 7919)

    # -- notification channels --------------------------------------------------------------

    def check_channel(self, doc: dict[str, Any]) -> None:
        kind = doc.get("type")
        if kind not in CHANNEL_TYPES:
            raise _invalid(f"Unknown notification channel type {kind!r}.")
        labels = doc.get("labels") or {}
        for key in CHANNEL_TYPES[kind]:
            if not labels.get(key):
                raise _invalid(f"A {kind} notification channel needs labels.{key}.")
        _check_labels(doc.get("userLabels"))

    def create_channel(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = {k: v for k, v in body.items() if k not in ("name", "verificationStatus")}
        doc.setdefault("enabled", True)
        self.check_channel(doc)
        doc["name"] = f"projects/{project_id}/notificationChannels/{self._number()}"
        doc["creationRecord"] = self._record()
        self.emu.store.put(self.CHANNEL, doc["name"], doc)
        return doc

    def delete_channel(self, name: str, *, force: bool) -> None:
        with self.emu.store.transaction():
            self.get(self.CHANNEL, name, "Notification channel")
            project = name.split("/")[1]
            users = [
                p
                for p in self.in_project(self.POLICY, project)
                if name in p.get("notificationChannels", [])
            ]
            if users and not force:
                raise FailedPrecondition(
                    f"Notification channel {name} is referenced by alerting policy "
                    f"{users[0]['name']}: delete it with force=true to remove it from them.",
                )
            for p in users:
                p["notificationChannels"] = [c for c in p["notificationChannels"] if c != name]
                p["mutationRecord"] = self._record()
                self._server_fields(p)
                self.emu.store.put(self.POLICY, p["name"], p)
            self.emu.store.delete(self.CHANNEL, name)

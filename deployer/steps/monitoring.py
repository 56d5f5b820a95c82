"""Uptime monitoring ([monitoring] enabled): an email notification channel, an uptime check on
the service's health path, and an alert policy on the check that notifies the channel.

Cloud Monitoring assigns the ids of all three, so there is no name to GET: each step lists the
project's resources and finds ours by display name or tenant+app labels, kept only when
``Names.owns`` says ours (someone else's check with the same display name is left alone). A
create retried after a lost response can leave two of ours: the extra ones are deleted.

An uptime check's period, monitored resource (the host), checker type and labels cannot be
patched (Google documents displayName, httpCheck, tcpCheck, timeout, contentMatchers and
selectedRegions as the updatable fields), and a check an alert policy names cannot be deleted.
So a change to one of them is a replacement in three stages, each safe to interrupt: the
uptime-check step creates the new check, the alert-policy step points the policy at it, then
deletes the checks of ours the policy no longer names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from deployer.errors import PermissionDenied
from deployer.steps.base import Change, FieldChange, Operation, field_changes

if TYPE_CHECKING:
    from deployer.config import Config, Names
    from deployer.gcp.cloud import Cloud
    from deployer.gcp.monitoring import Kind

Resource = dict[str, Any]

#: the uptime check fields a patch may set (Google's list); the others need a new check
UPTIME_PATCHABLE = ("displayName", "httpCheck", "timeout")
UPTIME_FIXED = ("monitoredResource", "period", "checkerType", "userLabels")
TIMEOUT = "10s"
CHECK_PASSED = "monitoring.googleapis.com/uptime_check/check_passed"


def ours(items: Sequence[Resource], *, display_name: str, names: Names) -> list[Resource]:
    """The resources of ours among ``items``, sorted by name: every run keeps the same one of
    duplicates."""
    tenant, app = names.labels["djdeploy-tenant"], names.labels["djdeploy-app"]
    found = []
    for item in items:
        labels = item.get("userLabels") or {}
        named = item.get("displayName") == display_name
        labelled = labels.get("djdeploy-tenant") == tenant and labels.get("djdeploy-app") == app
        if (named or labelled) and names.owns(labels):
            found.append(item)
    return sorted(found, key=lambda r: str(r.get("name")))


def _project(want: Any, have: Any) -> Any:
    """``have`` cut down to the shape of ``want``: the fields the server adds (condition names,
    defaults) never show as drift, in nested lists too; an empty value the server leaves out
    (proto3 JSON omits empty lists) counts as empty."""
    if have is None and want is not None and not want:
        return want
    if isinstance(want, dict) and isinstance(have, dict):
        return {k: _project(v, have.get(k)) for k, v in want.items()}
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        return [_project(w, h) for w, h in zip(want, have, strict=True)]
    return have


def differing(want: Resource, have: Resource | None) -> list[str]:
    """The top-level fields of ``want`` that ``have`` does not match (what a patch sends)."""
    have = have or {}
    return sorted(k for k in want if _project(want[k], have.get(k)) != want[k])


def changes(want: Resource, have: Resource | None) -> list[FieldChange]:
    """What plan shows for those fields: leaf by leaf where the field is a table."""
    return [c for k in differing(want, have) for c in field_changes({k: want[k]}, have)]


def short_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def desired_check(config: Config, host: str) -> Resource:
    """An HTTPS GET of probes.path on the service's run.app host from every checker region."""
    return {
        "displayName": config.names.uptime_check,
        "monitoredResource": {
            "type": "uptime_url",
            "labels": {"project_id": config.project, "host": host},
        },
        "httpCheck": {
            "path": config.probes.path,
            "port": 443,
            "useSsl": True,
            "validateSsl": True,
            "requestMethod": "GET",
        },
        "period": f"{config.monitoring.period}s",
        "timeout": TIMEOUT,
        "checkerType": "STATIC_IP_CHECKERS",
        "userLabels": dict(config.names.labels),
    }


def current_check(checks: Sequence[Resource], want: Resource) -> Resource | None:
    """The check of ours whose fixed fields match ``want`` (the one the policy should name)."""
    for check in checks:
        if not differing({k: want[k] for k in UPTIME_FIXED}, check):
            return check
    return None


class Observed(TypedDict):
    host: str
    checks: list[Resource]


def observe_checks(cloud: Cloud, config: Config) -> Observed:
    host = config.names.service_url(cloud.projects.number()).removeprefix("https://")
    checks = ours(
        cloud.monitoring.list("uptimeCheckConfigs"),
        display_name=config.names.uptime_check,
        names=config.names,
    )
    return {"host": host, "checks": checks}


def _delete_all(cloud: Cloud, kind: Kind, items: Sequence[Resource]) -> None:
    for item in items:
        cloud.monitoring.delete(kind, item["name"])


@dataclass(frozen=True)
class AlertChannel(Operation):
    """The email notification channel (monitoring.alert_email); none when it is unset."""

    config: Config
    name: str = "alert-channel"
    needs: tuple[str, ...] = ("apis",)

    @property
    def resource(self) -> str:
        return f"notification channel {self.config.names.alert_channel!r}"

    def desired(self) -> Resource | None:
        email = self.config.monitoring.alert_email
        if email is None:
            return None
        return {
            "type": "email",
            "displayName": self.config.names.alert_channel,
            "labels": {"email_address": email},
            "userLabels": dict(self.config.names.labels),
            "enabled": True,
        }

    def observe(self, cloud: Cloud) -> list[Resource] | None:
        return self._channels(cloud) or None

    def _channels(self, cloud: Cloud) -> list[Resource]:
        return ours(
            cloud.monitoring.list("notificationChannels"),
            display_name=self.config.names.alert_channel,
            names=self.config.names,
        )

    def diff(self, observed: list[Resource] | None) -> Change:
        channels = observed or []
        want = self.desired()
        if want is None:
            if channels:
                return self.update(
                    f"remove {self.resource} (monitoring.alert_email is unset)",
                    [FieldChange("channels", len(channels), 0)],
                )
            return self.noop("no alert email: alerts show in the console only")
        if not channels:
            return self.create(f"{self.resource} does not exist", field_changes(want, None))
        fields = changes(want, channels[0])
        if len(channels) > 1:
            fields.append(FieldChange("channels", len(channels), 1))
        if fields:
            return self.update(f"{self.resource} differs", fields)
        info = {"alert_email": want["labels"]["email_address"]}
        return self.noop(f"{self.resource} notifies {info['alert_email']}", info=info)

    def apply(self, cloud: Cloud, change: Change) -> None:
        channels = self._channels(cloud)  # act on what is there now, not on the plan
        want = self.desired()
        if want is None:
            _delete_all(cloud, "notificationChannels", channels)
            return
        _delete_all(cloud, "notificationChannels", channels[1:])
        if not channels:
            cloud.monitoring.create("notificationChannels", want)
            return
        fields = differing(want, channels[0])
        if fields:
            cloud.monitoring.patch("notificationChannels", channels[0]["name"], want, fields)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        channels = self._channels(cloud)
        if not channels:
            return self.noop(f"{self.resource} is absent")
        _delete_all(cloud, "notificationChannels", channels)
        return self.deleted(f"deleted {self.resource}")


@dataclass(frozen=True)
class UptimeCheck(Operation):
    """The uptime check on https://<the service's run.app host><probes.path>."""

    config: Config
    name: str = "uptime-check"
    needs: tuple[str, ...] = ("service",)

    @property
    def resource(self) -> str:
        return f"uptime check {self.config.names.uptime_check!r}"

    def observe(self, cloud: Cloud) -> Observed | None:
        observed = observe_checks(cloud, self.config)
        return observed if observed["checks"] else None

    def diff(self, observed: Observed | None) -> Change:
        if observed is None:
            host = f"{self.config.names.service}-<project number>.{self.config.region}.run.app"
            fields = changes(desired_check(self.config, host), None)
            return self.create(f"{self.resource} does not exist", fields)
        want = desired_check(self.config, observed["host"])
        url = f"https://{observed['host']}{self.config.probes.path}"
        check = current_check(observed["checks"], want)
        if check is None:
            old = observed["checks"][0] if observed["checks"] else None
            reason = (
                f"{self.resource} does not exist"
                if old is None
                else f"replace {self.resource}: {', '.join(self._fixed_diff(want, old))} "
                "cannot be patched (the alert policy moves to the new check, then the old "
                "one is deleted)"
            )
            return self.create(reason, field_changes(want, old), info={"uptime_url": url})
        info = {"uptime_url": url, "uptime_check": short_id(check["name"])}
        fields = changes({k: want[k] for k in UPTIME_PATCHABLE}, check)
        if fields:
            return self.update(f"{self.resource} differs", fields, info=info)
        return self.noop(f"{self.resource} probes {url}", info=info)

    @staticmethod
    def _fixed_diff(want: Resource, have: Resource) -> list[str]:
        return differing({k: want[k] for k in UPTIME_FIXED}, have)

    def apply(self, cloud: Cloud, change: Change) -> None:
        observed = observe_checks(cloud, self.config)
        want = desired_check(self.config, observed["host"])
        check = current_check(observed["checks"], want)
        if check is None:
            cloud.monitoring.create("uptimeCheckConfigs", want)
            return
        fields = differing({k: want[k] for k in UPTIME_PATCHABLE}, check)
        if fields:
            cloud.monitoring.patch("uptimeCheckConfigs", check["name"], want, fields)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        checks = observe_checks(cloud, self.config)["checks"]
        if not checks:
            return self.noop(f"{self.resource} is absent")
        _delete_all(cloud, "uptimeCheckConfigs", checks)
        return self.deleted(f"deleted {self.resource}")


class PolicyObserved(TypedDict):
    host: str
    checks: list[Resource]
    channels: list[Resource]
    policies: list[Resource]


@dataclass(frozen=True)
class AlertPolicy(Operation):
    """The alert policy on the uptime check, in Google's documented recipe for uptime checks:
    the check_passed metric of this check, ALIGN_NEXT_OLDER per checker location over 1200 s,
    REDUCE_COUNT_FALSE across them, an incident when more than one location fails for 60 s.
    Also retires the checks of ours it no longer names (see the module docstring)."""

    config: Config
    name: str = "alert-policy"
    needs: tuple[str, ...] = ("uptime-check", "alert-channel")

    @property
    def resource(self) -> str:
        return f"alert policy {self.config.names.alert_policy!r}"

    def observe(self, cloud: Cloud) -> PolicyObserved | None:
        """Everything the policy depends on; None when there is no policy of ours."""
        policies = self._policies(cloud)
        return self._observe(cloud, policies) if policies else None

    def _policies(self, cloud: Cloud) -> list[Resource]:
        names = self.config.names
        return ours(
            cloud.monitoring.list("alertPolicies"), display_name=names.alert_policy, names=names
        )

    def _observe(self, cloud: Cloud, policies: list[Resource]) -> PolicyObserved:
        checks = observe_checks(cloud, self.config)
        channels = AlertChannel(self.config)._channels(cloud)
        return {**checks, "channels": channels, "policies": policies}

    def desired(self, check_id: str, channels: Sequence[Resource], host: str) -> Resource:
        path = self.config.probes.path
        return {
            "displayName": self.config.names.alert_policy,
            "documentation": {
                "content": (
                    f"The uptime check on https://{host}{path} fails from more than one "
                    f"location. Service {self.config.names.service} in "
                    f"{self.config.project}/{self.config.region}: see `djdeploy status "
                    f"--tenant {self.config.tenant}` and the service's logs."
                ),
                "mimeType": "text/markdown",
            },
            "userLabels": dict(self.config.names.labels),
            "combiner": "OR",
            "enabled": True,
            "conditions": [
                {
                    "displayName": f"uptime check {check_id} fails",
                    "conditionThreshold": {
                        "filter": (
                            f'metric.type="{CHECK_PASSED}" AND '
                            f'metric.label.check_id="{check_id}" AND resource.type="uptime_url"'
                        ),
                        "aggregations": [
                            {
                                "alignmentPeriod": "1200s",
                                "perSeriesAligner": "ALIGN_NEXT_OLDER",
                                "crossSeriesReducer": "REDUCE_COUNT_FALSE",
                                "groupByFields": ["resource.label.*"],
                            }
                        ],
                        "comparison": "COMPARISON_GT",
                        "thresholdValue": 1,
                        "duration": "60s",
                        "trigger": {"count": 1},
                    },
                }
            ],
            "notificationChannels": [c["name"] for c in channels[:1]],
        }

    def _plan(
        self, observed: PolicyObserved
    ) -> tuple[Resource | None, Resource | None, list[str], list[Resource]]:
        """(desired policy, the policy of ours to keep, the fields it differs in, the stale
        checks): desired is None while the uptime check does not exist."""
        want_check = desired_check(self.config, observed["host"])
        check = current_check(observed["checks"], want_check)
        policy = observed["policies"][0] if observed["policies"] else None
        if check is None:
            return None, policy, [], []
        want = self.desired(short_id(check["name"]), observed["channels"], observed["host"])
        fields = differing(want, policy)
        stale = [c for c in observed["checks"] if c["name"] != check["name"]]
        return want, policy, fields, stale

    def diff(self, observed: PolicyObserved | None) -> Change:
        if observed is None:
            return self.create(f"{self.resource} does not exist (created on the uptime check)")
        want, policy, fields, stale = self._plan(observed)
        if want is None or policy is None:  # observed holds a policy: want is None then
            return self.update(f"point {self.resource} at the new uptime check once it exists")
        shown = changes({f: want[f] for f in fields}, policy)
        if len(observed["policies"]) > 1:
            shown.append(FieldChange("policies", len(observed["policies"]), 1))
        if stale:
            shown.append(FieldChange("uptime checks", len(stale) + 1, 1))
        info = {"alert_policy": short_id(policy["name"])}
        if shown:
            return self.update(f"{self.resource} differs", shown, info=info)
        return self.noop(f"{self.resource} watches the uptime check", info=info)

    def apply(self, cloud: Cloud, change: Change) -> None:
        observed = self._observe(cloud, self._policies(cloud))
        want, policy, fields, stale = self._plan(observed)
        if want is None:
            return  # the uptime check is not there yet: nothing to point at
        _delete_all(cloud, "alertPolicies", observed["policies"][1:])
        if policy is None:
            cloud.monitoring.create("alertPolicies", want)
        elif fields:
            cloud.monitoring.patch("alertPolicies", policy["name"], want, fields)
        _delete_all(cloud, "uptimeCheckConfigs", stale)  # no policy of ours names them now

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        policies = self._policies(cloud)
        if not policies:
            return self.noop(f"{self.resource} is absent")
        _delete_all(cloud, "alertPolicies", policies)
        return self.deleted(f"deleted {self.resource}")


#: how far back `status` reads the uptime check's results
RESULT_WINDOW = 24 * 3600.0


@dataclass(frozen=True)
class UptimeResult:
    """The uptime check's latest result, as `status` shows it. ``state``: passing (every
    checker location's newest result passed), failing, or unknown (no result yet, or the
    results cannot be read: ``note`` says why). ``since``: the oldest result of the current
    run of passes (or failures) within the last RESULT_WINDOW; ``whole_window``: the run
    reaches back to the window's oldest result. ``checked``: the newest result's time.
    ``failing``: the checker locations whose newest result failed, of ``locations``.
    ``alert_since``: the open time of the alert policy's open alert (incident), if any."""

    check: str
    state: str
    since: str = ""
    whole_window: bool = False
    checked: str = ""
    failing: tuple[str, ...] = ()
    locations: int = 0
    note: str = ""
    alert_since: str = ""


def _rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_alert(cloud: Cloud, policy: str) -> str:
    """When the policy's open alert opened ("": none, or alerts cannot be read: they need
    monitoring.alerts.list, e.g. roles/monitoring.alertViewer)."""
    try:
        alerts = cloud.monitoring.alerts('state="OPEN"')
    except PermissionDenied:
        return ""
    opened = [
        a.get("openTime", "") for a in alerts if (a.get("policy") or {}).get("name") == policy
    ]
    return min(opened, default="")


def uptime_result(cloud: Cloud, check_id: str, *, policy: str = "") -> UptimeResult:
    """Read the check's ``check_passed`` time series (Cloud Monitoring v3
    projects.timeSeries.list, one series per checker location, points newest first), and
    whether ``policy`` (an alert policy's full name) has an open alert."""
    now = cloud.clock.now()
    filter_ = (
        f'metric.type="{CHECK_PASSED}" AND metric.label.check_id="{check_id}" AND '
        'resource.type="uptime_url"'
    )
    try:
        series = cloud.monitoring.time_series(
            filter_, start=_rfc3339(now - RESULT_WINDOW), end=_rfc3339(now + 60)
        )
    except PermissionDenied:
        note = "reading its results needs monitoring.timeSeries.list (roles/monitoring.viewer)"
        return UptimeResult(check_id, "unknown", note=note)
    newest: dict[str, bool] = {}
    points: list[tuple[str, bool]] = []
    for s in series:
        location = s["metric"]["labels"].get("checker_location", "")
        mine = [(p["interval"]["endTime"], bool(p["value"].get("boolValue"))) for p in s["points"]]
        if mine:
            newest[location] = mine[0][1]
            points.extend(mine)
    if not points:
        return UptimeResult(check_id, "unknown", note="no result yet")
    failing = tuple(sorted(loc for loc, passed in newest.items() if not passed))
    passing = not failing
    points.sort(key=lambda p: dt.datetime.fromisoformat(p[0]))
    run = len(points)
    while run > 0 and points[run - 1][1] == passing:
        run -= 1
    return UptimeResult(
        check_id,
        "passing" if passing else "failing",
        alert_since=open_alert(cloud, policy) if policy else "",
        since=points[min(run, len(points) - 1)][0],
        whole_window=run == 0,
        checked=points[-1][0],
        failing=failing,
        locations=len(newest),
    )


def latest_result(cloud: Cloud, changes: Sequence[Change]) -> UptimeResult | None:
    """`status`: the uptime check's latest result, when the steps found a check of ours (and
    the alert policy's open alert, when they found the policy); None without one."""
    info = {
        k: v
        for c in changes
        if c.step in (UptimeCheck.name, AlertPolicy.name)
        for k, v in c.info.items()
    }
    check, policy = info.get("uptime_check", ""), info.get("alert_policy", "")
    if not check:
        return None
    policy = f"projects/{cloud.project}/alertPolicies/{policy}" if policy else ""
    return uptime_result(cloud, check, policy=policy)

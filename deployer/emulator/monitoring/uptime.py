"""Uptime checks at work (local execution on): the probes, the time series they write, and the
alert policies evaluated on them (no HTTP; docs/emulator.md, "Uptime checks, locally").

Every ``period`` (scaled by the time scale, on the emulator's clock) an HTTP uptime check on a
``*.run.app`` host sends one real request through the front door, as a checker outside would
(no credentials: a service that is not public answers 403). Its result is written for each
checker location the check runs from (``selectedRegions``, all six by default), as the points
of Google's two metrics: ``uptime_check/check_passed`` (BOOL) and ``uptime_check/request_latency``
(DOUBLE, ms; only when an answer came), on the monitored resource ``uptime_url`` (labels
``project_id``, ``host``) with the metric labels ``check_id``, ``checker_location`` and
``checked_resource_id``. A check passes on a status in ``acceptedResponseStatusCodes`` (2xx by
default); content matchers and redirects are not followed up, TCP checks and other hosts are not
probed (no point is written).

After each probe, the enabled alert policies whose threshold conditions name the check are
evaluated, in the subset djdeploy's recipe uses: the latest point per checker location within
the ``alignmentPeriod`` (``ALIGN_NEXT_OLDER``), reduced across locations by
``REDUCE_COUNT_FALSE``, ``REDUCE_COUNT_TRUE`` or ``REDUCE_FRACTION_TRUE`` (or each location
alone, with no reducer), compared with ``thresholdValue``. A condition met for its ``duration``
(scaled) opens an incident: an alert of Google's ``projects.alerts`` (state OPEN, ``openTime``,
a snapshot of the policy), and the policy's notification channels are recorded as notified
(kept in the emulator's state, never sent); it closes (CLOSED, ``closeTime``) at the first
evaluation that finds the condition no longer met.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, NotFound, Unimplemented
from ..formats import parse_rfc3339, rfc3339
from ..local.prober import Probe, local_host, probe
from ..serviceusage import is_enabled
from .resources import (
    DUE_KIND,
    PROBE_KIND,
    SERVICE,
    MonitoringBackend,
    camel,
    duration_seconds,
)

if TYPE_CHECKING:
    from ..context import Emulator

CHECK_PASSED = "monitoring.googleapis.com/uptime_check/check_passed"
REQUEST_LATENCY = "monitoring.googleapis.com/uptime_check/request_latency"
CONDITION_KIND = "monitoring.condition"  # a threshold condition being met: since when
ALERT_KIND = "monitoring.alert"  # an incident: Google's projects.alerts resource
#: the checker locations of each UptimeCheckRegion (Google: USA holds three checkers)
REGIONS: dict[str, tuple[str, ...]] = {
    "USA": ("usa-oregon", "usa-iowa", "usa-virginia"),
    "USA_OREGON": ("usa-oregon",),
    "USA_IOWA": ("usa-iowa",),
    "USA_VIRGINIA": ("usa-virginia",),
    "EUROPE": ("eur-belgium",),
    "SOUTH_AMERICA": ("sa-brazil-sao_paulo",),
    "ASIA_PACIFIC": ("apac-singapore",),
}
ALL_REGIONS = ("USA", "EUROPE", "SOUTH_AMERICA", "ASIA_PACIFIC")
#: probes kept per check: older ones are dropped (Google keeps six weeks)
KEEP_PROBES = 1000
_TERM = re.compile(
    r'\s*(metric|resource)\.(type|labels?\.(?:"([^"]+)"|([A-Za-z0-9_]+)))\s*=\s*"([^"]*)"\s*'
)
_AND = re.compile(r"AND\b\s*")
_UNSUPPORTED_FILTER = (
    "The emulator's timeSeries filter takes metric.type, resource.type, metric.label.KEY and "
    'resource.label.KEY = "value" terms joined by AND; {rest!r} is not one.'
)


def _host(check: dict[str, Any]) -> str:
    return str(((check.get("monitoredResource") or {}).get("labels") or {}).get("host", ""))


def locations(check: dict[str, Any]) -> tuple[str, ...]:
    """The checker locations the check runs from (``selectedRegions``, all by default)."""
    regions = check.get("selectedRegions") or ALL_REGIONS
    return tuple(dict.fromkeys(loc for r in regions for loc in REGIONS.get(r, ())))


# -- the ticker's work -----------------------------------------------------------------------


def tick(emu: Emulator) -> None:
    """Probe every HTTP check whose period has come (each period once: claimed in a store
    transaction), record it, evaluate the policies on it; then open the incidents of
    conditions met for their duration."""
    checks = emu.store.list(MonitoringBackend.UPTIME)
    scale = emu.latency.time_scale
    if not checks or scale == 0:
        return  # idle, or time stands still
    for name, check in checks:
        if not is_enabled(emu, name.split("/")[1], SERVICE) or not _claim(emu, check, scale):
            continue
        result = _probe(emu, check)
        if result is not None:
            record(emu, check, result)
    open_due(emu)


def _claim(emu: Emulator, check: dict[str, Any], scale: float) -> bool:
    """True once per period: the caller probes. A check not due costs a read (the write lock
    is only taken to claim)."""
    now = emu.clock()
    seen = emu.store.get(DUE_KIND, check["name"])
    if seen is not None and seen["at"] > now:
        return False
    with emu.store.transaction():
        due = emu.store.get(DUE_KIND, check["name"])  # again: another ticker may have claimed
        if due is not None and due["at"] > now:
            return False
        if emu.store.get(MonitoringBackend.UPTIME, check["name"]) is None:
            return False  # deleted since the tick listed it
        period = duration_seconds(check.get("period", "60s"), "period")
        emu.store.put(DUE_KIND, check["name"], {"at": now + period * scale})
        return True


def _probe(emu: Emulator, check: dict[str, Any]) -> Probe | None:
    """The check's request through the front door; None when it is not one the emulator
    sends (a TCP check, a host that is not a run.app service's)."""
    http = check.get("httpCheck")
    host = _host(check)
    door = emu.local.frontdoor
    if http is None or door is None:
        return None
    local = local_host(host, door.port)
    if local is None:
        return None
    return probe(
        port=door.port,
        host=local,
        path=http.get("path") or "/",
        method=http.get("requestMethod") or "GET",
        timeout=float(duration_seconds(check["timeout"], "timeout")),
    )


def _accepted(http: dict[str, Any], status: int) -> bool:
    wanted = http.get("acceptedResponseStatusCodes") or [{"statusClass": "STATUS_CLASS_2XX"}]
    for code in wanted:
        if code.get("statusValue") == status:
            return True
        cls = code.get("statusClass", "")
        if cls == "STATUS_CLASS_ANY" or cls == f"STATUS_CLASS_{status // 100}XX":
            return True
    return False


def record(emu: Emulator, check: dict[str, Any], result: Probe) -> None:
    """Store one probe (and drop the oldest past KEEP_PROBES periods), then evaluate."""
    at = emu.clock()
    passed = result.status is not None and _accepted(check.get("httpCheck") or {}, result.status)
    doc = {
        "check": check["name"],
        "time": at,
        "passed": passed,
        "status": result.status,
        "latencyMs": None if result.status is None else round(result.latency_ms, 3),
        "error": result.error,
        "locations": list(locations(check)),
        "host": _host(check),
    }
    prefix = f"{check['name']}/"
    period = duration_seconds(check.get("period", "60s"), "period")
    cutoff = at - KEEP_PROBES * period * emu.latency.time_scale
    with emu.store.transaction():
        if emu.store.get(MonitoringBackend.UPTIME, check["name"]) is None:
            return  # deleted while its probe ran: its results went with it
        emu.store.put(PROBE_KIND, f"{prefix}{at:017.6f}", doc)
        for key, old in emu.store.list(PROBE_KIND, prefix, limit=8):
            if old["time"] < cutoff:
                emu.store.delete(PROBE_KIND, key)
    evaluate(emu, check["name"], at)


def probes(emu: Emulator, check_name: str, start: float, end: float) -> list[dict[str, Any]]:
    """The check's probes between ``start`` and ``end`` (inclusive), newest first."""
    found = [p for _, p in emu.store.list(PROBE_KIND, f"{check_name}/")]
    return [p for p in reversed(found) if start <= p["time"] <= end]


# -- projects.timeSeries.list -----------------------------------------------------------------


def parse_filter(text: str) -> dict[str, str]:
    """``metric.type="..." AND metric.label.check_id="..."`` as {"metric.type": ...,
    "metric.labels.check_id": ...}; anything else is refused, never ignored."""
    terms: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        found = _TERM.match(text, pos)
        if found is None:
            raise InvalidArgument(_UNSUPPORTED_FILTER.format(rest=text[pos:]))
        where, what, quoted, bare, value = found.groups()
        key = f"{where}.type" if what == "type" else f"{where}.labels.{quoted or bare}"
        terms[key] = value
        pos = found.end()
        joined = _AND.match(text, pos)
        pos = joined.end() if joined else pos
    if "metric.type" not in terms:
        raise InvalidArgument('The filter must name one metric type: metric.type = "...".')
    return terms


def _matches(terms: dict[str, str], series: dict[str, Any]) -> bool:
    for key, value in terms.items():
        where, field, *label = key.split(".", 2)
        doc = series[where]
        have = doc.get("type") if field == "type" else doc.get("labels", {}).get(label[0])
        if have != value:
            return False
    return True


def list_time_series(
    emu: Emulator,
    project_id: str,
    *,
    filter_text: str,
    start: str | None,
    end: str | None,
    view: str | None,
    aggregated: bool,
) -> list[dict[str, Any]]:
    """The uptime metrics' series of the project's checks with points in the interval, points
    newest first (HEADERS: no points)."""
    terms = parse_filter(filter_text)
    if view not in ("FULL", "HEADERS"):
        raise InvalidArgument("Field view is required: FULL or HEADERS.")
    if end is None:
        raise InvalidArgument("Field interval.endTime is required.")
    if aggregated:
        raise Unimplemented("The emulator lists raw points only: leave aggregation unset.")
    try:
        until = parse_rfc3339(end)
        since = until if start is None else parse_rfc3339(start)
    except ValueError:
        raise InvalidArgument(f"Invalid interval: {start!r} to {end!r}.") from None
    if since > until:
        raise InvalidArgument("The interval's startTime is after its endTime.")
    metric = terms["metric.type"]
    if metric not in (CHECK_PASSED, REQUEST_LATENCY):
        return []
    out = []
    for check in MonitoringBackend(emu).in_project(MonitoringBackend.UPTIME, project_id):
        found = probes(emu, check["name"], since, until)
        for location in locations(check):
            series = _series(project_id, check, location, metric, found)
            if series["points"] and _matches(terms, series):
                if view == "HEADERS":
                    del series["points"]
                out.append(series)
    return out


def _series(
    project_id: str, check: dict[str, Any], location: str, metric: str, found: list[dict[str, Any]]
) -> dict[str, Any]:
    host = _host(check)
    points = []
    for p in found:
        if location not in p["locations"]:
            continue
        when = rfc3339(p["time"])
        if metric == CHECK_PASSED:
            value: dict[str, Any] = {"boolValue": p["passed"]}
        elif p["latencyMs"] is not None:
            value = {"doubleValue": p["latencyMs"]}
        else:
            continue
        points.append({"interval": {"startTime": when, "endTime": when}, "value": value})
    return {
        "metric": {
            "type": metric,
            "labels": {
                "check_id": check["name"].rsplit("/", 1)[1],
                "checker_location": location,
                "checked_resource_id": host,
            },
        },
        "resource": {"type": "uptime_url", "labels": {"project_id": project_id, "host": host}},
        "metricKind": "GAUGE",
        "valueType": "BOOL" if metric == CHECK_PASSED else "DOUBLE",
        **({} if metric == CHECK_PASSED else {"unit": "ms"}),
        "points": points,
    }


# -- alert policies ---------------------------------------------------------------------------


_REDUCERS = {
    "REDUCE_COUNT_FALSE": lambda values: float(sum(1 for v in values if not v)),
    "REDUCE_COUNT_TRUE": lambda values: float(sum(1 for v in values if v)),
    "REDUCE_FRACTION_TRUE": lambda values: sum(1 for v in values if v) / len(values),
}
_COMPARE = {
    "COMPARISON_GT": lambda a, b: a > b,
    "COMPARISON_GE": lambda a, b: a >= b,
    "COMPARISON_LT": lambda a, b: a < b,
    "COMPARISON_LE": lambda a, b: a <= b,
    "COMPARISON_EQ": lambda a, b: a == b,
    "COMPARISON_NE": lambda a, b: a != b,
}


def _met(emu: Emulator, check_name: str, threshold: dict[str, Any], at: float) -> bool | None:
    """Whether the condition holds at ``at`` (None: not one the emulator evaluates)."""
    aggregation = (threshold.get("aggregations") or [{}])[0]
    compare = _COMPARE.get(threshold.get("comparison", ""))
    reducer = aggregation.get("crossSeriesReducer", "REDUCE_NONE")
    if compare is None or (reducer != "REDUCE_NONE" and reducer not in _REDUCERS):
        return None
    if CHECK_PASSED not in threshold.get("filter", ""):
        return None
    window = duration_seconds(aggregation.get("alignmentPeriod", "60s"), "alignmentPeriod")
    latest: dict[str, bool] = {}
    for p in probes(emu, check_name, at - window * emu.latency.time_scale, at):
        for location in p["locations"]:
            latest.setdefault(location, p["passed"])  # newest first: the next older point
    if not latest:
        return False
    limit = float(threshold.get("thresholdValue", 0))
    if reducer == "REDUCE_NONE":
        return any(compare(float(v), limit) for v in latest.values())
    return bool(compare(_REDUCERS[reducer](list(latest.values())), limit))


def evaluate(emu: Emulator, check_name: str, at: float) -> None:
    """Each enabled policy naming the check: a condition newly met starts its duration; one no
    longer met closes its incident."""
    project_id, check_id = check_name.split("/")[1], check_name.rsplit("/", 1)[1]
    backend = MonitoringBackend(emu)
    for policy in backend.in_project(MonitoringBackend.POLICY, project_id):
        if not policy.get("enabled", True) or check_id not in backend.checks_named(policy):
            continue
        for condition in policy.get("conditions") or []:
            met = _met(emu, check_name, condition.get("conditionThreshold") or {}, at)
            if met is not None:
                _condition(emu, policy, condition, met=met, at=at)


def _condition(
    emu: Emulator, policy: dict[str, Any], condition: dict[str, Any], *, met: bool, at: float
) -> None:
    key = condition["name"]
    with emu.store.transaction():
        state = emu.store.get(CONDITION_KIND, key)
        if met and state is None:
            emu.store.put(CONDITION_KIND, key, {"policy": policy["name"], "metSince": at})
        elif not met and state is not None:
            emu.store.delete(CONDITION_KIND, key)
            if state.get("incident"):
                _close(emu, state["incident"], policy, at)


def _condition_of(
    emu: Emulator, state: dict[str, Any], key: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The policy a condition state belongs to, and the condition in it (None: gone)."""
    policy = emu.store.get(MonitoringBackend.POLICY, state.get("policy", ""))
    conditions = (policy or {}).get("conditions") or []
    return policy, next((c for c in conditions if c.get("name") == key), None)


def open_due(emu: Emulator) -> None:
    """Open an incident for each condition met for its whole duration (scaled); close the
    incident of a condition whose policy was deleted (or the condition replaced)."""
    for key, seen in emu.store.list(CONDITION_KIND):
        if seen.get("incident") and _condition_of(emu, seen, key)[1] is not None:
            continue  # open, its condition still there: nothing to do (reads only)
        with emu.store.transaction():
            state = emu.store.get(CONDITION_KIND, key)
            if state is None:
                continue
            policy, condition = _condition_of(emu, state, key)
            now = emu.clock()
            if policy is None or condition is None:
                emu.store.delete(CONDITION_KIND, key)
                if state.get("incident"):
                    _close(emu, state["incident"], policy or {}, now)
                continue
            threshold = condition.get("conditionThreshold") or {}
            duration = duration_seconds(threshold.get("duration", "0s"), "duration")
            if state.get("incident") or now - state["metSince"] < duration * emu.latency.time_scale:
                continue
            state["incident"] = _open(emu, policy, condition, now)
            emu.store.put(CONDITION_KIND, key, state)


def _notified(emu: Emulator, policy: dict[str, Any], what: str, at: float) -> list[dict[str, Any]]:
    """What the policy's channels were sent (an email channel: its address); the emulator
    sends nothing, it records."""
    out = []
    for name in policy.get("notificationChannels") or []:
        channel = emu.store.get(MonitoringBackend.CHANNEL, name)
        if channel is not None and channel.get("enabled", True):
            to = (channel.get("labels") or {}).get("email_address", "")
            out.append({"channel": name, "to": to, "what": what, "time": rfc3339(at)})
    return out


def _open(emu: Emulator, policy: dict[str, Any], condition: dict[str, Any], at: float) -> str:
    """An OPEN alert (Google's ``projects.alerts`` resource), its channels notified."""
    project_id = policy["name"].split("/")[1]
    name = f"projects/{project_id}/alerts/{emu.store.next_id('monitoring.alert')}"
    threshold = condition.get("conditionThreshold") or {}
    check_ids = sorted(MonitoringBackend.checks_named({"conditions": [condition]}))
    doc = {
        "name": name,
        "state": "OPEN",
        "openTime": rfc3339(at),
        "policy": {
            k: policy[k] for k in ("name", "displayName", "userLabels", "severity") if k in policy
        },
        "metric": {
            "type": CHECK_PASSED if CHECK_PASSED in threshold.get("filter", "") else "",
            "labels": {"check_id": check_ids[0]} if check_ids else {},
        },
        "resource": {"type": "uptime_url", "labels": {"project_id": project_id}},
        "_condition": condition["name"],
        "_notifications": _notified(emu, policy, "opened", at),
    }
    emu.store.put(ALERT_KIND, name, doc)
    return name


def _close(emu: Emulator, name: str, policy: dict[str, Any], at: float) -> None:
    doc = emu.store.get(ALERT_KIND, name)
    if doc is None:
        return
    doc["state"] = "CLOSED"
    doc["closeTime"] = rfc3339(at)
    doc["_notifications"] = [*doc["_notifications"], *_notified(emu, policy, "closed", at)]
    emu.store.put(ALERT_KIND, name, doc)


# -- projects.alerts --------------------------------------------------------------------------


_EQUALS = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_.:/-]+))\s*"""
)


def _field(doc: dict[str, Any], path: str) -> Any:
    """A dotted field of ``doc``, in either spelling (``policy.display_name``)."""
    value: Any = doc
    for part in path.split("."):
        value = value.get(camel(part)) if isinstance(value, dict) else None
    return value


def list_alerts(emu: Emulator, project_id: str, *, filter_text: str) -> list[dict[str, Any]]:
    """The project's alerts, newest opened first, as Google renders them; ``filter_text``:
    ``field = value`` terms (the value quoted or not) joined by AND (``state = OPEN``,
    ``policy.display_name = "x"``)."""
    terms: list[tuple[str, str]] = []
    pos = 0
    while pos < len(filter_text):
        found = _EQUALS.match(filter_text, pos)
        if found is None:
            raise InvalidArgument(
                'The emulator\'s alerts filter takes field = "value" terms joined by AND; '
                f"{filter_text[pos:]!r} is not one."
            )
        field, *values = found.groups()
        terms.append((field, next(v for v in values if v is not None)))
        pos = found.end()
        joined = _AND.match(filter_text, pos)
        pos = joined.end() if joined else pos
    out = [
        rendered(doc)
        for _, doc in emu.store.list(ALERT_KIND, f"projects/{project_id}/alerts/")
        if all(str(_field(doc, k)) == v for k, v in terms)
    ]
    return sorted(out, key=lambda a: a["openTime"], reverse=True)


def get_alert(emu: Emulator, name: str) -> dict[str, Any]:
    doc = emu.store.get(ALERT_KIND, name)
    if doc is None:
        raise NotFound(f"Alert {name} does not exist.")
    return rendered(doc)


def rendered(doc: dict[str, Any]) -> dict[str, Any]:
    """An alert without what only the emulator keeps (the condition, the notifications)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def realize(emu: Emulator) -> None:
    """With local execution on, start the uptime checker (an emulator start; stopped on
    close)."""
    ticker = emu.local.uptime
    if ticker is not None:
        ticker.start(lambda: tick(emu))

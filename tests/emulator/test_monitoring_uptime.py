"""Uptime checks at work when the emulator executes (docs/emulator.md, "Uptime checks,
locally"): a check created through the discovery client probes a Cloud Run service through the
front door (a stand-in instance, tests/emulator/test_local_frontdoor.py), its results are
``projects.timeSeries.list``'s points, and an alert policy on them opens an incident while the
service fails and closes it when it serves again. Waits are on conditions, bounded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import run_v2
from googleapiclient.errors import HttpError
from typer.testing import CliRunner

from deployer.cli import app
from deployer.config import Config, MonitoringConfig
from deployer.emulator import serviceusage
from deployer.emulator.monitoring.uptime import ALERT_KIND, CHECK_PASSED, REQUEST_LATENCY
from deployer.emulator.testing import EmulatorHandle, discovery_client
from deployer.engine import Engine, Options
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.monitoring import AlertPolicy, UptimeCheck, uptime_result
from tests.contract import check_transcript
from tests.emulator import test_local_frontdoor as door
from tests.emulator import test_local_run as local
from tests.emulator.test_local_frontdoor import Instance, instances, services  # noqa: F401
from tests.emulator.test_local_run import eventually
from tests.emulator.test_monitoring import _policy_body
from tests.steps.test_service import alone

PROJECT = door.PROJECT
SCALE = 0.01  # a 60 s period is 0.6 s of the clock


@pytest.fixture
def mon(executing_emulator: EmulatorHandle) -> Iterator[Any]:
    serviceusage.set_enabled(executing_emulator.emu, PROJECT, "monitoring.googleapis.com")
    executing_emulator.control.set_latency(time_scale=SCALE)
    yield discovery_client(executing_emulator.url, "monitoring", "v3").projects()


def _series(mon: Any, check_id: str, metric: str = CHECK_PASSED, **over: Any) -> list[Any]:
    now = dt.datetime.now(dt.UTC)
    args = {
        "name": f"projects/{PROJECT}",
        "filter": f'metric.type="{metric}" AND metric.label."check_id"="{check_id}"',
        "interval_startTime": (now - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "interval_endTime": (now + dt.timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "view": "FULL",
        **over,
    }
    return list(mon.timeSeries().list(**args).execute().get("timeSeries", []))


def _latest(mon: Any, check_id: str) -> set[bool]:
    """The newest result of each checker location."""
    return {s["points"][0]["value"]["boolValue"] for s in _series(mon, check_id)}


def _incidents(mon: Any) -> list[dict[str, Any]]:
    return list(mon.alerts().list(parent=f"projects/{PROJECT}").execute().get("alerts", []))


def test_a_check_probes_the_service_and_its_policy_opens_and_closes_an_incident(
    executing_emulator: EmulatorHandle,
    services: run_v2.ServicesClient,  # noqa: F811
    instances: dict[str, Instance],  # noqa: F811
    mon: Any,
) -> None:
    handle = executing_emulator
    svc = door.deploy(services, "web")
    door.make_public(services, svc.name)
    door.serve(instances, svc.latest_ready_revision)
    host = svc.urls[0].removeprefix("https://")
    channel = (
        mon.notificationChannels()
        .create(
            name=f"projects/{PROJECT}",
            body={"type": "email", "labels": {"email_address": "ops@example.com"}},
        )
        .execute()
    )
    body = {
        "displayName": "web health",
        "monitoredResource": {
            "type": "uptime_url",
            "labels": {"project_id": PROJECT, "host": host},
        },
        "httpCheck": {"path": "/health/", "port": 443, "useSsl": True},
        "period": "60s",
        "timeout": "10s",
    }
    check = mon.uptimeCheckConfigs().create(parent=f"projects/{PROJECT}", body=body).execute()
    check_id = check["name"].rsplit("/", 1)[1]
    policy = _policy_body(check_id, [channel["name"]])
    made = mon.alertPolicies().create(name=f"projects/{PROJECT}", body=policy).execute()

    eventually(lambda: _latest(mon, check_id) == {True}, "a passing check")
    series = _series(mon, check_id)
    assert {s["metric"]["labels"]["checker_location"] for s in series} == {
        "usa-oregon",
        "usa-iowa",
        "usa-virginia",
        "eur-belgium",
        "apac-singapore",
        "sa-brazil-sao_paulo",
    }
    first = series[0]
    assert first["resource"] == {
        "type": "uptime_url",
        "labels": {"project_id": PROJECT, "host": host},
    }
    assert first["metric"]["type"] == CHECK_PASSED
    assert first["metric"]["labels"]["check_id"] == check_id
    assert (first["metricKind"], first["valueType"]) == ("GAUGE", "BOOL")
    latency = _series(mon, check_id, REQUEST_LATENCY)
    assert latency and latency[0]["valueType"] == "DOUBLE"
    assert latency[0]["points"][0]["value"]["doubleValue"] >= 0
    headers = _series(mon, check_id, view="HEADERS")
    assert headers and all("points" not in s for s in headers)
    one = _series(
        mon,
        check_id,
        filter=f'metric.type="{CHECK_PASSED}" AND metric.label.checker_location="eur-belgium"',
    )
    assert [s["metric"]["labels"]["checker_location"] for s in one] == ["eur-belgium"]
    assert _incidents(mon) == []

    # the instance stops: the front door answers 503, every location fails, the policy fires
    instances.pop(svc.latest_ready_revision).close()
    eventually(lambda: _latest(mon, check_id) == {False}, "a failing check")
    eventually(lambda: [i["state"] for i in _incidents(mon)] == ["OPEN"], "an incident")
    [incident] = _incidents(mon)
    assert incident["policy"]["displayName"] == policy["displayName"]
    assert incident["metric"]["labels"] == {"check_id": check_id}
    assert mon.alerts().get(name=incident["name"]).execute() == incident
    name = policy["displayName"]
    for flt in ("state=OPEN", f'state = "OPEN" AND policy.display_name = "{name}"'):
        listed = mon.alerts().list(parent=f"projects/{PROJECT}", filter=flt).execute()
        assert listed["alerts"] == [incident], flt
    [stored] = [d for _, d in handle.emu.store.list(ALERT_KIND)]
    assert stored["_notifications"][0]["to"] == "ops@example.com"  # recorded, never sent

    door.serve(instances, svc.latest_ready_revision)  # serving again: the incident closes
    eventually(lambda: _latest(mon, check_id) == {True}, "a passing check again")
    eventually(lambda: [i["state"] for i in _incidents(mon)] == ["CLOSED"], "closed")

    # in the emulator, a deleted check's results go with it
    mon.alertPolicies().delete(name=made["name"]).execute()
    mon.uptimeCheckConfigs().delete(name=check["name"]).execute()
    assert _series(mon, check_id) == []


def test_the_filter_and_interval_are_checked(executing_emulator: EmulatorHandle, mon: Any) -> None:
    for over in (
        {"filter": f'metric.type="{CHECK_PASSED}" OR resource.type="uptime_url"'},
        {"filter": 'resource.type="uptime_url"'},
        {"interval_startTime": "2999-01-01T00:00:00Z"},
        {"aggregation_alignmentPeriod": "60s"},
    ):
        with pytest.raises(HttpError) as info:
            _series(mon, "x", **over)
        assert info.value.status_code in (400, 501), over
    assert _series(mon, "x", filter='metric.type="custom.googleapis.com/none"') == []
    alerts = mon.alerts()
    assert alerts.list(parent=f"projects/{PROJECT}", filter='state = "OPEN"').execute() == {}
    with pytest.raises(HttpError) as info:
        alerts.list(parent=f"projects/{PROJECT}", filter="state: OPEN").execute()
    assert info.value.status_code == 400
    with pytest.raises(HttpError) as info:
        alerts.get(name=f"projects/{PROJECT}/alerts/404").execute()
    assert info.value.status_code == 404
    assert check_transcript(executing_emulator.emu.transcript.entries()) == []


@pytest.mark.slow  # a real Django instance (container/sample) served by the emulator
def test_status_shows_the_check_passing_then_failing_once_the_service_is_gone(
    executing_emulator: EmulatorHandle,
) -> None:
    """The tenant's service (a revision of container/sample, as test_local_run lays it out)
    and the uptime-check and alert-policy steps' check and policy, on the real clock at scale
    0.01 (a 300 s period is 3 s): `djdeploy status` says passing while it serves, failing once
    it is deleted, and the alert policy's alert open."""
    handle = executing_emulator
    clients = local.setup_project(handle)
    handle.control.set_latency(time_scale=SCALE)
    serviceusage.set_enabled(handle.emu, local.PROJECT, "monitoring.googleapis.com")
    cfg = Config(
        "demo", project=local.PROJECT, region=local.REGION, monitoring=MonitoringConfig(True)
    )
    probe = run_v2.Probe(
        http_get=run_v2.HTTPGetAction(path="/health/"), period_seconds=1, failure_threshold=240
    )
    svc = local.deploy(clients, cfg.names.service, startup_probe=probe).result(polling=local.POLL)
    door.make_public(clients["services"], svc.name)
    cloud = Cloud(
        local.PROJECT,
        local.REGION,
        ClientFactory(endpoint=handle.url, project=local.PROJECT),
        clock=handle.clock,
    )
    engine = Engine(cloud, options=Options.scaled(SCALE))
    assert engine.up([alone(UptimeCheck(cfg))]).ok
    assert engine.up([alone(AlertPolicy(cfg))]).ok
    [check] = cloud.monitoring.list("uptimeCheckConfigs")
    check_id = check["name"].rsplit("/", 1)[1]
    env = {
        "GOOGLE_CLOUD_PROJECT": local.PROJECT,
        "DJDEPLOY_REGION": local.REGION,
        "DJDEPLOY_MONITORING_ENABLED": "true",
    }

    def status() -> str:
        result = CliRunner().invoke(
            app, ["--endpoint", handle.url, "status", "--tenant", "demo"], env=env
        )
        assert result.exit_code == 0, result.output
        return result.output

    eventually(lambda: uptime_result(cloud, check_id).state == "passing", "a passing check")
    assert f"uptime check {check_id}: passing since " in status()

    clients["services"].delete_service(name=svc.name).result(polling=local.POLL)
    [policy] = cloud.monitoring.list("alertPolicies")
    eventually(
        lambda: uptime_result(cloud, check_id, policy=policy["name"]).alert_since != "",
        "a failing check, and its alert",
    )
    line = next(x for x in status().splitlines() if x.startswith("uptime check"))
    assert line.startswith(f"uptime check {check_id}: failing from 6 of 6 locations since ")
    assert "; alert open since " in line
    assert check_transcript(handle.emu.transcript.entries()) == []

"""Monitoring steps (alert-channel, uptime-check, alert-policy) on the emulator: create, no-op,
patch, the three-stage replacement of a check (interrupted too), duplicates, someone else's
resources, destroy."""

from __future__ import annotations

from typing import Any

import pytest

from deployer import render
from deployer.config import Config, MonitoringConfig
from deployer.emulator import projects
from deployer.emulator.local.prober import Probe
from deployer.emulator.monitoring import uptime
from deployer.steps.base import Action
from deployer.steps.monitoring import (
    AlertChannel,
    AlertPolicy,
    UptimeCheck,
    UptimeResult,
    desired_check,
    differing,
    uptime_result,
)
from tests.contract import check_transcript
from tests.steps.test_service import (
    NUMBER,
    PROJECT,
    REGION,
    alone,
    assert_contract,
    config,
    make_cloud,
    make_engine,
    mutating,
)

EMAIL = "ops@example.com"
CFG = config(monitoring=MonitoringConfig(True, alert_email=EMAIL))
HOST = f"demo-django-{NUMBER}.{REGION}.run.app"


def steps(cfg: Config = CFG) -> list[Any]:
    return [alone(AlertChannel(cfg)), alone(UptimeCheck(cfg)), AlertPolicy(cfg)]


@pytest.fixture
def cloud(emulator: Any) -> Any:
    projects.ensure_project(emulator.emu, PROJECT)
    return make_cloud(emulator)


def listed(cloud: Any, kind: str) -> list[dict[str, Any]]:
    return cloud.monitoring.list(kind)


def check_id(cloud: Any) -> str:
    [check] = listed(cloud, "uptimeCheckConfigs")
    return str(check["name"].rsplit("/", 1)[1])


def test_diff_before_anything_exists() -> None:
    assert UptimeCheck(CFG).diff(None).action is Action.CREATE
    assert AlertPolicy(CFG).diff(None).action is Action.CREATE
    assert AlertChannel(CFG).diff(None).action is Action.CREATE
    no_email = config(monitoring=MonitoringConfig(True))
    assert AlertChannel(no_email).diff(None).action is Action.NOOP


@pytest.mark.parametrize(
    ("have", "fields"),
    [
        ({"notificationChannels": [], "enabled": True}, []),
        ({"enabled": True}, []),  # proto3 JSON leaves the empty list out
        ({"notificationChannels": ["c"], "enabled": True}, ["notificationChannels"]),
        ({"notificationChannels": [], "enabled": True, "name": "server's"}, []),
        ({"notificationChannels": []}, ["enabled"]),
    ],
)
def test_only_the_fields_we_set_can_differ(have: dict[str, Any], fields: list[str]) -> None:
    assert differing({"notificationChannels": [], "enabled": True}, have) == fields


def test_server_fields_inside_lists_are_not_drift() -> None:
    want = {"conditions": [{"displayName": "x", "conditionThreshold": {"duration": "60s"}}]}
    have = {
        "conditions": [
            {
                "name": "p/conditions/1",
                "displayName": "x",
                "conditionThreshold": {"duration": "60s"},
            }
        ]
    }
    assert differing(want, have) == []
    have["conditions"][0]["conditionThreshold"]["duration"] = "120s"
    assert differing(want, have) == ["conditions"]


def test_the_check_is_googles_https_check_of_the_health_path() -> None:
    check = desired_check(CFG, HOST)
    assert check["monitoredResource"] == {
        "type": "uptime_url",
        "labels": {"project_id": PROJECT, "host": HOST},
    }
    assert check["httpCheck"]["path"] == CFG.probes.path and check["httpCheck"]["useSsl"]
    assert check["period"] == "300s" and check["checkerType"] == "STATIC_IP_CHECKERS"


def test_up_creates_then_writes_nothing(emulator: Any, cloud: Any) -> None:
    engine = make_engine(cloud)
    result = engine.up(steps())
    assert result.ok, result
    [channel] = listed(cloud, "notificationChannels")
    [check] = listed(cloud, "uptimeCheckConfigs")
    [policy] = listed(cloud, "alertPolicies")
    assert channel["labels"] == {"email_address": EMAIL}
    number = projects.project_number(PROJECT)
    assert check["monitoredResource"]["labels"]["host"] == f"demo-django-{number}.{REGION}.run.app"
    assert policy["notificationChannels"] == [channel["name"]]
    condition = policy["conditions"][0]["conditionThreshold"]
    assert f'metric.label.check_id="{check_id(cloud)}"' in condition["filter"]
    assert policy["userLabels"]["djdeploy-tenant"] == "demo"

    emulator.emu.transcript.clear()
    again = engine.up(steps())
    assert again.ok and [r.first.action for r in again.results] == [Action.NOOP] * 3
    assert mutating(emulator.emu.transcript.entries()) == []
    assert_contract(emulator)


def test_drift_is_patched_in_place(emulator: Any, cloud: Any) -> None:
    engine = make_engine(cloud)
    assert engine.up(steps()).ok
    [check] = listed(cloud, "uptimeCheckConfigs")
    cloud.monitoring.patch("uptimeCheckConfigs", check["name"], {"timeout": "30s"}, ["timeout"])
    [policy] = listed(cloud, "alertPolicies")
    cloud.monitoring.patch("alertPolicies", policy["name"], {"enabled": False}, ["enabled"])

    emulator.emu.transcript.clear()
    assert engine.up(steps()).ok
    writes = mutating(emulator.emu.transcript.entries())
    assert writes == [f"PATCH /v3/{check['name']}", f"PATCH /v3/{policy['name']}"]
    assert listed(cloud, "uptimeCheckConfigs")[0]["timeout"] == "10s"
    assert listed(cloud, "alertPolicies")[0]["enabled"] is True
    assert_contract(emulator)


def test_a_new_period_replaces_the_check_and_moves_the_policy(emulator: Any, cloud: Any) -> None:
    engine = make_engine(cloud)
    assert engine.up(steps()).ok
    old = check_id(cloud)
    faster = config(monitoring=MonitoringConfig(True, alert_email=EMAIL, period=60))
    plan = engine.plan(steps(faster))
    assert plan[1].action is Action.CREATE and "period" in plan[1].reason

    assert engine.up(steps(faster)).ok
    new = check_id(cloud)  # exactly one check left: the old one is gone
    assert new != old
    [policy] = listed(cloud, "alertPolicies")
    assert f'check_id="{new}"' in policy["conditions"][0]["conditionThreshold"]["filter"]
    assert_contract(emulator)


def test_an_interrupted_replacement_finishes_on_the_next_up(emulator: Any, cloud: Any) -> None:
    """Killed after the new check was created, before the policy moved: two checks of ours, the
    policy on the old one. The next up moves it, then deletes the old check."""
    engine = make_engine(cloud)
    assert engine.up(steps()).ok
    faster = config(monitoring=MonitoringConfig(True, alert_email=EMAIL, period=60))
    assert engine.up([alone(UptimeCheck(faster))]).ok
    assert len(listed(cloud, "uptimeCheckConfigs")) == 2

    assert engine.up(steps(faster)).ok
    [check] = listed(cloud, "uptimeCheckConfigs")
    assert check["period"] == "60s"
    again = engine.up(steps(faster))
    assert [r.first.action for r in again.results] == [Action.NOOP] * 3


def test_duplicates_of_ours_are_deleted(emulator: Any, cloud: Any) -> None:
    """A create retried after its response was lost leaves two: the later ones go."""
    engine = make_engine(cloud)
    assert engine.up(steps()).ok
    [policy] = listed(cloud, "alertPolicies")
    [channel] = listed(cloud, "notificationChannels")
    body = {k: v for k, v in policy.items() if k not in ("name", "creationRecord")}
    cloud.monitoring.create("alertPolicies", body)
    cloud.monitoring.create(
        "notificationChannels", {k: v for k, v in channel.items() if k != "name"}
    )
    assert engine.up(steps()).ok
    assert [p["name"] for p in listed(cloud, "alertPolicies")] == [policy["name"]]
    assert [c["name"] for c in listed(cloud, "notificationChannels")] == [channel["name"]]


def test_someone_elses_check_is_left_alone(emulator: Any, cloud: Any) -> None:
    theirs = desired_check(CFG, HOST)
    theirs["userLabels"] = {"owner": "someone"}
    theirs = cloud.monitoring.create("uptimeCheckConfigs", theirs)
    engine = make_engine(cloud)
    assert engine.up(steps()).ok
    assert len(listed(cloud, "uptimeCheckConfigs")) == 2
    engine.destroy(steps(), delete_data=False)
    assert [c["name"] for c in listed(cloud, "uptimeCheckConfigs")] == [theirs["name"]]


def test_removing_the_email_removes_the_channel(emulator: Any, cloud: Any) -> None:
    engine = make_engine(cloud)
    assert engine.up(steps()).ok
    quiet = config(monitoring=MonitoringConfig(True))
    assert engine.up(steps(quiet)).ok
    assert listed(cloud, "notificationChannels") == []
    assert listed(cloud, "alertPolicies")[0].get("notificationChannels", []) == []
    assert_contract(emulator)


def test_destroy_removes_all_three(emulator: Any, cloud: Any) -> None:
    engine = make_engine(cloud)
    assert engine.up(steps()).ok
    changes = engine.destroy(steps(), delete_data=False)
    assert {c.step: c.action for c in changes} == {
        "alert-policy": Action.DELETE,
        "uptime-check": Action.DELETE,
        "alert-channel": Action.DELETE,
    }
    for kind in ("alertPolicies", "uptimeCheckConfigs", "notificationChannels"):
        assert listed(cloud, kind) == []
    again = engine.destroy(steps(), delete_data=False)
    assert all(c.action is Action.NOOP for c in again)
    assert_contract(emulator)


@pytest.mark.virtual_clock  # the results' times and the read's window share emulator.clock
def test_status_reads_the_checks_latest_result_from_its_time_series(
    emulator: Any, cloud: Any
) -> None:
    """The results are written as the executing emulator's checker writes them (uptime.record);
    uptime_result reads them back through projects.timeSeries.list."""
    assert make_engine(cloud).up(steps()).ok
    [check] = listed(cloud, "uptimeCheckConfigs")
    cid = check_id(cloud)
    assert uptime_result(cloud, cid) == UptimeResult(cid, "unknown", note="no result yet")

    def result(status: int | None) -> None:
        emulator.clock.advance(3.0)
        uptime.record(emulator.emu, check, Probe(status, 12.5, "" if status else "refused"))

    result(503)
    result(200)
    first_pass = uptime_result(cloud, cid).checked
    result(200)
    passing = uptime_result(cloud, cid)
    assert (passing.state, passing.since, passing.locations) == ("passing", first_pass, 6)
    assert not passing.whole_window and passing.checked > first_pass
    assert render.uptime_line(passing) == (
        f"uptime check {cid}: passing since {first_pass} (last result {passing.checked}, "
        "6 locations)"
    )
    result(None)
    failing = uptime_result(cloud, cid)
    assert (failing.state, failing.since, len(failing.failing)) == ("failing", failing.checked, 6)
    assert render.uptime_line(failing).startswith(f"uptime check {cid}: failing from 6 of 6 ")
    assert not failing.alert_since  # the policy's 60 s (scaled) have not passed

    emulator.clock.advance(3.0)
    uptime.open_due(emulator.emu)  # what the executing emulator's ticker does
    [policy] = listed(cloud, "alertPolicies")
    alerted = uptime_result(cloud, cid, policy=policy["name"])
    assert alerted.alert_since > failing.checked
    assert render.uptime_line(alerted).endswith(f"; alert open since {alerted.alert_since}")

    cloud.monitoring.delete("alertPolicies", policy["name"])  # the emulator closes its alert
    uptime.open_due(emulator.emu)
    assert uptime_result(cloud, cid, policy=policy["name"]).alert_since == ""
    assert check_transcript(emulator.emu.transcript.entries()) == []

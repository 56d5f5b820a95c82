"""Cloud Monitoring v3 in the emulator (uptime checks, alert policies, notification channels),
driven through the discovery client."""

from __future__ import annotations

import pytest
from googleapiclient.errors import HttpError

from deployer.emulator import serviceusage
from deployer.emulator.testing import discovery_client
from tests.contract import check_transcript

PROJECT = "mon-proj"
PARENT = f"projects/{PROJECT}"
LABELS = {"managed-by": "djdeploy", "djdeploy-tenant": "t1"}


@pytest.fixture
def mon(emulator):
    serviceusage.set_enabled(emulator.emu, PROJECT, "monitoring.googleapis.com")
    return discovery_client(emulator.url, "monitoring", "v3").projects()


def _status(call) -> int:
    with pytest.raises(HttpError) as info:
        call.execute()
    return info.value.status_code


def _check_body(**over) -> dict:
    body = {
        "displayName": "t1 django health",
        "monitoredResource": {
            "type": "uptime_url",
            "labels": {"project_id": PROJECT, "host": "t1-django-123.europe-west1.run.app"},
        },
        "httpCheck": {"path": "/health/", "useSsl": True, "validateSsl": True},
        "period": "300s",
        "timeout": "10s",
        "userLabels": LABELS,
    }
    return {**body, **over}


def _policy_body(check_id: str, channels: list[str]) -> dict:
    return {
        "displayName": "t1 django down",
        "combiner": "OR",
        "conditions": [
            {
                "displayName": "uptime check failed",
                "conditionThreshold": {
                    "filter": (
                        'metric.type="monitoring.googleapis.com/uptime_check/check_passed" '
                        f'AND metric.label.check_id="{check_id}" AND resource.type="uptime_url"'
                    ),
                    "comparison": "COMPARISON_GT",
                    "thresholdValue": 1,
                    "duration": "60s",
                    "aggregations": [
                        {
                            "alignmentPeriod": "1200s",
                            "perSeriesAligner": "ALIGN_NEXT_OLDER",
                            "crossSeriesReducer": "REDUCE_COUNT_FALSE",
                            "groupByFields": ["resource.label.*"],
                        }
                    ],
                    "trigger": {"count": 1},
                },
            }
        ],
        "notificationChannels": channels,
        "userLabels": LABELS,
    }


def test_uptime_check_crud(emulator, mon):
    checks = mon.uptimeCheckConfigs()
    created = checks.create(parent=PARENT, body=_check_body()).execute()
    name = created["name"]
    assert name.startswith(f"{PARENT}/uptimeCheckConfigs/t1-django-health-")
    assert created["httpCheck"]["port"] == 443 and created["checkerType"] == "STATIC_IP_CHECKERS"
    assert checks.get(name=name).execute() == created

    # only the documented fields can be patched; the rest is refused, not ignored
    patched = checks.patch(
        name=name, updateMask="timeout,display_name", body={"timeout": "20s", "displayName": "x"}
    ).execute()
    assert (patched["timeout"], patched["displayName"], patched["period"]) == ("20s", "x", "300s")
    assert _status(checks.patch(name=name, updateMask="period", body={"period": "60s"})) == 400
    assert _status(checks.patch(name=name, updateMask="timeout", body={"timeout": "90s"})) == 400

    checks.create(parent=PARENT, body=_check_body()).execute()
    first = checks.list(parent=PARENT, pageSize=1).execute()
    assert len(first["uptimeCheckConfigs"]) == 1 and first["nextPageToken"]
    rest = checks.list(parent=PARENT, pageToken=first["nextPageToken"]).execute()
    assert len(rest["uptimeCheckConfigs"]) == 1 and "nextPageToken" not in rest

    assert checks.delete(name=name).execute() == {}
    assert _status(checks.get(name=name)) == 404
    assert _status(checks.delete(name=name)) == 404
    assert check_transcript(emulator.emu.transcript.entries()) == []


@pytest.mark.parametrize(
    "over",
    [
        {"period": "120s"},
        {"timeout": "0s"},
        {"displayName": ""},
        {"httpCheck": None, "tcpCheck": None},
        {"userLabels": {"Bad": "x"}},
        {"monitoredResource": {"type": "uptime_url", "labels": {"project_id": PROJECT}}},
    ],
)
def test_uptime_check_refuses_bad_configs(emulator, mon, over):
    body = {k: v for k, v in _check_body(**over).items() if v is not None}
    assert _status(mon.uptimeCheckConfigs().create(parent=PARENT, body=body)) == 400
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_policy_and_channel_crud(emulator, mon):
    channels, policies = mon.notificationChannels(), mon.alertPolicies()
    channel = channels.create(
        name=PARENT,
        body={
            "type": "email",
            "displayName": "t1 alerts",
            "labels": {"email_address": "ops@example.com"},
            "userLabels": LABELS,
        },
    ).execute()
    assert channel["name"].startswith(f"{PARENT}/notificationChannels/") and channel["enabled"]
    assert channels.get(name=channel["name"]).execute() == channel
    assert _status(channels.create(name=PARENT, body={"type": "email", "labels": {}})) == 400

    check = mon.uptimeCheckConfigs().create(parent=PARENT, body=_check_body()).execute()
    check_id = check["name"].rsplit("/", 1)[1]
    policy = policies.create(name=PARENT, body=_policy_body(check_id, [channel["name"]])).execute()
    assert policy["enabled"] is True and policy["creationRecord"]["mutateTime"]
    assert policy["conditions"][0]["name"].startswith(policy["name"] + "/conditions/")
    assert policies.get(name=policy["name"]).execute() == policy
    listed = policies.list(name=PARENT).execute()["alertPolicies"]
    assert [p["name"] for p in listed] == [policy["name"]]

    # a channel that does not exist, a duration that is not whole minutes: refused
    assert _status(policies.create(name=PARENT, body=_policy_body(check_id, ["nope"]))) == 400
    bad = _policy_body(check_id, [])
    bad["conditions"][0]["conditionThreshold"]["duration"] = "90s"
    assert _status(policies.create(name=PARENT, body=bad)) == 400

    # the check the policy names cannot be deleted while it does
    assert _status(mon.uptimeCheckConfigs().delete(name=check["name"])) == 400

    patched = policies.patch(
        name=policy["name"], updateMask="display_name", body={"displayName": "renamed"}
    ).execute()
    assert patched["displayName"] == "renamed" and patched["conditions"] == policy["conditions"]

    # a channel in use goes only with force, which takes it out of the policy
    assert _status(channels.delete(name=channel["name"])) == 400
    assert channels.delete(name=channel["name"], force=True).execute() == {}
    # the empty list is left out, as proto3 JSON does
    assert "notificationChannels" not in policies.get(name=policy["name"]).execute()
    listed_channels = channels.list(name=PARENT).execute()
    assert "notificationChannels" not in listed_channels
    patched_channel = _status(
        channels.patch(name=channel["name"], updateMask="display_name", body={"displayName": "x"})
    )
    assert patched_channel == 404

    assert policies.delete(name=policy["name"]).execute() == {}
    assert mon.uptimeCheckConfigs().delete(name=check["name"]).execute() == {}
    assert _status(policies.delete(name=policy["name"])) == 404
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_channel_patch(emulator, mon):
    channels = mon.notificationChannels()
    channel = channels.create(
        name=PARENT,
        body={"type": "email", "labels": {"email_address": "a@example.com"}, "userLabels": LABELS},
    ).execute()
    patched = channels.patch(
        name=channel["name"],
        updateMask="labels,user_labels",
        body={"labels": {"email_address": "b@example.com"}, "userLabels": {"managed-by": "x"}},
    ).execute()
    assert patched["labels"] == {"email_address": "b@example.com"}
    assert patched["userLabels"] == {"managed-by": "x"}
    assert patched["creationRecord"] == channel["creationRecord"]
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_api_must_be_enabled(emulator):
    # enabled in every new project, as in Google; a project that disabled it gets 403
    serviceusage.set_enabled(emulator.emu, PROJECT, "monitoring.googleapis.com", False)
    mon = discovery_client(emulator.url, "monitoring", "v3").projects()
    with pytest.raises(HttpError) as info:
        mon.alertPolicies().list(name=PARENT).execute()
    assert info.value.status_code == 403
    assert "SERVICE_DISABLED" in info.value.content.decode()
    assert check_transcript(emulator.emu.transcript.entries()) == []

"""Uptime monitoring end to end through the CLI against the emulator: up creates the channel,
the check and the policy; a second up writes nothing; plan's exit codes; kill -9 in the middle
and the next up finishes without duplicates; destroy removes them; golden transcripts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deployer.cli import app
from deployer.emulator.testing import EmulatorHandle
from tests.contract import check_transcript
from tests.test_scenarios import (
    GOLDEN,
    LEASE_CREATE,
    LEASE_DELETE,
    PROJECT,
    TENANT,
    is_lease_renewal,
    normalise,
    writes,
)

pytestmark = pytest.mark.slow  # CLI scenarios: each runs whole deployments

EMAIL = "ops@example.com"
MONITORING_ENV = {
    "GOOGLE_CLOUD_PROJECT": PROJECT,
    "DJDEPLOY_TENANT": TENANT,
    "DJDEPLOY_MONITORING_ENABLED": "true",
    "DJDEPLOY_MONITORING_ALERT_EMAIL": EMAIL,
}
KINDS = ("uptimeCheckConfigs", "alertPolicies", "notificationChannels")


def djdeploy(emulator: EmulatorHandle, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["--endpoint", emulator.url, "--time-scale", "0.001", *args],
        env=MONITORING_ENV,
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def count(emulator: EmulatorHandle) -> dict[str, int]:
    mon = emulator.discovery("monitoring", "v3").projects()
    parent = f"projects/{PROJECT}"
    return {
        "uptimeCheckConfigs": len(
            mon.uptimeCheckConfigs().list(parent=parent).execute().get("uptimeCheckConfigs", [])
        ),
        "alertPolicies": len(
            mon.alertPolicies().list(name=parent).execute().get("alertPolicies", [])
        ),
        "notificationChannels": len(
            mon.notificationChannels().list(name=parent).execute().get("notificationChannels", [])
        ),
    }


ONE_EACH = dict.fromkeys(KINDS, 1)


def test_up_creates_monitoring_second_up_writes_nothing_destroy_removes_it(
    emulator: EmulatorHandle,
) -> None:
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 2, output
    for step in ("alert-channel", "uptime-check", "alert-policy"):
        assert step in output

    code, output = djdeploy(emulator, "up", "--tenant", TENANT)
    assert code == 0, output
    assert count(emulator) == ONE_EACH
    code, output = djdeploy(emulator, "status", "--tenant", TENANT, "--json")
    assert code == 0, output
    states = {s["step"]: s["state"] for s in json.loads(output)["steps"]}
    assert states["uptime-check"] == states["alert-policy"] == "ok", states
    assert len(states) == 25  # 18, the 3 monitoring steps, worker-, redis-, cron- and ci-retired
    assert check_transcript(emulator.control.transcript()) == []

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, "up", "--tenant", TENANT)
    assert code == 0, output
    transcript = [e for e in emulator.control.transcript() if not is_lease_renewal(e)]
    assert writes(transcript) == [LEASE_CREATE, LEASE_DELETE]  # the tenant's lease, no more
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output

    code, output = djdeploy(emulator, "destroy", "--tenant", TENANT)
    assert code == 0, output
    assert count(emulator) == dict.fromkeys(KINDS, 0)
    assert check_transcript(emulator.control.transcript()) == []


def test_a_bad_monitoring_value_fails_before_any_call(emulator: EmulatorHandle) -> None:
    result = CliRunner().invoke(
        app,
        ["--endpoint", emulator.url, "plan", "--tenant", TENANT],
        env={**MONITORING_ENV, "DJDEPLOY_MONITORING_PERIOD": "120"},
    )
    assert result.exit_code != 0
    assert "monitoring.period 120 is invalid" in result.output
    assert "Traceback" not in result.output
    assert emulator.control.transcript() == []


def test_kill_9_after_the_check_create_then_up_finishes_without_duplicates(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The alert-policy step's first read is held 30 s, so a kill once the check's create is
    seen always lands between the check's create and the policy's."""
    emulator.control.add_fault(
        method="GET", path="/alertPolicies$", action="delay", seconds=30, times=1
    )
    env = {**os.environ, **MONITORING_ENV}
    cmd = [sys.executable, "-m", "deployer", "--endpoint", emulator.url, "--time-scale", "0.01"]
    proc = subprocess.Popen(
        [*cmd, "up", "--tenant", TENANT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(
            e["method"] == "POST" and e["path"].endswith("/uptimeCheckConfigs")
            for e in emulator.control.transcript()
        ):
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[0]
    proc.send_signal(signal.SIGKILL)  # the policy's create waits behind the held read
    proc.communicate()
    assert count(emulator)["alertPolicies"] == 0  # killed before the policy
    code, output = djdeploy(emulator, "up", "--tenant", TENANT)
    assert code == 0, output
    assert count(emulator) == ONE_EACH


def test_a_create_whose_answer_is_lost_leaves_no_duplicate(emulator: EmulatorHandle) -> None:
    """The connection drops after the policy was created: the retry creates a second one, which
    the step then deletes."""
    emulator.control.add_fault(method="POST", path="/alertPolicies$", action="drop", times=1)
    code, output = djdeploy(emulator, "up", "--tenant", TENANT)
    assert code == 0, output
    posts = [
        e
        for e in emulator.control.transcript()
        if e["method"] == "POST" and "alertPol" in e["path"]
    ]
    assert len(posts) == 2  # the dropped one took effect, then the retry
    assert count(emulator) == ONE_EACH


def test_the_python_api_deploys_and_destroys_monitoring(emulator: EmulatorHandle) -> None:
    from deployer import Config, Target, destroy, plan, up
    from deployer.config import MonitoringConfig

    config = Config(
        TENANT, project=PROJECT, monitoring=MonitoringConfig(True, alert_email=EMAIL, period=60)
    )
    target = Target(endpoint=emulator.url, time_scale=0.001)
    result = up(config, target=target)
    assert result.ok
    assert result.info("uptime_url").endswith(".europe-west1.run.app/health/")
    assert result.info("alert_email") == EMAIL
    policy = result.info("alert_policy")
    assert policy.isdigit()
    assert all(c.action.value == "noop" for c in plan(config, target=target))
    changes = {c.step: c.action.value for c in destroy(config, target=target)}
    assert changes["alert-policy"] == changes["uptime-check"] == "delete"
    assert count(emulator) == dict.fromkeys(KINDS, 0)


def _ids(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server-assigned monitoring ids as templates (they differ on every run)."""
    out = []
    for e in entries:
        path = re.sub(r"/uptimeCheckConfigs/[^/]+$", "/uptimeCheckConfigs/{id}", e["path"])
        path = re.sub(r"/(alertPolicies|notificationChannels)/\d+$", r"/\1/{id}", path)
        out.append({**e, "path": path})
    return out


@pytest.mark.parametrize("scenario", ["up-monitoring", "destroy-monitoring"])
def test_golden_transcripts(emulator: EmulatorHandle, scenario: str) -> None:
    """Only the monitoring traffic: the rest is the other goldens' (monitoring is off there)."""
    assert djdeploy(emulator, "up", "--tenant", TENANT)[0] == 0
    if scenario == "destroy-monitoring":
        emulator.control.clear_transcript()
        assert djdeploy(emulator, "destroy", "--tenant", TENANT)[0] == 0
    entries = [e for e in emulator.control.transcript() if e["path"].startswith("/v3/projects/")]
    entries = [e for e in entries if any(f"/{k}" in e["path"] for k in KINDS)]
    got = normalise(_ids(entries))
    path = GOLDEN / f"{scenario}.json"
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(path.read_text()), "traffic changed: UPDATE_GOLDEN=1 to accept"

"""A feature removed from the config is cleaned up by up (steps/retired.py): deploy with a
[worker], a [[cron]] entry and [monitoring], remove all three, plan shows the deletions (exit 2),
up deletes them (the scheduler account too, once its jobs are gone), then plan has nothing to
change. An up cut short between two deletes (as by kill -9) leaves what the next one finds and
finishes; destroy deletes them too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployer.emulator.testing import EmulatorHandle
from tests.contract import check_transcript
from tests.test_scenarios import TENANT
from tests.test_scenarios_cron import SCHEDULER_SA, has_scheduler_account, run_jobs, scheduler_jobs
from tests.test_scenarios_monitoring import ONE_EACH, count
from tests.test_scenarios_worker import djdeploy, pools

pytestmark = pytest.mark.slow  # a CLI scenario: whole deployments

FEATURES_TOML = """\
[worker]
command = "celery -A proj worker"

[[cron]]
name = "nightly"
schedule = "0 3 * * *"
command = ["clearsessions"]

[monitoring]
enabled = true
alert_email = "ops@example.com"
"""
RETIRED = ("worker-retired", "cron-retired", "monitoring-retired")


def deploy_then_remove_the_features(emulator: EmulatorHandle, tmp_path: Path) -> Path:
    config_file = tmp_path / "djdeploy.toml"
    config_file.write_text(FEATURES_TOML)
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert len(pools(emulator)) == len(scheduler_jobs(emulator)) == len(run_jobs(emulator)) == 1
    assert count(emulator) == ONE_EACH and has_scheduler_account(emulator)
    config_file.write_text("")
    return config_file


def assert_all_gone(emulator: EmulatorHandle) -> None:
    assert pools(emulator) == scheduler_jobs(emulator) == []
    assert run_jobs(emulator) == set()
    assert count(emulator) == dict.fromkeys(ONE_EACH, 0)
    assert not has_scheduler_account(emulator)


def test_removed_features_are_deleted_by_up(emulator: EmulatorHandle, tmp_path: Path) -> None:
    config_file = deploy_then_remove_the_features(emulator, tmp_path)
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT, "--json")
    assert code == 2, output
    pending = {s["step"]: s for s in json.loads(output)["steps"] if s["action"] != "noop"}
    assert sorted(pending) == sorted(RETIRED), output
    assert {s["action"] for s in pending.values()} == {"delete"}
    assert [f["path"] for f in pending["cron-retired"]["fields"]] == [
        f"{TENANT}-django-cron-nightly",
        f"service account {SCHEDULER_SA}",  # last: once no job uses it
    ]
    assert len(pending["monitoring-retired"]["fields"]) == 3  # policy, channel, check

    # each retiring delete fails once where a kill -9 could land: after the Cloud Run job,
    # after the policy and the channel
    for path in (r"^/v1/projects/[^/]+/locations/[^/]+/jobs/", r"/uptimeCheckConfigs/"):
        emulator.control.add_fault(
            method="DELETE", path=path, code=403, status="PERMISSION_DENIED", times=1
        )
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 1, output
    assert len(scheduler_jobs(emulator)) == 1 and run_jobs(emulator) == set()
    assert count(emulator) == {**dict.fromkeys(ONE_EACH, 0), "uptimeCheckConfigs": 1}
    assert has_scheduler_account(emulator)

    # and once more after the scheduler job, before its account
    emulator.control.add_fault(
        method="DELETE", path=r"/serviceAccounts/", code=403, status="PERMISSION_DENIED", times=1
    )
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 1, output
    assert scheduler_jobs(emulator) == [] and has_scheduler_account(emulator)

    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert_all_gone(emulator)
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output
    assert check_transcript(emulator.control.transcript()) == []


def test_destroy_after_the_features_were_removed_deletes_them(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    config_file = deploy_then_remove_the_features(emulator, tmp_path)
    code, output = djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)
    assert code == 0, output
    assert_all_gone(emulator)

"""[vpc] removed from a running deployment, end to end through the CLI against the emulator:
plan shows the vpcAccess it removes, up removes it from the service, the worker pool and the
[[cron]] jobs (the migrate jobs, which ran already, drop it when they next run: a new image),
`manage` runs with a job without it, and a second up writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.emulator.testing import EmulatorHandle
from tests.contract import check_transcript
from tests.test_scenarios import TENANT, writes_but_the_lease
from tests.test_scenarios_redis import run_resource
from tests.test_scenarios_worker import WORKER_TOML, add_broker_secret, djdeploy

pytestmark = pytest.mark.slow  # CLI scenarios: each runs whole deployments

NETWORK, SUBNETWORK = "corp", "corp-eu"
VPC_TOML = f'[vpc]\nnetwork = "{NETWORK}"\nsubnetwork = "{SUBNETWORK}"\n'
INTERFACE = {"network": NETWORK, "subnetwork": SUBNETWORK}
DIRECT_VPC = {"egress": "PRIVATE_RANGES_ONLY", "networkInterfaces": [INTERFACE]}
SERVICE = f"{TENANT}-django"
POOL = f"{TENANT}-django-worker"
JOBS = (f"{TENANT}-django-migrate", f"{TENANT}-django-db-init")
CRON_TOML = '[[cron]]\nname = "nightly"\nschedule = "0 3 * * *"\ncommand = "clearsessions"\n'
CRON_JOB = f"{TENANT}-django-cron-nightly"
MANAGE_JOB = f"{TENANT}-django-manage"


def templates(emulator: EmulatorHandle) -> dict[str, dict[str, object]]:
    """The revision or task template of the service, the worker pool and both jobs."""
    out = {
        SERVICE: run_resource(emulator, "services", SERVICE)["template"],
        POOL: run_resource(emulator, "workerPools", POOL)["template"],
    }
    for job in JOBS:
        out[job] = run_resource(emulator, "jobs", job)["template"]["template"]
    return out


def test_removing_vpc_removes_the_egress(emulator: EmulatorHandle, tmp_path: Path) -> None:
    config_file = tmp_path / "djdeploy.toml"
    config_file.write_text(WORKER_TOML + VPC_TOML)
    add_broker_secret(emulator)
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert {n: t.get("vpcAccess") for n, t in templates(emulator).items()} == dict.fromkeys(
        (SERVICE, POOL, *JOBS), DIRECT_VPC
    )

    config_file.write_text(WORKER_TOML)
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 2, output
    assert output.count("template.vpcAccess") == 2 and "-> null" in output, output

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert check_transcript(emulator.control.transcript()) == []
    found = templates(emulator)
    assert "vpcAccess" not in found[SERVICE] and "vpcAccess" not in found[POOL]
    # the jobs ran already: their definition changes when they next run (docs in steps/jobs.py)
    assert all(found[job].get("vpcAccess") == DIRECT_VPC for job in JOBS)

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert writes_but_the_lease(emulator.control.transcript()) == []
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0, output


def test_removing_vpc_removes_it_from_cron_and_manage_jobs(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    config_file = tmp_path / "djdeploy.toml"
    config_file.write_text(CRON_TOML + VPC_TOML)
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    code, output = djdeploy(emulator, config_file, "manage", "--tenant", TENANT, "--", "check")
    assert code == 0, output
    for job in (CRON_JOB, MANAGE_JOB):
        task = run_resource(emulator, "jobs", job)["template"]["template"]
        assert task["vpcAccess"] == DIRECT_VPC, job

    config_file.write_text(CRON_TOML)
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 2, output
    assert "template.template.vpcAccess" in output, output  # the cron job's

    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert "vpcAccess" not in run_resource(emulator, "jobs", CRON_JOB)["template"]["template"]
    code, output = djdeploy(emulator, config_file, "manage", "--tenant", TENANT, "--", "check")
    assert code == 0, output
    assert "vpcAccess" not in run_resource(emulator, "jobs", MANAGE_JOB)["template"]["template"]

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert writes_but_the_lease(emulator.control.transcript()) == []

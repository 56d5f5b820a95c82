"""[worker] broker = "redis" end to end through the CLI against the emulator: added to a
running deployment, plan shows the redis step and the env and egress it brings; up creates a
Memorystore for Redis instance and hands its URL to the service, the
jobs and the worker (CELERY_BROKER_URL, REDIS_URL) with Direct VPC egress on the default
network, a second up writes nothing, a size change patches it, destroy deletes it; kill -9
after its create and the next up converges with one instance."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from deployer.emulator.testing import EmulatorHandle
from tests.contract import check_transcript
from tests.test_scenarios import (
    GOLDEN,
    PROJECT,
    TENANT,
    assert_golden,
    normalise,
    start_up_until,
    writes_but_the_lease,
)
from tests.test_scenarios_worker import djdeploy, worker_env

pytestmark = pytest.mark.slow  # CLI scenarios: each runs whole deployments

REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
INSTANCE = f"{TENANT}-django-redis"
NAME = f"{PARENT}/instances/{INSTANCE}"
REDIS_TOML = """\
[worker]
command = "celery -A proj worker -l info"
broker = "redis"
"""
DIRECT_VPC = {
    "egress": "PRIVATE_RANGES_ONLY",
    "networkInterfaces": [{"network": "default", "subnetwork": "default"}],
}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "djdeploy.toml"
    path.write_text(REDIS_TOML)
    return path


def instances(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    api = emulator.discovery("redis", "v1").projects().locations().instances()
    found: list[dict[str, Any]] = api.list(parent=PARENT).execute().get("instances", [])
    return found


def run_resource(emulator: EmulatorHandle, kind: str, name: str) -> dict[str, Any]:
    api = getattr(emulator.discovery("run", "v2").projects().locations(), kind)()
    found: dict[str, Any] = api.get(name=f"{PARENT}/{kind}/{name}").execute()
    return found


def env_of(template: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in template["containers"][0]["env"]}


def redis_traffic(emulator: EmulatorHandle) -> dict[str, Any]:
    """The Redis API's part of the transcript (the golden files up-redis and destroy-redis:
    the rest is the other goldens')."""
    entries = emulator.control.transcript()
    return normalise([e for e in entries if e["path"].startswith(f"/v1/{PARENT}/instances")])


def test_add_plan_up_noop_resize_destroy(emulator: EmulatorHandle, config_file: Path) -> None:
    config_file.write_text(REDIS_TOML.replace('broker = "redis"\n', ""))
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert "vpcAccess" not in run_resource(emulator, "services", f"{TENANT}-django")["template"]

    config_file.write_text(REDIS_TOML)  # a broker added to a running deployment
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 2 and "redis" in output and "failed" not in output, output
    assert "template.containers[0].env" in output and "vpcAccess" in output, output

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert_golden(GOLDEN / "up-redis.json", redis_traffic(emulator))
    assert "url: https://" in output and "url: redis" not in output, output  # the site's
    [inst] = instances(emulator)
    assert inst["name"] == NAME and inst["state"] == "READY"
    assert (inst["tier"], inst["memorySizeGb"]) == ("BASIC", 1)
    assert inst["authorizedNetwork"] == f"projects/{PROJECT}/global/networks/default"
    assert inst["labels"]["djdeploy-tenant"] == TENANT
    url = f"redis://{inst['host']}:{inst['port']}/0"
    service = run_resource(emulator, "services", f"{TENANT}-django")
    pool = run_resource(emulator, "workerPools", f"{TENANT}-django-worker")
    # the jobs take the new env and egress when they next run (a new image): they ran already
    for template in (service["template"], pool["template"]):
        assert template["vpcAccess"] == DIRECT_VPC
        env = env_of(template)
        assert env["CELERY_BROKER_URL"] == env["REDIS_URL"] == url
    code, output = djdeploy(emulator, config_file, "status", "--tenant", TENANT, "--json")
    assert code == 0, output
    [redis] = [s for s in json.loads(output)["steps"] if s["step"] == "redis"]
    assert redis["state"] == "ok" and url in json.dumps(redis), redis
    assert check_transcript(emulator.control.transcript()) == []

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert writes_but_the_lease(emulator.control.transcript()) == []

    config_file.write_text(REDIS_TOML + "redis_memory_gb = 2\n")
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 2 and "memorySizeGb" in output, output
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    [inst] = instances(emulator)
    assert inst["memorySizeGb"] == 2 and inst["state"] == "READY"
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output

    config_file.write_text(REDIS_TOML + 'redis_tier = "standard"\nredis_memory_gb = 2\n')
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 1 and "cannot change on an existing instance" in output, output
    config_file.write_text(REDIS_TOML + "redis_memory_gb = 2\n")

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)
    assert code == 0, output
    assert_golden(GOLDEN / "destroy-redis.json", redis_traffic(emulator))
    assert instances(emulator) == []
    assert check_transcript(emulator.control.transcript()) == []


def test_kill_9_after_the_create_then_up_converges_with_one_instance(
    emulator: EmulatorHandle, config_file: Path, tmp_path: Path
) -> None:
    """The redis step's second read of its instance (after the create) is held 30 s, so a
    kill once the create was answered lands between the create and the step's end."""
    path = rf"^/v1/{NAME}$"
    emulator.control.add_fault(method="GET", path=path, action="delay", seconds=0, times=1)
    emulator.control.add_fault(method="GET", path=path, action="delay", seconds=30, times=1)
    proc = start_up_until(
        emulator,
        tmp_path,
        lambda e: e["method"] == "POST" and e["path"] == f"/v1/{PARENT}/instances",
        env=worker_env(config_file),
        timeout=300,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert len(instances(emulator)) == 1
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    [inst] = instances(emulator)
    assert inst["state"] == "READY"
    creates = [
        e
        for e in emulator.control.transcript()
        if e["method"] == "POST" and e["path"] == f"/v1/{PARENT}/instances"
    ]
    assert len(creates) == 1  # the next up adopted it: no second create


def test_removing_the_broker_deletes_the_instance(
    emulator: EmulatorHandle, config_file: Path
) -> None:
    """Without broker = "redis", redis-retired deletes the instance once the containers have
    moved off it: plan shows it (exit 2); a delete that fails (where a kill -9 could land) is
    finished by the next up; then nothing is left to change."""
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert len(instances(emulator)) == 1
    config_file.write_text(REDIS_TOML.replace('broker = "redis"\n', ""))

    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT, "--json")
    assert code == 2, output
    [retired] = [s for s in json.loads(output)["steps"] if s["step"] == "redis-retired"]
    assert retired["action"] == "delete" and "queued tasks are lost" in retired["reason"]
    assert [f["path"] for f in retired["fields"]] == [INSTANCE]

    emulator.control.add_fault(
        method="DELETE", path=rf"^/v1/{NAME}$", code=403, status="PERMISSION_DENIED", times=1
    )
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 1 and "redis-retired" in output, output
    [inst] = instances(emulator)
    assert inst["state"] == "READY"
    service = run_resource(emulator, "services", f"{TENANT}-django")
    assert "CELERY_BROKER_URL" not in env_of(service["template"])  # moved off it first

    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert instances(emulator) == []
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output
    assert check_transcript(emulator.control.transcript()) == []

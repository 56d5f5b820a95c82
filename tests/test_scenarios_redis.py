"""[worker] broker = "redis" end to end through the CLI against the emulator: added to a
running deployment, plan shows the redis steps and the env and egress they bring; up creates a
Memorystore for Redis instance with AUTH and hands its URL, AUTH string included, to the
service, the jobs and the worker (CELERY_BROKER_URL, REDIS_URL) through a secret, with Direct VPC
egress on the default network; a second up writes nothing, a size change patches it, destroy
deletes it and the secret; kill -9 after its create and the next up converges with one
instance. An instance made without AUTH is patched to it, and a new AUTH string reaches the app
as a new secret version. No output ever holds the AUTH string."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from deployer.emulator.testing import EmulatorHandle, gapic_options
from tests.contract import check_transcript
from tests.test_scenarios import (
    GOLDEN,
    PROJECT,
    TENANT,
    assert_golden,
    config_env,
    normalise,
    start_up_until,
    writes_but_the_lease,
)
from tests.test_scenarios_worker import djdeploy

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


SECRET = f"{TENANT}-django-redis-url"


def auth_string(emulator: EmulatorHandle) -> str:
    api = emulator.discovery("redis", "v1").projects().locations().instances()
    found: str = api.getAuthString(name=NAME).execute().get("authString", "")
    return found


def secret_value(emulator: EmulatorHandle, version: str) -> str:
    """A version of the URL secret, read through Secret Manager's own client."""
    from google.cloud import secretmanager

    client = secretmanager.SecretManagerServiceClient(**gapic_options(emulator.url))
    name = f"projects/{PROJECT}/secrets/{SECRET}/versions/{version}"
    return client.access_secret_version(name=name).payload.data.decode()


def secret_exists(emulator: EmulatorHandle) -> bool:
    secrets = emulator.discovery("secretmanager", "v1").projects().secrets()
    listed = secrets.list(parent=f"projects/{PROJECT}").execute().get("secrets", [])
    return any(s["name"].endswith(f"/secrets/{SECRET}") for s in listed)


def broker_refs(template: dict[str, Any]) -> set[tuple[str, str]]:
    """(secret, version) of CELERY_BROKER_URL and REDIS_URL: secret references, never values."""
    env = {e["name"]: e for e in template["containers"][0]["env"]}
    out = set()
    for name in ("CELERY_BROKER_URL", "REDIS_URL"):
        assert "value" not in env[name], name
        ref = env[name]["valueSource"]["secretKeyRef"]
        out.add((ref["secret"], ref["version"]))
    return out


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
    ours = (f"/v1/{PARENT}/instances", f"/v1/projects/{PROJECT}/secrets/{SECRET}")
    return normalise([e for e in entries if e["path"].startswith(ours)])


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
    assert inst["labels"]["djdeploy-tenant"] == TENANT and inst["authEnabled"] is True
    auth = auth_string(emulator)
    assert len(auth) == 36 and auth not in output
    url = f"redis://{inst['host']}:{inst['port']}/0"
    assert secret_value(emulator, "1") == f"redis://:{auth}@{inst['host']}:{inst['port']}/0"
    service = run_resource(emulator, "services", f"{TENANT}-django")
    pool = run_resource(emulator, "workerPools", f"{TENANT}-django-worker")
    # the jobs take the new env and egress when they next run (a new image): they ran already
    for template in (service["template"], pool["template"]):
        assert template["vpcAccess"] == DIRECT_VPC
        assert broker_refs(template) == {(SECRET, "1")}
    code, output = djdeploy(emulator, config_file, "status", "--tenant", TENANT, "--json")
    assert code == 0 and auth not in output, output
    steps = {s["step"]: s for s in json.loads(output)["steps"]}
    assert steps["redis"]["state"] == "ok" and url in json.dumps(steps["redis"]), steps["redis"]
    assert steps["redis-url"]["state"] == "ok" and steps["redis-url"]["info"]["auth"] == "on"
    assert auth not in json.dumps(emulator.control.transcript())
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
    assert instances(emulator) == [] and not secret_exists(emulator)
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
        env=config_env(config_file),
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
    steps = {s["step"]: s for s in json.loads(output)["steps"]}
    retired = steps["redis-retired"]
    assert retired["action"] == "delete" and "queued tasks are lost" in retired["reason"]
    for step in ("service", "worker"):  # the egress the broker brought goes with it
        assert "template.vpcAccess" in [f["path"] for f in steps[step]["fields"]], steps[step]
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
    assert "vpcAccess" not in service["template"]

    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert instances(emulator) == [] and not secret_exists(emulator)
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output
    assert check_transcript(emulator.control.transcript()) == []


def set_auth(emulator: EmulatorHandle, enabled: bool) -> None:
    """Turn AUTH off or on by hand (as gcloud redis instances update --[no-]enable-auth) and
    wait for the instance to be READY again."""
    api = emulator.discovery("redis", "v1").projects().locations().instances()
    api.patch(name=NAME, updateMask="authEnabled", body={"authEnabled": enabled}).execute()
    while api.get(name=NAME).execute()["state"] != "READY":
        emulator.clock.sleep(0.05)


def test_auth_is_turned_on_and_a_new_auth_string_reaches_the_app(
    emulator: EmulatorHandle, config_file: Path
) -> None:
    """An instance made without AUTH (redis_auth = false, or by an earlier djdeploy) is patched
    to AUTH by up, and the app moves to a secret version holding the AUTH string; AUTH toggled
    by hand (a new AUTH string) is noticed by plan and carried by up into a new version."""
    config_file.write_text(REDIS_TOML + "redis_auth = false\n")
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    [inst] = instances(emulator)
    assert inst["authEnabled"] is False and auth_string(emulator) == ""
    plain = f"redis://{inst['host']}:{inst['port']}/0"
    assert secret_value(emulator, "1") == plain

    config_file.write_text(REDIS_TOML)  # AUTH on: the default
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT, "--json")
    assert code == 2, output
    steps = {s["step"]: s for s in json.loads(output)["steps"]}
    assert [f["path"] for f in steps["redis"]["fields"]] == ["authEnabled"], steps["redis"]
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    first = auth_string(emulator)
    assert instances(emulator)[0]["authEnabled"] is True and first and first not in output
    assert secret_value(emulator, "2") == plain.replace("redis://", f"redis://:{first}@")
    service = run_resource(emulator, "services", f"{TENANT}-django")
    pool = run_resource(emulator, "workerPools", f"{TENANT}-django-worker")
    assert broker_refs(service["template"]) == broker_refs(pool["template"]) == {(SECRET, "2")}

    set_auth(emulator, False)
    set_auth(emulator, True)
    second = auth_string(emulator)
    assert second != first
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT, "--json")
    assert code == 2 and second not in output, output
    pending = {s["step"] for s in json.loads(output)["steps"] if s["action"] != "noop"}
    assert pending == {"redis-url"}, output  # the containers' new version: once it exists
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0 and second not in output, output
    assert secret_value(emulator, "3") == plain.replace("redis://", f"redis://:{second}@")
    service = run_resource(emulator, "services", f"{TENANT}-django")
    assert broker_refs(service["template"]) == {(SECRET, "3")}

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert writes_but_the_lease(emulator.control.transcript()) == []  # no version regenerated
    recorded = json.dumps(emulator.control.transcript())
    assert first not in recorded and second not in recorded
    assert check_transcript(emulator.control.transcript()) == []


def test_kill_9_after_the_url_version_then_up_adds_no_other(
    emulator: EmulatorHandle, config_file: Path, tmp_path: Path
) -> None:
    """A run killed once its addVersion was answered (before it could observe it) leaves the
    version; the next up finds it holding the URL and adds none (addVersion is not idempotent)."""
    add_version = f"/v1/projects/{PROJECT}/secrets/{SECRET}:addVersion"
    proc = start_up_until(
        emulator,
        tmp_path,
        lambda e: e["method"] == "POST" and e["path"] == add_version,
        env=config_env(config_file),
        timeout=300,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    adds = [e for e in emulator.control.transcript() if e["path"] == add_version]
    assert len(adds) == 1
    service = run_resource(emulator, "services", f"{TENANT}-django")
    assert broker_refs(service["template"]) == {(SECRET, "1")}

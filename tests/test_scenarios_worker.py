"""The [worker] end to end through the CLI against the emulator: plan shows the step, up stops
with one line while the broker secret is missing, then deploys a Cloud Run worker pool (the
service's image, env, secrets and volumes, the broker URL pinned to a version, no ports), a
second up writes nothing, a memory change updates it, kill -9 after its create and the next up
converges with one pool, a lost create answer is adopted, destroy removes it."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deployer.emulator import serviceusage
from deployer.emulator.testing import EmulatorHandle
from tests import test_scenarios as scenarios
from tests.contract import check_transcript
from tests.test_scenarios import PROJECT, TENANT, config_env, writes

pytestmark = pytest.mark.slow  # CLI scenarios: each runs whole deployments

REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
POOL = f"{TENANT}-django-worker"
BROKER = "redis://:s3cr3t-broker@10.0.0.3:6379/0"
WORKER_TOML = """\
[worker]
command = "celery -A proj worker -l info"
instances = 2
broker_secret = "broker-url"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "djdeploy.toml"
    path.write_text(WORKER_TOML)
    return path


def djdeploy(emulator: EmulatorHandle, config_file: Path, *args: str) -> tuple[int, str]:
    code, output = scenarios.djdeploy(emulator, *args, config=config_file)
    assert BROKER not in output
    return code, output


def add_broker_secret(emulator: EmulatorHandle) -> None:
    serviceusage.set_enabled(emulator.emu, PROJECT, "secretmanager.googleapis.com")
    secrets = emulator.discovery("secretmanager", "v1").projects().secrets()
    secrets.create(
        parent=f"projects/{PROJECT}",
        secretId="broker-url",
        body={"replication": {"automatic": {}}},
    ).execute()
    data = base64.b64encode(BROKER.encode()).decode()
    secrets.addVersion(
        parent=f"projects/{PROJECT}/secrets/broker-url", body={"payload": {"data": data}}
    ).execute()


def pools(emulator: EmulatorHandle) -> list[dict[str, Any]]:
    api = emulator.discovery("run", "v2").projects().locations().workerPools()
    listed: list[dict[str, Any]] = api.list(parent=PARENT).execute().get("workerPools", [])
    return listed


def service(emulator: EmulatorHandle) -> dict[str, Any]:
    api = emulator.discovery("run", "v2").projects().locations().services()
    found: dict[str, Any] = api.get(name=f"{PARENT}/services/{TENANT}-django").execute()
    return found


def env_of(template: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in template["containers"][0]["env"]}


def test_plan_up_noop_resize_destroy(emulator: EmulatorHandle, config_file: Path) -> None:
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 2 and "worker" in output, output

    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 1, output
    assert "secret broker-url does not exist" in output and "Traceback" not in output
    assert pools(emulator) == []

    add_broker_secret(emulator)
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    [pool] = pools(emulator)
    assert pool["name"] == f"{PARENT}/workerPools/{POOL}"
    assert pool["labels"]["managed-by"] == "djdeploy"
    assert pool["labels"]["djdeploy-tenant"] == TENANT
    assert pool["scaling"]["manualInstanceCount"] == 2
    assert pool["terminalCondition"]["state"] == "CONDITION_SUCCEEDED"
    container = pool["template"]["containers"][0]
    assert container["args"] == ["run", "celery", "-A", "proj", "worker", "-l", "info"]
    assert not container.get("ports") and "startupProbe" not in container
    svc = service(emulator)
    assert container["image"] == svc["template"]["containers"][0]["image"]
    assert pool["template"]["serviceAccount"] == svc["template"]["serviceAccount"]
    assert pool["template"]["volumes"] == svc["template"]["volumes"]
    env = env_of(pool["template"])
    broker = {"secretKeyRef": {"secret": "broker-url", "version": "1"}}
    assert env["CELERY_BROKER_URL"]["valueSource"] == broker
    assert env_of(svc["template"])["CELERY_BROKER_URL"]["valueSource"] == broker
    assert env["SECRET_KEY"] == env_of(svc["template"])["SECRET_KEY"]
    code, output = djdeploy(emulator, config_file, "status", "--tenant", TENANT, "--json")
    assert code == 0, output
    assert {s["step"]: s["state"] for s in json.loads(output)["steps"]}["worker"] == "ok"
    assert check_transcript(emulator.control.transcript()) == []

    emulator.control.clear_transcript()
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    sources = f"/b/{PROJECT}-djdeploy-sources/o"  # where a tenant's deploy lease is kept
    assert [w for w in writes(emulator.control.transcript()) if sources not in w] == []

    config_file.write_text(WORKER_TOML + 'memory = "1Gi"\n')
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 2 and "memory" in output, output
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    [pool] = pools(emulator)
    assert pool["template"]["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    assert pool["generation"] == "2"
    code, output = djdeploy(emulator, config_file, "plan", "--tenant", TENANT)
    assert code == 0 and "nothing to change" in output, output

    code, output = djdeploy(emulator, config_file, "destroy", "--tenant", TENANT)
    assert code == 0, output
    assert pools(emulator) == []
    assert check_transcript(emulator.control.transcript()) == []


def test_a_failed_revision_fails_up_in_one_line_and_the_next_up_deploys_it_again(
    emulator: EmulatorHandle, config_file: Path
) -> None:
    add_broker_secret(emulator)
    assert djdeploy(emulator, config_file, "up", "--tenant", TENANT)[0] == 0
    [good] = pools(emulator)
    ready = good["latestReadyRevision"].rsplit("/", 1)[-1]

    # a wrong command: its revision's container exits before it has started (what Cloud Run
    # reports; run locally, tests/emulator/test_local_run.py shows it from a real process)
    exited = "The user-provided container exited with code 1 before it started (instance 0)."
    emulator.control.fail("workerpool", POOL, exited)
    config_file.write_text(WORKER_TOML.replace("proj worker", "wrongname worker"))
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 1, output
    [line] = [line for line in output.splitlines() if "failed worker" in line]
    [pool] = pools(emulator)
    failed = pool["latestCreatedRevision"].rsplit("/", 1)[-1]
    assert line.endswith(
        f"failed worker: worker pool {POOL}: revision {failed} failed: The user-provided "
        "container exited with code 1 before it started (instance 0); revision "
        f"{ready} keeps running and the next up deploys it again; its logs: `djdeploy logs "
        f"--tenant {TENANT} --worker`"
    ), output
    assert "Traceback" not in output and "Logs URL" not in output
    assert pool["latestReadyRevision"] == good["latestReadyRevision"]
    code, output = djdeploy(emulator, config_file, "status", "--tenant", TENANT, "--json")
    assert {s["step"]: s["state"] for s in json.loads(output)["steps"]}["worker"] != "ok"

    # the next up rolls out a new revision of the same spec (the outcome is used up)
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    [pool] = pools(emulator)
    assert pool["latestReadyRevision"] not in (good["latestReadyRevision"], failed)
    assert "wrongname" in pool["template"]["containers"][0]["args"]
    code, output = djdeploy(emulator, config_file, "logs", "--tenant", TENANT, "--worker")
    assert code == 0, output
    assert check_transcript(emulator.control.transcript()) == []


def test_kill_9_after_the_create_then_up_converges_with_one_pool(
    emulator: EmulatorHandle, config_file: Path, tmp_path: Path
) -> None:
    """The worker step's second read of its pool (after the create) is held 30 s, so a kill once
    the create was answered lands between the create and the step's end."""
    add_broker_secret(emulator)
    path = rf"^/v2/{PARENT}/workerPools/{POOL}$"
    emulator.control.add_fault(method="GET", path=path, action="delay", seconds=0, times=1)
    emulator.control.add_fault(method="GET", path=path, action="delay", seconds=30, times=1)
    env = {**os.environ, **config_env(config_file)}
    cmd = [sys.executable, "-m", "deployer", "--endpoint", emulator.url, "--time-scale", "0.01"]
    proc = subprocess.Popen(
        [*cmd, "up", "--tenant", TENANT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if any(
            e["method"] == "POST" and e["path"].endswith("/workerPools")
            for e in emulator.control.transcript()
        ):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0]
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert len(pools(emulator)) == 1
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    [pool] = pools(emulator)
    assert pool["generation"] == "1"  # adopted as it was: nothing to change


def test_a_create_whose_answer_is_lost_leaves_one_pool(
    emulator: EmulatorHandle, config_file: Path
) -> None:
    add_broker_secret(emulator)
    emulator.control.add_fault(method="POST", path=r"/workerPools$", action="drop", times=1)
    code, output = djdeploy(emulator, config_file, "up", "--tenant", TENANT)
    assert code == 0, output
    assert [p["name"].rsplit("/", 1)[1] for p in pools(emulator)] == [POOL]


def test_the_python_api_deploys_and_destroys_the_worker(emulator: EmulatorHandle) -> None:
    from deployer import Config, Target, destroy, plan, up

    config = Config(TENANT, project=PROJECT, worker={"command": "celery -A proj worker"})
    target = Target(endpoint=emulator.url, time_scale=0.001)
    assert up(config, target=target).ok
    assert [p["name"].rsplit("/", 1)[1] for p in pools(emulator)] == [POOL]
    assert all(c.action.value == "noop" for c in plan(config, target=target))
    changes = {c.step: c.action.value for c in destroy(config, target=target)}
    assert changes["worker"] == "delete"
    assert pools(emulator) == []

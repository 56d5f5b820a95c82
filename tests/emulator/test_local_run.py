"""Cloud Run with local execution on: job executions and service revisions run container/sample
through the real entrypoint as processes, driven by the real google-cloud-run client.

The image is made here as a local build lays it out (deployer/emulator/local/image.py) from
container/sample with this test venv (which has django, gunicorn, psycopg and whitenoise), and
pushed into the emulated Artifact Registry under its digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from google.api_core import exceptions
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import run_v2, secretmanager

from deployer.clock import RealClock
from deployer.emulator import Emulator, policies, serve, serviceusage
from deployer.emulator.artifactregistry import push_image
from deployer.emulator.artifactregistry.repositories import Repositories
from deployer.emulator.local.image import ImageConfig, finish_image, image_root
from deployer.emulator.local.postgres import UNAVAILABLE, find_binaries
from deployer.emulator.local.processes import PROCESSES
from deployer.emulator.testing import EmulatorHandle, discovery_client, gapic_options

REPO = Path(__file__).resolve().parents[2]
PROJECT = "run-local-proj"
REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
SA = f"app-run@{PROJECT}.iam.gserviceaccount.com"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/repo/app:v1"
SECRET_VALUE = "sk-" + uuid.uuid4().hex
#: bounds on waiting for real processes (the waits end as soon as the condition holds)
POLL = DEFAULT_POLLING.with_delay(initial=0.05, maximum=0.5).with_timeout(180)
WAIT = 180.0

pytestmark = pytest.mark.slow


def build_image(emu: Emulator, ref: str = IMAGE) -> str:
    """Lay out container/sample as a finished local image under the emulator's state dir and
    push it to Artifact Registry as ``ref``; its digest."""
    assert emu.local.dir is not None
    digest = "sha256:" + hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    root = image_root(emu.local.dir, digest)
    root.mkdir(parents=True)
    shutil.copytree(REPO / "container" / "sample", root / "app")
    (root / "djdeploy").symlink_to(REPO / "container")
    (root / "venv").symlink_to(Path(sys.prefix))
    (root / "static").mkdir()
    finish_image(
        root,
        ImageConfig(
            entrypoint=["/opt/djdeploy/entrypoint.sh"],
            cmd=["serve"],
            env={
                "PATH": "/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONUNBUFFERED": "1",
                "PORT": "8080",
                "APP_HOME": "/app",
                "DJANGO_SETTINGS_MODULE": "djdeploy_runtime.settings",
                "MEDIA_ROOT": "/app/media",
                "STATIC_ROOT": "/srv/static",
            },
        ),
    )
    repos = Repositories(emu, PROJECT, REGION)
    if not emu.store.list("artifactregistry.repository", repos.name("repo")):
        repos.create("repo", {"format": "DOCKER"})
    push_image(emu, ref, digest, build_time=emu.clock())
    return digest


def setup_project(handle: EmulatorHandle) -> dict[str, Any]:
    emu = handle.emu
    for api in ("run", "secretmanager", "logging", "artifactregistry"):
        serviceusage.set_enabled(emu, PROJECT, f"{api}.googleapis.com")
    emu.store.put(policies.SA_KIND, SA, {"email": SA, "_visibleAt": 0.0})
    # a worker pool's instances have started at once (a test of one that fails sets it back)
    handle.control.set_latency(
        durations={"iam.secret_grant.propagation": 0.0, "run.workerpool.start": 0.0}
    )
    opts = gapic_options(handle.url)
    clients = {
        "services": run_v2.ServicesClient(**opts),
        "jobs": run_v2.JobsClient(**opts),
        "executions": run_v2.ExecutionsClient(**opts),
        "tasks": run_v2.TasksClient(**opts),
        "secrets": secretmanager.SecretManagerServiceClient(**opts),
        "logging": discovery_client(handle.url, "logging", "v2").entries(),
    }
    sm, res = clients["secrets"], f"projects/{PROJECT}/secrets/secret-key"
    sm.create_secret(
        parent=f"projects/{PROJECT}",
        secret_id="secret-key",
        secret={"replication": {"automatic": {}}},
    )
    sm.add_secret_version(parent=res, payload={"data": SECRET_VALUE.encode()})
    policy = sm.get_iam_policy(request={"resource": res})
    policy.bindings.add(role="roles/secretmanager.secretAccessor", members=[f"serviceAccount:{SA}"])
    sm.set_iam_policy(request={"resource": res, "policy": policy})
    build_image(emu)
    return clients


@pytest.fixture
def local(executing_emulator: EmulatorHandle) -> Iterator[dict[str, Any]]:
    yield setup_project(executing_emulator)


def container(args: list[str], **extra: Any) -> run_v2.Container:
    env = [
        run_v2.EnvVar(name=name, value=value)
        for name, value in {
            "DB_NAME": "app",
            "DB_USER": "app",
            "DB_HOST": f"/cloudsql/{PROJECT}:{REGION}:db",
            "ALLOWED_HOSTS": "app.example.run.app",
        }.items()
    ]
    env.append(
        run_v2.EnvVar(
            name="SECRET_KEY",
            value_source=run_v2.EnvVarSource(
                secret_key_ref=run_v2.SecretKeySelector(secret="secret-key", version="1")
            ),
        )
    )
    return run_v2.Container(
        image=IMAGE,
        args=args,
        env=env,
        volume_mounts=[run_v2.VolumeMount(name="cloudsql", mount_path="/cloudsql")],
        **extra,
    )


def volumes() -> list[run_v2.Volume]:
    return [
        run_v2.Volume(
            name="cloudsql",
            cloud_sql_instance=run_v2.CloudSqlInstance(instances=[f"{PROJECT}:{REGION}:db"]),
        )
    ]


def run_job(clients: dict[str, Any], job_id: str, args: list[str], **task: Any) -> Any:
    template = run_v2.ExecutionTemplate(
        template=run_v2.TaskTemplate(
            containers=[container(args)], volumes=volumes(), service_account=SA, **task
        )
    )
    clients["jobs"].create_job(
        parent=PARENT, job_id=job_id, job=run_v2.Job(template=template)
    ).result(polling=POLL)
    return clients["jobs"].run_job(name=f"{PARENT}/jobs/{job_id}")


def logged(clients: dict[str, Any], flt: str) -> list[dict[str, Any]]:
    body = {"resourceNames": [f"projects/{PROJECT}"], "filter": flt, "pageSize": 1000}
    return list(clients["logging"].list(body=body).execute().get("entries", []))


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def own_processes(emu: Emulator) -> list[int]:
    """Live processes whose environment names this emulator's state dir (its tasks and
    instances, and anything they forked)."""
    marker = str(emu.local.dir).encode() if emu.local.dir else b"\0"
    return processes_with(marker)


def processes_with(marker: bytes) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(int(proc.name))
    return found


@contextlib.contextmanager
def no_process_outlives(state: str) -> Iterator[None]:
    """Whatever the test asserts, no process of this state dir outlives it: a failure between a
    killed emulator and the one that reaps its instances would leave them running with their
    state dir deleted, and nothing would ever reap them."""
    try:
        yield
    finally:
        for pid in processes_with(state.encode()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- jobs ----------------------------------------------------------------------------------------


def test_job_execution_runs_the_entrypoint(
    local: dict[str, Any], executing_emulator: EmulatorHandle
) -> None:
    done = run_job(local, "check", ["manage", "check"]).result(polling=POLL)
    assert done.succeeded_count == 1 and done.failed_count == 0
    completed = next(c for c in done.conditions if c.type_ == "Completed")
    assert completed.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    [task] = local["tasks"].list_tasks(parent=done.name)
    assert task.last_attempt_result.exit_code == 0
    lines = logged(local, 'resource.type="cloud_run_job" AND resource.labels.job_name="check"')
    texts = [e.get("textPayload") or e.get("jsonPayload", {}).get("message", "") for e in lines]
    assert any("System check identified no issues" in t for t in texts), texts
    assert texts[-1] == "Container called exit(0)."
    assert own_processes(executing_emulator.emu) == []


def test_failing_task_fails_with_its_exit_code_and_logs(local: dict[str, Any]) -> None:
    op = run_job(local, "broken", ["manage", "nosuchcommand"], max_retries=1)
    with pytest.raises(exceptions.FailedPrecondition) as info:
        op.result(polling=POLL)
    execution = local["executions"].get_execution(name=op.metadata.name)
    eid = execution.name.rsplit("/", 1)[-1]
    assert info.value.message == f"Task {eid}-task0 failed with exit code 1."
    assert execution.failed_count == 1 and execution.retried_count == 1
    [task] = local["tasks"].list_tasks(parent=execution.name)
    assert task.retried == 1 and task.last_attempt_result.exit_code == 1
    execution_label = 'labels."run.googleapis.com/execution_name"'
    lines = logged(local, f'resource.labels.job_name="broken" AND {execution_label}="{eid}"')
    unknown = [e for e in lines if "Unknown command" in e.get("textPayload", "")]
    assert {e["labels"]["run.googleapis.com/task_attempt"] for e in unknown} == {"0", "1"}
    assert unknown[0]["logName"] == f"projects/{PROJECT}/logs/run.googleapis.com%2Fstderr"
    exits = [e for e in lines if e.get("textPayload") == "Container called exit(1)."]
    assert len(exits) == 2 and exits[0]["severity"] == "ERROR"


def test_task_timeout_kills_and_cancel_stops(
    local: dict[str, Any], executing_emulator: EmulatorHandle
) -> None:
    op = run_job(local, "sleepy", ["manage", "shell", "-c", "import time; time.sleep(600)"])
    with pytest.raises(exceptions.FailedPrecondition, match="timeout was reached"):
        run_job(
            local,
            "slow",
            ["manage", "shell", "-c", "import time; time.sleep(600)"],
            timeout="1s",
            max_retries=0,
        ).result(polling=POLL)
    eventually(lambda: bool(own_processes(executing_emulator.emu)), "the sleepy task to run")
    local["executions"].cancel_execution(name=op.metadata.name).result(polling=POLL)
    eventually(lambda: own_processes(executing_emulator.emu) == [], "the cancelled task to stop")


# -- services ------------------------------------------------------------------------------------


def deploy(clients: dict[str, Any], service_id: str, **extra: Any) -> Any:
    service = run_v2.Service(
        template=run_v2.RevisionTemplate(
            containers=[container([], **extra)], volumes=volumes(), service_account=SA
        )
    )
    s = clients["services"]
    try:
        current = s.get_service(name=f"{PARENT}/services/{service_id}")
    except exceptions.NotFound:
        return s.create_service(parent=PARENT, service=service, service_id=service_id)
    current.template = service.template
    return s.update_service(service=current)


def health(emu: Emulator, revision: str) -> int:
    address = emu.local.revision_address(revision)
    assert address is not None, revision
    host, port = address
    with urllib.request.urlopen(f"http://{host}:{port}/health/", timeout=30) as response:
        return int(response.status)


def test_revision_serves_and_a_failing_probe_keeps_the_old_one(
    local: dict[str, Any], executing_emulator: EmulatorHandle
) -> None:
    emu = executing_emulator.emu
    # generous: gunicorn starts in seconds on a loaded machine
    probe = run_v2.Probe(
        http_get=run_v2.HTTPGetAction(path="/health/"), period_seconds=1, failure_threshold=240
    )
    first = deploy(local, "web", startup_probe=probe).result(polling=POLL)
    assert health(emu, first.latest_ready_revision) == 200
    assert emu.local.processes is not None and emu.local.dir is not None
    [instance] = emu.local.processes.running()
    cmdline = Path(f"/proc/{instance.pid}/cmdline").read_bytes()
    assert SECRET_VALUE.encode() not in cmdline
    assert SECRET_VALUE.encode() not in b"".join(
        p.read_bytes() for p in (emu.local.dir / PROCESSES).glob("*.json")
    )

    # an instance that dies is started again (and answers once its startup probe passes)
    os.killpg(instance.pid, signal.SIGKILL)
    eventually(
        lambda: (
            [p.pid for p in emu.local.processes.running()] not in ([], [instance.pid])
            and emu.local.revision_address(first.latest_ready_revision) is not None
        ),
        "the instance's restart",
    )
    assert health(emu, first.latest_ready_revision) == 200

    bad = run_v2.Probe(
        http_get=run_v2.HTTPGetAction(path="/nowhere/"), period_seconds=1, failure_threshold=2
    )
    with pytest.raises(exceptions.FailedPrecondition) as info:
        deploy(local, "web", startup_probe=bad).result(polling=POLL)
    assert "failed the configured startup probe checks" in info.value.message
    assert health(emu, first.latest_ready_revision) == 200
    svc = local["services"].get_service(name=f"{PARENT}/services/web")
    assert svc.latest_ready_revision == first.latest_ready_revision
    assert len(emu.local.processes.running()) == 1

    local["services"].delete_service(name=f"{PARENT}/services/web").result(polling=POLL)
    eventually(lambda: own_processes(emu) == [], "the service's processes to stop")
    assert emu.local.revision_address(first.latest_ready_revision) is None


def test_traffic_moved_back_to_a_stopped_revision_is_served_once_the_deploy_is_done(
    local: dict[str, Any], executing_emulator: EmulatorHandle
) -> None:
    """A rollback (traffic pinned to an older revision, whose instance stopped when it lost
    the traffic): the update's operation ends once that instance answers, never before."""
    emu = executing_emulator.emu
    probe = run_v2.Probe(
        http_get=run_v2.HTTPGetAction(path="/health/"), period_seconds=1, failure_threshold=240
    )
    first = deploy(local, "web", startup_probe=probe).result(polling=POLL)
    second = deploy(local, "web", startup_probe=probe, working_dir="/app").result(polling=POLL)
    old, new = first.latest_ready_revision, second.latest_ready_revision
    assert old != new
    eventually(lambda: emu.local.revision_address(old) is None, "the old instance to stop")

    services = local["services"]
    svc = services.get_service(name=f"{PARENT}/services/web")
    pin = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
    svc.traffic = [run_v2.TrafficTarget(type_=pin, revision=old.rsplit("/", 1)[-1], percent=100)]
    services.update_service(service=svc).result(polling=POLL)
    assert emu.local.revision_address(old) is not None  # answering as the operation ended
    assert health(emu, old) == 200


# -- worker pools --------------------------------------------------------------------------------

#: a worker: says it is ready on stdout, leaves a line in the bucket (its revision, whether it
#: reads the secret and sees /cloudsql), then waits for work
_WORKER = (
    "import os, pathlib, uuid, time\n"
    "seen = [os.environ['CLOUD_RUN_REVISION'], str(bool(os.environ.get('SECRET_KEY'))),\n"
    "        str(os.path.isdir(os.environ['CLOUDSQL']))]\n"
    "part = pathlib.Path(os.environ['MEDIA']) / ('.' + uuid.uuid4().hex)\n"
    "part.write_text(' '.join(seen))\n"
    "part.rename(part.with_name(part.name[1:]))  # whole, never half-written, when seen\n"
    "print('worker ready', flush=True)\n"
    "time.sleep(600)\n"
)


def worker_pool(version: str, *, count: int) -> run_v2.WorkerPool:
    worker = container(["run", "python", "-c", _WORKER])
    for name, value in {"MEDIA": "/app/media", "CLOUDSQL": "/cloudsql", "V": version}.items():
        worker.env.append(run_v2.EnvVar(name=name, value=value))
    worker.volume_mounts.append(run_v2.VolumeMount(name="media", mount_path="/app/media"))
    media = run_v2.Volume(name="media", gcs=run_v2.GCSVolumeSource(bucket="media-bucket"))
    return run_v2.WorkerPool(
        scaling=run_v2.WorkerPoolScaling(manual_instance_count=count),
        template=run_v2.WorkerPoolRevisionTemplate(
            containers=[worker], volumes=[*volumes(), media], service_account=SA
        ),
    )


def test_worker_pool_instances_run_and_a_new_revision_replaces_them(
    local: dict[str, Any], executing_emulator: EmulatorHandle
) -> None:
    emu = executing_emulator.emu
    assert emu.local.dir is not None and emu.local.processes is not None
    supervisor = emu.local.processes
    pools = run_v2.WorkerPoolsClient(**gapic_options(executing_emulator.url))
    name = f"{PARENT}/workerPools/worker"
    bucket = emu.local.dir / "buckets" / "media-bucket"

    def seen() -> list[str]:
        if not bucket.is_dir():
            return []
        return sorted(p.read_text() for p in bucket.iterdir() if not p.name.startswith("."))

    def running() -> list[str]:
        return sorted(p.spec.what for p in supervisor.running())

    first = pools.create_worker_pool(
        parent=PARENT, worker_pool_id="worker", worker_pool=worker_pool("1", count=2)
    ).result(polling=POLL)
    rev1 = first.latest_ready_revision
    eventually(lambda: len(seen()) == 2, "both instances to start")
    short1 = rev1.rsplit("/", 1)[-1]
    assert seen() == [f"{short1} True True"] * 2
    assert running() == [f"{rev1}/instances/0", f"{rev1}/instances/1"]
    flt = f'resource.type="cloud_run_worker_pool" AND resource.labels.revision_name="{short1}"'
    eventually(
        lambda: [e.get("textPayload") for e in logged(local, flt)].count("worker ready") == 2,
        "the instances' lines in Cloud Logging",
    )

    # a new template: its instances replace the old ones (one, as the count now says)
    current = pools.get_worker_pool(name=name)
    current.template = worker_pool("2", count=1).template
    current.scaling.manual_instance_count = 1
    rev2 = pools.update_worker_pool(worker_pool=current).result(polling=POLL).latest_ready_revision
    assert rev2 != rev1
    eventually(lambda: running() == [f"{rev2}/instances/0"], "the new revision's instance alone")
    eventually(lambda: len(seen()) == 3, "the new instance to start")

    pools.delete_worker_pool(name=name).result(polling=POLL)
    eventually(lambda: own_processes(emu) == [], "the worker pool's processes to stop")


#: a worker whose command is wrong: it says why on stderr and exits at once
_BROKEN = "import sys; print('no module named wrongname', file=sys.stderr); sys.exit(2)"


def test_a_worker_that_exits_at_once_fails_its_revision_and_the_last_ready_one_runs_on(
    local: dict[str, Any], executing_emulator: EmulatorHandle
) -> None:
    emu = executing_emulator.emu
    assert emu.local.processes is not None
    supervisor = emu.local.processes
    pools = run_v2.WorkerPoolsClient(**gapic_options(executing_emulator.url))
    name = f"{PARENT}/workerPools/worker"
    # the good revision has started at once (setup_project); the broken one could never stay
    # up long enough: only its exit decides (no timing window either way)
    rev1 = (
        pools.create_worker_pool(
            parent=PARENT, worker_pool_id="worker", worker_pool=worker_pool("1", count=1)
        )
        .result(polling=POLL)
        .latest_ready_revision
    )
    executing_emulator.control.set_latency(durations={"run.workerpool.start": 1e9})

    current = pools.get_worker_pool(name=name)
    current.template = worker_pool("2", count=1).template
    current.template.containers[0].args = ["run", "python", "-c", _BROKEN]
    with pytest.raises(exceptions.FailedPrecondition) as info:
        pools.update_worker_pool(worker_pool=current).result(polling=POLL)
    failed = pools.get_worker_pool(name=name)
    bad = failed.latest_created_revision.rsplit("/", 1)[-1]
    assert info.value.message.startswith(
        f"Revision '{bad}' is not ready and cannot serve traffic. The user-provided container "
        "exited with code 2 before it started (instance 0)."
    )
    assert f"revision_name/{bad}" in info.value.message  # the Logs URL
    assert failed.terminal_condition.state == run_v2.Condition.State.CONDITION_FAILED
    assert failed.terminal_condition.message == info.value.message
    assert failed.latest_ready_revision == rev1
    revisions = run_v2.RevisionsClient(**gapic_options(executing_emulator.url))
    conditions = {
        c.type_: c for c in revisions.get_revision(name=failed.latest_created_revision).conditions
    }
    assert conditions["Ready"].state == run_v2.Condition.State.CONDITION_FAILED
    assert conditions["ContainerHealthy"].message == info.value.message
    # its lines and exit are in Cloud Logging; its instance stopped, the ready one runs on
    flt = f'resource.type="cloud_run_worker_pool" AND resource.labels.revision_name="{bad}"'

    def texts() -> list[str]:
        return [e.get("textPayload", "") for e in logged(local, flt)]

    eventually(lambda: "no module named wrongname" in texts(), "the broken worker's line")
    assert "Container called exit(2)." in texts()
    eventually(
        lambda: [p.spec.what for p in supervisor.running()] == [f"{rev1}/instances/0"],
        "the ready revision's instance alone",
    )

    pools.delete_worker_pool(name=name).result(polling=POLL)
    eventually(lambda: own_processes(emu) == [], "the worker pool's processes to stop")


def test_close_stops_and_a_killed_emulator_is_reaped() -> None:
    """A state dir served by an emulator in another process that is killed with SIGKILL: its
    instances (a revision's, a worker pool's) keep running until the next emulator starts on
    that dir, which reaps them, serves the revision and runs the worker pool again."""
    with tempfile.TemporaryDirectory(prefix="djd-run-") as state, no_process_outlives(state):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, state],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        revision = child.stdout.readline().strip()
        assert revision.startswith(PARENT), revision
        orphans = processes_with(state.encode())
        assert orphans
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert processes_with(state.encode())  # the instance outlived its emulator

        emu = Emulator(state_dir=state, time_scale=0.001, execute=True)
        try:
            # reaped at the start (SIGKILL: gone once the kernel has delivered it)
            eventually(
                lambda: not any(pid in orphans for pid in processes_with(state.encode())),
                "the orphans to be reaped",
            )
            eventually(lambda: emu.local.revision_address(revision) is not None, "the revival")
            assert health(emu, revision) == 200
            supervisor = emu.local.processes
            assert supervisor is not None
            eventually(
                lambda: any("/workerPools/" in p.spec.what for p in supervisor.running()),
                "the worker pool's instance to run again",
            )
        finally:
            emu.close()
        assert processes_with(state.encode()) == []


#: a second emulator process: deploy a service on the state dir, print its revision, wait
_CHILD = """
import sys, time
from deployer.emulator import Emulator
from google.cloud import run_v2
from deployer.emulator.testing import serve, EmulatorHandle, gapic_options
from tests.emulator.test_local_run import deploy, setup_project, worker_pool, POLL, PARENT

emu = Emulator(state_dir=sys.argv[1], time_scale=0.001, execute=True)
running = serve(emu)
clients = setup_project(EmulatorHandle(running.url, running.control, emu, running, None))
done = deploy(clients, "web").result(polling=POLL)
pools = run_v2.WorkerPoolsClient(**gapic_options(running.url))
pools.create_worker_pool(
    parent=PARENT, worker_pool_id="worker", worker_pool=worker_pool("1", count=1)
).result(polling=POLL)
# its instance starts in a thread: recorded once the supervisor lists it (a kill before that
# would leave a process no record names)
deadline = time.monotonic() + 180
while not any("/workerPools/" in p.spec.what for p in emu.local.processes.running()):
    assert time.monotonic() < deadline, "the worker pool's instance never started"
    time.sleep(0.05)
print(done.latest_ready_revision, flush=True)
time.sleep(3600)
"""


# -- with Cloud SQL ------------------------------------------------------------------------------


@pytest.mark.skipif(find_binaries() is None, reason=UNAVAILABLE)
def test_migrate_job_reaches_the_instance_through_cloudsql(
    local: dict[str, Any], executing_emulator: EmulatorHandle
) -> None:
    """The /cloudsql volume is the instance's real socket: the sample's migrations land in the
    instance's database, with the password from Secret Manager."""
    emu = executing_emulator.emu
    serviceusage.set_enabled(emu, PROJECT, "sqladmin.googleapis.com")
    sql = executing_emulator.discovery("sqladmin", "v1")
    password = "dbpw-" + uuid.uuid4().hex

    def wait(op: dict[str, Any]) -> None:
        deadline = time.monotonic() + WAIT
        while op["status"] != "DONE":
            assert time.monotonic() < deadline, op
            time.sleep(0.05)
            op = sql.operations().get(project=PROJECT, operation=op["name"]).execute()
        assert "error" not in op, op

    body = {"name": "db", "region": REGION, "databaseVersion": "POSTGRES_15"}
    body["settings"] = {"tier": "db-f1-micro"}
    wait(sql.instances().insert(project=PROJECT, body=body).execute())
    wait(sql.databases().insert(project=PROJECT, instance="db", body={"name": "app"}).execute())
    user = {"name": "app", "password": password}
    wait(sql.users().insert(project=PROJECT, instance="db", body=user).execute())
    sm, res = local["secrets"], f"projects/{PROJECT}/secrets/db-password"
    sm.create_secret(
        parent=f"projects/{PROJECT}",
        secret_id="db-password",
        secret={"replication": {"automatic": {}}},
    )
    sm.add_secret_version(parent=res, payload={"data": password.encode()})
    policy = sm.get_iam_policy(request={"resource": res})
    policy.bindings.add(role="roles/secretmanager.secretAccessor", members=[f"serviceAccount:{SA}"])
    sm.set_iam_policy(request={"resource": res, "policy": policy})

    task = container(["migrate"])
    task.env.append(
        run_v2.EnvVar(
            name="DB_PASSWORD",
            value_source=run_v2.EnvVarSource(
                secret_key_ref=run_v2.SecretKeySelector(secret="db-password", version="1")
            ),
        )
    )
    template = run_v2.ExecutionTemplate(
        template=run_v2.TaskTemplate(containers=[task], volumes=volumes(), service_account=SA)
    )
    local["jobs"].create_job(
        parent=PARENT, job_id="migrate", job=run_v2.Job(template=template)
    ).result(polling=POLL)
    done = local["jobs"].run_job(name=f"{PARENT}/jobs/migrate").result(polling=POLL)
    assert done.succeeded_count == 1

    layout = emu.local.cloudsql_dir()
    assert layout is not None
    with psycopg.connect(
        host=str(layout / f"{PROJECT}:{REGION}:db"),
        user="app",
        password=password,
        dbname="app",
    ) as conn:
        applied = conn.execute("SELECT count(*) FROM django_migrations").fetchone()
    assert applied is not None and applied[0] > 0


_ONCE = (
    "import os, pathlib, sys, time\n"
    "marker = pathlib.Path(os.environ['MARKER'])\n"
    "if marker.exists(): sys.exit(0)\n"
    "marker.write_text('started')\n"
    "time.sleep(600)\n"
)


def test_an_execution_interrupted_by_a_restart_runs_again() -> None:
    """An emulator stopped mid-execution kills its task; the next one on the state dir runs the
    task again when the execution's operation next completes (here: it finds the marker the
    first attempt left in the bucket's directory, and succeeds)."""
    with tempfile.TemporaryDirectory(prefix="djd-run-") as state:
        emu = Emulator(state_dir=state, time_scale=0.001, execute=True)
        running = serve(emu)
        handle = EmulatorHandle(running.url, running.control, emu, running, RealClock())
        clients = setup_project(handle)
        task = container(["manage", "shell", "-c", _ONCE])
        task.env.append(run_v2.EnvVar(name="MARKER", value="/app/media/marker"))
        task.volume_mounts.append(run_v2.VolumeMount(name="media", mount_path="/app/media"))
        media = run_v2.Volume(name="media", gcs=run_v2.GCSVolumeSource(bucket="media-bucket"))
        template = run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(
                containers=[task], volumes=[*volumes(), media], service_account=SA
            )
        )
        clients["jobs"].create_job(
            parent=PARENT, job_id="once", job=run_v2.Job(template=template)
        ).result(polling=POLL)
        op = clients["jobs"].run_job(name=f"{PARENT}/jobs/once")
        marker = Path(state) / "buckets" / "media-bucket" / "marker"
        name = op.metadata.name
        executions = clients["executions"]
        # operations complete at requests: polling starts the tasks
        eventually(
            lambda: executions.get_execution(name=name).reconciling and marker.exists(),
            "the first attempt to start",
        )
        running.stop()
        emu.close()
        assert processes_with(state.encode()) == []

        emu = Emulator(state_dir=state, time_scale=0.001, execute=True)
        running = serve(emu)
        try:
            executions = run_v2.ExecutionsClient(**gapic_options(running.url))
            eventually(
                lambda: not executions.get_execution(name=name).reconciling, "the second run"
            )
            assert executions.get_execution(name=name).succeeded_count == 1
        finally:
            running.stop()
            emu.close()
        assert processes_with(state.encode()) == []

"""Cloud Run v2 worker pools in the emulator through the real run_v2.WorkerPoolsClient (REST),
every exchange checked against the discovery document."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import run_v2

from deployer.emulator import serviceusage
from deployer.emulator.testing import gapic_options
from tests.contract import check_transcript
from tests.emulator.test_run import PARENT, POLL, PROJECT, to_dict


@pytest.fixture
def pools(emulator: Any) -> Any:
    serviceusage.set_enabled(emulator.emu, PROJECT, "run.googleapis.com")
    yield run_v2.WorkerPoolsClient(**gapic_options(emulator.url))
    assert check_transcript(emulator.emu.transcript.entries()) == []


@pytest.fixture
def revisions(emulator: Any) -> Any:
    return run_v2.RevisionsClient(**gapic_options(emulator.url))


def pool(image: str = "gcr.io/demo/app:1", *, count: int | None = 2) -> run_v2.WorkerPool:
    scaling = run_v2.WorkerPoolScaling(manual_instance_count=count) if count is not None else None
    return run_v2.WorkerPool(
        labels={"managed-by": "djdeploy"},
        scaling=scaling,
        template=run_v2.WorkerPoolRevisionTemplate(
            containers=[run_v2.Container(image=image, args=["run", "celery", "worker"])]
        ),
    )


def test_worker_pool_lifecycle(pools: Any, revisions: Any) -> None:
    op = pools.create_worker_pool(parent=PARENT, worker_pool=pool(), worker_pool_id="bg")
    assert to_dict(op.metadata)["terminalCondition"]["state"] == "CONDITION_RECONCILING"
    done = op.result(polling=POLL)
    assert done.reconciling is False and done.observed_generation == done.generation == 1
    assert done.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    assert done.latest_ready_revision == done.latest_created_revision
    assert "/workerPools/bg/revisions/bg-00001-" in done.latest_created_revision
    assert done.scaling.manual_instance_count == 2
    d = to_dict(done)
    container = d["template"]["containers"][0]
    assert container["ports"] == [] and "startupProbe" not in container  # no defaults added
    assert container["resources"]["limits"] == {"cpu": "1000m", "memory": "512Mi"}
    assert d["etag"]
    # none sent: all instances on the latest ready revision, and that took effect
    latest = [{"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST", "revision": "", "percent": 100}]
    assert d["instanceSplits"] == d["instanceSplitStatuses"] == latest

    with pytest.raises(exceptions.Conflict):
        pools.create_worker_pool(parent=PARENT, worker_pool=pool(), worker_pool_id="bg")

    # a scaling-only change: a new generation, no new revision
    current = pools.get_worker_pool(name=done.name)
    current.scaling.manual_instance_count = 3
    scaled = pools.update_worker_pool(worker_pool=current).result(polling=POLL)
    assert scaled.generation == 2 and scaled.scaling.manual_instance_count == 3
    assert scaled.latest_created_revision == done.latest_created_revision
    # a template change: a new revision
    current = pools.get_worker_pool(name=done.name)
    current.template.containers[0].image = "gcr.io/demo/app:2"
    moved = pools.update_worker_pool(worker_pool=current).result(polling=POLL)
    assert "bg-00003-" in moved.latest_ready_revision
    assert [p.name for p in pools.list_worker_pools(parent=PARENT)] == [done.name]

    # its revisions are resources: Ready, newest first; the running one cannot be deleted
    listed = list(revisions.list_revisions(parent=done.name))
    assert [r.name for r in listed] == [moved.latest_ready_revision, done.latest_ready_revision]
    ready = revisions.get_revision(name=moved.latest_ready_revision)
    assert {c.type_: c.state for c in ready.conditions} == dict.fromkeys(
        ("Ready", "ResourcesAvailable", "ContainerHealthy"),
        run_v2.Condition.State.CONDITION_SUCCEEDED,
    )
    assert "cloud_run_worker_pool/worker_pool_name/bg/revision_name/" in ready.log_uri
    assert ready.containers[0].image == "gcr.io/demo/app:2" and not ready.service
    with pytest.raises(exceptions.BadRequest, match="serving traffic"):
        revisions.delete_revision(name=moved.latest_ready_revision)
    revisions.delete_revision(name=done.latest_ready_revision).result(polling=POLL)
    with pytest.raises(exceptions.NotFound):
        revisions.get_revision(name=done.latest_ready_revision)

    stale = pools.get_worker_pool(name=done.name)
    stale.etag = '"stale"'
    with pytest.raises(exceptions.Conflict):  # 409 ABORTED
        pools.update_worker_pool(worker_pool=stale)

    policy = pools.get_iam_policy(request={"resource": done.name})
    policy.bindings.add(role="roles/run.developer", members=["user:a@example.com"])
    written = pools.set_iam_policy(request={"resource": done.name, "policy": policy})
    assert written.bindings[0].members == ["user:a@example.com"]
    assert pools.test_iam_permissions(
        request={"resource": done.name, "permissions": ["run.workerpools.get"]}
    ).permissions == ["run.workerpools.get"]

    pools.delete_worker_pool(name=done.name).result(polling=POLL)
    with pytest.raises(exceptions.NotFound):
        pools.get_worker_pool(name=done.name)
    with pytest.raises(exceptions.NotFound):
        pools.delete_worker_pool(name=done.name)


def test_defaults_and_checks(pools: Any) -> None:
    done = pools.create_worker_pool(
        parent=PARENT, worker_pool=pool(count=None), worker_pool_id="one"
    ).result(polling=POLL)
    assert done.scaling.manual_instance_count == 1
    stopped = pools.create_worker_pool(
        parent=PARENT, worker_pool=pool(count=0), worker_pool_id="stopped"
    ).result(polling=POLL)
    assert stopped.scaling.manual_instance_count == 0  # sent (an optional field), not defaulted
    with_port = pool()
    with_port.template.containers[0].ports = [run_v2.ContainerPort(container_port=8080)]
    with pytest.raises(exceptions.BadRequest, match="ports"):
        pools.create_worker_pool(parent=PARENT, worker_pool=with_port, worker_pool_id="web")
    with pytest.raises(exceptions.BadRequest):
        pools.create_worker_pool(parent=PARENT, worker_pool=pool(), worker_pool_id="Bad_Name")
    with pytest.raises(exceptions.NotFound):
        pools.get_worker_pool(name=f"{PARENT}/workerPools/none")


def test_a_missing_secret_fails_the_deploy(pools: Any, revisions: Any) -> None:
    bad = pool()
    bad.template.containers[0].env = [
        run_v2.EnvVar(
            name="CELERY_BROKER_URL",
            value_source=run_v2.EnvVarSource(
                secret_key_ref=run_v2.SecretKeySelector(secret="broker", version="1")
            ),
        )
    ]
    op = pools.create_worker_pool(parent=PARENT, worker_pool=bad, worker_pool_id="bg")
    with pytest.raises(exceptions.GoogleAPICallError, match="broker"):
        op.result(polling=POLL)
    failed = pools.get_worker_pool(name=f"{PARENT}/workerPools/bg")
    assert failed.terminal_condition.state == run_v2.Condition.State.CONDITION_FAILED
    assert not failed.latest_ready_revision
    assert len(failed.instance_splits) == 1 and not failed.instance_split_statuses  # none yet
    revision = revisions.get_revision(name=failed.latest_created_revision)
    conditions = {c.type_: c for c in revision.conditions}
    assert conditions["Ready"].state == run_v2.Condition.State.CONDITION_FAILED
    assert conditions["ContainerHealthy"].message == failed.terminal_condition.message
    assert failed.terminal_condition.message.startswith(
        f"Revision '{revision.name.rsplit('/', 1)[-1]}' is not ready"
    )


def test_probes_and_instance_splits_are_accepted(pools: Any, revisions: Any) -> None:
    """Google accepts startup (HTTP, TCP, gRPC) and liveness (HTTP, gRPC) probes on a worker
    pool's containers (its "Configure container health checks for worker pools" page), and
    instance splits; the emulator keeps them as sent (it adds no probe of its own)."""
    first = pools.create_worker_pool(
        parent=PARENT, worker_pool=pool(), worker_pool_id="probed"
    ).result(polling=POLL)
    with_probes = pool("gcr.io/demo/app:2")
    container = with_probes.template.containers[0]
    container.startup_probe = run_v2.Probe(
        period_seconds=3, failure_threshold=3, tcp_socket=run_v2.TCPSocketAction(port=8080)
    )
    container.liveness_probe = run_v2.Probe(
        period_seconds=10, http_get=run_v2.HTTPGetAction(path="/", port=8080)
    )
    old = first.latest_ready_revision.rsplit("/", 1)[-1]
    with_probes.instance_splits = [
        run_v2.InstanceSplit(
            type_=run_v2.InstanceSplitAllocationType.INSTANCE_SPLIT_ALLOCATION_TYPE_REVISION,
            revision=old,
            percent=100,
        )
    ]
    with_probes.name = first.name
    done = pools.update_worker_pool(worker_pool=with_probes).result(polling=POLL)
    kept = to_dict(done)
    probes = kept["template"]["containers"][0]
    assert probes["startupProbe"]["tcpSocket"] == {"port": 8080}
    assert probes["livenessProbe"]["httpGet"] == {"path": "/", "port": 8080, "httpHeaders": []}
    split = {"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_REVISION", "revision": old, "percent": 100}
    assert kept["instanceSplits"] == kept["instanceSplitStatuses"] == [split]
    with pytest.raises(exceptions.BadRequest, match="serving traffic"):  # a split names it
        revisions.delete_revision(name=first.latest_ready_revision)

    bad = pool()
    bad.template.containers[0].startup_probe = run_v2.Probe(
        timeout_seconds=5, period_seconds=3, tcp_socket=run_v2.TCPSocketAction(port=8080)
    )
    with pytest.raises(exceptions.BadRequest) as refused:
        pools.create_worker_pool(parent=PARENT, worker_pool=bad, worker_pool_id="bad")
    where = ": spec.template.spec.containers[0].startup_probe.timeout_seconds: must be less than"
    assert where in refused.value.message  # the revision template's path, not a job's

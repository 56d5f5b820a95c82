"""Cloud Run Admin v2 emulator through the real run_v2 GAPIC clients (REST), every exchange
checked against the discovery document."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import run_v2, secretmanager

from deployer.emulator import policies, serviceusage
from deployer.emulator.errors import ApiError
from deployer.emulator.run import services
from deployer.emulator.testing import gapic_options
from tests.contract import check_transcript

PROJECT = "run-emu-proj"
REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
POLL = DEFAULT_POLLING.with_delay(initial=0.005, maximum=0.05).with_timeout(20)
SA = f"app-run@{PROJECT}.iam.gserviceaccount.com"
AR_IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/repo/app:v1"


@pytest.fixture
def clients(emulator: Any) -> dict[str, Any]:
    serviceusage.set_enabled(emulator.emu, PROJECT, "run.googleapis.com")
    serviceusage.set_enabled(emulator.emu, PROJECT, "secretmanager.googleapis.com")
    opts = gapic_options(emulator.url)
    yield {
        "services": run_v2.ServicesClient(**opts),
        "jobs": run_v2.JobsClient(**opts),
        "executions": run_v2.ExecutionsClient(**opts),
        "revisions": run_v2.RevisionsClient(**opts),
        "secrets": secretmanager.SecretManagerServiceClient(**opts),
    }
    assert check_transcript(emulator.emu.transcript.entries()) == []


def to_dict(m: Any) -> dict[str, Any]:
    return type(m).to_dict(m, preserving_proto_field_name=False, use_integers_for_enums=False)


def service(image: str = "gcr.io/demo/app:1", **template: Any) -> run_v2.Service:
    return run_v2.Service(
        labels={"managed-by": "djdeploy"},
        ingress=run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY,
        template=run_v2.RevisionTemplate(
            containers=[run_v2.Container(image=image, **template.pop("container", {}))],
            **template,
        ),
    )


def test_service_lifecycle(clients: dict[str, Any], emulator: Any) -> None:
    s = clients["services"]
    op = s.create_service(parent=PARENT, service=service(), service_id="web")
    first = to_dict(op.metadata)
    assert first["reconciling"] is True
    assert first["terminalCondition"]["state"] == "CONDITION_RECONCILING"
    done = op.result(polling=POLL)
    assert done.reconciling is False
    assert done.observed_generation == done.generation == 1
    assert done.latest_ready_revision == done.latest_created_revision
    assert done.latest_created_revision.endswith(
        "/revisions/web-00001-" + done.latest_created_revision[-3:]
    )
    number = emulator.emu.store.get("project", PROJECT)["projectNumber"]
    assert done.urls[0] == f"https://web-{number}.{REGION}.run.app"
    assert done.uri.endswith("-ew.a.run.app") and done.urls[1] == done.uri
    d = to_dict(done)
    assert d["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    c = d["template"]["containers"][0]
    assert c["ports"] == [{"name": "http1", "containerPort": 8080}]  # server defaults
    assert d["template"]["maxInstanceRequestConcurrency"] == 80
    assert d["traffic"][0]["percent"] == 100

    with pytest.raises(exceptions.Conflict):
        s.create_service(parent=PARENT, service=service(), service_id="web")

    # update: new generation, new revision
    svc = s.get_service(name=done.name)
    svc.template.scaling.max_instance_count = 7
    updated = s.update_service(service=svc).result(polling=POLL)
    assert updated.generation == 2 and "web-00002-" in updated.latest_ready_revision
    revs = list(clients["revisions"].list_revisions(parent=done.name))
    assert [r.name.rsplit("/", 1)[-1][:10] for r in revs] == ["web-00002-", "web-00001-"]
    assert clients["revisions"].get_revision(name=revs[0].name).scaling.max_instance_count == 7
    assert [x.name for x in s.list_services(parent=PARENT)] == [done.name]

    # label-only update: a new generation, no new revision
    svc = s.get_service(name=done.name)
    svc.labels["extra"] = "x"
    relabelled = s.update_service(service=svc).result(polling=POLL)
    assert relabelled.generation == 3
    assert relabelled.latest_created_revision == updated.latest_created_revision

    # IAM
    policy = s.get_iam_policy(request={"resource": done.name})
    policy.bindings.add(role="roles/run.invoker", members=["allUsers"])
    written = s.set_iam_policy(request={"resource": done.name, "policy": policy})
    assert written.bindings[0].members == ["allUsers"]
    with pytest.raises(exceptions.Conflict):  # stale etag
        s.set_iam_policy(request={"resource": done.name, "policy": policy})
    assert s.test_iam_permissions(
        request={"resource": done.name, "permissions": ["run.routes.invoke"]}
    ).permissions == ["run.routes.invoke"]

    deleted = s.delete_service(name=done.name).result(polling=POLL)
    assert deleted.name == done.name
    with pytest.raises(exceptions.NotFound):
        s.get_service(name=done.name)
    with pytest.raises(exceptions.NotFound):
        s.delete_service(name=done.name)


def test_errors(clients: dict[str, Any]) -> None:
    s = clients["services"]
    with pytest.raises(exceptions.MethodNotImplemented):
        s.get_service(name=f"projects/{PROJECT}/locations/mars-1/services/x")
    with pytest.raises(exceptions.BadRequest):
        s.create_service(parent=PARENT, service=service(), service_id="Bad_Name")
    with pytest.raises(exceptions.NotFound):
        s.get_iam_policy(request={"resource": f"{PARENT}/services/none"})
    with pytest.raises(exceptions.Forbidden):  # API not enabled
        s.list_services(parent=f"projects/other-proj-1/locations/{REGION}")


def test_failed_revision_keeps_the_previous_serving(clients: dict[str, Any], emulator: Any) -> None:
    s = clients["services"]
    good = s.create_service(parent=PARENT, service=service(), service_id="web").result(polling=POLL)
    emulator.control.fail(
        "revision", "web", "The user-provided container failed to start and listen on the port"
    )
    svc = s.get_service(name=good.name)
    svc.template.containers[0].image = "gcr.io/demo/app:2"
    with pytest.raises(exceptions.FailedPrecondition, match="failed to start"):
        s.update_service(service=svc).result(polling=POLL)
    after = s.get_service(name=good.name)
    assert after.terminal_condition.state == run_v2.Condition.State.CONDITION_FAILED
    assert after.latest_ready_revision == good.latest_ready_revision
    assert after.latest_created_revision != good.latest_created_revision

    # an Artifact Registry image that does not exist
    with pytest.raises(exceptions.FailedPrecondition, match="not found"):
        s.create_service(parent=PARENT, service=service(AR_IMAGE), service_id="ar").result(
            polling=POLL
        )
    emulator.emu.store.put("artifactregistry.tag", AR_IMAGE, {})
    svc = s.get_service(name=f"{PARENT}/services/ar")
    svc.template.labels["try"] = "2"
    assert s.update_service(service=svc).result(polling=POLL).reconciling is False


def _secret(clients: dict[str, Any], sid: str) -> None:
    sm = clients["secrets"]
    sm.create_secret(
        parent=f"projects/{PROJECT}", secret_id=sid, secret={"replication": {"automatic": {}}}
    )
    sm.add_secret_version(parent=f"projects/{PROJECT}/secrets/{sid}", payload={"data": b"v"})


def _grant(clients: dict[str, Any], sid: str) -> None:
    """The runtime account may read secret ``sid``."""
    sm, res = clients["secrets"], f"projects/{PROJECT}/secrets/{sid}"
    policy = sm.get_iam_policy(request={"resource": res})
    policy.bindings.add(role="roles/secretmanager.secretAccessor", members=[f"serviceAccount:{SA}"])
    sm.set_iam_policy(request={"resource": res, "policy": policy})


def _env(sid: str, version: str = "1") -> dict[str, Any]:
    return {
        "container": {
            "env": [
                run_v2.EnvVar(
                    name="TOKEN",
                    value_source=run_v2.EnvVarSource(
                        secret_key_ref=run_v2.SecretKeySelector(secret=sid, version=version)
                    ),
                )
            ]
        },
        "service_account": SA,
    }


def test_secret_checks_and_grant_propagation(
    clients: dict[str, Any], emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = clients["services"]
    emulator.emu.store.put(policies.SA_KIND, SA, {"email": SA, "_visibleAt": 0.0})
    with pytest.raises(exceptions.FailedPrecondition, match="was not found"):
        s.create_service(parent=PARENT, service=service(**_env("nope")), service_id="a").result(
            polling=POLL
        )
    _secret(clients, "token")
    with pytest.raises(exceptions.FailedPrecondition, match="Permission denied on secret"):
        s.create_service(parent=PARENT, service=service(**_env("token")), service_id="b").result(
            polling=POLL
        )
    # propagation takes 1000 s (scaled): the clock is moved past it below, never waited for
    emulator.control.set_latency(durations={"iam.secret_grant.propagation": 1e6})
    _grant(clients, "token")
    with pytest.raises(exceptions.FailedPrecondition, match="Permission denied on secret"):
        s.create_service(parent=PARENT, service=service(**_env("token")), service_id="c").result(
            polling=POLL
        )
    real = emulator.emu.clock
    monkeypatch.setattr(emulator.emu, "clock", lambda: real() + 2000.0)
    ok = s.create_service(parent=PARENT, service=service(**_env("token")), service_id="d")
    assert ok.result(polling=POLL).terminal_condition.state.name == "CONDITION_SUCCEEDED"


def test_jobs_and_executions(clients: dict[str, Any], emulator: Any) -> None:
    j, ex = clients["jobs"], clients["executions"]
    job = run_v2.Job(
        labels={"managed-by": "djdeploy"},
        template=run_v2.ExecutionTemplate(
            labels={"djdeploy-spec": "abc"},
            template=run_v2.TaskTemplate(
                max_retries=0, containers=[run_v2.Container(image="gcr.io/d/a:1", args=["m"])]
            ),
        ),
    )
    created = j.create_job(parent=PARENT, job=job, job_id="mig").result(polling=POLL)
    assert created.template.template.max_retries == 0  # presence kept (oneof)
    assert created.template.task_count == 1 and created.template.template.timeout.seconds == 600
    with pytest.raises(exceptions.Conflict):
        j.create_job(parent=PARENT, job=job, job_id="mig")

    emulator.control.set_latency(durations={"run.execution": 1e6})  # runs until completed below
    run = j.run_job(name=created.name)
    running = ex.get_execution(name=run.metadata.name)
    assert running.running_count == 1 and not running.completion_time
    emulator.emu.ops.complete_now(run.operation.name.rsplit("/", 1)[-1])
    execution = run.result(polling=POLL)
    assert execution.succeeded_count == execution.task_count == 1
    assert execution.labels["djdeploy-spec"] == "abc"
    assert execution.log_uri.startswith("https://console.cloud.google.com/logs/viewer")
    latest = j.get_job(name=created.name).latest_created_execution
    assert latest.name == execution.name.rsplit("/", 1)[-1]
    assert latest.completion_status.name == "EXECUTION_SUCCEEDED"

    emulator.control.fail("execution", "mig", "")
    failing = j.run_job(name=created.name)
    emulator.emu.ops.complete_now(failing.operation.name.rsplit("/", 1)[-1])
    with pytest.raises(exceptions.FailedPrecondition, match="failed with exit code 1"):
        failing.result(polling=POLL)
    names = [e.name for e in ex.list_executions(parent=created.name)]
    assert names[0] == failing.metadata.name and len(names) == 2  # newest first
    failed = ex.get_execution(name=names[0])
    assert failed.failed_count == 1
    completed = next(c for c in failed.conditions if c.type_ == "Completed")
    assert completed.state.name == "CONDITION_FAILED"
    assert j.get_job(name=created.name).latest_created_execution.completion_status.name == (
        "EXECUTION_FAILED"
    )

    # cancel and delete an execution
    third = j.run_job(name=created.name)
    ex.cancel_execution(name=third.metadata.name).result(polling=POLL)
    assert ex.get_execution(name=third.metadata.name).cancelled_count == 1
    ex.delete_execution(name=third.metadata.name).result(polling=POLL)
    with pytest.raises(exceptions.NotFound):
        ex.get_execution(name=third.metadata.name)

    # update, IAM, list, delete
    job2 = j.get_job(name=created.name)
    job2.template.template.containers[0].args[:] = ["migrate"]
    assert j.update_job(job=job2).result(polling=POLL).generation == 2
    policy = j.get_iam_policy(request={"resource": created.name})
    assert policy.version == 1
    assert [x.name for x in j.list_jobs(parent=PARENT)] == [created.name]
    j.delete_job(name=created.name).result(polling=POLL)
    with pytest.raises(exceptions.NotFound):
        j.get_job(name=created.name)


def test_operations_route(clients: dict[str, Any], emulator: Any) -> None:
    op = clients["services"].create_service(parent=PARENT, service=service(), service_id="w")
    name = op.operation.name
    assert name.startswith(f"{PARENT}/operations/")
    got = emulator.emu.ops.get(name.rsplit("/", 1)[-1])
    assert got is not None
    op.result(polling=POLL)
    raw = emulator.emu.transcript.entries()[-1]["response"]
    assert raw["done"] is True and raw["response"]["@type"].endswith("run.v2.Service")


def test_recreated_secret_starts_without_grants(clients: dict[str, Any], emulator: Any) -> None:
    s, sm = clients["services"], clients["secrets"]
    emulator.emu.store.put(policies.SA_KIND, SA, {"email": SA, "_visibleAt": 0.0})
    emulator.control.set_latency(durations={"iam.secret_grant.propagation": 0.0})
    _secret(clients, "token")
    res = f"projects/{PROJECT}/secrets/token"
    _grant(clients, "token")
    ok = s.create_service(parent=PARENT, service=service(**_env("token")), service_id="a")
    assert ok.result(polling=POLL).terminal_condition.state.name == "CONDITION_SUCCEEDED"

    sm.delete_secret(name=res)
    assert emulator.emu.store.list(policies.GRANTED_KIND, res + "|") == []
    _secret(clients, "token")
    with pytest.raises(exceptions.FailedPrecondition, match="Permission denied on secret"):
        s.create_service(parent=PARENT, service=service(**_env("token")), service_id="b").result(
            polling=POLL
        )


def test_grant_records_go_with_the_policy(clients: dict[str, Any], emulator: Any) -> None:
    s, j = clients["services"], clients["jobs"]
    svc = s.create_service(parent=PARENT, service=service(), service_id="web").result(polling=POLL)
    policy = s.get_iam_policy(request={"resource": svc.name})
    policy.bindings.add(role="roles/run.invoker", members=["allUsers"])
    s.set_iam_policy(request={"resource": svc.name, "policy": policy})
    assert emulator.emu.store.list(policies.GRANTED_KIND, svc.name + "|")
    s.delete_service(name=svc.name).result(polling=POLL)
    assert emulator.emu.store.list(policies.GRANTED_KIND, svc.name + "|") == []

    job = run_v2.Job(
        template=run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(containers=[run_v2.Container(image="gcr.io/d/a:1")])
        )
    )
    created = j.create_job(parent=PARENT, job=job, job_id="mig").result(polling=POLL)
    policy = j.get_iam_policy(request={"resource": created.name})
    policy.bindings.add(role="roles/run.invoker", members=["allUsers"])
    j.set_iam_policy(request={"resource": created.name, "policy": policy})
    assert emulator.emu.store.list(policies.GRANTED_KIND, created.name + "|")
    j.delete_job(name=created.name).result(polling=POLL)
    assert emulator.emu.store.list(policies.GRANTED_KIND, created.name + "|") == []


def test_runtime_service_account_must_exist(clients: dict[str, Any], emulator: Any) -> None:
    s, j = clients["services"], clients["jobs"]
    with pytest.raises(exceptions.BadRequest, match=f"Service account {SA} does not exist"):
        s.create_service(parent=PARENT, service=service(service_account=SA), service_id="a")
    job = run_v2.Job(
        template=run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(
                service_account=SA, containers=[run_v2.Container(image="gcr.io/d/a:1")]
            )
        )
    )
    with pytest.raises(exceptions.BadRequest, match="does not exist"):
        j.create_job(parent=PARENT, job=job, job_id="mig")
    # created but not yet visible: still refused; visible: accepted
    emulator.emu.store.put(
        policies.SA_KIND, SA, {"email": SA, "_visibleAt": emulator.emu.clock() + 3600}
    )
    with pytest.raises(exceptions.BadRequest, match="does not exist"):
        s.create_service(parent=PARENT, service=service(service_account=SA), service_id="a")
    emulator.emu.store.put(policies.SA_KIND, SA, {"email": SA, "_visibleAt": 0.0})
    s.create_service(parent=PARENT, service=service(service_account=SA), service_id="a")
    j.create_job(parent=PARENT, job=job, job_id="mig")
    # Google's own accounts are taken as existing
    compute = "123-compute@developer.gserviceaccount.com"
    s.create_service(parent=PARENT, service=service(service_account=compute), service_id="b")


def test_secret_referenced_by_project_number(clients: dict[str, Any], emulator: Any) -> None:
    s, sm = clients["services"], clients["secrets"]
    emulator.emu.store.put(policies.SA_KIND, SA, {"email": SA, "_visibleAt": 0.0})
    emulator.control.set_latency(durations={"iam.secret_grant.propagation": 0.0})
    _secret(clients, "token")
    res = f"projects/{PROJECT}/secrets/token"
    _grant(clients, "token")
    number = sm.get_secret(name=res).name.split("/")[1]
    assert number.isdigit()
    ref = f"projects/{number}/secrets/token"
    ok = s.create_service(parent=PARENT, service=service(**_env(ref)), service_id="a")
    assert ok.result(polling=POLL).terminal_condition.state.name == "CONDITION_SUCCEEDED"
    with pytest.raises(exceptions.FailedPrecondition, match="was not found"):
        s.create_service(
            parent=PARENT,
            service=service(**_env("projects/999999999999/secrets/token")),
            service_id="b",
        ).result(polling=POLL)


def test_template_validation(clients: dict[str, Any], emulator: Any) -> None:
    s = clients["services"]
    gcs = run_v2.Volume(name="media", gcs=run_v2.GCSVolumeSource(bucket="b"))
    with pytest.raises(exceptions.BadRequest, match="second generation"):
        s.create_service(parent=PARENT, service=service(volumes=[gcs]), service_id="a")
    gen2 = run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2
    s.create_service(
        parent=PARENT, service=service(volumes=[gcs], execution_environment=gen2), service_id="a"
    ).result(polling=POLL)

    probe = run_v2.Probe(
        http_get=run_v2.HTTPGetAction(path="/health/"), timeout_seconds=20, period_seconds=10
    )
    with pytest.raises(exceptions.BadRequest, match="timeout_seconds"):
        s.create_service(
            parent=PARENT, service=service(container={"liveness_probe": probe}), service_id="b"
        )
    probe.timeout_seconds = 10
    s.create_service(
        parent=PARENT, service=service(container={"liveness_probe": probe}), service_id="b"
    )

    for name in ("PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"):
        env = [run_v2.EnvVar(name=name, value="x")]
        with pytest.raises(
            exceptions.BadRequest, match=f"reserved env names were provided: {name}"
        ):
            s.create_service(parent=PARENT, service=service(container={"env": env}), service_id="c")


def test_image_references(clients: dict[str, Any], emulator: Any) -> None:
    from deployer.emulator import artifactregistry

    s = clients["services"]
    digest = "sha256:" + "ab" * 32
    base = f"{REGION}-docker.pkg.dev/{PROJECT}/repo/app"
    with pytest.raises(exceptions.FailedPrecondition, match="not found"):
        s.create_service(parent=PARENT, service=service(f"{base}@{digest}"), service_id="a").result(
            polling=POLL
        )
    emulator.emu.store.put(
        "artifactregistry.repository",
        f"projects/{PROJECT}/locations/{REGION}/repositories/repo",
        {"name": f"projects/{PROJECT}/locations/{REGION}/repositories/repo", "format": "DOCKER"},
    )
    artifactregistry.push_image(emulator.emu, AR_IMAGE, digest, build_time=0.0)
    for i, image in enumerate((f"{base}@{digest}", f"{AR_IMAGE}@{digest}")):
        op = s.create_service(parent=PARENT, service=service(image), service_id=f"ok{i}")
        assert op.result(polling=POLL).terminal_condition.state.name == "CONDITION_SUCCEEDED"
    # Google's public sample images exist for every project
    sample = "us-docker.pkg.dev/cloudrun/container/hello"
    op = s.create_service(parent=PARENT, service=service(sample), service_id="hello")
    assert op.result(polling=POLL).terminal_condition.state.name == "CONDITION_SUCCEEDED"


def test_job_iam_and_operations_list_delete(clients: dict[str, Any], emulator: Any) -> None:
    s, j = clients["services"], clients["jobs"]
    job = run_v2.Job(
        template=run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(containers=[run_v2.Container(image="gcr.io/d/a:1")])
        )
    )
    created = j.create_job(parent=PARENT, job=job, job_id="mig").result(polling=POLL)
    policy = j.get_iam_policy(request={"resource": created.name})
    policy.bindings.add(role="roles/run.invoker", members=["allUsers"])
    stored = j.set_iam_policy(request={"resource": created.name, "policy": policy})
    assert [b.role for b in stored.bindings] == ["roles/run.invoker"]
    allowed = j.test_iam_permissions(
        request={"resource": created.name, "permissions": ["run.jobs.run", "run.jobs.get"]}
    )
    assert set(allowed.permissions) <= {"run.jobs.run", "run.jobs.get"}

    op = s.create_service(parent=PARENT, service=service(), service_id="w")
    op.result(polling=POLL)
    listed = s.list_operations(request={"name": PARENT})
    names = [o.name for o in listed.operations]
    assert op.operation.name in names
    s.delete_operation(request={"name": op.operation.name})
    assert op.operation.name not in [
        o.name for o in s.list_operations(request={"name": PARENT}).operations
    ]


def test_validate_only_stores_nothing(clients: dict[str, Any], emulator: Any) -> None:
    s, j = clients["services"], clients["jobs"]
    preview = s.create_service(
        request={"parent": PARENT, "service": service(), "service_id": "web", "validate_only": True}
    )
    assert preview.done()  # answered at once: nothing to poll
    would = preview.result()
    assert would.name == f"{PARENT}/services/web" and would.generation == 1
    assert would.template.max_instance_request_concurrency == 80  # the server's defaults
    assert "/revisions/web-00001-" in would.latest_created_revision
    with pytest.raises(exceptions.NotFound):
        s.get_service(name=would.name)
    assert emulator.emu.store.list("run.revision") == []
    assert list(s.list_operations(request={"name": PARENT}).operations) == []
    with pytest.raises(exceptions.BadRequest, match="Invalid service id"):  # checks still run
        s.create_service(
            request={
                "parent": PARENT,
                "service": service(),
                "service_id": "B",
                "validate_only": True,
            }
        )

    created = s.create_service(parent=PARENT, service=service(), service_id="web").result(
        polling=POLL
    )
    with pytest.raises(exceptions.Conflict):
        s.create_service(
            request={
                "parent": PARENT,
                "service": service(),
                "service_id": "web",
                "validate_only": True,
            }
        )
    changed = s.get_service(name=created.name)
    changed.template.containers[0].image = "gcr.io/demo/app:2"
    would = s.update_service(request={"service": changed, "validate_only": True}).result()
    assert would.generation == 2 and would.template.containers[0].image == "gcr.io/demo/app:2"
    assert would.latest_created_revision != created.latest_created_revision
    after = s.get_service(name=created.name)
    assert after.generation == 1 and after.template.containers[0].image == "gcr.io/demo/app:1"
    assert after.etag == created.etag
    assert len(list(clients["revisions"].list_revisions(parent=created.name))) == 1
    gone = s.delete_service(request={"name": created.name, "validate_only": True}).result()
    assert gone.name == created.name and gone.delete_time
    assert s.get_service(name=created.name).etag == created.etag

    job = run_v2.Job(
        template=run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(containers=[run_v2.Container(image="gcr.io/d/a:1")])
        )
    )
    would_job = j.create_job(
        request={"parent": PARENT, "job": job, "job_id": "mig", "validate_only": True}
    ).result()
    assert would_job.name == f"{PARENT}/jobs/mig" and would_job.template.task_count == 1
    with pytest.raises(exceptions.NotFound):
        j.get_job(name=would_job.name)
    created_job = j.create_job(parent=PARENT, job=job, job_id="mig").result(polling=POLL)
    changed_job = j.get_job(name=created_job.name)
    changed_job.template.task_count = 4
    assert (
        j.update_job(request={"job": changed_job, "validate_only": True}).result().generation == 2
    )
    assert j.get_job(name=created_job.name).template.task_count == 1
    j.delete_job(request={"name": created_job.name, "validate_only": True}).result()
    would_run = j.run_job(request={"name": created_job.name, "validate_only": True}).result()
    assert would_run.task_count == 1
    assert list(clients["executions"].list_executions(parent=created_job.name)) == []
    assert j.get_job(name=created_job.name).etag == created_job.etag


def test_revision_delete(clients: dict[str, Any], emulator: Any) -> None:
    s, r = clients["services"], clients["revisions"]
    first = s.create_service(parent=PARENT, service=service(), service_id="web").result(
        polling=POLL
    )
    svc = s.get_service(name=first.name)
    svc.template.containers[0].image = "gcr.io/demo/app:2"
    second = s.update_service(service=svc).result(polling=POLL)
    old, serving = first.latest_ready_revision, second.latest_ready_revision
    with pytest.raises(exceptions.BadRequest, match="serving traffic"):
        r.delete_revision(name=serving)
    with pytest.raises(exceptions.Conflict):  # stale etag
        r.delete_revision(request={"name": old, "etag": '"stale"'})

    r.delete_revision(request={"name": old, "validate_only": True}).result()
    assert r.get_revision(name=old).name == old
    deleted = r.delete_revision(name=old).result(polling=POLL)
    assert deleted.name == old and deleted.delete_time
    with pytest.raises(exceptions.NotFound):
        r.get_revision(name=old)
    with pytest.raises(exceptions.NotFound):
        r.delete_revision(name=old)
    assert [x.name for x in r.list_revisions(parent=first.name)] == [serving]

    # the revision being rolled out cannot go either
    emulator.control.set_latency(durations={"run.service.deploy": 1e6})
    svc = s.get_service(name=first.name)
    svc.template.containers[0].image = "gcr.io/demo/app:3"
    rolling = s.update_service(service=svc)
    with pytest.raises(exceptions.BadRequest, match="serving traffic"):
        r.delete_revision(name=rolling.metadata.latest_created_revision)


def _job(client: Any, *, task_count: int, max_retries: int) -> run_v2.Job:
    job = run_v2.Job(
        template=run_v2.ExecutionTemplate(
            task_count=task_count,
            template=run_v2.TaskTemplate(
                max_retries=max_retries, containers=[run_v2.Container(image="gcr.io/d/a:1")]
            ),
        )
    )
    return client.create_job(parent=PARENT, job=job, job_id="mig").result(polling=POLL)


def test_tasks_follow_their_execution(clients: dict[str, Any], emulator: Any) -> None:
    j = clients["jobs"]
    tasks = run_v2.TasksClient(**gapic_options(emulator.url))
    job = _job(j, task_count=3, max_retries=2)
    emulator.control.set_latency(durations={"run.execution": 1e6})  # runs until completed below

    run = j.run_job(name=job.name)
    execution = run.metadata.name
    running = list(tasks.list_tasks(parent=execution))
    short = execution.rsplit("/", 1)[-1]
    assert [t.name for t in running] == [f"{execution}/tasks/{short}-task{i}" for i in range(3)]
    assert [t.index for t in running] == [0, 1, 2]
    assert all(t.reconciling and not t.completion_time for t in running)
    assert running[0].max_retries == 2 and running[0].job == "mig" and running[0].execution == short
    emulator.emu.ops.complete_now(run.operation.name.rsplit("/", 1)[-1])
    done = run.result(polling=POLL)
    assert done.succeeded_count == 3
    got = tasks.get_task(name=f"{execution}/tasks/{short}-task1")
    assert got.index == 1 and got.completion_time and got.retried == 0
    assert got.last_attempt_result.exit_code == 0
    assert next(c for c in got.conditions if c.type_ == "Completed").state.name == (
        "CONDITION_SUCCEEDED"
    )
    for missing in (f"{short}-task3", f"{short}-task01", "other"):
        with pytest.raises(exceptions.NotFound):
            tasks.get_task(name=f"{execution}/tasks/{missing}")
    page = tasks.list_tasks(request={"parent": execution, "page_size": 2})
    assert len(page.tasks) == 2 and page.next_page_token

    emulator.control.fail("execution", "mig", "")
    failing = j.run_job(name=job.name)
    emulator.emu.ops.complete_now(failing.operation.name.rsplit("/", 1)[-1])
    with pytest.raises(exceptions.FailedPrecondition):
        failing.result(polling=POLL)
    got_failed = clients["executions"].get_execution(name=failing.metadata.name)
    assert got_failed.failed_count == 3 and got_failed.retried_count == 6
    failed = list(tasks.list_tasks(parent=failing.metadata.name))
    assert len(failed) == 3
    assert all(t.retried == 2 and t.last_attempt_result.exit_code == 1 for t in failed)
    completed = next(c for c in failed[0].conditions if c.type_ == "Completed")
    assert completed.state.name == "CONDITION_FAILED" and "exit code 1" in completed.message

    cancelled = j.run_job(name=job.name)
    ex = clients["executions"]
    would = ex.cancel_execution(request={"name": cancelled.metadata.name, "validate_only": True})
    assert would.result().cancelled_count == 3
    assert ex.get_execution(name=cancelled.metadata.name).running_count == 3  # still running
    ex.cancel_execution(name=cancelled.metadata.name).result(polling=POLL)
    for t in tasks.list_tasks(parent=cancelled.metadata.name):
        completed = next(c for c in t.conditions if c.type_ == "Completed")
        assert completed.execution_reason.name == "CANCELLED" and t.completion_time

    ex.delete_execution(request={"name": execution, "validate_only": True}).result()
    assert len(list(tasks.list_tasks(parent=execution))) == 3
    ex.delete_execution(name=execution).result(polling=POLL)
    with pytest.raises(exceptions.NotFound):
        list(tasks.list_tasks(parent=execution))


def test_expired_secret_fails_the_revision(
    clients: dict[str, Any], emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, sm = clients["services"], clients["secrets"]
    emulator.emu.store.put(policies.SA_KIND, SA, {"email": SA, "_visibleAt": 0.0})
    emulator.control.set_latency(durations={"iam.secret_grant.propagation": 0.0})
    sm.create_secret(
        parent=f"projects/{PROJECT}",
        secret_id="token",
        secret={"replication": {"automatic": {}}, "ttl": {"seconds": 3600}},
    )
    sm.add_secret_version(parent=f"projects/{PROJECT}/secrets/token", payload={"data": b"v"})
    _grant(clients, "token")
    ok = s.create_service(parent=PARENT, service=service(**_env("token")), service_id="a")
    assert ok.result(polling=POLL).terminal_condition.state.name == "CONDITION_SUCCEEDED"
    real = emulator.emu.clock
    monkeypatch.setattr(emulator.emu, "clock", lambda: real() + 3600.0)  # the secret expired
    with pytest.raises(exceptions.FailedPrecondition, match="was not found"):
        s.create_service(parent=PARENT, service=service(**_env("token")), service_id="b").result(
            polling=POLL
        )


def test_a_delete_outcome_fails_the_operation_and_keeps_the_resource(
    clients: dict[str, Any], emulator: Any
) -> None:
    """Outcome kind "delete": the delete is accepted, the service shows it being deleted, the
    operation ends in FAILED_PRECONDITION with the message, and the service stays as it was;
    the rule used up, the next delete deletes it."""
    s = clients["services"]
    done = s.create_service(parent=PARENT, service=service(), service_id="kept").result(
        polling=POLL
    )
    emulator.control.fail("delete", "/services/kept", "in use by a domain mapping")
    emulator.control.set_latency(durations={"run.service.delete": 3600})  # until completed
    op = s.delete_service(name=done.name)
    deleting = s.get_service(name=done.name)
    assert deleting.delete_time and deleting.reconciling
    emulator.emu.ops.complete_now(op.operation.name.rsplit("/", 1)[-1])
    with pytest.raises(exceptions.FailedPrecondition, match="in use by a domain mapping"):
        op.result(polling=POLL)
    kept = s.get_service(name=done.name)
    assert not kept.delete_time and not kept.reconciling
    assert kept.latest_ready_revision == done.latest_ready_revision
    emulator.control.set_latency(durations={"run.service.delete": 0})
    s.delete_service(name=done.name).result(polling=POLL)
    with pytest.raises(exceptions.NotFound):
        s.get_service(name=done.name)


def _two_revisions(s: Any) -> tuple[str, str, str]:
    """A service deployed twice: its name, its first and its second revision."""
    first = s.create_service(parent=PARENT, service=service(), service_id="web").result(
        polling=POLL
    )
    svc = s.get_service(name=first.name)
    svc.template.containers[0].image = "gcr.io/demo/app:2"
    second = s.update_service(service=svc).result(polling=POLL)
    return first.name, first.latest_ready_revision, second.latest_ready_revision


def _pin(s: Any, name: str, revision: str) -> Any:
    svc = s.get_service(name=name)
    del svc.traffic[:]
    svc.traffic.append(
        run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
            revision=revision.rsplit("/", 1)[-1],
            percent=100,
        )
    )
    return s.update_service(service=svc)


def test_traffic_statuses_follow_a_pinned_revision(clients: dict[str, Any]) -> None:
    s = clients["services"]
    name, old, _ = _two_revisions(s)
    _pin(s, name, old).result(polling=POLL)
    got = to_dict(s.get_service(name=name))
    assert got["trafficStatuses"] == [
        {
            "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
            "revision": old.rsplit("/", 1)[-1],
            "percent": 100,
            "tag": "",
            "uri": "",
        }
    ]


def test_a_rollback_that_cannot_start_settles_failed(
    clients: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A revision that cannot start (its secret version was disabled since) fails the traffic
    change: the operation ends in error, the service is settled (not reconciling, observed
    generation caught up) and Ready=False with why, and its traffic stays where it served."""
    s = clients["services"]
    name, old, serving = _two_revisions(s)
    message = "Secret Version [projects/1/secrets/k/versions/1] is in DISABLED state."

    def cannot_start(emu: Any, rev: dict[str, Any], *, pid: str) -> None:
        if rev["name"] == old:
            raise ApiError(400, message)

    monkeypatch.setattr(services, "revision_instance", cannot_start)
    op = _pin(s, name, old)
    with pytest.raises(exceptions.GoogleAPICallError, match="DISABLED state"):
        op.result(polling=POLL)
    got = to_dict(s.get_service(name=name))
    assert got["reconciling"] is False and got["observedGeneration"] == got["generation"]
    assert got["terminalCondition"]["state"] == "CONDITION_FAILED"
    assert message in got["terminalCondition"]["message"]
    assert got["trafficStatuses"][0]["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    assert got["latestReadyRevision"] == serving
    assert message in capsys.readouterr().err

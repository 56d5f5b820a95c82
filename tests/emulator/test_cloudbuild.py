"""Cloud Build v1 in the emulator, driven through google-cloud-build's GAPIC client (REST)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud.devtools import cloudbuild_v1 as cb

from deployer.clock import VirtualClock
from deployer.emulator import serviceusage
from deployer.emulator.policies import SA_KIND
from deployer.emulator.testing import gapic_options, storage_client
from tests.contract import check_transcript

PROJECT = "build-proj"
REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
BUCKET = "build-proj-sources"
OBJECT = "sources/src-1.tar.gz"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/repo/app:src-1"
SA_EMAIL = f"builder@{PROJECT}.iam.gserviceaccount.com"
POLL = DEFAULT_POLLING.with_delay(initial=0.01, maximum=0.05, multiplier=1.5).with_timeout(20)


@pytest.fixture
def client(emulator: Any) -> cb.CloudBuildClient:
    for s in ("cloudbuild.googleapis.com", "artifactregistry.googleapis.com"):
        serviceusage.set_enabled(emulator.emu, PROJECT, s)
    st = storage_client(emulator.url, PROJECT)
    st.create_bucket(BUCKET, location=REGION).blob(OBJECT).upload_from_string(b"tar")
    return cb.CloudBuildClient(**gapic_options(emulator.url))


def _repo(emulator: Any, repo: str = "repo", writer: str | None = None) -> None:
    ar = emulator.discovery("artifactregistry", "v1").projects().locations().repositories()
    ar.create(parent=PARENT, repositoryId=repo, body={"format": "DOCKER"}).execute()
    if writer:
        ar.setIamPolicy(
            resource=f"{PARENT}/repositories/{repo}",
            body={"policy": {"bindings": [{"role": "roles/artifactregistry.writer",
                                           "members": [f"serviceAccount:{writer}"]}]}},
        ).execute()  # fmt: skip


def _build(**extra: Any) -> cb.Build:
    body = {
        "steps": [{"name": "gcr.io/cloud-builders/docker", "args": ["build", "-t", IMAGE, "."]}],
        "images": [IMAGE],
        "tags": ["src-1", "djdeploy"],
        "source": {"storageSource": {"bucket": BUCKET, "object": OBJECT}},
        "options": {"logging": "CLOUD_LOGGING_ONLY"},
        **extra,
    }
    return cb.Build.from_json(json.dumps(body))


def _contract(emulator: Any) -> None:
    """Every exchange (Cloud Build, Artifact Registry, the storage seeding) validates."""
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_regional_build_succeeds_and_pushes(emulator: Any, client: cb.CloudBuildClient) -> None:
    _repo(emulator)
    op = client.create_build(project_id=PROJECT, build=_build(), parent=PARENT)
    assert op.operation.name.startswith(f"projects/{PROJECT}/locations/{REGION}/operations/")
    queued = op.metadata.build
    assert queued.status == cb.Build.Status.QUEUED
    assert queued.log_url.startswith(
        f"https://console.cloud.google.com/cloud-build/builds;region={REGION}/{queued.id}?project="
    )
    built = op.result(polling=POLL)
    assert built.status == cb.Build.Status.SUCCESS
    assert built.results.images[0].name == IMAGE
    assert built.results.images[0].digest.startswith("sha256:")
    assert built.start_time and built.finish_time and built.create_time
    number = emulator.emu.store.get("project", PROJECT)["projectNumber"]
    assert built.name == f"projects/{number}/locations/{REGION}/builds/{built.id}"
    assert emulator.emu.store.get("artifactregistry.tag", IMAGE)["digest"] == (
        built.results.images[0].digest
    )

    got = client.get_build(request={"project_id": PROJECT, "id": built.id,
                                    "name": f"{PARENT}/builds/{built.id}"})  # fmt: skip
    assert got.status == cb.Build.Status.SUCCESS and got.id == built.id
    got = client.get_build(request={"name": f"{PARENT}/builds/{built.id}"})
    assert got.id == built.id
    # a regional build is not a global one
    with pytest.raises(gexc.NotFound):
        client.get_build(project_id=PROJECT, id=built.id)
    _contract(emulator)


def test_global_build_and_operation_name(emulator: Any, client: cb.CloudBuildClient) -> None:
    op = client.create_build(
        project_id=PROJECT, build=_build(images=["gcr.io/build-proj/app:1"], tags=["g"])
    )
    assert op.operation.name.startswith(f"operations/build/{PROJECT}/")
    built = op.result(polling=POLL)
    assert built.status == cb.Build.Status.SUCCESS
    assert "region=global" in built.log_url
    assert client.get_build(project_id=PROJECT, id=built.id).id == built.id
    _contract(emulator)


def test_status_queued_working_success(
    emulator: Any, client: cb.CloudBuildClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock()  # stepped by hand: QUEUED lasts 15 ms of it, however slow the machine
    monkeypatch.setattr(emulator.emu, "clock", clock.now)
    _repo(emulator)
    emulator.emu.latency.set(durations={"build": 300.0})  # 0.3 s at the test time scale
    op = client.create_build(project_id=PROJECT, build=_build(), parent=PARENT)
    build_id = op.metadata.build.id
    seen = []
    for _ in range(40):
        b = client.get_build(request={"name": f"{PARENT}/builds/{build_id}"})
        seen.append(b.status.name)
        if b.status == cb.Build.Status.SUCCESS:
            break
        clock.advance(0.01)
    assert list(dict.fromkeys(seen)) == ["QUEUED", "WORKING", "SUCCESS"]
    assert seen.count("QUEUED") == 2  # 0 and 10 ms; WORKING from 5% of the build (15 ms)
    _contract(emulator)


def test_failing_build_outcome(emulator: Any, client: cb.CloudBuildClient) -> None:
    _repo(emulator)
    emulator.emu.outcomes.add("build", "src-1", "step exited with non-zero status: 1")
    op = client.create_build(project_id=PROJECT, build=_build(), parent=PARENT)
    with pytest.raises(gexc.GoogleAPICallError) as err:
        op.result(polling=POLL)
    assert "step exited with non-zero status: 1" in str(err.value)
    b = client.get_build(request={"name": f"{PARENT}/builds/{op.metadata.build.id}"})
    assert b.status == cb.Build.Status.FAILURE
    assert b.status_detail == (
        'Build step failure: build step 0 "gcr.io/cloud-builders/docker" failed: '
        "step exited with non-zero status: 1"
    )
    assert b.failure_info.type_ == cb.Build.FailureInfo.FailureType.USER_BUILD_STEP
    assert emulator.emu.store.get("artifactregistry.tag", IMAGE) is None
    # the outcome is used up: the next build succeeds
    assert (
        client.create_build(project_id=PROJECT, build=_build(), parent=PARENT)
        .result(polling=POLL)
        .status
        == cb.Build.Status.SUCCESS
    )
    _contract(emulator)


def test_push_fails_without_repository_or_permission(
    emulator: Any, client: cb.CloudBuildClient
) -> None:
    op = client.create_build(project_id=PROJECT, build=_build(), parent=PARENT)
    with pytest.raises(gexc.GoogleAPICallError, match='Repository "repo" not found'):
        op.result(polling=POLL)
    b = client.get_build(request={"name": f"{PARENT}/builds/{op.metadata.build.id}"})
    assert b.failure_info.type_ == cb.Build.FailureInfo.FailureType.PUSH_FAILED

    emulator.emu.store.put(SA_KIND, SA_EMAIL, {"email": SA_EMAIL, "_visibleAt": 0.0})
    _repo(emulator)
    sa = f"projects/{PROJECT}/serviceAccounts/{SA_EMAIL}"
    op = client.create_build(project_id=PROJECT, build=_build(service_account=sa), parent=PARENT)
    with pytest.raises(gexc.GoogleAPICallError, match="uploadArtifacts"):
        op.result(polling=POLL)

    _repo(emulator, "repo2", writer=SA_EMAIL)
    image = IMAGE.replace("/repo/", "/repo2/")
    build = _build(service_account=sa, images=[image])
    assert (
        client.create_build(project_id=PROJECT, build=build, parent=PARENT)
        .result(polling=POLL)
        .service_account
        == sa
    )
    _contract(emulator)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"steps": []}, "at least one build step"),
        (
            {"source": {"storageSource": {"bucket": BUCKET, "object": "missing.tgz"}}},
            f"could not resolve source: googleapi: Error 404: No such object: {BUCKET}/missing.tgz",
        ),
        (
            {"service_account": f"projects/{PROJECT}/serviceAccounts/{SA_EMAIL}", "options": {}},
            "does not exist",
        ),
        ({"tags": ["bad tag!"]}, "invalid build tag"),
    ],
)
def test_create_refused(
    emulator: Any, client: cb.CloudBuildClient, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(gexc.BadRequest, match=message.replace("(", r"\(")):
        client.create_build(project_id=PROJECT, build=_build(**extra), parent=PARENT)
    _contract(emulator)


def test_user_sa_needs_cloud_logging_only(emulator: Any, client: cb.CloudBuildClient) -> None:
    emulator.emu.store.put(SA_KIND, SA_EMAIL, {"email": SA_EMAIL, "_visibleAt": 0.0})
    sa = f"projects/{PROJECT}/serviceAccounts/{SA_EMAIL}"
    build = _build(service_account=sa)
    build.options.logging = cb.BuildOptions.LoggingMode.LEGACY
    with pytest.raises(gexc.BadRequest, match="CLOUD_LOGGING_ONLY"):
        client.create_build(project_id=PROJECT, build=build, parent=PARENT)


def test_list_filter_newest_first_and_cancel(emulator: Any, client: cb.CloudBuildClient) -> None:
    _repo(emulator)
    emulator.emu.latency.set(durations={"build": 60_000.0})  # a minute: still running
    ids = []
    for tags in (["src-1"], ["src-2"], ["src-1", "x"]):
        build = _build(tags=tags, timeout="86400s")  # longer than the build: no TIMEOUT
        op = client.create_build(project_id=PROJECT, build=build, parent=PARENT)
        ids.append(op.metadata.build.id)
        time.sleep(0.002)
    found = list(client.list_builds(request={"project_id": PROJECT, "parent": PARENT,
                                             "filter": 'tags="src-1"'}))  # fmt: skip
    assert [b.id for b in found] == [ids[2], ids[0]]
    everything = list(client.list_builds(request={"project_id": PROJECT, "parent": PARENT}))
    assert [b.id for b in everything] == ids[::-1]
    paged = client.list_builds(request={"project_id": PROJECT, "parent": PARENT, "page_size": 2})
    assert [b.id for b in paged] == ids[::-1]  # second page fetched through nextPageToken
    assert list(client.list_builds(project_id=PROJECT, filter='tags="src-1"')) == []  # global
    with pytest.raises(gexc.BadRequest):
        list(client.list_builds(request={"project_id": PROJECT, "parent": PARENT,
                                         "filter": "colour=red"}))  # fmt: skip

    cancelled = client.cancel_build(request={"project_id": PROJECT, "id": ids[1],
                                             "name": f"{PARENT}/builds/{ids[1]}"})  # fmt: skip
    assert cancelled.status == cb.Build.Status.CANCELLED
    with pytest.raises(gexc.BadRequest, match="terminal state"):
        client.cancel_build(request={"name": f"{PARENT}/builds/{ids[1]}"})
    ops = client.transport.operations_client
    with pytest.raises(gexc.NotFound):
        ops.get_operation(f"{PARENT}/operations/x-unknown")
    with pytest.raises(gexc.NotFound):
        ops.get_operation(f"operations/build/{PROJECT}/eC11bmtub3du")
    with pytest.raises(gexc.NotFound):
        client.get_build(request={"name": f"{PARENT}/builds/nope"})
    _contract(emulator)


@pytest.mark.parametrize(
    ("status", "code"),
    [("INTERNAL_ERROR", gexc.InternalServerError), ("TIMEOUT", gexc.GatewayTimeout)],
)
def test_build_outcome_status(
    emulator: Any, client: cb.CloudBuildClient, status: str, code: type[Exception]
) -> None:
    _repo(emulator)
    emulator.control.fail("build", "src-1", "worker lost", status=status)
    op = client.create_build(project_id=PROJECT, build=_build(), parent=PARENT)
    with pytest.raises(code):
        op.result(polling=POLL)
    b = client.get_build(request={"name": f"{PARENT}/builds/{op.metadata.build.id}"})
    assert b.status == getattr(cb.Build.Status, status)
    assert b.status_detail == "worker lost"
    assert b.start_time and b.finish_time and not b.failure_info.type_
    assert [s.status for s in b.steps] == [getattr(cb.Build.Status, status)]
    assert not b.results.images  # nothing pushed
    assert emulator.emu.store.get("artifactregistry.tag", IMAGE) is None
    _contract(emulator)


def test_build_outcome_expired(emulator: Any, client: cb.CloudBuildClient) -> None:
    emulator.control.fail("build", "src-1", "queue TTL exceeded", status="EXPIRED")
    op = client.create_build(project_id=PROJECT, build=_build(images=[]), parent=PARENT)
    with pytest.raises(gexc.GoogleAPICallError, match="queue TTL exceeded"):
        op.result(polling=POLL)
    b = client.get_build(request={"name": f"{PARENT}/builds/{op.metadata.build.id}"})
    assert b.status == cb.Build.Status.EXPIRED
    assert not b.start_time and b.finish_time  # it never left the queue
    assert [s.status for s in b.steps] == [cb.Build.Status.STATUS_UNKNOWN]
    _contract(emulator)


def test_build_outcome_status_refused(emulator: Any) -> None:
    with pytest.raises(ValueError, match="build outcome status"):
        emulator.emu.outcomes.add("build", "x", "m", status="SUCCESS")
    with pytest.raises(ValueError, match="build outcomes only"):
        emulator.emu.outcomes.add("execution", "x", "m", status="TIMEOUT")
    rule = emulator.control.fail("build", "x", "m")
    assert "status" not in rule  # FAILURE, the default


def test_build_longer_than_its_timeout_times_out(
    emulator: Any, client: cb.CloudBuildClient
) -> None:
    _repo(emulator)
    emulator.emu.latency.set(durations={"build": 6_000.0})  # 6 s at the test time scale
    op = client.create_build(project_id=PROJECT, build=_build(timeout="100s"), parent=PARENT)
    with pytest.raises(gexc.GatewayTimeout, match="timed out"):
        op.result(polling=POLL)  # stopped at the timeout: run to its end it would succeed
    b = client.get_build(request={"name": f"{PARENT}/builds/{op.metadata.build.id}"})
    assert b.status == cb.Build.Status.TIMEOUT and b.timeout.total_seconds() == 100
    assert [s.status for s in b.steps] == [cb.Build.Status.TIMEOUT]
    assert emulator.emu.store.get("artifactregistry.tag", IMAGE) is None
    # within its timeout the same build succeeds
    emulator.emu.latency.set(durations={"build": 50.0})
    ok = client.create_build(project_id=PROJECT, build=_build(timeout="100s"), parent=PARENT)
    assert ok.result(polling=POLL).status == cb.Build.Status.SUCCESS
    _contract(emulator)


def test_cancelled_build_operation_errors(emulator: Any, client: cb.CloudBuildClient) -> None:
    emulator.emu.latency.set(durations={"build": 60_000.0})
    build = _build(images=[], timeout="86400s")
    op = client.create_build(project_id=PROJECT, build=build, parent=PARENT)
    client.cancel_build(request={"name": f"{PARENT}/builds/{op.metadata.build.id}"})
    with pytest.raises(gexc.GoogleAPICallError, match="cancelled"):
        op.result(polling=POLL)
    _contract(emulator)


def test_api_disabled(emulator: Any) -> None:
    c = cb.CloudBuildClient(**gapic_options(emulator.url))
    with pytest.raises(gexc.Forbidden) as err:
        c.create_build(project_id="other-build-proj", build=_build(), parent=PARENT)
    assert err.value.reason == "SERVICE_DISABLED"


def test_regional_builds_path(emulator: Any, client: cb.CloudBuildClient) -> None:
    """The .../locations/{l}/builds routes, as the discovery client sends them (GAPIC uses
    ?parent= on the global path instead)."""
    _repo(emulator)
    builds = emulator.discovery("cloudbuild", "v1").projects().locations().builds()
    body = json.loads(cb.Build.to_json(_build()))
    op = builds.create(parent=PARENT, projectId=PROJECT, body=body).execute()
    assert op["name"].startswith(f"{PARENT}/operations/")
    build_id = op["metadata"]["build"]["id"]
    listed = builds.list(parent=PARENT, projectId=PROJECT).execute()
    assert [b["id"] for b in listed["builds"]] == [build_id]
    _contract(emulator)


def test_a_local_builds_log_starts_with_its_head_whatever_the_clocks(emulator: Any) -> None:
    """A build run here may end before its scaled queue time is over, and its lines carry
    wall times: the log still reads start, steps, end, in the order they were written."""
    from deployer.emulator.cloudbuild.execute import write_log
    from deployer.emulator.local.build import BuildResult

    serviceusage.set_enabled(emulator.emu, PROJECT, "logging.googleapis.com")
    start = emulator.emu.clock() + 30.0  # still queued by the emulator's clock
    build = {
        "id": "b-1",
        "_startAt": start,
        "status": "SUCCESS",
        "source": {"storageSource": {"bucket": BUCKET, "object": OBJECT}},
        "results": {"images": [{"name": IMAGE, "digest": "sha256:" + "0" * 64}]},
    }
    wall = 1_700_000_000.123456  # a wall time whose float sum with the start rounds down
    result = BuildResult("SUCCESS", "sha256:" + "0" * 64, [(wall, "Step 1/2"), (wall, "Step 2/2")])
    write_log(emulator.emu, build, result, project_id=PROJECT)
    entries = emulator.discovery("logging", "v2").entries()
    body = {"resourceNames": [f"projects/{PROJECT}"], "filter": 'resource.labels.build_id="b-1"'}
    lines = [e["textPayload"] for e in entries.list(body=body).execute()["entries"]]
    assert lines[0] == 'starting build "b-1"' and lines[-1] == "DONE"
    assert lines.index("BUILD") < lines.index("Step 1/2") < lines.index("Step 2/2")
    assert lines.index("Step 2/2") < lines.index("PUSH")

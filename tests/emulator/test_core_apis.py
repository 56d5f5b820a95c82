"""Service Usage v1 and Resource Manager v3 through the real discovery clients, every exchange
checked against the discovery documents."""

from __future__ import annotations

import json
import time

import pytest
from googleapiclient.errors import HttpError

from deployer.emulator import ApiError
from deployer.emulator.projects import project_number
from deployer.emulator.serviceusage import DEFAULT_ENABLED, require_enabled
from deployer.emulator.testing import discovery_client
from tests.contract import check_transcript

PROJECT = "su-proj"
NUMBER = project_number(PROJECT)


@pytest.fixture
def su(emulator):
    return discovery_client(emulator.url, "serviceusage", "v1")


@pytest.fixture
def crm(emulator):
    return discovery_client(emulator.url, "cloudresourcemanager", "v3")


@pytest.fixture(autouse=True)
def _contract(emulator):
    yield
    assert check_transcript(emulator.control.transcript()) == []


def wait(su, op, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not op.get("done"):
        assert time.monotonic() < deadline, op
        time.sleep(0.005)
        op = su.operations().get(name=op["name"]).execute()
    return op


@pytest.mark.virtual_clock  # still running at the first poll, however slow the machine
def test_enable_polls_to_done(emulator, su):
    emulator.control.set_latency(time_scale=0.005)  # 20 s -> 0.1 s
    name = f"projects/{PROJECT}/services/run.googleapis.com"
    assert su.services().get(name=name).execute()["state"] == "DISABLED"
    op = su.services().enable(name=name, body={}).execute()
    assert op["name"].startswith(f"operations/acat.p2-{NUMBER}-")
    assert "done" not in op
    assert (
        op["metadata"]["@type"]
        == "type.googleapis.com/google.api.serviceusage.v1.OperationMetadata"
    )
    assert su.operations().get(name=op["name"]).execute().get("done") is None
    emulator.clock.advance(0.09)
    assert su.operations().get(name=op["name"]).execute().get("done") is None
    emulator.clock.advance(0.02)
    done = su.operations().get(name=op["name"]).execute()
    assert done["response"] == {
        "@type": "type.googleapis.com/google.api.serviceusage.v1.EnableServiceResponse",
        "service": {
            "name": f"projects/{NUMBER}/services/run.googleapis.com",
            "config": {"name": "run.googleapis.com", "title": "Cloud Run Admin API"},
            "state": "ENABLED",
            "parent": f"projects/{NUMBER}",
        },
    }
    assert su.services().get(name=name).execute()["state"] == "ENABLED"
    # enabling again: the done no-op operation, as Google answers
    again = su.services().enable(name=name, body={}).execute()
    assert again["name"] == "operations/noop.DONE_OPERATION" and again["done"] is True


def test_batch_enable_and_list(emulator, su):
    ids = ["run.googleapis.com", "sqladmin.googleapis.com", "storage.googleapis.com"]
    op = su.services().batchEnable(parent=f"projects/{PROJECT}", body={"serviceIds": ids}).execute()
    done = wait(su, op)
    assert [s["config"]["name"] for s in done["response"]["services"]] == ids
    enabled = []
    token = None
    while True:
        page = (
            su.services()
            .list(parent=f"projects/{PROJECT}", filter="state:ENABLED", pageSize=7, pageToken=token)
            .execute()
        )
        enabled += [s["config"]["name"] for s in page.get("services", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    assert set(enabled) == DEFAULT_ENABLED | set(ids)
    disabled = su.services().list(parent=f"projects/{NUMBER}", filter="state:DISABLED").execute()
    assert "run.googleapis.com" not in [s["config"]["name"] for s in disabled["services"]]
    got = (
        su.services()
        .batchGet(
            parent=f"projects/{PROJECT}",
            names=[
                f"projects/{PROJECT}/services/run.googleapis.com",
                f"projects/{PROJECT}/services/iam.googleapis.com",
            ],
        )
        .execute()
    )
    assert [s["state"] for s in got["services"]] == ["ENABLED", "DISABLED"]


def test_unknown_service_and_bad_project(emulator, su):
    with pytest.raises(HttpError) as ei:
        su.services().enable(name=f"projects/{PROJECT}/services/nope.googleapis.com").execute()
    assert ei.value.resp.status == 403
    err = json.loads(ei.value.content)["error"]
    assert err["details"][0]["reason"] == "SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED"
    with pytest.raises(HttpError) as ei:
        su.services().get(name="projects/Bad_Project/services/run.googleapis.com").execute()
    assert ei.value.resp.status == 400
    with pytest.raises(HttpError) as ei:
        su.operations().get(name="operations/acat.p2-1-nope").execute()
    assert ei.value.resp.status == 404


def test_disable(emulator, su):
    name = f"projects/{PROJECT}/services/logging.googleapis.com"
    done = wait(su, su.services().disable(name=name, body={}).execute())
    assert done["response"]["service"]["state"] == "DISABLED"


def test_require_enabled(emulator):
    emu = emulator.emu
    require_enabled(emu, PROJECT, "storage.googleapis.com")
    with pytest.raises(ApiError) as ei:
        require_enabled(emu, PROJECT, "sqladmin.googleapis.com", legacy=True)
    body = ei.value.body()["error"]
    assert ei.value.code == 403 and body["status"] == "PERMISSION_DENIED"
    assert body["details"][0]["reason"] == "SERVICE_DISABLED"
    assert body["errors"][0]["reason"] == "accessNotConfigured"
    assert f"project {NUMBER}" in body["message"]


def test_project_get_by_id_and_number(emulator, crm):
    p = crm.projects().get(name=f"projects/{PROJECT}").execute()
    assert p["name"] == f"projects/{NUMBER}" and p["projectId"] == PROJECT
    assert p["state"] == "ACTIVE" and p["etag"] and p["createTime"].endswith("Z")
    assert crm.projects().get(name=f"projects/{NUMBER}").execute() == p
    with pytest.raises(HttpError) as ei:
        crm.projects().get(name="projects/123456789012").execute()
    assert ei.value.resp.status == 403


def test_project_iam_read_modify_write(emulator, crm):
    res = f"projects/{PROJECT}"
    pol = (
        crm.projects()
        .getIamPolicy(resource=res, body={"options": {"requestedPolicyVersion": 3}})
        .execute()
    )
    assert pol == {"version": 1, "etag": "ACAB"}
    pol["bindings"] = [{"role": "roles/cloudsql.client", "members": ["user:a@example.com"]}]
    new = crm.projects().setIamPolicy(resource=res, body={"policy": pol}).execute()
    assert new["bindings"] == pol["bindings"] and new["etag"] != "ACAB"
    # a stale etag: 409 ABORTED
    with pytest.raises(HttpError) as ei:
        crm.projects().setIamPolicy(resource=res, body={"policy": pol}).execute()
    assert ei.value.resp.status == 409
    assert json.loads(ei.value.content)["error"]["status"] == "ABORTED"
    # a service account that does not exist (yet)
    sa = f"runtime@{PROJECT}.iam.gserviceaccount.com"
    new["bindings"].append({"role": "roles/logging.logWriter", "members": [f"serviceAccount:{sa}"]})
    with pytest.raises(HttpError) as ei:
        crm.projects().setIamPolicy(resource=res, body={"policy": new}).execute()
    assert ei.value.resp.status == 400
    assert json.loads(ei.value.content)["error"]["message"] == (
        f"Service account {sa} does not exist."
    )
    emulator.emu.store.put("iam.sa", sa, {"email": sa, "_visibleAt": 0})
    final = (
        crm.projects()
        .setIamPolicy(
            resource=f"projects/{NUMBER}", body={"policy": new, "updateMask": "bindings,etag"}
        )
        .execute()
    )
    assert len(final["bindings"]) == 2
    assert crm.projects().getIamPolicy(resource=res, body={}).execute() == final

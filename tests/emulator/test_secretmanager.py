"""Secret Manager v1 through the real GAPIC client (REST): every route, errors mapped to the
right exception classes, crc32c checked, payloads absent from the transcript."""

from __future__ import annotations

import json

import google_crc32c
import pytest
from google.api_core import exceptions as core
from google.cloud import secretmanager

from deployer.emulator import serviceusage
from deployer.emulator.projects import project_number
from deployer.emulator.testing import gapic_options
from tests.contract import check_transcript

P = "sm-emu-proj"
PARENT = f"projects/{P}"
NUM = project_number(P)
VALUE = b"s3cr3t-value-never-logged"


@pytest.fixture
def sm(emulator):
    serviceusage.set_enabled(emulator.emu, P, "secretmanager.googleapis.com")
    yield secretmanager.SecretManagerServiceClient(**gapic_options(emulator.url))
    assert check_transcript(emulator.emu.transcript.entries()) == []
    assert VALUE.decode() not in json.dumps(emulator.emu.transcript.entries())


def create(sm, sid: str = "db-password", labels: dict[str, str] | None = None):
    return sm.create_secret(
        request={
            "parent": PARENT,
            "secret_id": sid,
            "secret": {
                "replication": {"automatic": {}},
                "labels": labels or {"managed-by": "djdeploy"},
            },
        }
    )


def add(sm, sid: str = "db-password", data: bytes = VALUE, crc: int | None = None):
    crc = int(google_crc32c.value(data)) if crc is None else crc
    return sm.add_secret_version(
        request={"parent": f"{PARENT}/secrets/{sid}", "payload": {"data": data, "data_crc32c": crc}}
    )


def test_secret_crud(sm):
    s = create(sm)
    assert s.name == f"projects/{NUM}/secrets/db-password"
    assert s.labels == {"managed-by": "djdeploy"}
    with pytest.raises(core.Conflict):
        create(sm)
    got = sm.get_secret(name=f"{PARENT}/secrets/db-password")
    assert got.name == s.name and got.replication.automatic is not None
    create(sm, "other", {"team": "x"})
    names = [x.name.rsplit("/", 1)[-1] for x in sm.list_secrets(parent=PARENT)]
    assert names == ["db-password", "other"]
    flt = sm.list_secrets(request={"parent": PARENT, "filter": "labels.managed-by=djdeploy"})
    assert [x.name.rsplit("/", 1)[-1] for x in flt] == ["db-password"]
    updated = sm.update_secret(
        request={
            "secret": {"name": f"{PARENT}/secrets/other", "labels": {"team": "y", "a": "b"}},
            "update_mask": {"paths": ["labels"]},
        }
    )
    assert updated.labels == {"team": "y", "a": "b"}
    sm.delete_secret(name=f"{PARENT}/secrets/other")
    with pytest.raises(core.NotFound):
        sm.get_secret(name=f"{PARENT}/secrets/other")
    with pytest.raises(core.NotFound):
        sm.delete_secret(name=f"{PARENT}/secrets/other")
    with pytest.raises(core.BadRequest):
        sm.create_secret(
            request={
                "parent": PARENT,
                "secret_id": "bad id!",
                "secret": {"replication": {"automatic": {}}},
            }
        )
    with pytest.raises(core.BadRequest):
        sm.create_secret(request={"parent": PARENT, "secret_id": "no-replication", "secret": {}})


def test_versions(sm):
    create(sm)
    v1 = add(sm)
    assert v1.name == f"projects/{NUM}/secrets/db-password/versions/1"
    assert v1.state == secretmanager.SecretVersion.State.ENABLED
    v2 = add(sm, data=b"second")
    assert v2.name.endswith("/versions/2")
    listed = list(sm.list_secret_versions(parent=f"{PARENT}/secrets/db-password"))
    assert [v.name.rsplit("/", 1)[-1] for v in listed] == ["2", "1"]  # newest first
    latest = sm.get_secret_version(name=f"{PARENT}/secrets/db-password/versions/latest")
    assert latest.name.endswith("/versions/2")
    got = sm.access_secret_version(name=f"{PARENT}/secrets/db-password/versions/1")
    assert got.payload.data == VALUE
    assert got.payload.data_crc32c == int(google_crc32c.value(VALUE))
    assert got.name.endswith("/versions/1")

    disabled = sm.disable_secret_version(name=f"{PARENT}/secrets/db-password/versions/2")
    assert disabled.state == secretmanager.SecretVersion.State.DISABLED
    with pytest.raises(core.BadRequest, match="DISABLED state"):  # 400 FAILED_PRECONDITION
        sm.access_secret_version(name=f"{PARENT}/secrets/db-password/versions/latest")
    enabled = sm.list_secret_versions(
        request={"parent": f"{PARENT}/secrets/db-password", "filter": "state:ENABLED"}
    )
    assert [v.name.rsplit("/", 1)[-1] for v in enabled] == ["1"]
    again = sm.enable_secret_version(name=f"{PARENT}/secrets/db-password/versions/2")
    assert again.state == secretmanager.SecretVersion.State.ENABLED
    gone = sm.destroy_secret_version(name=f"{PARENT}/secrets/db-password/versions/2")
    assert gone.state == secretmanager.SecretVersion.State.DESTROYED
    with pytest.raises(core.BadRequest, match="DESTROYED state"):
        sm.access_secret_version(name=f"{PARENT}/secrets/db-password/versions/2")
    with pytest.raises(core.BadRequest, match="DESTROYED state"):
        sm.enable_secret_version(name=f"{PARENT}/secrets/db-password/versions/2")
    assert add(sm, data=b"third").name.endswith("/versions/3")  # numbers are never reused
    with pytest.raises(core.NotFound):
        sm.get_secret_version(name=f"{PARENT}/secrets/db-password/versions/9")
    with pytest.raises(core.NotFound):
        add(sm, sid="missing")


def test_crc32c_mismatch_refused(sm):
    create(sm)
    with pytest.raises(core.BadRequest) as exc:
        add(sm, crc=12345)
    assert "Checksum mismatch" in exc.value.message
    assert list(sm.list_secret_versions(parent=f"{PARENT}/secrets/db-password")) == []


def test_payload_redacted_in_transcript(sm, emulator):
    create(sm)
    add(sm)
    sm.access_secret_version(name=f"{PARENT}/secrets/db-password/versions/1")
    entries = emulator.emu.transcript.entries()
    add_entry = next(e for e in entries if e["path"].endswith(":addVersion"))
    assert add_entry["body"]["payload"]["data"] == "***"
    access = next(e for e in entries if e["path"].endswith(":access"))
    assert access["response"]["payload"]["data"] == "***"
    assert access["response"]["payload"]["dataCrc32c"].isdigit()


def test_iam(sm):
    create(sm)
    name = f"{PARENT}/secrets/db-password"
    policy = sm.get_iam_policy(
        request={"resource": name, "options": {"requested_policy_version": 3}}
    )
    assert list(policy.bindings) == []
    member = "serviceAccount:run@sm-emu-proj.iam.gserviceaccount.com"
    from google.iam.v1 import policy_pb2

    new = policy_pb2.Policy(
        version=3,
        etag=policy.etag,
        bindings=[
            policy_pb2.Binding(role="roles/secretmanager.secretAccessor", members=["allUsers"])
        ],
    )
    stored = sm.set_iam_policy(request={"resource": name, "policy": new})
    assert stored.bindings[0].members == ["allUsers"]
    # a stale etag: 409 ABORTED
    with pytest.raises(core.Conflict):
        sm.set_iam_policy(request={"resource": name, "policy": new})
    # an unknown service account is refused
    bad = policy_pb2.Policy(
        etag=stored.etag,
        bindings=[policy_pb2.Binding(role="roles/secretmanager.secretAccessor", members=[member])],
    )
    with pytest.raises(core.BadRequest):
        sm.set_iam_policy(request={"resource": name, "policy": bad})
    with pytest.raises(core.NotFound):
        sm.get_iam_policy(request={"resource": f"{PARENT}/secrets/missing"})


def test_service_disabled(emulator):
    sm = secretmanager.SecretManagerServiceClient(**gapic_options(emulator.url))
    with pytest.raises(core.Forbidden) as exc:
        sm.list_secrets(parent="projects/sm-off-proj")
    assert exc.value.reason == "SERVICE_DISABLED"

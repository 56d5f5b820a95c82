"""Secret Manager v1 through the real GAPIC client (REST): every route, errors mapped to the
right exception classes, crc32c checked, payloads absent from the transcript."""

from __future__ import annotations

import datetime as dt
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


@pytest.fixture
def clock(emulator, monkeypatch):
    """The emulator's clock, moved by hand."""
    now = [emulator.emu.clock()]
    monkeypatch.setattr(emulator.emu, "clock", lambda: now[0])
    return now


def test_ttl_deletes_the_secret_when_it_expires(sm, clock):
    name = f"{PARENT}/secrets/short-lived"
    s = sm.create_secret(
        request={
            "parent": PARENT,
            "secret_id": "short-lived",
            "secret": {"replication": {"automatic": {}}, "ttl": dt.timedelta(seconds=3600)},
        }
    )
    assert s.expire_time.timestamp() == pytest.approx(clock[0] + 3600, abs=1e-5)
    add(sm, sid="short-lived")
    clock[0] += 3599
    assert sm.access_secret_version(name=f"{name}/versions/latest").payload.data == VALUE
    clock[0] += 1  # expireTime reached: the secret and its versions are gone
    with pytest.raises(core.NotFound):
        sm.get_secret(name=name)
    with pytest.raises(core.NotFound):
        sm.access_secret_version(name=f"{name}/versions/1")
    assert list(sm.list_secrets(parent=PARENT)) == []
    assert create(sm, "short-lived").expire_time is None  # the name is free again
    assert [v.name for v in sm.list_secret_versions(parent=name)] == []


def test_expire_time_set_moved_and_removed(sm, clock):
    name = f"{PARENT}/secrets/db-password"
    at = dt.datetime.fromtimestamp(clock[0] + 60, tz=dt.UTC)
    s = sm.create_secret(
        request={
            "parent": PARENT,
            "secret_id": "db-password",
            "secret": {"replication": {"automatic": {}}, "expire_time": at},
        }
    )
    assert s.expire_time == at
    later = sm.update_secret(
        request={
            "secret": {"name": name, "ttl": dt.timedelta(seconds=600)},
            "update_mask": {"paths": ["ttl"]},
        }
    )
    assert later.expire_time.timestamp() == pytest.approx(clock[0] + 600, abs=1e-5)
    kept = sm.update_secret(
        request={"secret": {"name": name}, "update_mask": {"paths": ["ttl"]}}
    )  # no ttl in the body: the expiration is removed
    assert kept.expire_time is None
    clock[0] += 3600
    assert sm.get_secret(name=name).name.endswith("/db-password")
    past = dt.datetime.fromtimestamp(clock[0] - 1, tz=dt.UTC)
    with pytest.raises(core.BadRequest, match="in the future"):
        sm.update_secret(
            request={
                "secret": {"name": name, "expire_time": past},
                "update_mask": {"paths": ["expire_time"]},
            }
        )


def test_version_destroy_ttl_delays_destruction(sm, clock):
    name = f"{PARENT}/secrets/db-password"
    s = sm.create_secret(
        request={
            "parent": PARENT,
            "secret_id": "db-password",
            "secret": {
                "replication": {"automatic": {}},
                "version_destroy_ttl": dt.timedelta(days=1),
            },
        }
    )
    assert s.version_destroy_ttl == dt.timedelta(days=1)
    add(sm)
    scheduled = sm.destroy_secret_version(name=f"{name}/versions/1")
    assert scheduled.state == secretmanager.SecretVersion.State.DISABLED
    assert scheduled.scheduled_destroy_time.timestamp() == pytest.approx(clock[0] + 86400, abs=1e-5)
    with pytest.raises(core.BadRequest, match="DISABLED state"):
        sm.access_secret_version(name=f"{name}/versions/1")
    restored = sm.enable_secret_version(name=f"{name}/versions/1")  # cancels the destruction
    assert restored.state == secretmanager.SecretVersion.State.ENABLED
    assert restored.scheduled_destroy_time is None
    clock[0] += 86400
    assert sm.access_secret_version(name=f"{name}/versions/1").payload.data == VALUE

    scheduled = sm.destroy_secret_version(name=f"{name}/versions/1")
    clock[0] += 86399
    assert sm.get_secret_version(name=f"{name}/versions/1").state.name == "DISABLED"
    clock[0] += 1
    gone = sm.get_secret_version(name=f"{name}/versions/1")
    assert gone.state == secretmanager.SecretVersion.State.DESTROYED
    assert (
        gone.destroy_time == scheduled.scheduled_destroy_time
        and gone.scheduled_destroy_time is None
    )
    with pytest.raises(core.BadRequest, match="DESTROYED state"):
        sm.enable_secret_version(name=f"{name}/versions/1")

    # without the ttl, destroy is immediate again
    cleared = sm.update_secret(
        request={"secret": {"name": name}, "update_mask": {"paths": ["version_destroy_ttl"]}}
    )
    assert not type(cleared).pb(cleared).HasField("version_destroy_ttl")
    add(sm)
    assert sm.destroy_secret_version(name=f"{name}/versions/2").state.name == "DESTROYED"
    with pytest.raises(core.BadRequest, match="positive duration"):
        sm.update_secret(
            request={
                "secret": {"name": name, "version_destroy_ttl": dt.timedelta(seconds=-5)},
                "update_mask": {"paths": ["version_destroy_ttl"]},
            }
        )

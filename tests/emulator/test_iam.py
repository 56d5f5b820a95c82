"""IAM v1 service accounts in the emulator, driven through the discovery client."""

from __future__ import annotations

import time

import pytest
from googleapiclient.errors import HttpError

from deployer.emulator import policies, serviceusage
from deployer.emulator.testing import discovery_client
from tests.contract import check_transcript

PROJECT = "iam-proj"


@pytest.fixture
def iam(emulator):
    serviceusage.set_enabled(emulator.emu, PROJECT, "iam.googleapis.com")
    return discovery_client(emulator.url, "iam", "v1")


@pytest.fixture
def clock(emulator, monkeypatch):
    """The emulator's clock, moved by hand."""
    now = [time.time()]
    monkeypatch.setattr(emulator.emu, "clock", lambda: now[0])
    return now


def _create(iam, account_id: str, **sa: str) -> dict:
    return (
        iam.projects()
        .serviceAccounts()
        .create(
            name=f"projects/{PROJECT}",
            body={"accountId": account_id, "serviceAccount": sa},
        )
        .execute()
    )


def _status(call) -> int:
    with pytest.raises(HttpError) as info:
        call.execute()
    return info.value.status_code


def test_service_account_crud(emulator, iam, clock):
    sas = iam.projects().serviceAccounts()
    created = _create(iam, "demo-run", displayName="djdeploy demo runtime", description="d")
    email = f"demo-run@{PROJECT}.iam.gserviceaccount.com"
    assert created["email"] == email
    assert created["name"] == f"projects/{PROJECT}/serviceAccounts/{email}"
    assert created["uniqueId"].isdigit() and len(created["uniqueId"]) == 21
    clock[0] += 3600

    got = sas.get(name=f"projects/{PROJECT}/serviceAccounts/{email}").execute()
    assert got == created
    by_uid = sas.get(name=f"projects/-/serviceAccounts/{created['uniqueId']}").execute()
    assert by_uid["email"] == email

    assert _status(sas.create(name=f"projects/{PROJECT}", body={"accountId": "demo-run"})) == 409
    assert _status(sas.create(name=f"projects/{PROJECT}", body={"accountId": "ab"})) == 400

    _create(iam, "demo-build")
    listed = sas.list(name=f"projects/{PROJECT}", pageSize=1).execute()
    assert len(listed["accounts"]) == 1 and listed["nextPageToken"]
    rest = sas.list(name=f"projects/{PROJECT}", pageToken=listed["nextPageToken"]).execute()
    assert len(rest["accounts"]) == 1 and "nextPageToken" not in rest

    patched = sas.patch(
        name=f"projects/-/serviceAccounts/{email}",
        body={"serviceAccount": {"displayName": "new name"}, "updateMask": "displayName"},
    ).execute()
    assert patched["displayName"] == "new name" and patched["description"] == "d"

    assert sas.delete(name=f"projects/{PROJECT}/serviceAccounts/{email}").execute() == {}
    assert _status(sas.get(name=f"projects/{PROJECT}/serviceAccounts/{email}")) == 404
    assert _status(sas.delete(name=f"projects/{PROJECT}/serviceAccounts/{email}")) == 404
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_api_must_be_enabled(emulator):
    iam = discovery_client(emulator.url, "iam", "v1")
    with pytest.raises(HttpError) as info:
        _create(iam, "not-enabled")
    assert info.value.status_code == 403
    assert "SERVICE_DISABLED" in info.value.content.decode()
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_new_account_is_eventually_consistent(emulator, iam, clock):
    crm = discovery_client(emulator.url, "cloudresourcemanager", "v3")
    sas = iam.projects().serviceAccounts()
    _create(iam, "fresh-acct")
    email = f"fresh-acct@{PROJECT}.iam.gserviceaccount.com"
    member = f"serviceAccount:{email}"

    # within the propagation window: GET 404, a binding naming it 400, a second create 409
    assert _status(sas.get(name=f"projects/{PROJECT}/serviceAccounts/{email}")) == 404
    assert _status(sas.create(name=f"projects/{PROJECT}", body={"accountId": "fresh-acct"})) == 409
    policy = crm.projects().getIamPolicy(resource=f"projects/{PROJECT}", body={}).execute()
    policy["bindings"] = [{"role": "roles/cloudsql.client", "members": [member]}]
    with pytest.raises(HttpError) as info:
        crm.projects().setIamPolicy(
            resource=f"projects/{PROJECT}", body={"policy": policy}
        ).execute()
    assert info.value.status_code == 400
    assert f"Service account {email} does not exist." in info.value.content.decode()

    clock[0] += emulator.emu.latency.duration("iam.sa.propagation") + 0.001
    assert sas.get(name=f"projects/{PROJECT}/serviceAccounts/{email}").execute()["email"] == email
    stored = (
        crm.projects()
        .setIamPolicy(resource=f"projects/{PROJECT}", body={"policy": policy})
        .execute()
    )
    assert stored["bindings"][0]["members"] == [member]

    # deleting the account leaves a deleted: member behind in policies that named it
    uid = sas.get(name=f"projects/{PROJECT}/serviceAccounts/{email}").execute()["uniqueId"]
    sas.delete(name=f"projects/{PROJECT}/serviceAccounts/{email}").execute()
    after = crm.projects().getIamPolicy(resource=f"projects/{PROJECT}", body={}).execute()
    assert after["bindings"][0]["members"] == [f"deleted:{member}?uid={uid}"]
    # the rewrite is a change: a new etag (a write with the etag read before is stale) ...
    assert after["etag"] != stored["etag"]
    with pytest.raises(HttpError) as info:
        crm.projects().setIamPolicy(
            resource=f"projects/{PROJECT}", body={"policy": {"etag": stored["etag"]}}
        ).execute()
    assert info.value.status_code == 409
    # ... and an account created again under the same email inherits no grant
    key = f"projects/{PROJECT}"
    assert policies.granted_since(emulator.emu, key, "roles/cloudsql.client", member) is None
    assert policies.granted_since(
        emulator.emu, key, "roles/cloudsql.client", f"deleted:{member}?uid={uid}"
    )
    _create(iam, "fresh-acct")
    clock[0] += emulator.emu.latency.duration("iam.sa.propagation") + 0.001
    assert not policies.effective(emulator.emu, key, "roles/cloudsql.client", member)
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_service_account_policy(emulator, iam, clock):
    sas = iam.projects().serviceAccounts()
    _create(iam, "runtime-sa")
    _create(iam, "builder-sa")
    clock[0] += 3600
    runtime = f"projects/{PROJECT}/serviceAccounts/runtime-sa@{PROJECT}.iam.gserviceaccount.com"
    builder = f"serviceAccount:builder-sa@{PROJECT}.iam.gserviceaccount.com"
    policy = sas.getIamPolicy(resource=runtime, options_requestedPolicyVersion=3).execute()
    assert policy["etag"] and "bindings" not in policy
    policy["bindings"] = [{"role": "roles/iam.serviceAccountUser", "members": [builder]}]
    policy["version"] = 3
    stored = sas.setIamPolicy(resource=runtime, body={"policy": policy}).execute()
    assert stored["bindings"] == policy["bindings"]
    with pytest.raises(HttpError) as info:  # the etag read first is stale now
        sas.setIamPolicy(resource=runtime, body={"policy": policy}).execute()
    assert info.value.status_code == 409
    assert '"ABORTED"' in info.value.content.decode()
    assert check_transcript(emulator.emu.transcript.entries()) == []

"""The secrets step: diff tables, then up / no-op up / drift / faults / destroy on the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deployer import errors
from deployer.config import Config, SecretRef
from deployer.emulator import serviceusage
from deployer.engine import Engine, Options
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.base import Action, Broken, Change, NotOurs, Secret
from deployer.steps.secrets import Secrets
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PROJECT = "secrets-steps-proj"
REGION = "europe-west1"


def config(**kw: Any) -> Config:
    return Config(tenant="demo", project=PROJECT, region=REGION, **kw)


CFG = config()
STEP = Secrets(CFG)
IDS = list(STEP.generated)
OURS = dict(CFG.names.labels)


def without(labels: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != key}


def gen(versions: int = 1, latest: str | None = "1", labels: dict[str, str] | None = None):
    return {
        "labels": dict(OURS if labels is None else labels),
        "versions": versions,
        "latest": latest,
    }


def observed(**over: Any) -> dict[str, Any]:
    g = {sid: gen() for sid in IDS}
    g.update(over.pop("generated", {}))
    return {"generated": g, "user": over.pop("user", [])}


@pytest.mark.parametrize(
    ("obs", "action", "paths", "failure"),
    [
        (None, Action.CREATE, IDS, ""),
        (observed(), Action.NOOP, [], ""),
        (observed(generated={IDS[0]: None}), Action.UPDATE, [IDS[0]], ""),
        (
            observed(generated={IDS[1]: gen(versions=0, latest=None)}),
            Action.UPDATE,
            [f"{IDS[1]}.versions"],
            "",
        ),
        (
            observed(generated={IDS[1]: gen(versions=2, latest=None)}),
            Action.REFUSE,
            [],
            "none is enabled",
        ),
        (  # one of our labels removed by hand: drift, repaired
            observed(generated={IDS[2]: gen(labels=without(OURS, "djdeploy-app"))}),
            Action.UPDATE,
            [f"{IDS[2]}.labels.djdeploy-app"],
            "",
        ),
        (  # labelled for another app (or tenant): not ours, never adopted
            observed(generated={IDS[2]: gen(labels={**OURS, "djdeploy-app": "other"})}),
            Action.REFUSE,
            [],
            "not labelled as djdeploy's",
        ),
        (
            observed(generated={IDS[2]: gen(labels={"team": "x"})}),
            Action.REFUSE,
            [],
            "not labelled as djdeploy's",
        ),
        (
            observed(
                user=[
                    {"env": "API_KEY", "secret": "api-key", "version": "latest", "state": "missing"}
                ]
            ),
            Action.REFUSE,
            [],
            "secret env API_KEY: secret api-key does not exist",
        ),
        (
            observed(
                user=[
                    {
                        "env": "API_KEY",
                        "secret": "k",
                        "version": "latest",
                        "state": "no-enabled-version",
                    }
                ]
            ),
            Action.REFUSE,
            [],
            "gcloud secrets versions add k",
        ),
        (
            observed(user=[{"env": "API_KEY", "secret": "k", "version": "3", "state": "ok"}]),
            Action.NOOP,
            [],
            "",
        ),
    ],
)
def test_diff(obs, action, paths, failure):
    change = STEP.diff(obs)
    assert change.action is action
    assert [f.path for f in change.fields] == paths
    assert failure in str(change.failure or "")
    if not failure:
        assert change.failure is None
    else:  # labelled for someone else: not ours; anything else is for the user to fix
        assert isinstance(change.failure, NotOurs if "not labelled" in failure else Broken)
    if action is Action.NOOP:
        assert "never regenerated" in change.reason


def test_secret_repr_is_masked():
    value = STEP._new_value(CFG.names.secret_key)
    assert repr(value) == str(value) == "***"
    assert len(value.reveal()) >= 50


# -- against the emulator ------------------------------------------------------------------------


def make_cloud(emulator, *, request_timeout: float = 60.0) -> Cloud:
    serviceusage.set_enabled(emulator.emu, PROJECT, "secretmanager.googleapis.com")
    clients = ClientFactory(endpoint=emulator.url, project=PROJECT, request_timeout=request_timeout)
    return Cloud(PROJECT, REGION, clients, clock=emulator.clock)


class Apis:
    name = "apis"
    needs: tuple[str, ...] = ()

    def observe(self, cloud):
        return {}

    def diff(self, observed):
        return Change("apis", "apis", Action.NOOP, "enabled")

    def apply(self, cloud, change):
        pass

    def delete(self, cloud, *, delete_data):
        return Change("apis", "apis", Action.NOOP, "kept")


def up(cloud: Cloud, cfg: Config = CFG):
    return Engine(cloud, options=Options.scaled(0.001)).up([Apis(), Secrets(cfg)])


def destroy(cloud: Cloud, delete_data: bool, cfg: Config = CFG) -> Change:
    changes = Engine(cloud, options=Options.scaled(0.001)).destroy(
        [Apis(), Secrets(cfg)], delete_data=delete_data
    )
    return next(c for c in changes if c.step == "secrets")


def values(cloud: Cloud) -> dict[str, str]:
    return {sid: cloud.secrets.access(sid, "latest").reveal() for sid in IDS}


def test_up_never_regenerates(emulator):
    cloud = make_cloud(emulator)
    result = up(cloud)
    assert result.ok, [r.error for r in result.results]
    first = values(cloud)
    assert len(first[CFG.names.secret_key]) >= 50
    assert len(set(first.values())) == 3
    for sid in IDS:
        assert cloud.secrets.latest_version(sid) == "1"
        assert cloud.secrets.get_secret(sid)["labels"] == OURS
    emulator.emu.transcript.clear()
    result = up(cloud)
    assert result.ok
    assert result.results[-1].first.action is Action.NOOP
    entries = emulator.emu.transcript.entries()
    assert [e for e in entries if e["method"] != "GET"] == []
    assert values(cloud) == first
    for sid in IDS:
        assert cloud.secrets.latest_version(sid) == "1"
    # no value anywhere: transcript, Changes
    emulator.emu.transcript.clear()
    result = up(cloud)
    dump = json.dumps(emulator.emu.transcript.entries())
    for v in first.values():
        assert v not in dump
        assert v not in repr(result.results)


def test_values_absent_from_transcript_and_changes(emulator):
    cloud = make_cloud(emulator)
    result = up(cloud)
    v = values(cloud)
    entries = emulator.emu.transcript.entries()  # up, then the accesses above
    dump = json.dumps(entries)
    for value in v.values():
        assert value not in dump
    adds = [e for e in entries if e["path"].endswith(":addVersion")]
    assert len(adds) == 3
    assert all(e["body"]["payload"]["data"] == "***" for e in adds)
    accesses = [e for e in entries if e["path"].endswith(":access")]
    assert accesses and all(e["response"]["payload"]["data"] == "***" for e in accesses)
    for r in result.results:
        for value in v.values():
            assert value not in repr(r.first) and value not in repr(r.last)
    assert check_transcript(entries) == []


def test_drift_and_empty_secret(emulator):
    cloud = make_cloud(emulator)
    assert up(cloud).ok
    sid = CFG.names.secret_key
    stripped = {k: v for k, v in OURS.items() if k != "djdeploy-app"}
    cloud.secrets.update_labels(sid, {**stripped, "team": "t"})
    # an empty secret of ours gets its first version
    empty = CFG.names.secret_superuser_password
    cloud.secrets.delete_secret(empty)
    cloud.secrets.create_secret(empty, OURS)
    change = STEP.diff(STEP.observe(cloud))
    assert [f.path for f in change.fields] == [f"{sid}.labels.djdeploy-app", f"{empty}.versions"]
    before = values_without(cloud, empty)
    assert up(cloud).ok
    assert cloud.secrets.get_secret(sid)["labels"] == {**OURS, "team": "t"}
    assert cloud.secrets.latest_version(empty) == "1"
    assert values_without(cloud, empty) == before
    assert check_transcript(emulator.emu.transcript.entries()) == []


def values_without(cloud: Cloud, skip: str) -> dict[str, str]:
    return {sid: cloud.secrets.access(sid, "latest").reveal() for sid in IDS if sid != skip}


def test_all_versions_disabled_is_a_failure(emulator):
    cloud = make_cloud(emulator)
    assert up(cloud).ok
    sid = CFG.names.secret_db_password
    client = cloud.clients.gapic("secretmanager")
    client.disable_secret_version(name=f"projects/{PROJECT}/secrets/{sid}/versions/1")
    emulator.emu.transcript.clear()
    result = up(cloud)
    assert not result.ok
    assert "none is enabled" in result.results[-1].error
    assert not [e for e in emulator.emu.transcript.entries() if e["path"].endswith(":addVersion")]


def test_user_secret_env(emulator):
    cloud = make_cloud(emulator)
    cfg = config(
        secret_env={"API_KEY": SecretRef("api-key"), "OTHER": SecretRef("other", version="2")}
    )
    result = up(cloud, cfg)
    assert not result.ok
    err = result.results[-1].error
    assert "secret env API_KEY: secret api-key does not exist" in err
    assert f"gcloud secrets create api-key --project={PROJECT}" in err
    # nothing was created: the user's secrets are checked first
    assert cloud.secrets.get_secret(CFG.names.secret_key) is None
    assert cloud.secrets.get_secret("api-key") is None
    cloud.secrets.create_secret("api-key", {})
    cloud.secrets.add_version("api-key", Secret("k1"))
    cloud.secrets.create_secret("other", {})
    cloud.secrets.add_version("other", Secret("o1"))
    result = up(cloud, cfg)
    assert not result.ok
    assert "version 2 of secret other" in result.results[-1].error
    cloud.secrets.add_version("other", Secret("o2"))
    assert up(cloud, cfg).ok
    # destroy --delete-data never deletes the user's secrets
    change = destroy(cloud, True, cfg)
    assert change.action is Action.DELETE
    assert cloud.secrets.get_secret("api-key") is not None
    assert cloud.secrets.get_secret("other") is not None


def test_not_ours_refused(emulator):
    cloud = make_cloud(emulator)
    cloud.secrets.create_secret(CFG.names.secret_key, {"team": "x"})
    result = up(cloud)
    assert not result.ok
    assert "not labelled as djdeploy's" in result.results[-1].error
    # a refusal is never applied: not even the other generated secrets are created
    assert cloud.secrets.get_secret(CFG.names.secret_db_password) is None
    assert destroy(cloud, True).action is Action.NOOP
    assert cloud.secrets.get_secret(CFG.names.secret_key) is not None


def test_faults_ridden_out(emulator):
    cloud = make_cloud(emulator)
    emulator.control.add_fault(method="POST", path=r"/secrets$", code=503, times=2)
    emulator.control.add_fault(method="GET", path=r"/versions$", code=429, retry_after=0, times=2)
    assert up(cloud).ok
    for sid in IDS:
        assert cloud.secrets.latest_version(sid) == "1"


def test_add_version_after_dropped_response_adds_one(emulator):
    """addVersion applied but the response lost: the step observes the version instead of
    adding a second one (after waiting out the request's deadline: shorter than the step's at
    this test's time scale)."""
    cloud = make_cloud(emulator, request_timeout=5.0)
    emulator.control.add_fault(method="POST", path=r":addVersion$", action="drop", times=1)
    assert up(cloud).ok
    for sid in IDS:
        versions = cloud.secrets.list_versions(sid)
        assert len(versions) == 1


def test_destroy(emulator):
    cloud = make_cloud(emulator)
    assert up(cloud).ok
    for _ in range(2):
        kept = destroy(cloud, False)
        assert kept.action is Action.NOOP
        assert kept.reason == (
            f"kept: secrets {', '.join(IDS)} hold credentials; --delete-data to delete"
        )
    assert all(cloud.secrets.get_secret(sid) for sid in IDS)
    assert destroy(cloud, True).action is Action.DELETE
    assert not any(cloud.secrets.get_secret(sid) for sid in IDS)
    assert destroy(cloud, True).action is Action.NOOP
    gone = destroy(cloud, False)  # "kept" names only what exists
    assert (gone.action, gone.reason) == (Action.NOOP, "secrets already gone")
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_list_managed(emulator):
    cloud = make_cloud(emulator)
    assert up(cloud).ok
    cloud.secrets.create_secret("unrelated", {"team": "x"})
    found = cloud.secrets.list_managed()
    assert sorted(f["name"] for f in found) == sorted(IDS)
    assert all(f["kind"] == "secret" and f["labels"] == OURS for f in found)


def test_add_version_is_sent_again_only_when_refused(emulator):
    """addVersion is not safe to repeat: a lost answer or a 500 may have added the version, so
    it is never sent again (MaybeApplied: the step re-observes); a lost answer first waits out
    the deadline the request carried, so a late version lands before that observe. A 503 says
    it was not applied: sent again in place."""
    cloud = make_cloud(emulator)
    cloud.secrets.create_secret("one", OURS)
    emulator.control.add_fault(method="POST", path=r"/one:addVersion$", action="drop", times=1)
    before = emulator.clock.monotonic()
    with pytest.raises(errors.MaybeApplied):
        cloud.secrets.add_version("one", Secret("v1"))
    assert emulator.clock.monotonic() - before >= cloud.clients.request_timeout
    emulator.control.add_fault(method="POST", path=r"/one:addVersion$", code=503, times=1)
    assert cloud.secrets.add_version("one", Secret("v2")) == "2"
    emulator.control.add_fault(method="POST", path=r"/one:addVersion$", code=500, times=1)
    with pytest.raises(errors.MaybeApplied):
        cloud.secrets.add_version("one", Secret("v3"))
    assert [v["name"].rsplit("/", 1)[-1] for v in cloud.secrets.list_versions("one")] == ["2", "1"]
    adds = [e for e in emulator.emu.transcript.entries() if e["path"].endswith(":addVersion")]
    assert [e["status"] for e in adds] == [None, 503, 200, 500]  # each sent once but the 503
    assert cloud.secrets.access("one", "2").reveal() == "v2"


def test_removed_tenant_label_is_drift_repaired(emulator):
    """One of our labels removed by hand: still ours (managed-by=djdeploy), so up puts it back."""
    cloud = make_cloud(emulator)
    assert up(cloud).ok
    sid = CFG.names.secret_key
    stripped = {k: v for k, v in OURS.items() if k != "djdeploy-tenant"}
    cloud.secrets.update_labels(sid, {**stripped, "team": "t"})
    change = STEP.diff(STEP.observe(cloud))
    assert change.failure is None
    assert [f.path for f in change.fields] == [f"{sid}.labels.djdeploy-tenant"]
    result = up(cloud)
    assert result.ok, [r.error for r in result.results]
    assert cloud.secrets.get_secret(sid)["labels"] == {**OURS, "team": "t"}
    assert cloud.secrets.latest_version(sid) == "1"  # never regenerated


def test_another_tenants_secret_is_never_adopted(emulator):
    cloud = make_cloud(emulator)
    other = {**OURS, "djdeploy-tenant": "other"}
    cloud.secrets.create_secret(CFG.names.secret_key, other)
    result = up(cloud)
    assert not result.ok
    assert "not labelled as djdeploy's" in result.results[-1].error
    assert destroy(cloud, True).action is Action.NOOP
    assert cloud.secrets.get_secret(CFG.names.secret_key)["labels"] == other

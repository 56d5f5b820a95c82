"""The bucket and sources-bucket steps: diff table, and up / no-op / drift / faults /
adoption / destroy against the emulator."""

from __future__ import annotations

import pytest

from deployer.config import Config, MediaConfig
from deployer.engine import Engine, Options
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.apis import Apis
from deployer.steps.base import Action
from deployer.steps.bucket import MediaBucket, SourcesBucket
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PROJECT = "bucket-proj"
CONFIG = Config(tenant="demo", project=PROJECT)
MEDIA = MediaBucket(CONFIG)
SOURCES = SourcesBucket(CONFIG)
STEPS = [Apis(CONFIG), MEDIA, SOURCES]
IAM_OK = {"uniformBucketLevelAccess": {"enabled": True}, "publicAccessPrevention": "enforced"}


def _cloud(emulator, project: str = PROJECT) -> Cloud:
    return Cloud(
        project,
        CONFIG.region,
        ClientFactory(endpoint=emulator.url, project=project),
        clock=emulator.clock,
    )


def _writes(emulator) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in emulator.emu.transcript.entries()
        if e["method"] != "GET" and not e["path"].endswith(":getIamPolicy")
    ]


def _contract(emulator) -> None:
    entries = [
        e for e in emulator.emu.transcript.entries() if not e["path"].startswith("/download/")
    ]
    assert check_transcript(entries) == []


def _media(**over) -> dict:
    base = {
        "name": CONFIG.names.bucket,
        "location": "EUROPE-WEST1",
        "labels": dict(CONFIG.names.labels),
        "iamConfiguration": {**IAM_OK, "bucketPolicyOnly": {"enabled": True}},
    }
    return {**base, **over}


@pytest.mark.parametrize(
    ("observed", "action", "paths", "failure"),
    [
        (None, Action.CREATE, None, ""),
        (_media(), Action.NOOP, [], ""),
        (_media(labels={**CONFIG.names.labels, "extra": "kept"}), Action.NOOP, [], ""),
        (
            _media(labels={k: v for k, v in CONFIG.names.labels.items() if k != "djdeploy-app"}),
            Action.UPDATE,
            ["labels.djdeploy-app"],
            "",
        ),
        (
            _media(labels={"managed-by": "djdeploy", "djdeploy-tenant": "other"}),
            Action.REFUSE,
            None,
            "not labelled as ours",
        ),
        (_media(labels={}), Action.REFUSE, None, "not labelled as ours"),
        (
            # another app of our tenant: Names.owns refuses it (the tenant rule alone adopted it)
            _media(labels={**CONFIG.names.labels, "djdeploy-app": "other"}),
            Action.REFUSE,
            None,
            "not labelled as ours",
        ),
        (
            _media(
                iamConfiguration={
                    "uniformBucketLevelAccess": {"enabled": False},
                    "publicAccessPrevention": "inherited",
                }
            ),
            Action.UPDATE,
            [
                "iamConfiguration.uniformBucketLevelAccess.enabled",
                "iamConfiguration.publicAccessPrevention",
            ],
            "",
        ),
        (_media(location="US"), Action.REFUSE, [], "location cannot change"),
        (_media(location="europe-west1"), Action.NOOP, [], ""),
    ],
)
def test_media_diff(observed, action, paths, failure):
    change = MEDIA.diff(observed)
    assert change.action is action
    if paths is not None:
        assert [f.path for f in change.fields] == paths
    assert failure in str(change.failure) if failure else change.failure is None
    assert change.reason


def test_sources_diff_wants_lifecycle_and_shared_label():
    want = SOURCES.desired()
    assert want["labels"] == {"managed-by": "djdeploy"}
    assert want["lifecycle"]["rule"][0] == {"action": {"type": "Delete"}, "condition": {"age": 30}}
    observed = {
        "name": CONFIG.names.staging_bucket,
        "location": "EUROPE-WEST1",
        "labels": {"managed-by": "djdeploy"},
        "iamConfiguration": IAM_OK,
    }
    change = SOURCES.diff(observed)
    assert change.action is Action.UPDATE and [f.path for f in change.fields] == ["lifecycle"]
    assert SOURCES.diff({**observed, "lifecycle": want["lifecycle"]}).action is Action.NOOP


def test_media_location_from_config():
    step = MediaBucket(Config(tenant="demo", project=PROJECT, media=MediaConfig(location="EU")))
    assert step.diff(_media(location="EU")).action is Action.NOOP


def test_up_noop_drift_faults_destroy(emulator):
    cloud = _cloud(emulator)
    engine = Engine(cloud, options=Options.scaled(0.001))
    emulator.control.add_fault(method="POST", path="^/storage/v1/b$", code=503, times=2)
    emulator.control.add_fault(
        method="GET", path="^/storage/v1/b/", code=429, retry_after=0, times=1
    )
    result = engine.up(STEPS)
    assert result.ok, result.results
    media = cloud.storage.get_bucket(CONFIG.names.bucket)
    assert media["labels"] == dict(CONFIG.names.labels)
    assert media["iamConfiguration"]["publicAccessPrevention"] == "enforced"
    assert media["location"] == "EUROPE-WEST1"
    sources = cloud.storage.get_bucket(CONFIG.names.staging_bucket)
    assert sources["labels"] == {"managed-by": "djdeploy"}
    assert sources["lifecycle"]["rule"][0]["condition"] == {"age": 30}

    emulator.emu.transcript.clear()
    again = engine.up(STEPS)
    assert again.ok and not any(r.changed for r in again.results)
    assert _writes(emulator) == []

    # drift: a label removed and uniform access switched off by hand
    cloud.storage.patch_bucket(
        CONFIG.names.bucket,
        {
            "labels": {"djdeploy-app": None},
            "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": False}},
        },
    )
    planned = engine.plan(STEPS)[1]
    assert planned.action is Action.UPDATE and not planned.failure
    assert [f.path for f in planned.fields] == [
        "labels.djdeploy-app",
        "iamConfiguration.uniformBucketLevelAccess.enabled",
    ]
    assert engine.up(STEPS).ok
    assert MEDIA.diff(MEDIA.observe(cloud)).action is Action.NOOP
    cloud.storage.patch_bucket(CONFIG.names.staging_bucket, {"lifecycle": None})
    assert engine.up(STEPS).ok and SOURCES.diff(SOURCES.observe(cloud)).action is Action.NOOP

    # destroy keeps data unless asked; then empties and deletes; twice is fine
    cloud.storage.upload(CONFIG.names.bucket, "uploads/a.jpg", b"jpeg", content_type="image/jpeg")
    kept = {c.step: c for c in engine.destroy(STEPS, delete_data=False)}
    assert kept["bucket"].action is Action.NOOP and "holds media" in kept["bucket"].reason
    assert (
        kept["sources-bucket"].action is Action.NOOP and "shared" in kept["sources-bucket"].reason
    )
    assert cloud.storage.object_exists(CONFIG.names.bucket, "uploads/a.jpg")
    gone = {c.step: c for c in engine.destroy(STEPS, delete_data=True)}
    assert gone["bucket"].action is Action.DELETE
    assert cloud.storage.get_bucket(CONFIG.names.bucket) is None
    assert cloud.storage.get_bucket(CONFIG.names.staging_bucket) is not None
    again = {c.step: c for c in engine.destroy(STEPS, delete_data=True)}
    assert again["bucket"].action is Action.NOOP
    _contract(emulator)


def test_bucket_taken_by_another_project_is_not_ours(emulator):
    other = _cloud(emulator, "someone-else")
    other.storage.create_bucket(CONFIG.names.bucket, location="US", labels={"team": "x"})
    cloud = _cloud(emulator)
    result = Engine(cloud, options=Options.scaled(0.001)).up(STEPS)
    failed = {r.step: r.error for r in result.results}
    assert "not labelled as ours" in failed["bucket"]
    destroyed = {c.step: c for c in Engine(cloud).destroy(STEPS, delete_data=True)}
    assert destroyed["bucket"].action is Action.NOOP
    assert other.storage.get_bucket(CONFIG.names.bucket) is not None
    _contract(emulator)


def test_409_on_create_adopts_our_bucket(emulator):
    """A create whose response was lost (dropped connection): the retry answers 409, the
    bucket is read back, found ours and adopted."""
    cloud = _cloud(emulator)
    emulator.control.add_fault(method="POST", path="^/storage/v1/b$", action="drop", times=1)
    result = Engine(cloud, options=Options.scaled(0.001)).up(STEPS)
    assert result.ok, result.results
    statuses = [
        e.get("status")
        for e in emulator.emu.transcript.entries()
        if e["method"] == "POST" and e["path"] == "/storage/v1/b"
    ]
    assert 409 in statuses
    assert MEDIA.diff(MEDIA.observe(cloud)).action is Action.NOOP
    _contract(emulator)


def test_destroy_empties_a_versioned_bucket(emulator):
    """Versioning on (by hand): overwrites and deletes leave noncurrent generations, which
    Google counts when deleting a bucket. destroy --delete-data deletes every generation, so
    the bucket delete succeeds."""
    cloud = _cloud(emulator)
    engine = Engine(cloud, options=Options.scaled(0.001))
    assert engine.up(STEPS).ok
    name = CONFIG.names.bucket
    cloud.storage.patch_bucket(name, {"versioning": {"enabled": True}})
    for body in (b"v1", b"v2"):
        cloud.storage.upload(name, "uploads/a.jpg", body, content_type="image/jpeg")
    cloud.storage.upload(name, "uploads/gone.jpg", b"x", content_type="image/jpeg")
    cloud.storage.delete_object(name, "uploads/gone.jpg")  # noncurrent only: no live object
    assert cloud.storage.list_objects(name) == ["uploads/a.jpg"]

    gone = {c.step: c for c in engine.destroy(STEPS, delete_data=True)}
    assert gone["bucket"].action is Action.DELETE
    assert "3 object generation(s)" in gone["bucket"].reason
    assert cloud.storage.get_bucket(name) is None
    deletes = [
        e["query"].get("generation")
        for e in emulator.emu.transcript.entries()
        if e["method"] == "DELETE" and "/o/" in e["path"]
    ]
    assert len(deletes) == 4 and all(deletes[1:])  # each generation named
    _contract(emulator)

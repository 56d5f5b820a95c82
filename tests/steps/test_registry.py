"""The registry step: diff table, then the Artifact Registry repository on the emulator."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from deployer import errors
from deployer.config import Config
from deployer.emulator import serviceusage
from deployer.engine import Engine, Options
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.base import Action, Broken, Change, NotOurs
from deployer.steps.registry import Registry
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PROJECT = "registry-proj"
REGION = "europe-west1"
CONFIG = Config(tenant="demo", project=PROJECT, region=REGION, labels={"team": "web"})
STEP = Registry(CONFIG)
LABELS = dict(CONFIG.names.labels)
REPO_NAME = f"projects/{PROJECT}/locations/{REGION}/repositories/demo-django"


# -- diff table ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "action", "paths", "failure"),
    [
        (None, Action.CREATE, ["format", "labels"], ""),
        ({"format": "DOCKER", "labels": LABELS}, Action.NOOP, [], ""),
        (
            {"format": "DOCKER", "labels": {**LABELS, "extra": "x"}, "createTime": "t"},
            Action.NOOP,
            [],
            "",
        ),
        (
            {"format": "DOCKER", "labels": {**LABELS, "team": "ops"}},
            Action.UPDATE,
            ["labels.team"],
            "",
        ),
        (
            {"format": "DOCKER", "labels": {k: v for k, v in LABELS.items() if k != "managed-by"}},
            Action.UPDATE,
            ["labels.managed-by"],
            "",
        ),
        ({"format": "DOCKER"}, Action.REFUSE, [], "not labelled managed-by=djdeploy"),
        (
            {"format": "DOCKER", "labels": {**LABELS, "djdeploy-tenant": "other"}},
            Action.REFUSE,
            [],
            "never takes over",
        ),
        (
            # another app of our tenant: Names.owns refuses it (the tenant rule alone adopted it)
            {"format": "DOCKER", "labels": {**LABELS, "djdeploy-app": "other"}},
            Action.REFUSE,
            [],
            "never takes over",
        ),
        ({"format": "NPM", "labels": LABELS}, Action.REFUSE, [], "not DOCKER"),
    ],
)
def test_diff(observed: Any, action: Action, paths: list[str], failure: str) -> None:
    change = STEP.diff(observed)
    assert change.action is action
    got = [f.path for f in change.fields]
    for p in paths:
        assert p in got
    if action is Action.NOOP:
        assert change.reason == "repository demo-django exists and matches"
    if failure:
        assert failure in str(change.failure)
        # a repository of another format is ours but unusable; any other refusal: not ours
        assert isinstance(change.failure, Broken if "DOCKER" in failure else NotOurs)
    else:
        assert change.failure is None
    assert change.info["registry"] == f"{REGION}-docker.pkg.dev/{PROJECT}/demo-django"


@pytest.mark.parametrize(
    ("labels", "ours"),
    [
        (None, False),
        ({}, False),
        ({"managed-by": "djdeploy"}, True),
        ({"managed-by": "djdeploy", "djdeploy-tenant": "demo"}, True),
        ({"managed-by": "djdeploy", "djdeploy-tenant": "other"}, False),
        ({"djdeploy-tenant": "demo"}, True),
        ({"managed-by": "terraform"}, False),
        ({"managed-by": "djdeploy", "djdeploy-tenant": "demo", "djdeploy-app": "other"}, False),
    ],
)
def test_is_ours(labels: Any, ours: bool) -> None:
    """The registry decides with the rule every step shares (Names.owns)."""
    change = STEP.diff({"format": "DOCKER", "labels": labels})
    assert (change.failure is None) is ours
    assert CONFIG.names.owns(labels) is ours


# -- on the emulator -----------------------------------------------------------------------------


def _cloud(emulator: Any) -> Cloud:
    return Cloud(
        PROJECT, REGION, ClientFactory(endpoint=emulator.url, project=PROJECT), clock=emulator.clock
    )


def _engine(emulator: Any) -> Engine:
    return Engine(_cloud(emulator), options=Options.scaled(0.001))


def _steps() -> list[Any]:
    return [dataclasses.replace(STEP, needs=())]


def _enable(emulator: Any) -> None:
    serviceusage.set_enabled(emulator.emu, PROJECT, "artifactregistry.googleapis.com")


def _mutations(emulator: Any) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in emulator.emu.transcript.entries()
        if e["method"] != "GET" and not e["path"].endswith(":getIamPolicy")
    ]


def test_api_disabled_fails_clearly(emulator: Any) -> None:
    result = _engine(emulator).up(_steps())
    assert not result.ok
    assert "Artifact Registry API has not been used" in result.results[0].error


def test_up_noop_drift_destroy(emulator: Any) -> None:
    _enable(emulator)
    engine = _engine(emulator)
    result = engine.up(_steps())
    assert result.ok, result.results[0].error
    assert result.results[0].first.action is Action.CREATE  # type: ignore[union-attr]
    repo = emulator.emu.store.get("artifactregistry.repository", REPO_NAME)
    assert repo["format"] == "DOCKER" and repo["labels"] == LABELS

    emulator.emu.transcript.clear()
    result = engine.up(_steps())
    assert result.results[0].first.action is Action.NOOP  # type: ignore[union-attr]
    assert _mutations(emulator) == []

    # drift: a label changed and one removed by hand -> repaired, extra labels kept
    cloud = _cloud(emulator)
    drifted = {k: v for k, v in LABELS.items() if k != "djdeploy-app"}
    cloud.registry.patch_labels("demo-django", {**drifted, "team": "ops", "cost": "x"})
    change = engine.plan(_steps())[0]
    assert change.action is Action.UPDATE
    assert {f.path for f in change.fields} == {"labels.team", "labels.djdeploy-app"}
    assert engine.up(_steps()).ok
    repo = emulator.emu.store.get("artifactregistry.repository", REPO_NAME)
    assert repo["labels"] == {**LABELS, "cost": "x"}

    assert check_transcript(emulator.emu.transcript.entries()) == []

    # destroy twice
    first = engine.destroy(_steps(), delete_data=False)[0]
    assert first.action is Action.DELETE
    assert emulator.emu.store.get("artifactregistry.repository", REPO_NAME) is None
    second = engine.destroy(_steps(), delete_data=True)[0]
    assert second.action is Action.NOOP and "absent" in second.reason
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_faults_ridden_out(emulator: Any) -> None:
    _enable(emulator)
    emulator.emu.faults.add(method="GET", path=r"/repositories/demo-django$", code=503, times=3)
    emulator.emu.faults.add(method="POST", path=r"/repositories$", code=429, retry_after=1, times=1)
    result = _engine(emulator).up(_steps())
    assert result.ok, result.results[0].error
    assert emulator.emu.store.get("artifactregistry.repository", REPO_NAME) is not None


def test_create_conflict_adopts_ours_refuses_others(emulator: Any) -> None:
    _enable(emulator)
    cloud = _cloud(emulator)
    create = Change("registry", "repository demo-django", Action.CREATE, "absent")
    # made meanwhile by another run of ours (without the extra label): adopted, labels fixed
    cloud.registry.create_repository("demo-django", {"managed-by": "djdeploy"})
    STEP.apply(cloud, create)
    repo = emulator.emu.store.get("artifactregistry.repository", REPO_NAME)
    assert repo["labels"] == LABELS

    # someone else's repository under our name: never adopted, never deleted
    other = Registry(Config(tenant="other", project=PROJECT, region=REGION, app="django"))
    cloud.registry.create_repository("other-django", {"owner": "someone"})
    with pytest.raises(errors.NotOurs, match="repository other-django"):
        other.apply(cloud, dataclasses.replace(create, resource="repository other-django"))
    change = other.diff(other.observe(cloud))
    assert change.action is Action.REFUSE and "not labelled" in str(change.failure)
    kept = other.delete(cloud, delete_data=True)
    assert kept.action is Action.NOOP and "not labelled as ours" in kept.reason
    assert cloud.registry.get_repository("other-django") is not None


def test_list_managed(emulator: Any) -> None:
    _enable(emulator)
    cloud = _cloud(emulator)
    cloud.registry.create_repository("demo-django", LABELS)
    cloud.registry.create_repository("not-ours", {"owner": "x"})
    found = cloud.registry.list_managed()
    assert found == [{"kind": "repository", "name": "demo-django", "labels": LABELS}]

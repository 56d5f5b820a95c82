"""The service-accounts step: diff table, and up / wait for visibility / no-op / drift /
fault / destroy against the emulator."""

from __future__ import annotations

import pytest

from deployer.config import Config
from deployer.emulator import serviceusage
from deployer.engine import Engine, Options
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.apis import Apis
from deployer.steps.base import Action, NotOurs
from deployer.steps.service_accounts import ServiceAccounts
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PROJECT = "sa-proj"
CONFIG = Config(tenant="demo", project=PROJECT)
STEP = ServiceAccounts(CONFIG)
STEPS = [Apis(CONFIG), STEP]


def _cloud(emulator) -> Cloud:
    serviceusage.set_enabled(emulator.emu, PROJECT, "iam.googleapis.com")
    return Cloud(
        PROJECT,
        CONFIG.region,
        ClientFactory(endpoint=emulator.url, project=PROJECT),
        clock=emulator.clock,
    )


def _writes(emulator) -> list[str]:
    return [
        f"{e['method']} {e['path']}"
        for e in emulator.emu.transcript.entries()
        if e["method"] != "GET" and not e["path"].endswith(":getIamPolicy")
    ]


def _ours(role: str) -> dict:
    return {
        "email": STEP.email(role),
        "displayName": STEP.display_name(role),
        "description": STEP.description(role),
    }


@pytest.mark.parametrize(
    ("observed", "action", "paths"),
    [
        (None, Action.CREATE, ["runtime.email", "build.email"]),
        ({"runtime": _ours("runtime"), "build": None}, Action.CREATE, ["build.email"]),
        ({"runtime": _ours("runtime"), "build": _ours("build")}, Action.NOOP, []),
        (
            {"runtime": {**_ours("runtime"), "displayName": "x"}, "build": _ours("build")},
            Action.UPDATE,
            ["runtime.displayName"],
        ),
        (
            {
                "runtime": {"email": STEP.email("runtime"), "visible": False},
                "build": _ours("build"),
            },
            Action.WAIT,
            [],
        ),
    ],
)
def test_diff(observed, action, paths):
    change = STEP.diff(observed)
    assert change.action is action
    assert [f.path for f in change.fields] == paths
    assert not change.failure


def test_diff_refuses_foreign_account():
    foreign = {"email": STEP.email("runtime"), "description": "made by hand"}
    change = STEP.diff({"runtime": foreign, "build": _ours("build")})
    assert change.action is Action.REFUSE and isinstance(change.failure, NotOurs)
    assert "not created by djdeploy" in str(change.failure)


def test_account_of_another_app_is_not_ours():
    """The description names tenant and app; both must be ours (as Names.owns decides for
    labelled resources)."""
    other = ServiceAccounts(Config(tenant=CONFIG.tenant, app="other", project=CONFIG.project))
    theirs = {**_ours("runtime"), "description": other.description("runtime")}
    assert not STEP.is_ours(theirs)
    assert STEP.is_ours(_ours("runtime"))
    assert STEP.description("build") == (
        f"djdeploy build service account of tenant {CONFIG.tenant} (app {CONFIG.app}); "
        "managed by djdeploy"
    )


def test_up_waits_until_visible_then_noop_drift_destroy(emulator):
    cloud = _cloud(emulator)
    # a visibility window long enough to be observed (iam.sa.propagation: 200 s x 0.001)
    emulator.control.set_latency(durations={"iam.sa.propagation": 200})
    engine = Engine(cloud, options=Options.scaled(0.001))
    emulator.control.add_fault(method="POST", path="/serviceAccounts$", code=503, times=1)
    events = []
    engine.on_event = events.append
    result = engine.up(STEPS)
    assert result.ok, result.results
    waits = [e for e in events if e.phase == "wait"]
    assert waits and "visible" in waits[0].change.reason
    creates = [
        e
        for e in emulator.emu.transcript.entries()
        if e["method"] == "POST" and e["path"].endswith("/serviceAccounts")
    ]
    assert [e["status"] for e in creates].count(200) == 2  # one create per account
    assert STEP.diff(STEP.observe(cloud)).action is Action.NOOP

    emulator.emu.transcript.clear()
    assert not any(r.changed for r in engine.up(STEPS).results)
    assert _writes(emulator) == []

    # drift: a display name edited by hand is put back
    cloud.iam.patch_service_account(STEP.email("build"), {"displayName": "hand made"})
    assert engine.up(STEPS).ok
    assert cloud.iam.get_service_account(STEP.email("build"))["displayName"] == (
        STEP.display_name("build")
    )

    assert engine.destroy(STEPS, delete_data=False)[0].action is Action.DELETE  # reversed
    assert STEP.observe(cloud) is None
    assert engine.destroy(STEPS, delete_data=False)[0].action is Action.NOOP
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_foreign_account_is_not_adopted(emulator):
    cloud = _cloud(emulator)
    emulator.control.set_latency(durations={"iam.sa.propagation": 0})
    cloud.iam.create_service_account(CONFIG.names.runtime_sa_id, "mine", "made by hand")
    result = Engine(cloud, options=Options.scaled(0.001)).up(STEPS)
    assert not result.ok
    assert "not created by djdeploy" in result.results[1].error
    kept = Engine(cloud).destroy(STEPS, delete_data=True)[0]
    assert kept.action is Action.NOOP and "kept" in kept.reason
    assert cloud.iam.get_service_account(STEP.email("runtime")) is not None

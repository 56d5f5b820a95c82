"""The apis step: diff table, and up / no-op up / fault / destroy against the emulator."""

from __future__ import annotations

import pytest

from deployer.config import Config
from deployer.engine import Engine, Options
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.apis import REQUIRED_APIS, Apis
from deployer.steps.base import Action
from tests.contract import check_transcript

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PROJECT = "apis-proj"
CONFIG = Config(tenant="demo", project=PROJECT)


def _cloud(emulator) -> Cloud:
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


@pytest.mark.parametrize(
    ("enabled", "action", "paths"),
    [
        (list(REQUIRED_APIS), Action.NOOP, []),
        ([], Action.UPDATE, [f"services.{s}" for s in REQUIRED_APIS]),
        (
            [s for s in REQUIRED_APIS if s != "run.googleapis.com"],
            Action.UPDATE,
            ["services.run.googleapis.com"],
        ),
        ([*REQUIRED_APIS, "compute.googleapis.com"], Action.NOOP, []),
    ],
)
def test_diff(enabled, action, paths):
    change = Apis(CONFIG).diff({"enabled": enabled})
    assert change.action is action
    assert [f.path for f in change.fields] == paths
    assert change.reason


def test_up_noop_fault_destroy(emulator):
    cloud = _cloud(emulator)
    engine = Engine(cloud, options=Options.scaled(0.001))
    emulator.control.add_fault(method="POST", path=":batchEnable$", code=503, times=2)
    emulator.control.add_fault(method="GET", path=":batchGet$", code=429, retry_after=0, times=1)
    result = engine.up([Apis(CONFIG)])
    assert result.ok, result.results
    assert Apis(CONFIG).diff(Apis(CONFIG).observe(cloud)).action is Action.NOOP
    assert any(e["status"] == 503 for e in emulator.emu.transcript.entries())

    emulator.emu.transcript.clear()
    again = engine.up([Apis(CONFIG)])
    assert again.ok and not again.results[0].changed
    assert _writes(emulator) == []  # batchGet is a GET

    changes = engine.destroy([Apis(CONFIG)], delete_data=True)
    assert changes[0].action is Action.NOOP and "stay enabled" in changes[0].reason
    assert engine.destroy([Apis(CONFIG)], delete_data=False)[0].action is Action.NOOP
    assert check_transcript(emulator.emu.transcript.entries()) == []

"""The service step and a rollback's pin (docs/rollback.md): kept, shown, restored."""

from __future__ import annotations

from typing import Any

from deployer.steps.base import Action
from deployer.steps.service import PIN_ANNOTATION, Service, pin_spec
from tests.steps.test_service import CFG, IMAGE, live

OLD = "demo-django-00000-old"
LATEST = "demo-django-00001-abc"  # live()'s ready revision


def pinned(**over: Any) -> dict[str, Any]:
    observed = live(**over)
    observed["service"].update(pin_spec(OLD))
    return observed


def test_a_pinned_service_that_matches_is_a_noop_that_names_the_pin() -> None:
    change = Service(CFG, IMAGE).diff(pinned())
    assert change.action is Action.NOOP, change
    assert change.reason.endswith(
        f"; pinned to {OLD} by rollback (`djdeploy rollback --undo` moves traffic to {LATEST})"
    )
    assert change.info["pinned"] == OLD and change.info["revision"] == LATEST


def test_traffic_moved_by_hand_while_pinned_is_put_back() -> None:
    observed = pinned()
    observed["service"]["traffic"] = pin_spec(None)["traffic"]
    change = Service(CFG, IMAGE).diff(observed)
    assert change.action is Action.UPDATE
    assert [f.path for f in change.fields] == ["traffic"]
    assert "pinned to" in change.reason


def test_a_new_image_while_pinned_is_deployed_and_keeps_the_pin() -> None:
    change = Service(CFG, IMAGE).diff(pinned(template__containers__0__image="o:1"))
    assert change.action is Action.UPDATE
    assert [f.path for f in change.fields] == ["template.containers"]
    spec = Service(CFG, IMAGE).desired(live()["inputs"], pin=OLD)
    assert spec["annotations"] == {PIN_ANNOTATION: OLD}
    assert spec["traffic"] == [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": OLD, "percent": 100}
    ]


def test_unpinned_the_spec_sets_no_traffic() -> None:
    spec = Service(CFG, IMAGE).desired(live()["inputs"])
    assert "traffic" not in spec and "annotations" not in spec
    assert Service(CFG, IMAGE).diff(live()).info.get("pinned") is None

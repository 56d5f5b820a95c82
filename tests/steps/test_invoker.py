"""Invoker step: diff table, then grant / no-op / revoke / org-policy refusal on the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from deployer.config import ServiceConfig
from deployer.errors import NotFound, PermissionDenied, means_absent
from deployer.steps.base import Action
from deployer.steps.invoker import MEMBER, ROLE, Invoker
from deployer.steps.service import Service
from tests.steps.test_service import (
    CFG,
    IMAGE,
    alone,
    assert_contract,
    config,
    make_cloud,
    make_engine,
    mutating,
    seed,
)

pytestmark = pytest.mark.virtual_clock  # the engine and the emulator share emulator.clock

PRIVATE = config(service=ServiceConfig(public=False))
OPEN = {"policy": {"bindings": [{"role": ROLE, "members": [MEMBER, "user:a@example.com"]}]}}
CLOSED = {"policy": {"bindings": [{"role": ROLE, "members": ["user:a@example.com"]}]}}


@pytest.mark.parametrize(
    ("cfg", "observed", "action"),
    [
        (CFG, None, Action.CREATE),
        (PRIVATE, None, Action.NOOP),
        (CFG, {"policy": {"version": 1, "etag": "ACAB", "bindings": []}}, Action.UPDATE),
        (CFG, CLOSED, Action.UPDATE),
        (CFG, OPEN, Action.NOOP),
        (PRIVATE, OPEN, Action.UPDATE),
        (PRIVATE, CLOSED, Action.NOOP),
    ],
)
def test_diff(cfg: Any, observed: Any, action: Action) -> None:
    change = Invoker(cfg).diff(observed)
    assert change.action is action
    assert change.reason


class _Run:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def get_iam_policy(self, service: str) -> Any:
        raise self.exc


class _Cloud:
    def __init__(self, exc: Exception) -> None:
        self.run = _Run(exc)


@pytest.mark.parametrize(
    ("exc", "absent"),
    [
        (NotFound("no service (HTTP 404)", code=404), True),
        (PermissionDenied("Run API off (HTTP 403)", code=403, reason="SERVICE_DISABLED"), True),
        (PermissionDenied("denied (HTTP 403)", code=403, reason="IAM_PERMISSION_DENIED"), False),
    ],
)
def test_observe_absent_as_errors_means_absent_says(exc: Exception, absent: bool) -> None:
    """The one rule for "absent" (errors.means_absent), not a copy of it."""
    assert means_absent(exc) is absent  # type: ignore[arg-type]
    if absent:
        assert Invoker(CFG).observe(_Cloud(exc)) is None  # type: ignore[arg-type]
    else:
        with pytest.raises(PermissionDenied):
            Invoker(CFG).observe(_Cloud(exc))  # type: ignore[arg-type]


def _members(cloud: Any) -> list[str]:
    policy = cloud.run.get_iam_policy(CFG.names.service)
    return [m for b in policy["bindings"] if b["role"] == ROLE for m in b["members"]]


def test_grant_noop_revoke(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    engine = make_engine(cloud)
    assert engine.up([alone(Service(CFG, IMAGE)), Invoker(CFG)]).ok
    assert MEMBER in _members(cloud)

    emulator.emu.transcript.clear()
    again = engine.up([alone(Service(CFG, IMAGE)), Invoker(CFG)])
    assert again.ok and again.results[1].first.action is Action.NOOP
    assert mutating(emulator.emu.transcript.entries()) == []

    # a concurrent policy change (409 ABORTED) makes the read-modify-write start over
    emulator.control.add_fault(
        method="POST", path=":setIamPolicy$", code=409, status="ABORTED", times=1
    )
    assert engine.up([alone(Service(PRIVATE, IMAGE)), Invoker(PRIVATE)]).ok
    assert MEMBER not in _members(cloud)
    assert engine.destroy([alone(Invoker(CFG))], delete_data=False)[0].action is Action.NOOP
    assert_contract(emulator)


def test_org_policy_refusal_is_clear(emulator: Any) -> None:
    cloud = make_cloud(emulator)
    seed(emulator, cloud)
    engine = make_engine(cloud)
    assert engine.up([alone(Service(CFG, IMAGE))]).ok
    emulator.control.add_fault(
        method="POST",
        path=":setIamPolicy$",
        code=400,
        message="One or more users named in the policy do not belong to a permitted customer.",
        times=5,
    )
    result = engine.up([alone(Invoker(CFG))])
    assert not result.ok
    assert "organisation's policy forbids public services" in result.results[0].error
    assert "public = false" in result.results[0].error
    # refused once: not retried
    sets = [e for e in emulator.emu.transcript.entries() if e["path"].endswith(":setIamPolicy")]
    assert len(sets) == 1

"""Polls fitted to each operation kind (docs/architecture.md, "Polling"): the lag bounds per
kind as properties of the schedule, on a fake clock; nothing here waits or times anything."""

from __future__ import annotations

import importlib
import itertools
import pkgutil
from dataclasses import dataclass, field
from typing import Any

import pytest

import deployer.steps as steps_package
from deployer.clock import VirtualClock
from deployer.emulator.latency import DEFAULT_DURATIONS
from deployer.engine import EXPECTED_SECONDS, Engine, Event, Options, Phase
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.base import Action, Change, Operation

KINDS = sorted(EXPECTED_SECONDS)
OPERATIONS = [k for k in KINDS if k != "write"]  # "write": no operation, a look at once


def seen(options: Options, duration: float, expected: float | None) -> tuple[float, int]:
    """(lag, polls): when the schedule first looks at an operation of ``duration`` seconds
    that was expected to take ``expected``, after it ended, and how many looks that took."""
    waited, polls = 0.0, 0
    while waited < duration - 1e-9:
        waited += options.poll_delay(waited, expected)
        polls += 1
    return max(0.0, waited - duration), polls


def durations(low: float, high: float, n: int = 300) -> list[float]:
    """A dense grid over [low, high], its ends included."""
    return [low + (high - low) * i / n for i in range(n + 1)]


@pytest.mark.parametrize("kind", OPERATIONS)
def test_one_taking_its_expected_time_or_longer_is_seen_within_5_percent_or_2_s(
    kind: str,
) -> None:
    options = Options()
    expected = options.expected(kind)
    assert expected is not None
    for duration in durations(expected, 20 * expected):
        lag, _ = seen(options, duration, expected)
        assert lag <= 0.05 * duration + 1e-9, (kind, duration, lag)
        if duration < 60:
            assert lag <= 2.0, (kind, duration, lag)


@pytest.mark.parametrize("kind", KINDS)
def test_one_ending_early_is_seen_within_a_quarter_of_its_time(kind: str) -> None:
    """Sooner than expected (Google's figures are typical, not promises): seen within a quarter
    of its duration (at least poll_initial), within 2 s for a kind expected under a minute,
    and never more than poll_max late."""
    options = Options()
    expected = options.expected(kind)
    assert expected is not None
    for duration in durations(0.01, expected)[:-1]:
        lag, _ = seen(options, duration, expected)
        assert lag <= max(0.25 * duration, options.poll_initial) + 1e-9, (kind, duration, lag)
        assert lag <= (options.poll_quick if expected <= 60 else options.poll_max) + 1e-9


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scale", [1.0, 0.1, 0.01])
def test_one_ending_on_time_is_seen_at_once_with_fewer_polls(kind: str, scale: float) -> None:
    """The schedule looks exactly at the expected end (the emulator's operations take exactly
    their modelled time), with no more looks than the one schedule for all kinds needed."""
    options = Options() if scale == 1.0 else Options.scaled(scale)
    expected = options.expected(kind)
    assert expected == pytest.approx(EXPECTED_SECONDS[kind] * scale)
    lag, polls = seen(options, expected, expected)
    assert lag == pytest.approx(0.0, abs=1e-9)
    _, before = seen(options, expected, None)
    assert polls <= before, (kind, polls, before)


def test_no_kind_named_is_the_growing_schedule() -> None:
    options = Options()
    assert options.expected("") is None
    assert [options.poll_delay(w) for w in (0.0, 30.0, 100.0, 1000.0)] == [1.0, 1.5, 5.0, 15.0]
    with pytest.raises(KeyError):
        options.expected("sql.instance.craete")


def test_the_expected_durations_are_the_emulators() -> None:
    """The emulator's latency model assumes the figures the engine expects: a change to one
    is a decision about the other."""
    for kind in OPERATIONS:
        assert DEFAULT_DURATIONS[kind] == EXPECTED_SECONDS[kind], kind


def test_a_write_is_looked_at_again_at_once() -> None:
    """A write that takes effect when its call returns (a bucket, an IAM policy) is looked at
    again a tenth of a second later, not after poll_initial (1 s: a step on the critical path,
    the sources bucket before the lease, the invoker after the service)."""
    for options in (Options(), Options.scaled(0.1), Options.scaled(0.01)):
        expected = options.expected("write")
        assert expected is not None
        assert options.poll_delay(0.0, expected) == pytest.approx(expected)
        assert expected < options.poll_initial


def _operations(cls: type[Operation]) -> list[type[Operation]]:
    return [cls, *itertools.chain.from_iterable(_operations(c) for c in cls.__subclasses__())]


def test_every_kind_a_step_names_is_expected() -> None:
    for module in pkgutil.iter_modules(steps_package.__path__):
        importlib.import_module(f"deployer.steps.{module.name}")
    named = {kind: cls.__name__ for cls in _operations(Operation) for kind in cls.EXPECT.values()}
    assert set(named) <= set(EXPECTED_SECONDS), named
    assert {"sql.instance.create", "build", "run.execution", "run.service.deploy"} <= set(named)


@dataclass(eq=False)
class Timed:
    """A step whose apply starts an operation of ``kind`` taking ``takes`` clock seconds."""

    kind: str
    takes: float
    clock: VirtualClock
    name: str = "timed"
    needs: tuple[str, ...] = ()
    started: float | None = None
    observed: list[float] = field(default_factory=list)

    def change(self, action: Action, reason: str) -> Change:
        expect = self.kind if action is Action.CREATE else ""
        return Change(self.name, self.kind, action, reason, expect=expect)

    def observe(self, cloud: Any) -> float | None:
        if self.started is not None:
            self.observed.append(self.clock.monotonic())
        return self.started

    def diff(self, observed: float | None) -> Change:
        if observed is None:
            return self.change(Action.CREATE, "absent")
        if self.clock.monotonic() < observed + self.takes:
            return self.change(Action.WAIT, "running")
        return self.change(Action.NOOP, "done")

    def apply(self, cloud: Any, change: Change) -> None:
        self.started = self.clock.monotonic()

    def delete(self, cloud: Any, *, delete_data: bool) -> Change:
        return self.change(Action.DELETE, "gone")


@pytest.mark.parametrize("kind", KINDS)
def test_the_engine_acts_when_an_operation_is_due(kind: str) -> None:
    """Through the engine, on a virtual clock at real scale: an operation taking its kind's
    expected time is seen done by the first look at or after it is due, with fewer looks."""
    clock = VirtualClock()
    cloud = Cloud("p", "europe-west1", ClientFactory(endpoint="http://127.0.0.1:1"), clock=clock)
    events: list[Event] = []
    step = Timed(kind=kind, takes=EXPECTED_SECONDS[kind], clock=clock)
    result = Engine(cloud, options=Options(), on_event=events.append).up([step])
    assert result.ok
    assert step.started is not None
    done = next(e for e in events if e.phase is Phase.DONE)
    assert done.change is not None and done.change.expect == ""  # a noop starts nothing
    assert clock.monotonic() - (step.started + step.takes) == pytest.approx(0.0, abs=1e-6)
    _, before = seen(Options(), step.takes, None)
    assert len(step.observed) <= before

"""The engine over fake steps: ordering, concurrency, waiting, failure, destroy. No cloud here:
the steps below hold their own state, and the clock is fake."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from deployer.engine import Engine, Event, Options, Phase, order
from deployer.errors import StepFailed
from deployer.gcp import deletes
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.steps.base import Action, Broken, Change, Failure, NotOurs, Operation, Transient


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


@dataclass(eq=False)
class FakeStep:
    """A resource that becomes ready `polls` observations after apply; may fail."""

    name: str
    needs: tuple[str, ...] = ()
    data: bool = False
    polls: int = 0
    exists: bool = False
    fail_with: Failure | None = None
    fail_times: int = 0
    log: list[str] = field(default_factory=list)
    _countdown: int = -1

    def observe(self, cloud: Any) -> dict[str, Any] | None:
        if self._countdown > 0:
            self._countdown -= 1
            return {"state": "pending"}
        if self._countdown == 0 and self.fail_times:
            self.fail_times -= 1
            self._countdown = -1
            return {"state": "failed"}
        return {"state": "ready"} if self.exists else None

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return Change(self.name, self.name, Action.CREATE, "absent")
        if observed["state"] == "pending":
            return Change(self.name, self.name, Action.WAIT, "creating")
        if observed["state"] == "failed":
            return Change(self.name, self.name, Action.UPDATE, "failed", failure=self.fail_with)
        return Change(self.name, self.name, Action.NOOP, f"{self.name} exists")

    def apply(self, cloud: Any, change: Change) -> None:
        self.log.append(f"apply {self.name}")
        self.exists = True
        self._countdown = self.polls

    def delete(self, cloud: Any, *, delete_data: bool) -> Change:
        if self.data and not delete_data:
            return Change(self.name, self.name, Action.NOOP, "kept")
        self.exists = False
        return Change(self.name, self.name, Action.DELETE, "deleted")


def engine(clock: FakeClock, events: list[Event] | None = None) -> Engine:
    cloud = Cloud("p", "europe-west1", ClientFactory(endpoint="http://127.0.0.1:1"), clock=clock)
    return Engine(
        cloud,
        options=Options(poll_initial=1, poll_max=4, settle_seconds=5, step_timeout=100),
        on_event=(events.append if events is not None else lambda e: None),
    )


def test_order_puts_needs_first_and_refuses_cycles() -> None:
    a, b, c = FakeStep("a", ("b",)), FakeStep("b"), FakeStep("c", ("a",))
    assert [s.name for s in order([c, a, b])] == ["b", "a", "c"]
    with pytest.raises(ValueError, match="cycle"):
        order([FakeStep("x", ("y",)), FakeStep("y", ("x",))])
    with pytest.raises(ValueError, match="unknown"):
        order([FakeStep("x", ("nope",))])


def test_up_creates_waits_and_a_second_up_applies_nothing() -> None:
    steps = [FakeStep("a", polls=3), FakeStep("b", ("a",), polls=1)]
    result = engine(FakeClock()).up(steps)
    assert result.ok
    assert [r.first.action for r in result.results if r.first] == [Action.CREATE] * 2
    again = engine(FakeClock()).up(steps)
    assert [r.first.action for r in again.results if r.first] == [Action.NOOP] * 2
    assert steps[0].log == ["apply a"]


def test_failure_stops_dependents_but_not_independent_steps() -> None:
    steps = [
        FakeStep("a", polls=1, fail_with=Broken("boom"), fail_times=1),
        FakeStep("b", ("a",)),
        FakeStep("c"),
    ]
    result = engine(FakeClock()).up(steps)
    errors = {r.step: r.error for r in result.results}
    assert errors["a"] == "a: boom"
    assert errors["b"] == "not run: a failed"
    assert errors["c"] == ""
    assert not result.ok


def test_transient_failure_is_reapplied_until_it_clears() -> None:
    step = FakeStep("svc", polls=1, fail_with=Transient("grant not there yet", 2), fail_times=2)
    result = engine(FakeClock()).up([step])
    assert result.ok
    assert step.log == ["apply svc"] * 3


def test_wait_past_the_deadline_is_a_timeout() -> None:
    step = FakeStep("slow", polls=10_000)
    result = engine(FakeClock()).up([step])
    assert "slow: not done after 100 s" in result.results[0].error
    assert "run up again" in result.results[0].error


def test_events_tell_observe_apply_wait_done() -> None:
    events: list[Event] = []
    engine(FakeClock(), events).up([FakeStep("a", polls=2)])
    assert [e.phase for e in events] == [
        Phase.OBSERVE,
        Phase.APPLY,
        Phase.WAIT,
        Phase.WAIT,
        Phase.DONE,
    ]


def test_destroy_goes_in_reverse_and_keeps_data() -> None:
    steps = [FakeStep("db", data=True, exists=True), FakeStep("svc", ("db",), exists=True)]
    changes = engine(FakeClock()).destroy(steps, delete_data=False)
    assert [(c.step, c.action) for c in changes] == [("svc", Action.DELETE), ("db", Action.NOOP)]
    changes = engine(FakeClock()).destroy(steps, delete_data=True)
    assert [(c.step, c.action) for c in changes] == [("svc", Action.DELETE), ("db", Action.DELETE)]


def test_plan_is_read_only() -> None:
    steps = [FakeStep("a"), FakeStep("b", ("a",), exists=True)]
    changes = engine(FakeClock()).plan(steps)
    assert [c.action for c in changes] == [Action.CREATE, Action.NOOP]
    assert steps[0].log == []


def test_step_failed_names_the_step() -> None:
    assert str(StepFailed("bucket", "nope")) == "bucket: nope"


def test_a_difference_that_persists_after_apply_fails_the_step() -> None:
    class Stubborn(FakeStep):
        def observe(self, cloud: Any) -> dict[str, Any] | None:
            return None  # apply never sticks

    step = Stubborn("stubborn")
    result = engine(FakeClock()).up([step])
    assert "stubborn: still differs after apply" in result.results[0].error
    assert len(step.log) == 4  # the first apply and three re-applies


def test_transient_failures_are_reapplied_past_the_reapply_limit() -> None:
    step = FakeStep("svc", polls=1, fail_with=Transient("grant not there yet", 2), fail_times=6)
    result = engine(FakeClock()).up([step])
    assert result.ok
    assert len(step.log) == 7


@dataclass(eq=False)
class TwoStage(FakeStep):
    """A job: created, then run; its run (and its being done) may wait for ``run_needs``."""

    run_needs: tuple[str, ...] = ()
    ran: bool = False
    created: threading.Event = field(default_factory=threading.Event)

    def observe(self, cloud: Any) -> dict[str, Any] | None:
        return {"state": "ran" if self.ran else "created"} if self.exists else None

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return Change(self.name, self.name, Action.CREATE, "absent")
        if observed["state"] == "created":
            return Change(self.name, self.name, Action.RUN, "never ran")
        return Change(self.name, self.name, Action.NOOP, "ran")

    def apply(self, cloud: Any, change: Change) -> None:
        self.log.append(f"{change.action.value} {self.name}")
        if change.action is Action.CREATE:
            self.exists = True
            self.created.set()
        else:
            self.ran = True


def test_a_steps_next_stage_is_applied_at_once() -> None:
    """Create, then run (a job): the run does not wait settle_seconds as a repeat would."""
    events: list[Event] = []
    step = TwoStage("job")
    engine(FakeClock(), events).up([step])
    assert step.log == ["create job", "run job"]
    assert [e.phase for e in events] == [Phase.OBSERVE, Phase.APPLY, Phase.APPLY, Phase.DONE]


@dataclass(eq=False)
class AfterCreate(FakeStep):
    """A step whose first observation waits until ``job`` is created: the engine must create
    the job before this step is done, or the wait ends unset (and the test fails)."""

    job: TwoStage | None = None

    def observe(self, cloud: Any) -> dict[str, Any] | None:
        if self.job is not None and not self.log:
            assert self.job.created.wait(timeout=30), "the job waited for its run_needs to exist"
        return super().observe(cloud)


def test_a_job_is_made_beside_its_run_needs_and_runs_after_them() -> None:
    """db-init's job is created while sql-user is still under way; it runs, and the steps after
    it start, only once sql-user is done."""
    log: list[str] = []
    job = TwoStage("db-init", run_needs=("sql-user",), log=log)
    steps = [
        AfterCreate("sql-user", polls=2, log=log, job=job),
        job,
        FakeStep("svc", ("db-init",), log=log),
    ]
    events: list[Event] = []
    result = engine(FakeClock(), events).up(steps)
    assert result.ok
    assert log == ["create db-init", "apply sql-user", "run db-init", "apply svc"]
    waits = [e.message for e in events if e.step == "db-init" and e.phase is Phase.WAIT]
    assert waits == ["waits for sql-user"]


def test_a_done_job_still_counts_as_done_only_after_its_run_needs() -> None:
    """A job with nothing to do (NOOP) still holds the steps after it until its run_needs are
    done: everything after migrate stays after db-init."""
    log: list[str] = []
    steps = [
        FakeStep("db-init", polls=2, log=log),
        TwoStage("migrate", run_needs=("db-init",), exists=True, ran=True, log=log),
        FakeStep("svc", ("migrate",), log=log),
    ]
    assert engine(FakeClock()).up(steps).ok
    assert log == ["apply db-init", "apply svc"]


def test_a_job_whose_run_needs_failed_is_not_run() -> None:
    steps = [
        FakeStep("sql-user", polls=1, fail_with=Broken("boom"), fail_times=1),
        TwoStage("db-init", run_needs=("sql-user",)),
        FakeStep("migrate", ("db-init",)),
    ]
    result = engine(FakeClock()).up(steps)
    by_step = {r.step: r for r in result.results}
    assert by_step["sql-user"].error == "sql-user: boom"
    assert (by_step["db-init"].error, by_step["db-init"].waited_for) == (
        "not run: sql-user failed",
        "sql-user",
    )
    assert by_step["migrate"].error == "not run: db-init failed"
    assert steps[1].log == ["create db-init"]  # made, never run
    assert steps[2].log == []


def test_order_counts_run_needs() -> None:
    assert [s.name for s in order([TwoStage("j", run_needs=("s",)), FakeStep("s")])] == ["s", "j"]
    with pytest.raises(ValueError, match="unknown step nope"):
        order([TwoStage("j", run_needs=("nope",))])


@dataclass(eq=False)
class Early(FakeStep):
    """A step up makes early that destroy deletes before ``deleted_before`` (a trigger)."""

    deleted_before: tuple[str, ...] = ()
    applied: threading.Event = field(default_factory=threading.Event)

    def apply(self, cloud: Any, change: Change) -> None:
        super().apply(cloud, change)
        self.applied.set()


@dataclass(eq=False)
class Blocked(FakeStep):
    """A step whose apply finishes only once ``other`` has applied."""

    other: threading.Event = field(default_factory=threading.Event)

    def apply(self, cloud: Any, change: Change) -> None:
        assert self.other.wait(timeout=30), "the early step waited for this one"
        super().apply(cloud, change)


def test_deleted_before_orders_destroy_but_not_up() -> None:
    trigger = Early("trigger", deleted_before=("sql",))
    sql = Blocked("sql", other=trigger.applied)
    result = engine(FakeClock()).up([sql, trigger])
    assert result.ok, result.results
    assert [s.name for s in order([trigger, sql])] == ["sql", "trigger"]
    changes = engine(FakeClock()).destroy([trigger, sql], delete_data=True)
    assert [c.step for c in changes] == ["trigger", "sql"]
    with pytest.raises(ValueError, match="unknown step nope"):
        order([Early("t", deleted_before=("nope",))])


def test_the_same_action_is_reapplied_only_after_settle_seconds() -> None:
    """An enable that does not show while it runs is not re-sent on every poll."""

    class Slow(FakeStep):
        def observe(self, cloud: Any) -> dict[str, Any] | None:
            return {"state": "ready"} if len(self.log) >= 2 else None

    clock = FakeClock()
    step = Slow("apis")
    assert engine(clock).up([step]).ok
    assert step.log == ["apply apis", "apply apis"]
    assert clock.now >= 5  # the second apply came after settle_seconds


# -- the kind of failure decides, never its text -------------------------------------------------


@dataclass(eq=False)
class Refused(Operation):
    """A step whose diff refuses (a resource under our name that is not ours)."""

    name: str = "bucket"
    needs: tuple[str, ...] = ()
    log: list[str] = field(default_factory=list)

    @property
    def resource(self) -> str:
        return "bucket b"

    def observe(self, cloud: Any) -> dict[str, Any] | None:
        return {"labels": {}}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        return self.refuse(NotOurs("bucket b is not labelled as ours"))

    def apply(self, cloud: Any, change: Change) -> None:
        self.log.append("apply")

    def delete(self, cloud: Any, *, delete_data: bool) -> Change:
        return self.noop("kept")


def test_a_refusal_is_never_applied() -> None:
    step = Refused()
    result = engine(FakeClock()).up([step])
    assert result.results[0].error == "bucket: bucket b is not labelled as ours"
    assert result.results[0].first is not None
    assert result.results[0].first.action is Action.REFUSE
    assert step.log == []


def test_an_earlier_runs_broken_failure_is_applied_once_then_fails() -> None:
    """A failed build found by the first diff: apply builds again (once); the same failure
    seen after that apply is this run's own and fails the step, whatever its text says."""
    step = FakeStep(
        "image",
        polls=1,
        exists=True,
        fail_with=Broken("Permission denied on secret x"),  # text of a transient one: ignored
        fail_times=2,
    )
    step._countdown = 0  # found failed
    result = engine(FakeClock()).up([step])
    assert result.results[0].error == "image: Permission denied on secret x"
    assert step.log == ["apply image"]


def test_a_transient_failure_is_reapplied_after_its_delay() -> None:
    """A revision that fails while a grant propagates (until t=50): deployed again every 20 s
    (the failure's delay), not on every poll, until it is ready."""
    clock = FakeClock()
    applied: list[float] = []

    class Propagating(FakeStep):
        def observe(self, cloud: Any) -> dict[str, Any] | None:
            if not applied:
                return None
            return {"state": "failed" if applied[-1] < 50 else "ready"}

        def apply(self, cloud: Any, change: Change) -> None:
            applied.append(clock.now)

    step = Propagating("svc", fail_with=Transient("grant not there yet", 20))
    assert engine(clock).up([step]).ok
    # created, then the failure's first apply at once (a new stage), the others 20 s apart
    assert applied[1] - applied[0] < 20
    gaps = [b - a for a, b in itertools.pairwise(applied[1:])]
    assert len(gaps) == 3 and all(20 <= g < 25 for g in gaps)
    # a transient delay scales like the engine's intervals (the emulator's time scale)
    assert Options.scaled(0.001).delay_scale == Options.scaled(0.001).settle_seconds / 30


def test_polls_see_completion_within_5_percent_or_2_seconds():
    options = Options()
    for duration in (0.5, 3.0, 20.0, 59.0, 61.0, 300.0, 900.0, 3000.0):
        waited = 0.0
        while waited < duration:  # the poll that first sees the operation done
            waited += options.poll_delay(waited)
        lag = waited - duration
        assert lag <= (2.0 if duration < 60 else 0.05 * duration), (duration, lag)
    scaled = Options.scaled(0.01)
    assert scaled.poll_delay(0.0) == pytest.approx(0.1)
    assert scaled.poll_delay(1000.0) == scaled.poll_max


@dataclass(eq=False)
class FailingDelete(FakeStep):
    """A resource whose delete starts an operation (gcp/deletes.py) that ends in error after
    ``runs`` reads of it: the resource stays. In up it is a retiring step (exists: DELETE)."""

    runs: int = 2
    reads: int = 0

    def _start(self) -> None:
        def reason() -> str | None:
            self.reads += 1
            return "in use (injected)" if self.reads > self.runs else None

        deletes.started("Cloud Run", f"service {self.name}", reason)

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return Change(self.name, self.name, Action.NOOP, "gone")
        return Change(self.name, self.name, Action.DELETE, "retired")

    def apply(self, cloud: Any, change: Change) -> None:
        self.log.append(f"apply {self.name}")
        self._start()

    def delete(self, cloud: Any, *, delete_data: bool) -> Change:
        self.log.append(f"delete {self.name}")
        self._start()
        return Change(self.name, self.name, Action.DELETE, "deleting")


def test_a_failed_delete_fails_destroy_at_once_naming_it_once() -> None:
    clock = FakeClock()
    step = FailingDelete("web", exists=True)
    with pytest.raises(StepFailed) as failed:
        engine(clock).destroy([step], delete_data=True)
    assert str(failed.value) == (
        "web: Cloud Run did not delete service web: in use (injected); fix the cause and run "
        "destroy --delete-data again"
    )
    assert step.log == ["delete web"] and step.reads == 3  # failed at the first look after
    assert clock.now < 100  # not the step's deadline


def test_a_failed_delete_fails_a_retiring_step_at_once_and_no_other() -> None:
    clock = FakeClock()
    retiring = FailingDelete("worker-retired", exists=True)
    other = FakeStep("svc", polls=3)  # runs beside it, starts no delete
    result = engine(clock).up([retiring, other])
    errors = {r.step: r.error for r in result.results}
    assert errors == {
        "worker-retired": "worker-retired: Cloud Run did not delete service worker-retired: "
        "in use (injected); fix the cause and run up again",
        "svc": "",
    }
    assert retiring.log == ["apply worker-retired"]  # never re-applied: no wait, no retry
    assert clock.now < 100

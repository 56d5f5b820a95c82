"""plan / up / status / destroy over the step graph.

The engine owns every wait. For each step it observes, diffs, applies when the diff says so,
then re-observes until the fresh diff is NOOP: one loop covers long-running operations, IAM
propagation and resuming a half-finished run. Independent steps run concurrently; a step starts
as soon as the steps it needs are done. Time goes through the cloud's Clock (deployer/clock.py).
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from deployer.clock import Clock
from deployer.errors import DeployError, MaybeApplied, OperationFailed, StepFailed, Timeout
from deployer.gcp import deletes
from deployer.gcp.cloud import Cloud
from deployer.steps.base import Action, Change, Step, Transient

#: the least a scaled step deadline gives: an emulator that executes builds, migrates and starts
#: the app for real, in real seconds, whatever its time scale
MIN_SCALED_STEP_TIMEOUT = 600.0


#: How long each kind of operation typically takes on Google Cloud, in seconds: the steps name
#: the kind their action starts (`Operation.EXPECT`), and the engine sleeps until about then
#: instead of polling on one schedule for all (docs/architecture.md, "Polling"). The emulator's
#: latency model assumes the same figures (tests/test_polling.py keeps them in step).
EXPECTED_SECONDS: dict[str, float] = {
    "serviceusage.enable": 20.0,
    "sql.instance.create": 600.0,
    "sql.instance.update": 60.0,
    "sql.database": 10.0,
    "sql.user": 5.0,
    "build": 120.0,
    "run.job.update": 2.0,
    "run.execution": 30.0,
    "run.service.deploy": 30.0,
    "artifactregistry.repository.create": 5.0,
    "redis.instance.create": 300.0,
    "redis.instance.update": 120.0,
    # no operation: a write that takes effect when its call returns (a bucket, an IAM policy, a
    # secret), looked at again a tenth of a second later instead of after the 1 s poll_initial
    "write": 0.1,
}


@dataclass(frozen=True)
class Options:
    """How the engine waits. `scaled()` shrinks every interval for a fast emulator."""

    poll_initial: float = 1.0
    poll_max: float = 15.0
    # A running operation is looked at again after a twentieth of the time it has run, so its
    # completion is seen within 5% of its duration; within its first minute at least every
    # poll_quick seconds (seen within 2 s). Between poll_initial and poll_max.
    poll_fraction: float = 0.05
    poll_quick: float = 2.0
    quick_period: float = 60.0
    # An operation of a known kind (EXPECTED_SECONDS, times expect_scale) is looked at after a
    # quarter of its wait (between poll_initial and poll_max; poll_quick for one expected
    # within quick_period) until its expected end, exactly at that end, then after a twentieth
    # of its wait again, at least poll_fine apart
    early_fraction: float = 0.25
    poll_fine: float = 0.1
    expect_scale: float = 1.0
    step_timeout: float = 3600.0
    settle_seconds: float = 30.0  # how long a pending (non-WAIT) diff may persist after apply
    reapplies: int = 3  # re-applies before a persisting difference fails the step
    delay_scale: float = 1.0  # scales a Transient failure's delay like the intervals above

    @classmethod
    def scaled(cls, time_scale: float) -> Options:
        """Every interval shrunk with the emulator's time scale (retries sleep on the same
        clock as the engine, so the step deadline needs no floor); expected durations shrink
        with the time scale itself, as the emulator's operations do."""
        k = min(1.0, max(time_scale * 10, 0.005))
        return cls(
            poll_initial=max(0.005, 1.0 * k),
            poll_max=max(0.05, 15.0 * k),
            poll_quick=max(0.01, 2.0 * k),
            quick_period=60.0 * k,
            poll_fine=max(0.002, 0.1 * k),
            expect_scale=time_scale,
            settle_seconds=30.0 * k,
            delay_scale=k,
            # real work (an executing emulator's builds, migrations, app start) is not scaled
            step_timeout=max(3600.0 * k, MIN_SCALED_STEP_TIMEOUT),
        )

    def expected(self, kind: str) -> float | None:
        """Seconds an operation of ``kind`` is expected to take (None: no kind named)."""
        return EXPECTED_SECONDS[kind] * self.expect_scale if kind else None

    def poll_delay(self, waited: float, expected: float | None = None) -> float:
        """How long to sleep before looking again at something that has been running for
        ``waited`` seconds and is expected to take ``expected`` (docs/architecture.md,
        "Polling")."""
        ceiling = self.poll_quick if waited < self.quick_period else self.poll_max
        if expected is None:
            return min(max(self.poll_fraction * waited, self.poll_initial), ceiling)
        if waited < expected:  # one expected to end within the quick period keeps its ceiling
            if expected > self.quick_period:
                ceiling = self.poll_max
            early = min(max(self.early_fraction * waited, self.poll_initial), ceiling)
            return min(early, expected - waited)
        return min(max(self.poll_fraction * waited, self.poll_fine), ceiling)


class Phase(enum.StrEnum):
    OBSERVE = "observe"
    APPLY = "apply"
    WAIT = "wait"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Event:
    step: str
    phase: Phase
    elapsed: float
    change: Change | None = None
    message: str = ""


@dataclass
class StepResult:
    step: str
    first: Change | None = None  # what the step found before it acted
    last: Change | None = None  # what it found when it finished
    elapsed: float = 0.0
    error: str = ""
    waited_for: str = ""  # not run: the step it needs that failed (or did not run either)

    @property
    def changed(self) -> bool:
        return self.first is not None and self.first.action is not Action.NOOP


@dataclass
class RunResult:
    results: list[StepResult] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return all(not r.error for r in self.results)

    def info(self, key: str) -> str:
        for r in self.results:
            if r.last is not None and key in r.last.info:
                return r.last.info[key]
        return ""


OnEvent = Callable[[Event], None]
#: told the names of a command's steps before any runs (a progress display sizes its columns)
OnSteps = Callable[[list[str]], None]


def _ignore(_: Event) -> None:
    pass


def run_needs(step: Step) -> Sequence[str]:
    """The steps that must be done before ``step`` runs what it made (Action.RUN: a job's
    execution) and before it counts as done, but not before it starts: a job is created or
    updated beside the steps only its execution needs (a step without them: none)."""
    return tuple(getattr(step, "run_needs", ()))


def deleted_before(step: Step) -> Sequence[str]:
    """The steps whose resources destroy deletes only after ``step``'s: ordered after them in
    the graph, which destroy walks backwards, though up starts it without waiting for them
    (the deploy-on-push trigger, made early and deleted first; a step without them: none)."""
    return tuple(getattr(step, "deleted_before", ()))


class NotRun(DeployError):
    """A step whose run_needs failed: what it made is left unrun, and the steps after it wait
    for it as for a step that did not run."""

    def __init__(self, need: str) -> None:
        super().__init__(f"not run: {need} failed")
        self.need = need


class Gate:
    """The steps done and failed so far in one `up`, for the step threads that wait on their
    run_needs (woken at each step's end, never by a clock)."""

    def __init__(self, done: Collection[str]) -> None:
        self._cond = threading.Condition()
        self._done = set(done)
        self._failed: set[str] = set()
        self._cancelled = False

    def finished(self, name: str, *, ok: bool) -> None:
        with self._cond:
            (self._done if ok else self._failed).add(name)
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def pending(self, step: Step) -> list[str]:
        """The run_needs of ``step`` not done yet."""
        with self._cond:
            return [n for n in run_needs(step) if n not in self._done]

    def wait(self, step: Step) -> None:
        """Return once every run_need of ``step`` is done; NotRun when one failed."""
        with self._cond:
            while True:
                if self._cancelled:
                    raise StepFailed(step.name, "cancelled")
                blocked = [n for n in run_needs(step) if n in self._failed]
                if blocked:
                    raise NotRun(blocked[0])
                if all(n in self._done for n in run_needs(step)):
                    return
                self._cond.wait()


def order(steps: Sequence[Step]) -> list[Step]:
    """Dependency order (stable), run_needs and deleted_before counted as needs; refuses
    unknown needs and cycles."""
    by_name = {s.name: s for s in steps}
    done: list[Step] = []
    seen: set[str] = set()
    visiting: set[str] = set()

    def visit(step: Step) -> None:
        if step.name in seen:
            return
        if step.name in visiting:
            raise ValueError(f"step graph has a cycle through {step.name}")
        visiting.add(step.name)
        for need in (*step.needs, *run_needs(step), *deleted_before(step)):
            if need not in by_name:
                raise ValueError(f"step {step.name} needs unknown step {need}")
            visit(by_name[need])
        visiting.discard(step.name)
        seen.add(step.name)
        done.append(step)

    for step in steps:
        visit(step)
    return done


@dataclass
class Engine:
    cloud: Cloud
    options: Options = field(default_factory=Options)
    on_event: OnEvent = _ignore
    _cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def clock(self) -> Clock:
        """The cloud's clock: the engine's waits and the retries' sleeps share one time."""
        return self.cloud.clock

    # -- read-only -------------------------------------------------------------------------

    def plan(self, steps: Sequence[Step]) -> list[Change]:
        """Observe and diff every step (concurrently): a preview, never stored."""
        ordered = order(steps)
        self.cloud.reads.invalidate()  # one command's shared reads: nothing from the last one
        with ThreadPoolExecutor(max_workers=min(8, len(ordered)) or 1) as pool:
            futures = [pool.submit(self._diff, s, first=True) for s in ordered]
            return [f.result() for f in futures]

    def _diff(self, step: Step, *, first: bool = False) -> Change:
        """A step's first observation may share what other steps' first observations read in
        this command (gcp/reads.py); a re-observation (after apply, while waiting) reads afresh."""
        sharing = self.cloud.reads.sharing() if first else contextlib.nullcontext()
        try:
            with sharing:
                return step.diff(step.observe(self.cloud))
        except DeployError as exc:
            raise StepFailed(step.name, str(exc)) from exc

    # -- up --------------------------------------------------------------------------------

    def up(self, steps: Sequence[Step], *, converged: Collection[str] = ()) -> RunResult:
        """Bring every step to NOOP, each as soon as what it needs is done. `converged` names
        steps this command has already brought to NOOP (api's bootstrap): done from the start,
        not observed again."""
        start = self.clock.monotonic()
        ordered = order(steps)
        if not converged:
            self.cloud.reads.invalidate()  # a new command's shared reads: none from the last
        results = {s.name: StepResult(s.name) for s in ordered}
        done: set[str] = set(converged)
        pending = [s for s in ordered if s.name not in done]
        running: dict[Future[None], Step] = {}
        failed: set[str] = set()
        gate = Gate(done)
        with ThreadPoolExecutor(max_workers=len(ordered) or 1) as pool:
            try:
                while pending or running:
                    for step in list(pending):
                        blocked = [n for n in step.needs if n in failed]
                        if blocked:
                            pending.remove(step)
                            self._skip(results[step.name], blocked[0], start)
                            failed.add(step.name)
                            gate.finished(step.name, ok=False)
                        elif all(n in done for n in step.needs):
                            pending.remove(step)
                            run = pool.submit(self._run, step, results[step.name], gate)
                            running[run] = step
                    if not running:
                        break
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for fut in finished:
                        step = running.pop(fut)
                        exc = fut.exception()
                        gate.finished(step.name, ok=exc is None)
                        if exc is None:
                            done.add(step.name)
                        elif isinstance(exc, NotRun):
                            failed.add(step.name)
                            self._skip(results[step.name], exc.need, start)
                        elif isinstance(exc, DeployError):
                            failed.add(step.name)
                            results[step.name].error = str(exc)
                            self._emit(step.name, Phase.FAILED, start, message=str(exc))
                        else:
                            self._cancel.set()
                            raise exc
            except BaseException:
                self._cancel.set()
                gate.cancel()
                raise
        return RunResult(list(results.values()), self.clock.monotonic() - start)

    def _skip(self, result: StepResult, need: str, start: float) -> None:
        result.error = f"not run: {need} failed"
        result.waited_for = need
        self._emit(result.step, Phase.SKIPPED, start, message=result.error)

    def _run(self, step: Step, result: StepResult, gate: Gate) -> None:
        t0 = self.clock.monotonic()
        self._emit(step.name, Phase.OBSERVE, t0)
        try:
            first = change = self._diff(step, first=True)
            result.first = change
            if change.action is not Action.NOOP:
                with deletes.recording() as started:
                    change = self._converge(step, change, t0, gate, started)
            self._wait_for(step, gate, t0)  # done only once what its run needs is
            result.last = change
        finally:
            result.elapsed = self.clock.monotonic() - t0
        # the message says what was done to get here ("" when nothing was needed)
        done = "" if first.action is Action.NOOP else first.action.value
        self._emit(step.name, Phase.DONE, t0, change=change, message=done)

    def _wait_for(self, step: Step, gate: Gate, t0: float) -> bool:
        """Wait until the run_needs of ``step`` are done (NotRun when one failed); whether it
        had to."""
        pending = gate.pending(step)
        if not pending:
            return False
        self._emit(step.name, Phase.WAIT, t0, message=f"waits for {', '.join(pending)}")
        gate.wait(step)
        return True

    def _converge(
        self, step: Step, change: Change, t0: float, gate: Gate, started: deletes.Started
    ) -> Change:
        """Apply, then re-observe until the diff is NOOP (or fail with the reason). The kind of
        failure decides: a refusal is never applied; a permanent one (Broken) fails the step
        once this run applied something; a Transient one is applied again after its delay,
        until the deadline; a delete it ``started`` that ended in error (OperationFailed) fails
        it at once. An apply whose write may have landed unanswered (MaybeApplied) counts as
        applied: the next observe decides, never a blind resend."""
        deadline = t0 + self.options.step_timeout
        reapplies = 0  # re-applies for a difference that persists (not for a transient failure,
        # whose re-applies are bounded by the deadline alone)
        last: Action | None = None  # the action last applied
        applied_at = t0
        expected: float | None = None  # how long what the last apply started should take
        while True:
            if self._cancel.is_set():
                raise StepFailed(step.name, "cancelled")
            failure = change.failure
            # the first diff of a run may show an earlier run's failure, which its action
            # repairs (build again, redeploy); once this run applied anything it is its own
            permanent = failure is not None and not isinstance(failure, Transient)
            if change.action is Action.REFUSE or (permanent and last is not None):
                raise StepFailed(step.name, str(failure or change.reason))
            # a different action is the step's next stage (create the job, then run it): apply
            # it at once; the same action again waits settle_seconds (an operation that does
            # not show while it runs, eventual consistency), or a transient failure's delay
            next_stage = change.action is not last
            since = self.clock.monotonic() - applied_at
            if isinstance(failure, Transient):
                due = since >= failure.delay * self.options.delay_scale
            else:
                due = since >= self.options.settle_seconds
            if change.action is Action.WAIT:
                self._emit(step.name, Phase.WAIT, t0, change=change)
            elif next_stage or due:
                if not next_stage and failure is None:
                    reapplies += 1
                    if reapplies > self.options.reapplies:
                        fields = ", ".join(f.path for f in change.fields) or change.reason
                        raise StepFailed(step.name, f"still differs after apply: {fields}")
                # what it made runs once its run_needs are done; its deadline counts from then
                if change.action is Action.RUN and self._wait_for(step, gate, t0):
                    deadline = self.clock.monotonic() + self.options.step_timeout
                self._emit(step.name, Phase.APPLY, t0, change=change)
                try:
                    step.apply(self.cloud, change)
                except MaybeApplied:
                    pass  # a write not safe to repeat may have landed: observe decides next
                except DeployError as exc:
                    raise StepFailed(step.name, str(exc)) from exc
                applied_at = self.clock.monotonic()
                last = change.action
                expected = self.options.expected(change.expect)
            if self.clock.monotonic() > deadline:
                raise Timeout(
                    f"{step.name}: not done after {self.options.step_timeout:.0f} s "
                    f"({change.reason}); run up again to keep waiting"
                )
            # polled afresh from each apply: a new stage is a new operation
            waited = self.clock.monotonic() - applied_at
            self.clock.sleep(self.options.poll_delay(waited, expected))
            change = self._diff(step)
            if change.action is Action.NOOP:
                return change
            try:  # what a failed delete leaves stays: no wait ends, no re-apply helps
                started.check(again="up")
            except OperationFailed as exc:
                raise StepFailed(step.name, str(exc)) from exc

    # -- destroy ---------------------------------------------------------------------------

    def destroy(self, steps: Sequence[Step], *, delete_data: bool) -> list[Change]:
        """Delete in reverse dependency order; each step decides what it keeps."""
        changes: list[Change] = []
        for step in reversed(order(steps)):
            t0 = self.clock.monotonic()
            self._emit(step.name, Phase.OBSERVE, t0)
            try:
                with deletes.recording() as started:
                    change = self._delete(step, delete_data=delete_data, t0=t0, started=started)
            except DeployError as exc:
                raise StepFailed(step.name, str(exc)) from exc
            changes.append(change)
            self._emit(step.name, Phase.DONE, t0, change=change)
        return changes

    def _delete(
        self, step: Step, *, delete_data: bool, t0: float, started: deletes.Started
    ) -> Change:
        """Call delete() until it stops answering WAIT (a multi-stage delete: lift
        protection, final backup, delete), then wait until observe() finds nothing; a delete
        it ``started`` that ended in error (OperationFailed) fails it at once."""
        deadline = t0 + self.options.step_timeout
        again = "destroy --delete-data" if delete_data else "destroy"
        change = step.delete(self.cloud, delete_data=delete_data)
        while change.action is Action.WAIT or (
            change.action is Action.DELETE and step.observe(self.cloud) is not None
        ):
            started.check(again=again)  # destroy() names the step
            if self.clock.monotonic() > deadline:
                raise Timeout(  # destroy() names the step
                    f"still there after {self.options.step_timeout:.0f} s; run destroy again"
                )
            self._emit(step.name, Phase.WAIT, t0, change=change)
            self.clock.sleep(self.options.poll_delay(self.clock.monotonic() - t0))
            if change.action is Action.WAIT:
                change = step.delete(self.cloud, delete_data=delete_data)
        return change

    def _emit(
        self, step: str, phase: Phase, t0: float, *, change: Change | None = None, message: str = ""
    ) -> None:
        self.on_event(Event(step, phase, self.clock.monotonic() - t0, change, message))

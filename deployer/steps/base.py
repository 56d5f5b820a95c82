"""What every step is made of: the Change it reports and the protocol the engine drives.

A step is a small frozen object built from Config for one resource (or one binding set):

    observe(cloud) -> observed | None   read-only; None = absent
    diff(observed) -> Change            pure: no I/O, no clock
    apply(cloud, change) -> None        does what the Change says and returns; never sleeps,
                                        never waits on an operation (the engine re-observes)
    delete(cloud) -> Change             idempotent; NotFound counts as success; returns what
                                        it did (DELETE, or NOOP with the reason it kept/skipped,
                                        or WAIT when a stage of a multi-stage delete runs: the
                                        engine calls it again once the wait is over)

A step reads like a pyinfra operation: read the fact, then act or say why not. Its diff returns
one of the helpers of ``Operation`` (``noop(reason)``, ``wait(reason)``, ``create(...)``,
``update(...)``, ``run(...)``, ``refuse(failure)``); a failure is typed (kopf's PermanentError /
TemporaryError(delay)), and the engine decides on its type alone:

    NotOurs    a resource under our name that is not ours: refused, never applied
    Broken     the resource or the configuration is wrong in a way only the user can fix;
               with refuse() nothing is applied, with an action (build again, redeploy, run
               again) that action is applied once per run, then the failure fails the step
    Transient  goes away by itself (a fresh grant propagating): the action is applied again
               after ``delay`` seconds, until the step's deadline. The step that owns the
               resource knows which failures are transient, never the engine
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypedDict, Unpack

from deployer.secret import Secret as Secret  # re-exported for steps

if TYPE_CHECKING:
    from deployer.gcp.cloud import Cloud


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    NOOP = "noop"
    RUN = "run"  # execute something (a job) without changing its definition
    WAIT = "wait"  # converging (an operation is running): nothing to apply, wait and re-observe
    DELETE = "delete"
    REFUSE = "refuse"  # nothing can be done: the failure says why; never applied


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Failure:
    """Why a step cannot reach its spec; the subclass is the kind, the message what the user
    reads (shown by plan and status, the step's error in up)."""

    message: str

    def __str__(self) -> str:
        return self.message


class NotOurs(Failure):
    """A resource under one of our names that another tenant, app or person owns."""


class Broken(Failure):
    """A failure only the user can fix (a failed build or revision, a location that cannot
    change, a secret without an enabled version)."""


@dataclass(frozen=True)
class Transient(Failure):
    """A failure that goes away by itself; try the action again after ``delay`` seconds."""

    delay: float = 30.0


Fields = Sequence[FieldChange]


@dataclass(frozen=True)
class Change:
    step: str
    resource: str
    action: Action
    reason: str
    fields: tuple[FieldChange, ...] = ()
    failure: Failure | None = None
    info: Mapping[str, str] = field(default_factory=dict)  # facts for status (url, revision...)
    # the kind of operation applying this change starts (engine.EXPECTED_SECONDS): the engine
    # polls it on a schedule fitted to how long that kind takes; "" when none or unknown
    expect: str = ""

    @property
    def state(self) -> str:
        """The status vocabulary: ok / missing / drift / failed / in-progress / pending-run."""
        if self.failure:
            return "failed"
        return {
            Action.NOOP: "ok",
            Action.CREATE: "missing",
            Action.WAIT: "in-progress",
            Action.RUN: "pending-run",
        }.get(self.action, "drift")


class Step(Protocol):
    """The engine's view of a step. `name` is the step's name in the graph ("bucket"),
    `needs` the names of the steps that must be done first. What destroy keeps (user data,
    unless --delete-data) each step's delete() decides."""

    @property
    def name(self) -> str: ...

    @property
    def needs(self) -> Sequence[str]: ...

    def observe(self, cloud: Cloud) -> Any | None: ...

    def diff(self, observed: Any | None) -> Change: ...

    def apply(self, cloud: Cloud, change: Change) -> None: ...

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change: ...


class Extra(TypedDict, total=False):
    """What an action's Change may carry besides its reason and fields."""

    failure: Broken | Transient | None  # why the last attempt failed (a failed build)
    info: Mapping[str, str]  # facts for status (url, revision...)


#: the EXPECT of a step whose writes take effect when the call returns (no long-running
#: operation): the engine looks again at once (engine.EXPECTED_SECONDS["write"])
WRITES: Mapping[Action, str] = {Action.CREATE: "write", Action.UPDATE: "write"}


class Operation:
    """The helpers a step's diff and delete answer with, pyinfra style (``host.noop("why")``):
    each is one Change of this step (``name``) for its ``resource``."""

    name: str
    #: the operation kind each action starts (Change.expect), e.g. {Action.CREATE: "build"}
    EXPECT: ClassVar[Mapping[Action, str]] = {}

    @property
    def resource(self) -> str:
        raise NotImplementedError

    def _change(
        self,
        action: Action,
        reason: str,
        fields: Sequence[FieldChange] = (),
        *,
        failure: Failure | None = None,
        info: Mapping[str, str] | None = None,
    ) -> Change:
        return Change(
            self.name,
            self.resource,
            action,
            reason,
            tuple(fields),
            failure,
            info or {},
            self.EXPECT.get(action, ""),
        )

    def noop(self, reason: str, *, info: Mapping[str, str] | None = None) -> Change:
        """Nothing to do; ``reason`` says why ("bucket x exists and matches")."""
        return self._change(Action.NOOP, reason, info=info)

    def wait(self, reason: str, *, info: Mapping[str, str] | None = None) -> Change:
        """Converging (an operation runs): nothing to apply, observe again later."""
        return self._change(Action.WAIT, reason, info=info)

    def create(self, reason: str, fields: Fields = (), **extra: Unpack[Extra]) -> Change:
        return self._change(Action.CREATE, reason, fields, **extra)

    def update(self, reason: str, fields: Fields = (), **extra: Unpack[Extra]) -> Change:
        return self._change(Action.UPDATE, reason, fields, **extra)

    def run(self, reason: str, **extra: Unpack[Extra]) -> Change:
        """Execute something (a job) without changing its definition."""
        return self._change(Action.RUN, reason, **extra)

    def deleted(self, reason: str) -> Change:
        """What delete() did: deleted it, or started deleting it."""
        return self._change(Action.DELETE, reason)

    def refuse(
        self, failure: Failure, reason: str = "refused", *, info: Mapping[str, str] | None = None
    ) -> Change:
        """Nothing can be done: the engine never applies it and fails the step with
        ``failure``; ``reason`` is the short form plan shows before it."""
        return self._change(Action.REFUSE, reason, failure=failure, info=info)


def field_changes(
    desired: dict[str, Any], actual: dict[str, Any] | None, prefix: str = ""
) -> list[FieldChange]:
    """Compare only the fields we set: walk `desired`, report each leaf whose actual value
    differs. Server-filled fields absent from `desired` never show as drift."""
    actual = actual or {}
    out: list[FieldChange] = []
    for key, want in desired.items():
        path = f"{prefix}.{key}" if prefix else key
        have = actual.get(key)
        if isinstance(want, dict) and isinstance(have, dict) and want:
            out.extend(field_changes(want, have, path))
        elif want != have:
            out.append(FieldChange(path, have, want))
    return out

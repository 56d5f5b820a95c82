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
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

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
    UNKNOWN = "unknown"  # cannot tell yet (depends on a step not done: shown by plan only)


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    step: str
    resource: str
    action: Action
    reason: str
    fields: tuple[FieldChange, ...] = ()
    failure: str = ""  # the resource reports a failure for the desired spec (shown; fails a wait)
    info: Mapping[str, str] = field(default_factory=dict)  # facts for status (url, revision...)

    @property
    def pending(self) -> bool:
        return self.action not in (Action.NOOP,)


class Step(Protocol):
    """The engine's view of a step. `name` is the step's name in the graph ("bucket"),
    `needs` the names of the steps that must be done first, `data` marks steps whose
    resource holds user data (kept by destroy unless --delete-data)."""

    @property
    def name(self) -> str: ...

    @property
    def needs(self) -> Sequence[str]: ...

    @property
    def data(self) -> bool: ...

    def observe(self, cloud: Cloud) -> Any | None: ...

    def diff(self, observed: Any | None) -> Change: ...

    def apply(self, cloud: Cloud, change: Change) -> None: ...

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change: ...


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

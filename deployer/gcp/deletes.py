"""The deletes a step started, so that the engine, waiting for what they delete to go, fails the
step at once with Google's reason when one ended in error: a failed delete leaves the resource
in place, which no wait would see go before the step's deadline.

Every wrapper whose delete answers an operation (Cloud Run services, jobs and worker pools,
Memorystore instances, Artifact Registry repositories, Cloud SQL instances, databases and
users) tells ``started`` what it deletes and how to read that operation's error. The engine
runs each step inside ``recording()`` and, each time it finds the step not done yet, calls
``check`` (engine.py): one rule for every resource and every step, in up (a retiring step) as
in destroy; only a step still waiting after a delete it started costs a read of that operation.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from deployer.errors import OperationFailed
from deployer.gcp.context import Context, execute

#: Google's reason once the delete's operation ended in error; None while it runs, once it
#: succeeded, or when it is gone
ReadReason = Callable[[], "str | None"]


@dataclass(frozen=True)
class Delete:
    api: str  # as the user reads it: "Cloud Run", "Cloud SQL"
    what: str  # "service web", "user app on instance db"
    reason: ReadReason


class Started:
    """The deletes started within one ``recording()``: one step's, in its own thread (so no
    lock)."""

    def __init__(self) -> None:
        self._deletes: list[Delete] = []

    def add(self, delete: Delete) -> None:
        self._deletes.append(delete)

    def check(self, *, again: str) -> None:
        """OperationFailed, naming the resource and Google's reason, when one of these
        deletes ended in error (reads each one's operation); ``again`` is the command to run
        once the cause is fixed."""
        for d in self._deletes:
            reason = d.reason()
            if reason is not None:
                raise OperationFailed(
                    f"{d.api} did not delete {d.what}: {reason}; fix the cause and run "
                    f"{again} again"
                )


_recording: contextvars.ContextVar[Started | None] = contextvars.ContextVar("deletes", default=None)


@contextlib.contextmanager
def recording() -> Iterator[Started]:
    """The deletes started in this block (in this thread), for the engine to check."""
    started = Started()
    token = _recording.set(started)
    try:
        yield started
    finally:
        _recording.reset(token)


def started(api: str, what: str, reason: ReadReason) -> None:
    """A wrapper started deleting ``what``: the engine's recording (if any) keeps it."""
    current = _recording.get()
    if current is not None:
        current.add(Delete(api, what, reason))


def longrunning_reason(cloud: Context, operations: Any, operation: dict[str, Any]) -> ReadReason:
    """How to read the error of the google.longrunning ``operation`` (a discovery client's
    answer to a delete) through ``operations`` (its API's ``...locations().operations()``)."""
    name = str(operation["name"])

    def reason() -> str | None:
        op = cloud.read(execute(operations.get(name=name)), key=("operation", name)) or {}
        error = op.get("error") if op.get("done") else None
        return str(error.get("message") or "no reason given") if error else None

    return reason

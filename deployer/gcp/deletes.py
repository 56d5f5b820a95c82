"""The deletes a command started, so that a read of a resource whose delete has failed says
so with Google's reason (OperationFailed) instead of answering a resource that no wait will
see go: a failed delete leaves the resource in place, and destroy (or a retiring step) would
wait for it until the step's deadline. Cloud Run services, jobs and worker pools, Memorystore
instances and Artifact Registry repositories; Cloud SQL, whose operations have their own
shape, keeps its own (gcp/sql.py ``delete_failure``).

Each wrapper keeps one ``Deletes``: its delete calls ``started`` with the resource's full name
and how to read the operation, its get passes what it read through ``check``. Only a resource
still there after a delete this command started costs a read of that operation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from deployer.errors import OperationFailed
from deployer.gcp.context import Context, execute

#: reads the delete's operation: {"done": bool, "error": {"message": ...} | None}, or None
ReadOp = Callable[[], "dict[str, Any] | None"]
T = TypeVar("T")


class Deletes:
    def __init__(self, api: str) -> None:
        self.api = api  # as the user reads it: "Cloud Run", "Memorystore for Redis"
        self._started: dict[str, ReadOp] = {}
        self._lock = threading.Lock()

    def started(self, name: str, read_op: ReadOp) -> None:
        with self._lock:
            self._started[name] = read_op

    def check(self, name: str, found: T, *, kind: str) -> T:
        """``found`` (what a read of ``name`` answered), unless it is still there and the
        delete this command started of it has ended in error: then OperationFailed."""
        with self._lock:
            read_op = self._started.get(name)
        if found is None or read_op is None:
            return found
        op = read_op() or {}
        error = op.get("error") if op.get("done") else None
        if error:
            reason = error.get("message") or "no reason given"
            short = name.rsplit("/", 1)[-1]
            raise OperationFailed(
                f"{self.api} did not delete {kind} {short}: {reason}; fix the cause and run "
                "the command again"
            )
        return found


def operation_reader(cloud: Context, operations: Any, started: dict[str, Any]) -> ReadOp:
    """How to read again the google.longrunning operation ``started`` (a discovery client's
    answer to a delete) through ``operations`` (its API's ``...locations().operations()``)."""
    name = str(started["name"])

    def read_op() -> dict[str, Any] | None:
        return cloud.read(execute(operations.get(name=name)), key=("operation", name))

    return read_op

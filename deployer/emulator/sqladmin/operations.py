"""Cloud SQL operations: one at a time per instance, failed on demand by ``sql.operation``
outcomes (matched against ``<instance>/<operationType>``, e.g. ``demo-django-pg/CREATE``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..operations import completer
from .errors import IN_PROGRESS, SqlError

if TYPE_CHECKING:
    from ..context import Emulator

COMPLETER_PREFIX = "sql."
ChildEffect = Callable[["Emulator", dict[str, Any]], None]


def target(project_id: str, instance: str) -> str:
    # a trailing "|" so that instance "a" is not a prefix of instance "ab"
    return f"sql:{project_id}/{instance}|"


class SqlOperations:
    """The sql#operation records of a project's instances."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def start(
        self,
        project_id: str,
        instance: str,
        op_type: str,
        *,
        completer: str,
        duration_kind: str,
        args: dict[str, Any],
    ) -> dict[str, Any]:
        return self.emu.ops.start(
            completer=completer,
            duration_kind=duration_kind,
            target=target(project_id, instance),
            args={"project": project_id, "instance": instance, **args},
            metadata={"operationType": op_type},
        )

    def ensure_idle(self, project_id: str, instance: str) -> None:
        """409 operationInProgress when any operation runs on the instance."""
        if self.emu.ops.running(target(project_id, instance)):
            raise SqlError(409, IN_PROGRESS, "operationInProgress")

    def get(self, project_id: str, op_id: str) -> dict[str, Any]:
        op = self.emu.ops.get(op_id)
        if op is None or not _own(op, project_id):
            raise SqlError(
                404, f"The Cloud SQL operation {op_id} does not exist.", "operationDoesNotExist"
            )
        return op

    def list(self, project_id: str, instance: str | None) -> list[dict[str, Any]]:
        """The project's (or one instance's) operations, newest first."""
        prefix = target(project_id, instance) if instance else f"sql:{project_id}/"
        ops = [o for o in self.emu.ops.list(prefix) if _own(o, project_id)]
        ops.reverse()
        return ops


def _own(op: dict[str, Any], project_id: str) -> bool:
    return op["completer"].startswith(COMPLETER_PREFIX) and op["args"].get("project") == project_id


def outcome(emu: Emulator, op: dict[str, Any]) -> str | None:
    """The message of a ``sql.operation`` outcome asked for this operation, used up."""
    name = f"{op['args']['instance']}/{op['metadata']['operationType']}"
    return emu.outcomes.take("sql.operation", name)


def mark_failed(op: dict[str, Any], message: str, reason: str = "INTERNAL_ERROR") -> None:
    """Mark the operation failed without rolling back what the completer wrote."""
    op["error"] = {"code": 500, "message": message, "status": "INTERNAL", "reason": reason}


def child_completer(name: str) -> Callable[[ChildEffect], ChildEffect]:
    """Register a database/user completer: the operation fails when a ``sql.operation`` outcome
    matches, else ``fn(emu, args)`` applies its effect."""

    def deco(fn: ChildEffect) -> ChildEffect:
        @functools.wraps(fn)
        def run(emu: Emulator, op: dict[str, Any]) -> None:
            message = outcome(emu, op)
            if message is not None:
                mark_failed(op, message)
            else:
                fn(emu, op["args"])

        completer(name)(run)
        return fn

    return deco

"""Run's view of the emulator's long-running operations: those its changes started, under the
location they were started in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from .common import Parent

if TYPE_CHECKING:
    from ..context import Emulator


def _ours(op: dict[str, Any], parent: Parent) -> bool:
    return op["completer"].startswith("run.") and op["args"].get("parent") == parent.name


class Operations:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def get(self, parent: Parent, op_id: str) -> dict[str, Any]:
        op = self.emu.ops.get(op_id)
        if op is None or op.get("deleted") or not _ours(op, parent):
            raise NotFound(f"Operation '{parent.name}/operations/{op_id}' not found.")
        return op

    def list(self, parent: Parent) -> list[dict[str, Any]]:
        return [o for o in self.emu.ops.list() if _ours(o, parent)]

    def delete(self, parent: Parent, op_id: str) -> None:
        self.get(parent, op_id)
        self.emu.ops.delete(op_id)

"""Outcomes on demand: "make the next build / execution / revision / SQL operation whose name
contains X fail with this message".

Tests (or the admin API) add rules; API modules ask, at the moment the outcome is decided::

    msg = emu.outcomes.take("build", build_id)
    if msg is not None: ...fail the build with msg in the real failure shape...

Kinds in use: "build", "execution", "revision", "sql.operation". Rules live in the store (the
operation that consumes one may complete in another process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Emulator

KIND = "_outcome"
KNOWN_KINDS = frozenset({"build", "execution", "revision", "sql.operation"})


class Outcomes:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def add(self, kind: str, match: str, message: str, times: int = 1) -> dict[str, Any]:
        if kind not in KNOWN_KINDS:
            raise ValueError(f"unknown outcome kind {kind!r}: one of {sorted(KNOWN_KINDS)}")
        if times <= 0:
            raise ValueError("times must be positive")
        rule_id = self.emu.store.next_id("outcome")
        rule = {"id": rule_id, "kind": kind, "match": match, "message": message, "times": times}
        self.emu.store.put(KIND, f"{rule_id:012d}", rule)
        return rule

    def list(self) -> list[dict[str, Any]]:
        return [v for _, v in self.emu.store.list(KIND)]

    def clear(self) -> None:
        with self.emu.store.transaction():
            for k, _ in self.emu.store.list(KIND):
                self.emu.store.delete(KIND, k)

    def take(self, kind: str, name: str) -> str | None:
        """The message of the first pending rule of ``kind`` whose ``match`` is a substring of
        ``name`` (one of its ``times`` is used up), or None."""
        store = self.emu.store
        with store.transaction():
            for key, rule in store.list(KIND):
                if rule["kind"] != kind or rule["match"] not in name:
                    continue
                rule["times"] -= 1
                if rule["times"] <= 0:
                    store.delete(KIND, key)
                else:
                    store.put(KIND, key, rule)
                return str(rule["message"])
        return None

    def peek(self, kind: str, name: str) -> str | None:
        """Like take, without using the rule up."""
        for rule in self.list():
            if rule["kind"] == kind and rule["match"] in name:
                return str(rule["message"])
        return None

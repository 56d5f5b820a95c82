"""Outcomes on demand: "make the next build / execution / revision / SQL operation whose name
contains X fail with this message".

Tests (or the admin API) add rules; API modules ask, at the moment the outcome is decided::

    msg = emu.outcomes.take("build", build_id)
    if msg is not None: ...fail the build with msg in the real failure shape...

Kinds in use: "build", "execution", "revision" (a service's), "workerpool" (a worker pool's
revision), "sql.operation", and "delete": a delete of a Cloud Run service, job or worker pool,
a Memorystore instance, an Artifact Registry repository or a Cloud SQL instance whose full name
contains X is accepted, and its operation ends in error with the message (FAILED_PRECONDITION),
the resource left as it was. Rules live in the store (the operation that consumes one may
complete in another process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .store import Rules

if TYPE_CHECKING:
    from .context import Emulator

KIND = "_outcome"
KNOWN_KINDS = frozenset({"build", "execution", "revision", "workerpool", "sql.operation", "delete"})
#: the failed Build statuses a "build" rule may ask for (FAILURE when none is given)
BUILD_STATUSES = ("FAILURE", "INTERNAL_ERROR", "TIMEOUT", "EXPIRED")


class Outcomes(Rules):
    def __init__(self, emu: Emulator) -> None:
        super().__init__(emu.store, KIND, "outcome")
        self.emu = emu

    def add(
        self, kind: str, match: str, message: str, times: int = 1, status: str | None = None
    ) -> dict[str, Any]:
        """``status`` (kind "build" only): the Build status the build ends in, one of
        BUILD_STATUSES (default FAILURE)."""
        if kind not in KNOWN_KINDS:
            raise ValueError(f"unknown outcome kind {kind!r}: one of {sorted(KNOWN_KINDS)}")
        if times <= 0:
            raise ValueError("times must be positive")
        rule: dict[str, Any] = {"kind": kind, "match": match, "message": message, "times": times}
        if status is not None:
            if kind != "build":
                raise ValueError(f"status applies to build outcomes only, not {kind!r}")
            if status not in BUILD_STATUSES:
                raise ValueError(f"build outcome status must be one of {BUILD_STATUSES}")
            rule["status"] = status
        return self._add(rule)

    def take(self, kind: str, name: str) -> str | None:
        """The message of the first pending rule of ``kind`` whose ``match`` is a substring of
        ``name`` (one of its ``times`` is used up), or None."""
        rule = self.take_rule(kind, name)
        return None if rule is None else str(rule["message"])

    def take_rule(self, kind: str, name: str) -> dict[str, Any] | None:
        """Like take, answering the whole rule (``message``, ``status`` when given)."""
        return self._take(lambda r: r["kind"] == kind and r["match"] in name)

    def peek(self, kind: str, name: str) -> str | None:
        """Like take, without using the rule up."""
        for rule in self.list():
            if rule["kind"] == kind and rule["match"] in name:
                return str(rule["message"])
        return None

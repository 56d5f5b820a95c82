"""What every handler, backend and completer receives: the emulator as a context.

``server.Emulator`` is the one implementation; the modules below it (API modules, operations,
faults, outcomes, policies, projects, routing) name only this protocol, so none of them imports
the server and no import circles through it. mypy holds ``server.Emulator`` to these shapes
wherever it is handed on as one (``Request(emu=...)``, ``Operations(self)``).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .latency import Latency
from .local.realizers import Realizers
from .store import Store
from .transcript import Transcript


class LongRunning(Protocol):
    """The long-running operations (operations.Operations)."""

    def start(
        self,
        *,
        completer: str,
        duration_kind: str,
        target: str,
        args: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        op_id: str | None = None,
        duration: float | None = None,
    ) -> dict[str, Any]: ...

    def get(self, op_id: str) -> dict[str, Any] | None: ...

    def list(self, prefix: str = "") -> builtins.list[dict[str, Any]]: ...

    def running(self, target_prefix: str) -> builtins.list[dict[str, Any]]: ...

    def delete(self, op_id: str) -> None: ...

    def complete_now(self, op_id: str) -> dict[str, Any] | None: ...

    def advance(self) -> None: ...


class OutcomeRules(Protocol):
    """Outcomes on demand (outcomes.Outcomes)."""

    def add(
        self, kind: str, match: str, message: str, times: int = 1, status: str | None = None
    ) -> dict[str, Any]: ...

    def list(self) -> builtins.list[dict[str, Any]]: ...

    def clear(self) -> None: ...

    def take(self, kind: str, name: str) -> str | None: ...

    def take_rule(self, kind: str, name: str) -> dict[str, Any] | None: ...

    def peek(self, kind: str, name: str) -> str | None: ...


class FaultRules(Protocol):
    """Faults on demand (faults.Faults), as the admin API drives them."""

    def add(self, **rule: Any) -> dict[str, Any]: ...

    def list(self) -> builtins.list[dict[str, Any]]: ...

    def clear(self) -> None: ...

    def remove(self, rule_id: int) -> bool: ...


class Emulator(Protocol):
    """The emulator as its handlers, backends and completers see it (no HTTP)."""

    @property
    def state_dir(self) -> Path | None: ...

    @property
    def apis(self) -> tuple[str, ...]:
        """The API modules served (``server.API_MODULES`` unless chosen otherwise)."""
        ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def store(self) -> Store: ...

    @property
    def latency(self) -> Latency: ...

    @property
    def ops(self) -> LongRunning: ...

    @property
    def outcomes(self) -> OutcomeRules: ...

    @property
    def faults(self) -> FaultRules: ...

    @property
    def transcript(self) -> Transcript: ...

    @property
    def local(self) -> Realizers:
        """Local execution: the realizers (off unless the emulator executes)."""
        ...

    def reset(self) -> None: ...

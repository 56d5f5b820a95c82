"""Long-running operations, completed lazily and persistently.

An API handler starts an operation with ``emu.ops.start(...)``; it is stored with the time it is
due (``done_at`` = now + the latency model's duration for ``duration_kind``). Before every request
the server calls ``emu.ops.advance()``, which runs, in ``done_at`` order and inside one store
transaction, the registered *completer* of each due operation: the completer applies the effect to
the store and returns the response resource (or raises ApiError to fail the operation). Because
everything is in the store, an operation started by one process completes in whichever process
next handles a request.

API modules render the stored operation in their own API's JSON shape.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import GRPC_CODE_BY_STATUS, ApiError

if TYPE_CHECKING:
    from .context import Emulator

Completer = Callable[["Emulator", dict[str, Any]], "dict[str, Any] | None"]


class NotYet(Exception):
    """Raised by a completer whose effect is real work still under way (local execution: a
    build, a job's processes, a revision's startup probe): the operation stays pending and its
    completer runs again ``delay`` clock seconds later. The completer's store changes are undone,
    so it must be safe to call again."""

    MIN_DELAY = 0.05

    def __init__(self, delay: float = 0.2) -> None:
        super().__init__(f"not done; again in {delay}s")
        self.delay = max(delay, self.MIN_DELAY)


_COMPLETERS: dict[str, Completer] = {}
log = logging.getLogger(__name__)

OP_KIND = "op"
PENDING_KIND = "op.pending"
DONE_KIND = "op.done"  # index of completed operations by completion time, for pruning
#: completed operations are forgotten this long (clock seconds, unscaled) after completing, so
#: the store and list() stay bounded; anyone polling reads an operation well before that
KEEP_DONE_SECONDS = 3600.0


def completer(name: str) -> Callable[[Completer], Completer]:
    """Register ``fn(emu, op) -> response | None`` under ``name`` (module level, at import)."""

    def deco(fn: Completer) -> Completer:
        if name in _COMPLETERS and _COMPLETERS[name] is not fn:
            qual = getattr(fn, "__qualname__", "")
            old = getattr(_COMPLETERS[name], "__qualname__", "")
            if qual != old:  # re-import of the same module (tests) is fine
                raise ValueError(f"completer {name!r} registered twice")
        _COMPLETERS[name] = fn
        return fn

    return deco


def registered_completers() -> list[str]:
    return sorted(_COMPLETERS)


def _pending_key(done_at: float, op_id: str) -> str:
    return f"{done_at:020.6f}|{op_id}"


class Operations:
    def __init__(self, emu: Emulator, *, keep_done: float = KEEP_DONE_SECONDS) -> None:
        self.emu = emu
        self.keep_done = keep_done

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
    ) -> dict[str, Any]:
        """Record a new operation due after the ``duration_kind`` latency (or ``duration``
        seconds, already scaled, when given); returns it."""
        if completer not in _COMPLETERS:
            raise KeyError(f"no completer registered as {completer!r}")
        if duration is None:
            duration = self.emu.latency.duration(duration_kind)
        now = self.emu.clock()
        op_id = op_id or str(uuid.uuid4())
        op: dict[str, Any] = {
            "id": op_id,
            "completer": completer,
            "duration_kind": duration_kind,
            "target": target,
            "args": args,
            "metadata": dict(metadata or {}),
            "created": now,
            "done_at": now + duration,
            "done": False,
            "response": None,
            "error": None,
        }
        store = self.emu.store
        with store.transaction():
            if store.get(OP_KIND, op_id) is not None:
                raise ApiError(409, f"operation {op_id} already exists")
            store.put(OP_KIND, op_id, op)
            store.put(PENDING_KIND, _pending_key(op["done_at"], op_id), {"id": op_id})
        return op

    def get(self, op_id: str) -> dict[str, Any] | None:
        return self.emu.store.get(OP_KIND, op_id)

    def put(self, op: dict[str, Any]) -> None:
        """Save changes an API module made to an operation (e.g. its metadata)."""
        self.emu.store.put(OP_KIND, op["id"], op)

    def list(self, prefix: str = "") -> list[dict[str, Any]]:
        """Operations whose target starts with ``prefix``, oldest first (deleted ones left out)."""
        ops = [
            v
            for _, v in self.emu.store.list(OP_KIND)
            if v["target"].startswith(prefix) and not v.get("deleted")
        ]
        return sorted(ops, key=lambda o: (o["created"], o["id"]))

    def delete(self, op_id: str) -> None:
        """The client is no longer interested (google.longrunning DeleteOperation): a done
        operation is forgotten; a running one is hidden and forgotten when it completes (its
        effect still lands)."""
        store = self.emu.store
        with store.transaction():
            op = store.get(OP_KIND, op_id)
            if op is None:
                return
            if op["done"]:
                store.delete(OP_KIND, op_id)
            else:
                op["deleted"] = True
                store.put(OP_KIND, op_id, op)

    def running(self, target_prefix: str) -> builtins.list[dict[str, Any]]:
        """Not-yet-done operations on targets starting with ``target_prefix``."""
        store = self.emu.store
        out = []
        for _, ref in store.list(PENDING_KIND):
            op = store.get(OP_KIND, ref["id"])
            if op and not op["done"] and op["target"].startswith(target_prefix):
                out.append(op)
        return out

    def advance(self) -> None:
        """Complete, in done_at order, every operation due by now."""
        store = self.emu.store
        now = self.emu.clock()
        self.prune(now)
        pending = store.list(PENDING_KIND, limit=1)
        if not pending or _due(pending[0][0]) > now:
            return  # fast path: no transaction
        with store.transaction():
            # completers may start or complete operations; loop until nothing is due
            while True:
                now = self.emu.clock()
                due = [(k, v) for k, v in store.list(PENDING_KIND) if _due(k) <= now]
                if not due:
                    return
                for key, ref in due:
                    store.delete(PENDING_KIND, key)
                    op = store.get(OP_KIND, ref["id"])
                    if op is None or op["done"]:
                        continue
                    self._complete(op)

    def prune(self, now: float | None = None) -> int:
        """Forget operations completed more than ``keep_done`` seconds ago; how many."""
        store = self.emu.store
        now = self.emu.clock() if now is None else now
        horizon = now - self.keep_done
        first = store.list(DONE_KIND, limit=1)
        if not first or _due(first[0][0]) > horizon:
            return 0  # fast path: nothing old enough
        n = 0
        with store.transaction():
            for key, ref in store.list(DONE_KIND):
                if _due(key) > horizon:
                    break
                store.delete(DONE_KIND, key)
                if store.delete(OP_KIND, ref["id"]):
                    n += 1
        return n

    def complete_now(self, op_id: str) -> dict[str, Any] | None:
        """Complete one operation immediately whatever its done_at (for tests)."""
        store = self.emu.store
        with store.transaction():
            op = store.get(OP_KIND, op_id)
            if op is None or op["done"]:
                return op
            store.delete(PENDING_KIND, _pending_key(op["done_at"], op_id))
            self._complete(op)
            return store.get(OP_KIND, op_id)

    def _complete(self, op: dict[str, Any]) -> None:
        fn = _COMPLETERS.get(op["completer"])
        store = self.emu.store
        if fn is None:
            op["error"] = ApiError(500, f"no completer {op['completer']!r}").op_error()
        else:
            # a savepoint so that a failing completer leaves no partial effect behind
            try:
                with store.savepoint():
                    op["response"] = fn(self.emu, op)
            except NotYet as wait:
                op["done_at"] = self.emu.clock() + wait.delay
                store.put(OP_KIND, op["id"], op)
                store.put(PENDING_KIND, _pending_key(op["done_at"], op["id"]), {"id": op["id"]})
                return
            except ApiError as exc:
                op["error"] = exc.op_error()
                op["response"] = None
            except Exception:  # a bug in a completer: fail the operation, not every request
                log.exception("completer %s failed on operation %s", op["completer"], op["id"])
                op["error"] = ApiError(500, "Internal error encountered.").op_error()
                op["response"] = None
        op["done"] = True
        op["completed"] = self.emu.clock()
        # the completer may have updated op["metadata"] in place; persist everything
        if op.get("deleted"):
            store.delete(OP_KIND, op["id"])
        else:
            store.put(OP_KIND, op["id"], op)
            store.put(DONE_KIND, _pending_key(op["completed"], op["id"]), {"id": op["id"]})


def longrunning_json(
    op: dict[str, Any],
    name: str,
    metadata: dict[str, Any],
    *,
    error: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``op`` in the google.longrunning.Operation shape (Run, Cloud Build, Service Usage,
    Artifact Registry): ``done`` with either ``response`` or ``error`` (a google.rpc.Status whose
    code is the gRPC number of the stored status). ``error`` / ``response`` (stored shape:
    ``{"status", "message"}`` / the resource) replace the operation's own when given."""
    out: dict[str, Any] = {"name": name, "metadata": metadata}
    if op["done"]:
        out["done"] = True
        err = error if error is not None else op["error"]
        if err:
            out["error"] = {
                "code": GRPC_CODE_BY_STATUS.get(err["status"], 2),
                "message": err["message"],
            }
        else:
            out["response"] = response if response is not None else op["response"]
    return out


def _due(pending_key: str) -> float:
    return float(pending_key.split("|", 1)[0])

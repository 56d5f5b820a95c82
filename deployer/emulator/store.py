"""The emulator's state: JSON documents by (kind, key) in SQLite.

One connection per Store, guarded by an RLock, so every server thread can use it. With a state
directory the database is a WAL-mode file, and separate processes opening the same directory see
the same cloud; :meth:`Store.transaction` takes SQLite's write lock (``BEGIN IMMEDIATE``) as well
as the RLock, so a read-modify-write is serialized across threads and processes alike.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DB_NAME = "emulator.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""


def files(state_dir: Path) -> list[Path]:
    """The files of the store kept in ``state_dir`` that exist: the database, its WAL and its
    shared-memory index (what ``djdeploy emulator reset`` deletes)."""
    names = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm")
    return [state_dir / n for n in names if (state_dir / n).exists()]


class StateError(Exception):
    """A state directory that cannot be used: not creatable, unreadable, not a database, or
    holding settings no emulator wrote. ``str()`` says what is wrong with it."""


class Store:
    def __init__(self, state_dir: Path | str | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._lock = threading.RLock()
        self._depth = 0  # transaction nesting of the thread holding _lock
        try:
            self._db = self._open()
        except OSError as exc:
            raise StateError(exc.strerror or str(exc)) from None
        except sqlite3.DatabaseError as exc:  # not a database, unreadable, locked for good
            raise StateError(f"{DB_NAME}: {exc}") from None

    def _open(self) -> sqlite3.Connection:
        target = ":memory:"
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            target = str(self.state_dir / DB_NAME)
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=60.0)
        db.execute("PRAGMA busy_timeout = 60000")
        if self.state_dir is not None:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(_SCHEMA)
        return db

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Serialize a read-modify-write across threads and processes; re-entrant per thread."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._db.execute("ROLLBACK")
                raise
            else:
                self._depth = 0
                self._db.execute("COMMIT")

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: undo what the block wrote if it raises."""
        with self.transaction():
            name = f"sp{self._depth}"
            self._db.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self._db.execute(f"ROLLBACK TO {name}")
                self._db.execute(f"RELEASE {name}")
                raise
            self._db.execute(f"RELEASE {name}")

    # -- documents ----------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM objects WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        data = json.dumps(value, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO objects (kind, key, value) VALUES (?, ?, ?)",
                (kind, key, data),
            )

    def delete(self, kind: str, key: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, key))
            return cur.rowcount > 0

    def list(
        self, kind: str, prefix: str = "", *, limit: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """(key, value) pairs of ``kind`` whose key starts with ``prefix``, sorted by key; the
        first ``limit`` of them when given."""
        tail = " LIMIT ?" if limit is not None else ""
        extra: tuple[int, ...] = (limit,) if limit is not None else ()
        with self._lock:
            if prefix:
                # range scan on the primary key; the upper bound is prefix + the max code point
                rows = self._db.execute(
                    "SELECT key, value FROM objects WHERE kind = ? AND key >= ? AND key < ? "
                    "ORDER BY key" + tail,
                    (kind, prefix, prefix + "\U0010ffff", *extra),
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT key, value FROM objects WHERE kind = ? ORDER BY key" + tail,
                    (kind, *extra),
                ).fetchall()
        return [(k, json.loads(v)) for k, v in rows if k.startswith(prefix)]

    def kinds(self) -> builtins.list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT kind FROM objects ORDER BY kind").fetchall()
        return [r[0] for r in rows]

    # -- counters -----------------------------------------------------------------------------

    def next_id(self, counter: str) -> int:
        """1, 2, 3, ... per counter name; atomic across threads and processes."""
        with self.transaction():
            row = self._db.execute(
                "SELECT value FROM counters WHERE name = ?", (counter,)
            ).fetchone()
            value = (row[0] if row else 0) + 1
            self._db.execute(
                "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (counter, value)
            )
        return int(value)

    # -- whole state --------------------------------------------------------------------------

    def dump(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, key, value FROM objects ORDER BY kind, key"
            ).fetchall()
        for kind, key, value in rows:
            out.setdefault(kind, {})[key] = json.loads(value)
        return out

    def reset(self) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM objects")
            self._db.execute("DELETE FROM counters")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Rules:
    """Numbered rules kept in the store under ``kind`` (faults, outcomes), applied in the order
    added: :meth:`_take` hands out the first matching one and counts down its ``times`` (the rule
    vanishes at 0; ``times`` None is unlimited)."""

    def __init__(self, store: Store, kind: str, counter: str) -> None:
        self._store = store
        self._kind = kind
        self._counter = counter

    def _add(self, rule: dict[str, Any]) -> dict[str, Any]:
        """Number ``rule`` (its ``id``) and keep it; returns it."""
        rule["id"] = self._store.next_id(self._counter)
        self._store.put(self._kind, f"{rule['id']:012d}", rule)
        return rule

    def list(self) -> builtins.list[dict[str, Any]]:
        return [v for _, v in self._store.list(self._kind)]

    def clear(self) -> None:
        with self._store.transaction():
            for k, _ in self._store.list(self._kind):
                self._store.delete(self._kind, k)

    def remove(self, rule_id: int) -> bool:
        return self._store.delete(self._kind, f"{int(rule_id):012d}")

    def _expired(self, rule: dict[str, Any]) -> bool:
        """A rule past its time: dropped when met (none by default)."""
        return False

    def _take(self, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The first rule for which ``matches(rule)`` is true, one of its ``times`` used up (all
        in one transaction, so two processes never both use a rule's last time), or None."""
        store = self._store
        if not store.list(self._kind, limit=1):
            return None  # fast path: no rules, no transaction
        with store.transaction():
            for key, rule in store.list(self._kind):
                if self._expired(rule):
                    store.delete(self._kind, key)
                    continue
                if not matches(rule):
                    continue
                if rule.get("times") is not None:
                    rule["times"] -= 1
                    if rule["times"] <= 0:
                        store.delete(self._kind, key)
                    else:
                        store.put(self._kind, key, rule)
                return rule
        return None

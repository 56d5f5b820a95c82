"""One command's shared reads: a read the steps' first observations repeat is made once.

Several steps read the same facts when they first observe (the secret versions the secrets, jobs
and service steps pin, the project IAM policy both IAM steps edit, the SQL operations list of the
instance's three steps). A wrapper names such a read with a key (``cloud.read(fn, key=...)``);
the cache then answers it, within one command (one Cloud), by these rules:

- Only a read made while the engine's first observation of a step runs (``sharing()``) may be
  answered from the cache; every other read (a re-observation after apply, a poll while an
  operation runs, the read of a read-modify-write) goes to the API, and its answer replaces the
  entry: the cache holds the newest value this command has seen.
- Any call without a key counts as a write and drops every entry, and a read that was running
  while it happened is not stored: nothing read before one of our writes is served after it.
- Two steps asking at once share one request (the second waits for the first).

So the cache never hides a change this command makes or waits for; what it can serve is a read
another step made earlier in the same command, which is the state the command found.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class ReadCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, Future[Any]] = {}
        self._generation = 0  # counts invalidations: a read spanning one is not stored
        self._local = threading.local()

    @contextlib.contextmanager
    def sharing(self) -> Iterator[None]:
        """Within this block, this thread's keyed reads may be answered from the cache."""
        self._local.sharing = True
        try:
            yield
        finally:
            self._local.sharing = False

    def invalidate(self) -> None:
        """A write: drop every entry."""
        with self._lock:
            self._entries.clear()
            self._generation += 1

    def read(self, key: Hashable, fetch: Callable[[], T]) -> T:
        """``fetch()``, or the entry for ``key`` (a copy: callers may change what they get)."""
        with self._lock:
            generation = self._generation
            found = self._entries.get(key) if getattr(self._local, "sharing", False) else None
            if found is None:
                mine: Future[Any] = Future()
                if getattr(self._local, "sharing", False):
                    self._entries[key] = mine  # others asking meanwhile wait for this one
        if found is not None:
            return copy.deepcopy(found.result())  # type: ignore[no-any-return]
        try:
            value = fetch()
        except BaseException as exc:
            mine.set_exception(exc)
            with self._lock:
                if self._entries.get(key) is mine:
                    del self._entries[key]
            raise
        mine.set_result(value)
        with self._lock:
            if self._generation == generation:
                self._entries[key] = mine  # the newest value seen
            elif self._entries.get(key) is mine:
                del self._entries[key]
        return copy.deepcopy(value)

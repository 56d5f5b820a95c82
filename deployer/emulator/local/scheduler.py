"""A background ticker for what runs on a schedule (Cloud Scheduler's jobs, uptime checks;
docs/emulator.md, "Local execution"): one thread that calls the backend's ``tick`` every
``POLL_SECONDS`` of real time until stopped. It knows nothing of the APIs or of schedules:
``tick`` reads the emulator's clock and decides what is due, so with a virtual clock firing
follows that clock (the real-time poll only bounds how soon a due job is seen).
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable

#: how often the ticker looks (bounded reaction time, not a timing assumption)
POLL_SECONDS = 0.05


class Ticker:
    """Calls ``tick`` from one daemon thread; a failing tick is printed and the next one runs."""

    def __init__(self, name: str = "scheduler") -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, tick: Callable[[], None]) -> None:
        """Start ticking (once: a second start keeps the first tick)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(tick,), daemon=True)
        self._thread.name = f"djdeploy-local-{self.name}"
        self._thread.start()

    def _run(self, tick: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                tick()
            except Exception:  # a bug or a closed store: said, and the ticker goes on
                print(f"djdeploy emulator: the {self.name}'s tick failed:", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
            self._stop.wait(POLL_SECONDS)

    def stop(self) -> None:
        """Stop and wait for a tick under way to end."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

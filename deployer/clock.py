"""Time, injected: the one clock the engine, the retries and the emulator read and sleep on.

`RealClock` is the wall clock. `VirtualClock` is time for tests: it stands still until someone
sleeps on it or advances it, and `sleep` moves it forward at once instead of waiting. A test hands
the same VirtualClock to the emulator and to the deployer's Cloud, so an engine poll that sleeps
ten virtual seconds lets the emulator's ten-second operation finish, with no real wait and no
window that a slow machine could miss.

Bottom layer: this module imports nothing of the deployer (the emulator may import it).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds (timestamps, operation due times)."""
        ...

    def monotonic(self) -> float:
        """Seconds that only go forward (deadlines, elapsed times)."""
        ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


#: where a VirtualClock starts by default (2023-11-14T22:13:20Z): a fixed epoch, so timestamps
#: are the same on every run
VIRTUAL_EPOCH = 1_700_000_000.0


class VirtualClock:
    """Time that moves only when slept on or advanced; thread-safe (the engine sleeps in one
    thread per step, and each sleep moves the one shared time forward)."""

    def __init__(self, start: float = VIRTUAL_EPOCH) -> None:
        self._start = start
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._start + self._elapsed

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time cannot go back ({seconds} s)")
        with self._lock:
            self._elapsed += seconds

"""The one clock: VirtualClock moves only when slept on or advanced, from any thread."""

from __future__ import annotations

import threading

import pytest

from deployer.clock import VIRTUAL_EPOCH, VirtualClock
from deployer.engine import Options


def test_virtual_time_stands_still_until_slept_on_or_advanced() -> None:
    clock = VirtualClock()
    assert (clock.now(), clock.monotonic()) == (VIRTUAL_EPOCH, 0.0)
    assert clock.now() == VIRTUAL_EPOCH  # reading it does not move it
    clock.sleep(1.5)
    clock.advance(0.5)
    assert (clock.now(), clock.monotonic()) == (VIRTUAL_EPOCH + 2.0, 2.0)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)


def test_sleeps_from_many_threads_all_count() -> None:
    clock = VirtualClock(start=0.0)

    def sleeper() -> None:
        for _ in range(1000):
            clock.sleep(0.25)

    threads = [threading.Thread(target=sleeper) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clock.monotonic() == 8 * 1000 * 0.25


def test_the_step_deadline_scales_without_a_floor() -> None:
    """Retries sleep on the engine's clock, so a fast time scale needs no real-seconds room."""
    assert Options.scaled(0.001).step_timeout == pytest.approx(36.0)
    assert Options.scaled(1.0).step_timeout == 3600.0

"""The one clock: VirtualClock moves only when slept on or advanced, from any thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from deployer.api import Target, up
from deployer.clock import VIRTUAL_EPOCH, VirtualClock
from deployer.config import Config
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
    assert Options.scaled(0.001).step_timeout == 600.0  # real work is not scaled
    assert Options.scaled(0.5).step_timeout == 3600.0
    assert Options.scaled(1.0).step_timeout == 3600.0


@pytest.mark.slow  # a whole deployment (seconds of work, no waiting)
def test_up_on_one_virtual_clock_waits_for_nothing_real(tmp_path: Path) -> None:
    """api.up(clock=) runs the built-in emulator, the engine and the retries on one clock: a
    whole deployment whose operations take minutes at real scale (time scale 1: a 10-minute SQL
    instance create) finishes with no real wait, and the clock shows the time it took."""
    clock = VirtualClock()
    # API only: what the emulator executes (a real build) takes real time, which no clock skips
    target = Target(emulator=True, state_dir=tmp_path, time_scale=1.0, execute=False)
    result = up(Config(tenant="demo", project="acme-prod"), target=target, clock=clock)
    assert result.ok, [r.error for r in result.results if r.error]
    assert clock.monotonic() >= 600  # at least the SQL instance create, at real durations
    assert result.elapsed == clock.monotonic()

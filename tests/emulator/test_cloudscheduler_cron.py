"""The emulator's unix-cron: the grammar the config validates [[cron]] with, and the next time
a schedule names in a time zone (DST included)."""

from __future__ import annotations

import datetime as dt

import pytest

from deployer.config.rules import cron_problem
from deployer.emulator.cloudscheduler.cron import CronError, Schedule
from deployer.emulator.cloudscheduler.firing import backoff


def _t(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _next(schedule: str, after: str, zone: str = "Etc/UTC") -> str:
    found = Schedule.parse(schedule).next_after(_t(after), zone)
    assert found is not None
    return dt.datetime.fromtimestamp(found, tz=dt.UTC).isoformat()


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("* * * * *", "2024-01-01T10:00:00+00:00", "2024-01-01T10:01:00+00:00"),
        ("* * * * *", "2024-01-01T10:00:30+00:00", "2024-01-01T10:01:00+00:00"),
        ("*/15 * * * *", "2024-01-01T10:01:00+00:00", "2024-01-01T10:15:00+00:00"),
        ("0 3 * * *", "2024-01-01T03:00:00+00:00", "2024-01-02T03:00:00+00:00"),
        ("0 8 * * mon", "2024-01-01T09:00:00+00:00", "2024-01-08T08:00:00+00:00"),  # a Monday
        ("0 0 1 jan *", "2024-03-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
        ("0 0 29 2 *", "2024-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
        ("0 0 * * 7", "2024-01-01T00:00:00+00:00", "2024-01-07T00:00:00+00:00"),  # Sunday
        # both days restricted: either matches (the 15th, or a Friday)
        ("0 0 15 * fri", "2024-01-01T00:00:00+00:00", "2024-01-05T00:00:00+00:00"),
        ("5-10/5 1,2 * * *", "2024-01-01T01:05:00+00:00", "2024-01-01T01:10:00+00:00"),
    ],
)
def test_next_time(schedule: str, after: str, expected: str) -> None:
    assert cron_problem(schedule) is None  # the config accepts what the emulator runs
    assert _next(schedule, after) == expected


def test_time_zone_and_dst() -> None:
    # 03:00 in Paris is 02:00 UTC in winter, 01:00 UTC in summer
    assert _next("0 3 * * *", "2024-01-10T12:00:00+00:00", "Europe/Paris") == (
        "2024-01-11T02:00:00+00:00"
    )
    assert _next("0 3 * * *", "2024-07-10T12:00:00+00:00", "Europe/Paris") == (
        "2024-07-11T01:00:00+00:00"
    )
    # 02:30 does not exist on 2024-03-31 in Paris: it runs at the shifted time, once
    assert _next("30 2 * * *", "2024-03-30T12:00:00+00:00", "Europe/Paris") == (
        "2024-03-31T01:30:00+00:00"
    )
    # 02:30 happens twice on 2024-10-27: once
    first = _next("30 2 * * *", "2024-10-26T12:00:00+00:00", "Europe/Paris")
    assert first == "2024-10-27T00:30:00+00:00"
    assert _next("30 2 * * *", first, "Europe/Paris") == "2024-10-28T01:30:00+00:00"


def test_never() -> None:
    assert Schedule.parse("0 0 30 2 *").next_after(0.0, "Etc/UTC") is None


@pytest.mark.parametrize(
    "schedule", ["* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *", "x * * * *"]
)
def test_bad_schedules(schedule: str) -> None:
    assert cron_problem(schedule) is not None
    with pytest.raises(CronError):
        Schedule.parse(schedule)


def test_backoff_is_googles_example() -> None:
    config = {"minBackoffDuration": "10s", "maxBackoffDuration": "300s", "maxDoublings": 3}
    assert [backoff(config, n) for n in range(8)] == [10, 20, 40, 80, 160, 240, 300, 300]
    assert backoff({}, 0) == 5.0

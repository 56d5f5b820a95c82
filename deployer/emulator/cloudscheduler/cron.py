"""Unix-cron as Cloud Scheduler reads it: parse five fields, and find the next time a schedule
names in a time zone (no HTTP).

The grammar is the one deployer/config/rules.py validates ``[[cron]]`` with (the emulator may
not import the config, so the two are kept alike and each has its tests): each field is ``*``,
a value, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those; month and
day names (``JAN``, ``MON``); day of week 0-7, both 0 and 7 Sunday. As in Vixie cron, when
both day of month and day of week are restricted a day matching either runs.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: (lowest, highest, names) of minute, hour, day of month, month, day of week
_FIELDS: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 59, ()),
    (0, 23, ()),
    (1, 31, ()),
    (1, 12, _MONTHS),
    (0, 7, _DAYS),
)
_ITEM = re.compile(r"^(?P<range>\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")
#: how far ahead a schedule is searched (a schedule such as "0 0 30 2 *" never runs)
_HORIZON_DAYS = 366 * 5


class CronError(ValueError):
    """The schedule is not unix-cron."""


def _value(text: str, lo: int, hi: int, names: tuple[str, ...]) -> int:
    if text.isdigit() and lo <= int(text) <= hi:
        return int(text)
    if text.upper() in names:
        return names.index(text.upper()) + lo  # JAN = 1, SUN = 0
    raise CronError(f"{text!r} is not a value {lo}-{hi}")


def _field(text: str, lo: int, hi: int, names: tuple[str, ...]) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise CronError(f"{item!r} is not *, a value, a range or a step")
        if m["range"] == "*":
            first, last = lo, hi
        else:
            bounds = [_value(b, lo, hi, names) for b in m["range"].split("-")]
            first, last = bounds[0], bounds[-1]
            if first > last:
                raise CronError(f"the range {m['range']!r} goes backwards")
            if m["step"] is not None and len(bounds) == 1:
                last = hi  # "5/15": from 5, every 15
        step = int(m["step"]) if m["step"] is not None else 1
        if step == 0:
            raise CronError(f"the step of {item!r} is 0")
        out.update(range(first, last + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 folded into 0)
    any_day: bool  # day of month is "*"
    any_weekday: bool  # day of week is "*"

    @classmethod
    def parse(cls, text: str) -> Schedule:
        fields = text.split()
        if len(fields) != 5:
            raise CronError(f"a schedule has 5 fields, not {len(fields)}")
        pairs = zip(fields, _FIELDS, strict=True)
        parsed = [_field(f, lo, hi, names) for f, (lo, hi, names) in pairs]
        return cls(
            minutes=parsed[0],
            hours=parsed[1],
            days=parsed[2],
            months=parsed[3],
            weekdays=frozenset(d % 7 for d in parsed[4]),
            any_day=fields[2].startswith("*"),
            any_weekday=fields[4].startswith("*"),
        )

    def _day_matches(self, day: dt.datetime) -> bool:
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def next_after(self, t: float, time_zone: str) -> float | None:
        """The first time (epoch seconds) strictly after ``t`` that the schedule names in
        ``time_zone`` (wall-clock minutes; a minute skipped by a DST change runs at the
        shifted time, as zoneinfo resolves it), or None within five years."""
        zone = zoneinfo.ZoneInfo(time_zone)
        local = dt.datetime.fromtimestamp(t, tz=zone).replace(tzinfo=None)
        at = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        end = at + dt.timedelta(days=_HORIZON_DAYS)
        while at < end:
            if at.month not in self.months:
                at = (at.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0)
            elif not self._day_matches(at):
                at = at.replace(hour=0, minute=0) + dt.timedelta(days=1)
            elif at.hour not in self.hours:
                at = at.replace(minute=0) + dt.timedelta(hours=1)
            elif at.minute not in self.minutes:
                at += dt.timedelta(minutes=1)
            else:
                when = at.replace(tzinfo=zone).timestamp()
                if when > t:
                    return when
                at += dt.timedelta(minutes=1)  # a repeated wall-clock hour (DST ends)
        return None

"""Working hours: when a team is at work, and timers that count working time only.

Pure: instants are epoch seconds passed in, and nothing is read but the zone database and
the `holidays` tables. An interval covers the real time between the instants its two
local times name; a local time names one instant: a time the clocks pass twice (autumn)
means its first occurrence, a time they skip (spring) the moment they jump to. So
01:00-04:00 is 2 hours on the spring night and 4 on the autumn one, 02:00-03:00 on the
spring night is empty, and nothing is lost or counted twice.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

Interval = tuple[int, int]
"""Minutes since the local midnight of the day it belongs to; the end may pass the next
midnight: 22:00-06:00 is (1320, 1800)."""
Day = tuple[Interval, ...]
DAY = 1440
ROUND_THE_CLOCK: Day = ((0, DAY),)
CLOSED_WEEK: tuple[Day, ...] = ((),) * 7
HORIZON = 732 * 86400.0  # "never": no working time in two years from where a search starts
# "never" too: a deadline more than five years of calendar away (a long timer under a few
# minutes a week would otherwise walk the calendar to the year 9999).
REACH = 1827 * 86400.0
_CHUNK = 28  # local days added to a timeline at a time
_SPAN = 2000  # most local days a timeline keeps: more than REACH, so a long timer's days
# are built once, not again at every call


@dataclass(frozen=True, slots=True)
class Schedule:
    """A team's working hours in its zone; the default is always open.

    `week`: Monday first, None = round the clock. `dates`: sorted (day, hours) pairs
    that replace the week's hours that day (no hours = closed). `country`: its public
    holidays are closed ("DE", or with a subdivision "DE-BY").
    """

    zone: str = "UTC"
    week: tuple[Day, ...] | None = None
    dates: tuple[tuple[date, Day], ...] = ()
    country: str | None = None
    # The working time worked out so far, kept with the value (it never changes it).
    _timeline: _Timeline | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def always_open(self) -> bool:
        return self.week is None and not self.dates and self.country is None

    def hours_on(self, day: date) -> Day:
        """The intervals of local `day`: its date's, none on a holiday, or the week's."""
        for when, hours in self.dates:
            if when == day:
                return hours
        if self.country is not None and day in public_holidays(self.country, day.year):
            return ()
        return ROUND_THE_CLOCK if self.week is None else self.week[day.weekday()]


ALWAYS_OPEN = Schedule()


def add_working(schedule: Schedule, start: float, seconds: float) -> float | None:
    """The instant by which `seconds` of working time have passed since `start` (counting
    from the next opening if closed then), always an open instant; None if never."""
    if schedule.always_open:
        return start + seconds
    return _timeline(schedule).add(start, max(0.0, seconds))


def working_between(schedule: Schedule, since: float, until: float) -> float:
    """Seconds of working time in [since, until)."""
    if until <= since:
        return 0.0
    if schedule.always_open:
        return until - since
    return _timeline(schedule).between(since, until)


def is_open(schedule: Schedule, at: float) -> bool:
    """Whether `at` is working time."""
    return schedule.always_open or _timeline(schedule).is_open(at)


def next_open(schedule: Schedule, at: float) -> float | None:
    """`at` if open, else the next opening; None if it never opens again."""
    return add_working(schedule, at, 0.0)


def shift_end(schedule: Schedule, at: float) -> float | None:
    """The end of the shift `at` is in, or else of the next one (touching and overlapping
    intervals are one shift); None when always open or no shift ends within two years."""
    if schedule.always_open:
        return None
    return _timeline(schedule).shift_end(at)


def shift_bounds(schedule: Schedule, at: float) -> tuple[float, float] | None:
    """(start, end) of the shift `at` is in, or else of the next one, as `shift_end` finds
    it; a start more than a week before `at` may read as a week before. None when always
    open or no shift ends within two years."""
    end = shift_end(schedule, at)
    if end is None:
        return None
    return _timeline(schedule).shift_start(end), end


@lru_cache(maxsize=256)
def public_holidays(country: str, year: int) -> frozenset[date]:
    """A country's ("DE") or subdivision's ("DE-BY") public holidays in one year."""
    import holidays  # loaded only by teams that follow a country's holidays

    code, _, subdivision = country.partition("-")
    return frozenset(holidays.country_holidays(code, subdiv=subdivision or None, years=year))


_TIMELINES: dict[Schedule, _Timeline] = {}


def _timeline(schedule: Schedule) -> _Timeline:
    found = schedule._timeline
    if found is None:
        found = _TIMELINES.get(schedule)
        if found is None:
            if len(_TIMELINES) >= 64:  # schedules are few; bound the memory anyway
                _TIMELINES.clear()
            found = _TIMELINES[schedule] = _Timeline(schedule)
        object.__setattr__(schedule, "_timeline", found)
    return found


class _Timeline:
    """A schedule's working time as sorted, merged UTC intervals over a window of local
    days, grown on demand. Day d's intervals lie in [midnight d, midnight d+2), so the
    window [lo, hi) tells the truth about instants in [midnight lo+1, midnight hi)."""

    __slots__ = ("schedule", "zone", "days", "lo", "hi", "starts", "ends", "safe_lo", "safe_hi")

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.zone = ZoneInfo(schedule.zone)
        self.days: dict[int, list[tuple[float, float]]] = {}
        self.lo = self.hi = 0
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.safe_lo, self.safe_hi = math.inf, -math.inf

    def add(self, start: float, seconds: float) -> float | None:
        reach = start + REACH
        pos, left, limit = start, seconds, min(start + HORIZON, reach)
        i = self._first_after(pos)
        while True:
            if i == len(self.ends) or self.starts[i] >= self.safe_hi:
                if self.safe_hi > limit:
                    return None
                i = self._extend(pos)
                continue
            begin = max(self.starts[i], pos)
            if begin > limit:
                return None
            end = self.ends[i]
            if left < end - begin:
                due = begin + left
                if due < end:  # not rounded onto the closing instant
                    return due
            left = max(0.0, left - (end - begin))
            pos, limit = end, min(end + HORIZON, reach)
            i = self._extend(pos) if end >= self.safe_hi else i + 1

    def between(self, since: float, until: float) -> float:
        total, pos = 0.0, since
        i = self._first_after(pos)
        while True:
            if i == len(self.ends) or self.starts[i] >= self.safe_hi:
                if self.safe_hi > until:
                    return total
                i = self._extend(pos)
                continue
            begin = max(self.starts[i], pos)
            if begin >= until:
                return total
            end = self.ends[i]
            if end >= until:
                return total + (until - begin)
            total += end - begin
            pos = end
            i = self._extend(pos) if end >= self.safe_hi else i + 1

    def is_open(self, at: float) -> bool:
        i = self._first_after(at)
        return i < len(self.starts) and self.starts[i] <= at

    def shift_end(self, at: float) -> float | None:
        limit = at + HORIZON
        i = self._first_after(at)
        while True:
            if i == len(self.ends) or self.ends[i] >= self.safe_hi:  # it may go on further
                if self.safe_hi > limit:
                    return None
                i = self._extend(at)
                continue
            return self.ends[i] if self.ends[i] <= limit else None

    def shift_start(self, end: float) -> float:
        """The start of the shift that ends at `end` (an end `shift_end` gave)."""
        i = self._first_after(end - 1e-3)
        return self.starts[i] if i < len(self.starts) else end

    def _first_after(self, pos: float) -> int:
        """Index of the first interval that ends after `pos`, with `pos` in the window."""
        if not self.safe_lo <= pos < self.safe_hi:
            day = self._ordinal(pos)
            lo, hi = day - 7, day + _CHUNK
            if self.hi > self.lo and max(hi, self.hi) - min(lo, self.lo) <= _SPAN:
                lo, hi = min(lo, self.lo), max(hi, self.hi)  # keep what is built
            self._build(lo, hi)
        return bisect_right(self.ends, pos)

    def _extend(self, pos: float) -> int:
        """Grow the window by a chunk of days (forgetting the oldest), keeping `pos` in it."""
        hi = self.hi + _CHUNK
        self._build(min(max(self.lo, hi - _SPAN), self._ordinal(pos) - 1), hi)
        return bisect_right(self.ends, pos)

    def _build(self, lo: int, hi: int) -> None:
        starts: list[float] = []
        ends: list[float] = []
        for ordinal in range(lo, hi):
            for begin, end in self._day(ordinal):
                if ends and begin <= ends[-1]:
                    ends[-1] = max(ends[-1], end)
                else:
                    starts.append(begin)
                    ends.append(end)
        self.days = {d: v for d, v in self.days.items() if lo <= d < hi}
        self.lo, self.hi, self.starts, self.ends = lo, hi, starts, ends
        self.safe_lo = _instant(date.fromordinal(lo + 1), 0, self.zone)
        self.safe_hi = _instant(date.fromordinal(hi), 0, self.zone)

    def _day(self, ordinal: int) -> list[tuple[float, float]]:
        found = self.days.get(ordinal)
        if found is None:
            day = date.fromordinal(ordinal)
            found = []
            for begin, end in sorted(self.schedule.hours_on(day)):
                at, until = _instant(day, begin, self.zone), _instant(day, end, self.zone)
                if at < until:  # empty when it lies wholly in a skipped hour
                    found.append((at, until))
            self.days[ordinal] = found
        return found

    def _ordinal(self, at: float) -> int:
        return datetime.fromtimestamp(at, self.zone).toordinal()


def _instant(day: date, minutes: int, zone: ZoneInfo) -> float:
    """The instant a local time names (see the module's docstring for the two DST cases)."""
    wall = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=minutes)
    first, second = wall.timestamp(), wall.replace(fold=1).timestamp()
    if first <= second:  # an ordinary time, or one passed twice: its first occurrence
        return first
    # Skipped: read with the old offset (`first`) it lands after the jump, with the new
    # one (`second`) before it; the jump is the one change of offset in between.
    after = datetime.fromtimestamp(first, zone).utcoffset()
    early, late = math.floor(second), math.ceil(first)
    while late - early > 1:
        middle = (early + late) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            late = middle
        else:
            early = middle
    return float(late)

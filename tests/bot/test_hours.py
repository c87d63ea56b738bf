"""Working time (DESIGN §1 "Working hours"): timers count working time only, as a table of
cases, then invariants for random schedules checked against a plain reading of one."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chat_rescue.bot.hours import (
    ALWAYS_OPEN,
    CLOSED_WEEK,
    REACH,
    Day,
    Schedule,
    add_working,
    is_open,
    next_open,
    shift_bounds,
    shift_end,
    working_between,
)
from chat_rescue.bot.hours_text import change_holiday, change_holidays, change_hours

M, H = 60.0, 3600.0


def at(text: str) -> float:
    """An instant written with its offset, so a time the clocks pass twice is unambiguous."""
    return datetime.fromisoformat(text).timestamp()


def hours(text: str, *holidays: str, country: str | None = None) -> Schedule:
    """A schedule as an admin would set it: `/rescue hours`, `/rescue holiday`, `holidays`."""
    schedule = change_hours(text.split(), ALWAYS_OPEN)
    for written in holidays:
        schedule = change_holiday(written.split(), schedule)
    return change_holidays([country], schedule) if country else schedule


BERLIN_WEEK = hours("mon-fri 09:00-18:00 Europe/Berlin")
LUNCH = hours("mon-fri 09:00-13:00,14:00-18:00 Europe/Berlin")
NEVER = Schedule(week=CLOSED_WEEK)


@pytest.mark.parametrize(
    ("schedule", "start", "length", "due"),
    [
        # The example: 2 minutes on Friday, 3 on Monday (after the clocks went forward).
        (BERLIN_WEEK, "2026-03-27 17:58+01:00", 5 * M, "2026-03-30 09:03+02:00"),
        (BERLIN_WEEK, "2026-01-16 17:58+01:00", 5 * M, "2026-01-19 09:03+01:00"),
        (BERLIN_WEEK, "2026-01-19 07:00+01:00", 5 * M, "2026-01-19 09:05+01:00"),
        (BERLIN_WEEK, "2026-01-17 12:00+01:00", 5 * M, "2026-01-19 09:05+01:00"),
        (BERLIN_WEEK, "2026-01-19 09:00+01:00", 20 * H, "2026-01-21 11:00+01:00"),
        # lunch break, and a timer started during it
        (LUNCH, "2026-01-19 12:58+01:00", 5 * M, "2026-01-19 14:03+01:00"),
        (LUNCH, "2026-01-19 13:30+01:00", 5 * M, "2026-01-19 14:05+01:00"),
        (LUNCH, "2026-01-19 17:58+01:00", 5 * M, "2026-01-20 09:03+01:00"),
        # split shift
        (hours("mon-fri 09:00-13:00,17:00-21:00 UTC"), "2026-01-19 12:59Z", 2 * M,
         "2026-01-19 17:01Z"),
        # shifts past midnight, on their own and running into the next day's hours
        (hours("daily 22:00-06:00 UTC"), "2026-01-19 05:58Z", 5 * M, "2026-01-19 22:03Z"),
        (hours("daily 22:00-06:00 UTC"), "2026-01-19 23:58Z", 5 * M, "2026-01-20 00:03Z"),
        (hours("mon 22:00-06:00; tue 06:00-10:00 UTC"), "2026-01-20 05:58Z", 5 * M,
         "2026-01-20 06:03Z"),
        (hours("fri 20:00-02:00 UTC"), "2026-01-17 01:58Z", 5 * M, "2026-01-23 20:03Z"),
        # weekends elsewhere, and a country's public holidays (19 January: MLK Day)
        (hours("mon-fri 09:00-17:00 America/New_York"), "2026-01-16 16:59-05:00", 2 * M,
         "2026-01-19 09:01-05:00"),
        (hours("mon-fri 09:00-17:00 America/New_York", country="US"), "2026-01-16 16:59-05:00",
         2 * M, "2026-01-20 09:01-05:00"),
        (hours("daily 09:00-18:00 Europe/Berlin", country="DE"), "2026-12-24 17:58+01:00",
         5 * M, "2026-12-27 09:03+01:00"),
        (hours("mon-fri 09:00-18:00 Europe/Berlin", country="DE-BY"), "2026-01-05 17:58+01:00",
         5 * M, "2026-01-07 09:03+01:00"),  # Epiphany in Bavaria, not in all of Germany
        (hours("mon-fri 09:00-18:00 Europe/Berlin", country="DE"), "2026-01-05 17:58+01:00",
         5 * M, "2026-01-06 09:03+01:00"),
        # dates: closed, shorter, and open on a day the week is closed
        (hours("mon-fri 09:00-18:00 Europe/Berlin", "2026-01-19"), "2026-01-16 17:58+01:00",
         5 * M, "2026-01-20 09:03+01:00"),
        (hours("mon-fri 09:00-18:00 Europe/Berlin", "2026-12-24 09:00-13:00", "2026-12-25"),
         "2026-12-24 12:58+01:00", 5 * M, "2026-12-28 09:03+01:00"),
        (hours("mon-fri 09:00-18:00 Europe/Berlin", "2026-01-17 10:00-12:00"),
         "2026-01-16 17:58+01:00", 5 * M, "2026-01-17 10:03+01:00"),
        (hours("off Europe/Berlin", "2026-12-25"), "2026-12-24 23:58+01:00", 5 * M,
         "2026-12-26 00:03+01:00"),
        # always open: plain addition
        (ALWAYS_OPEN, "2026-01-17 03:00Z", 5 * M, "2026-01-17 03:05Z"),
        (ALWAYS_OPEN, "2026-03-29 01:59+01:00", 2 * M, "2026-03-29 03:01+02:00"),
    ],
)
def test_timers_count_working_time_only(schedule: Schedule, start: str, length: float,
                                        due: str) -> None:
    assert add_working(schedule, at(start), length) == at(due)
    assert working_between(schedule, at(start), at(due)) == length


SUNDAY_NIGHT = "sun 01:00-04:00"  # 02:00-03:00 is skipped in spring, passed twice in autumn


@pytest.mark.parametrize(
    ("zone", "start", "length", "due"),
    [
        # Europe/Berlin: 29 March 02:00 -> 03:00; 25 October 03:00 -> 02:00
        ("Europe/Berlin", "2026-03-29 01:00+01:00", 59 * M, "2026-03-29 01:59+01:00"),
        ("Europe/Berlin", "2026-03-29 01:00+01:00", 90 * M, "2026-03-29 03:30+02:00"),
        ("Europe/Berlin", "2026-03-28 12:00+01:00", 150 * M, "2026-04-05 01:30+02:00"),
        ("Europe/Berlin", "2026-10-25 01:00+02:00", 90 * M, "2026-10-25 02:30+02:00"),
        ("Europe/Berlin", "2026-10-25 01:00+02:00", 150 * M, "2026-10-25 02:30+01:00"),
        ("Europe/Berlin", "2026-10-25 01:00+02:00", 210 * M, "2026-10-25 03:30+01:00"),
        ("Europe/Berlin", "2026-10-25 02:30+01:00", 60 * M, "2026-10-25 03:30+01:00"),
        # America/New_York: 8 March 02:00 -> 03:00; 1 November 02:00 -> 01:00
        ("America/New_York", "2026-03-08 01:00-05:00", 90 * M, "2026-03-08 03:30-04:00"),
        ("America/New_York", "2026-11-01 01:00-04:00", 30 * M, "2026-11-01 01:30-04:00"),
        ("America/New_York", "2026-11-01 01:00-04:00", 90 * M, "2026-11-01 01:30-05:00"),
        ("America/New_York", "2026-11-01 01:00-04:00", 210 * M, "2026-11-01 03:30-05:00"),
    ],
)
def test_a_change_of_clocks_loses_and_doubles_nothing(zone: str, start: str, length: float,
                                                      due: str) -> None:
    schedule = hours(f"{SUNDAY_NIGHT} {zone}")
    assert add_working(schedule, at(start), length) == at(due)
    assert working_between(schedule, at(start), at(due)) == length


@pytest.mark.parametrize(
    ("written", "since", "until", "worked"),
    [
        ("sun 01:00-04:00 Europe/Berlin", "2026-03-29 00:00+01:00", "2026-03-30 00:00+02:00", 2),
        ("sun 01:00-04:00 Europe/Berlin", "2026-10-25 00:00+02:00", "2026-10-26 00:00+01:00", 4),
        ("sun 01:00-04:00 America/New_York", "2026-03-08 00:00-05:00", "2026-03-09 00:00-04:00",
         2),
        ("sun 01:00-04:00 America/New_York", "2026-11-01 00:00-04:00", "2026-11-02 00:00-05:00",
         4),
        # a night shift is an hour shorter or longer on those nights
        ("sat 22:00-06:00 Europe/Berlin", "2026-03-28 12:00+01:00", "2026-03-29 12:00+02:00", 7),
        ("sat 22:00-06:00 Europe/Berlin", "2026-10-24 12:00+02:00", "2026-10-25 12:00+01:00", 9),
        # times that never happen are no working time; an hour passed twice counts twice
        ("sun 02:00-03:00 Europe/Berlin", "2026-03-29 00:00+01:00", "2026-03-30 00:00+02:00", 0),
        ("sun 02:30-05:00 Europe/Berlin", "2026-03-29 00:00+01:00", "2026-03-30 00:00+02:00", 2),
        ("sun 02:00-03:00 Europe/Berlin", "2026-10-25 00:00+02:00", "2026-10-26 00:00+01:00", 2),
        # within the hour passed twice, the first pass
        ("sun 02:00-02:30 Europe/Berlin", "2026-10-25 00:00+02:00", "2026-10-25 02:30+02:00",
         0.5),
        # an hour and a half of the Lord Howe Island night, whose clocks move by 30 minutes
        ("sun 01:00-03:00 Australia/Lord_Howe", "2026-04-05 00:00+11:00",
         "2026-04-06 00:00+10:30", 2.5),
        ("mon-fri 09:00-13:00,14:00-18:00 UTC", "2026-01-19 00:00Z", "2026-01-20 00:00Z", 8),
        ("mon-fri 09:00-13:00,14:00-18:00 UTC", "2026-01-19 00:00Z", "2026-01-26 00:00Z", 40),
    ],
)
def test_working_time_between_two_instants(written: str, since: str, until: str,
                                           worked: float) -> None:
    assert working_between(hours(written), at(since), at(until)) == worked * H


@pytest.mark.parametrize(
    ("schedule", "when", "opens", "ends"),
    [
        (LUNCH, "2026-01-19 10:00+01:00", "2026-01-19 10:00+01:00", "2026-01-19 13:00+01:00"),
        (LUNCH, "2026-01-19 13:30+01:00", "2026-01-19 14:00+01:00", "2026-01-19 18:00+01:00"),
        (LUNCH, "2026-01-19 09:00+01:00", "2026-01-19 09:00+01:00", "2026-01-19 13:00+01:00"),
        (LUNCH, "2026-01-23 18:00+01:00", "2026-01-26 09:00+01:00", "2026-01-26 13:00+01:00"),
        # touching intervals are one shift, across midnight too
        (hours("mon-fri 09:00-13:00,13:00-18:00 UTC"), "2026-01-19 10:00Z", "2026-01-19 10:00Z",
         "2026-01-19 18:00Z"),
        (hours("mon 22:00-24:00; tue 00:00-06:00 UTC"), "2026-01-19 23:00Z",
         "2026-01-19 23:00Z", "2026-01-20 06:00Z"),
        (hours("daily 22:00-06:00 Europe/Berlin"), "2026-01-19 12:00+01:00",
         "2026-01-19 22:00+01:00", "2026-01-20 06:00+01:00"),
        (hours("daily 08:00-20:00; sat 08:00-20:00,20:00-08:00 UTC"), "2026-01-24 12:00Z",
         "2026-01-24 12:00Z", "2026-01-25 20:00Z"),
        # round the clock, the shift ends where a holiday begins
        (hours("off Europe/Berlin", "2026-12-25"), "2026-12-20 12:00+01:00",
         "2026-12-20 12:00+01:00", "2026-12-25 00:00+01:00"),
    ],
)
def test_opening_and_end_of_shift(schedule: Schedule, when: str, opens: str, ends: str) -> None:
    assert next_open(schedule, at(when)) == at(opens)
    assert is_open(schedule, at(when)) is (opens == when)
    assert shift_end(schedule, at(when)) == at(ends)


@pytest.mark.parametrize(
    ("schedule", "when", "starts", "ends"),
    [
        (LUNCH, "2026-01-19 10:00+01:00", "2026-01-19 09:00+01:00", "2026-01-19 13:00+01:00"),
        (LUNCH, "2026-01-19 13:30+01:00", "2026-01-19 14:00+01:00", "2026-01-19 18:00+01:00"),
        (LUNCH, "2026-01-19 13:00+01:00", "2026-01-19 14:00+01:00", "2026-01-19 18:00+01:00"),
        (LUNCH, "2026-01-23 18:00+01:00", "2026-01-26 09:00+01:00", "2026-01-26 13:00+01:00"),
        (hours("mon-fri 09:00-13:00,13:00-18:00 UTC"), "2026-01-19 15:00Z", "2026-01-19 09:00Z",
         "2026-01-19 18:00Z"),
        (hours("daily 22:00-06:00 Europe/Berlin"), "2026-01-20 05:00+01:00",
         "2026-01-19 22:00+01:00", "2026-01-20 06:00+01:00"),
    ],
)
def test_the_bounds_of_a_shift(schedule: Schedule, when: str, starts: str, ends: str) -> None:
    assert shift_bounds(schedule, at(when)) == (at(starts), at(ends))


def test_always_open_never_closes_and_has_no_end_of_shift() -> None:
    now = at("2026-01-17 03:00Z")
    assert is_open(ALWAYS_OPEN, now) and next_open(ALWAYS_OPEN, now) == now
    assert shift_end(ALWAYS_OPEN, now) is None and shift_bounds(ALWAYS_OPEN, now) is None
    assert working_between(ALWAYS_OPEN, now, now + 90) == 90


def test_a_schedule_that_never_opens_answers_never_without_looping() -> None:
    now = at("2026-01-17 03:00Z")
    assert add_working(NEVER, now, 5 * M) is None
    assert next_open(NEVER, now) is None and shift_end(NEVER, now) is None
    assert not is_open(NEVER, now) and working_between(NEVER, now, now + 86400) == 0
    once = Schedule(week=CLOSED_WEEK, dates=((date(2026, 1, 19), ((540, 600),)),))
    assert next_open(once, now) == at("2026-01-19 09:00Z")
    assert add_working(once, now, 2 * H) is None  # only one hour, ever
    assert next_open(once, at("2026-01-20 00:00Z")) is None


def test_shift_end_is_none_when_no_shift_ends_within_two_years() -> None:
    assert shift_end(hours("off UTC", "2026-01-19"), at("2026-01-20 00:00Z")) is None


def test_a_timer_of_a_year_of_working_time_is_counted_exactly() -> None:
    start, length = at("2026-01-19 10:00+01:00"), 366 * 86400.0
    due = add_working(LUNCH, start, length)
    assert due is not None and is_open(LUNCH, due)
    assert working_between(LUNCH, start, due) == length
    # ... and asking about far-apart moments in turn gives the same answers as asking once
    assert add_working(LUNCH, start, 5 * M) == at("2026-01-19 10:05+01:00")
    assert working_between(LUNCH, start, due) == length


# -- invariants for random schedules -----------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "America/Havana", "America/Santiago", "Pacific/Apia"]
YEAR = (at("2026-01-01 00:00Z"), at("2027-01-01 00:00Z"))


@st.composite
def intervals(draw: st.DrawFn, most: int = 3) -> Day:
    found = set()
    for _ in range(draw(st.integers(0, most))):
        begin = draw(st.integers(0, 1439))
        found.add((begin, begin + draw(st.integers(1, 1440 if begin == 0 else 1439))))
    return tuple(sorted(found))


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    week = tuple(draw(intervals()) for _ in range(7))
    assume(any(week))
    days = draw(st.lists(st.dates(date(2025, 12, 1), date(2027, 1, 31)), max_size=4, unique=True))
    return Schedule(
        zone=draw(st.sampled_from(ZONES)),
        week=None if draw(st.integers(0, 3)) == 0 else week,
        dates=tuple(sorted((day, draw(intervals(2))) for day in days)),
        country=draw(st.sampled_from([None, None, "DE", "US"])),
    )


def weekly_minutes(schedule: Schedule) -> int:
    week = schedule.week or (((0, 1440),),) * 7
    return sum(end - begin for day in week for begin, end in day)


instants = st.floats(*YEAR, allow_nan=False)


def reference_is_open(schedule: Schedule, when: float) -> bool:
    """Working time read straight off the schedule: some interval of the local day or the
    one before covers `when`, with each local time mapped as the module promises."""
    zone = ZoneInfo(schedule.zone)

    def instant(day: date, minutes: int) -> float:
        wall = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=minutes)
        first, second = wall.timestamp(), wall.replace(fold=1).timestamp()
        if first <= second:
            return first
        offset = datetime.fromtimestamp(first, zone).utcoffset()
        while datetime.fromtimestamp(first - 1, zone).utcoffset() == offset:
            first -= 1  # back to the moment the clocks jumped
        return first

    local = datetime.fromtimestamp(when, zone).date()
    return any(instant(day, begin) <= when < instant(day, end)
               for day in (local - timedelta(days=1), local)
               for begin, end in schedule.hours_on(day))


@settings(max_examples=300, deadline=None)
@given(schedules(), instants, st.floats(0, 1, allow_nan=False), st.floats(0, 1))
def test_every_deadline_is_open_and_the_working_time_to_it_is_the_timer(
        schedule: Schedule, start: float, fraction: float, shorter: float) -> None:
    # at most three weeks' worth, so that a sparse schedule stays in the years zoneinfo knows
    length = fraction * min(30 * 86400.0, 3 * 60 * weekly_minutes(schedule))
    due = add_working(schedule, start, length)
    assert due is not None and due >= start
    assert is_open(schedule, due)
    assert working_between(schedule, start, due) == pytest.approx(length, abs=1e-6)
    earlier = add_working(schedule, start, length * shorter)
    assert earlier is not None and earlier <= due


@settings(max_examples=300, deadline=None)
@given(schedules(), st.lists(instants, min_size=1, max_size=4))
def test_open_next_opening_and_end_of_shift_agree(schedule: Schedule,
                                                  moments: list[float]) -> None:
    for when in moments:
        assert is_open(schedule, when) is reference_is_open(schedule, when)
        opens = next_open(schedule, when)
        assert opens is not None and opens >= when and is_open(schedule, opens)
        assert (opens == when) is is_open(schedule, when)
        assert working_between(schedule, when, opens) == 0
        ends = shift_end(schedule, when)
        if ends is not None:  # None: round the clock, with no holiday for two years
            assert ends > opens and not is_open(schedule, ends)
            assert working_between(schedule, opens, ends) == ends - opens


@pytest.mark.parametrize(("week", "days"), [
    (["mon-fri", "09:00-18:00", "Europe/Berlin"], 366),  # about 3.7 years of office hours
    (["sun", "03:00-03:01", "UTC"], 366),  # would run to the year 9999
    (["sat-sun", "10:00-14:00", "UTC"], 90),
])
def test_a_deadline_more_than_five_years_away_is_never(week: list[str], days: int) -> None:
    """A long timer under sparse hours: found within five years, or None ("never"), and
    never a walk of the calendar to its end (it raised at the year 10000)."""
    schedule = change_hours(week, ALWAYS_OPEN)
    start = 1_767_225_600.0  # 2026-01-01
    due = add_working(schedule, start, days * 86400.0)
    if due is None:
        assert working_between(schedule, start, start + REACH) < days * 86400.0
    else:
        assert due - start <= REACH
        assert working_between(schedule, start, due) == pytest.approx(days * 86400.0)

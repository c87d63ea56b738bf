"""One scope's own working hours, laid on the scope below: environment < team < channel.

A scope stores only what differs from the scope below, at the grain people think in:
the zone and the country's holidays whole, the week day by day, the dated hours date by
date. So a team's later change reaches every channel that did not set that part itself,
and a channel that drops what it set follows the team again. The stored text, one key
each (`KEYS`):

- `hours`: `off`; a whole week (`mon-fri 09:00-18:00`: the days not named are closed);
  or some days on the week below (`sat 10:00-14:00; sun closed; other days inherited`).
- `timezone`, `holidays`: one value in place of the one below.
- `holiday_dates`: this scope's own dates, each on the same date below:
  `2026-12-24 09:00-13:00; 2026-12-25; 2026-12-31 as usual` (other hours; closed; as the
  week says, so a channel can stay open on a team's holiday). A list stored before dates
  were layered, a channel's copy of the team's dates with its own, reads as its own
  dates; they now lie on the team's, so a date the team adds later reaches it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import lru_cache

from chat_rescue.bot.hours import ROUND_THE_CLOCK, Day, Schedule
from chat_rescue.bot.hours_text import (
    KEYS,
    describe_date,
    describe_days,
    describe_week,
    format_dates,
    format_stored_week,
    parse_country,
    parse_dates,
    parse_stored_week,
    parse_zone,
)


def lay(below: Schedule, stored: Mapping[str, str]) -> Schedule:
    """`below` with one scope's stored hours settings laid on (other keys are ignored).

    Raises HoursError on corrupt text: the caller keeps `below`'s part and says so."""
    return _lay(below, *(stored.get(key) for key in KEYS))


@lru_cache(maxsize=256)  # the same text gives the same value, and so its worked-out timeline
def _lay(below: Schedule, hours: str | None, zone: str | None, country: str | None,
         dates: str | None) -> Schedule:
    return Schedule(
        zone=below.zone if zone is None else parse_zone(zone),
        week=below.week if hours is None else _week_on(below.week, parse_stored_week(hours)),
        dates=below.dates if dates is None else _dates_on(below.dates, parse_dates(dates)),
        country=below.country if country is None else parse_country(country),
    )


def own_settings(below: Schedule, schedule: Schedule) -> dict[str, str | None]:
    """The text of each key that makes `schedule` when laid on `below`, with only what
    differs from `below` in it; None: the key is not stored, `below`'s part holds."""
    return {
        "hours": _own_week(below.week, schedule.week),
        "timezone": None if schedule.zone == below.zone else schedule.zone,
        "holidays": None if schedule.country == below.country else schedule.country or "off",
        "holiday_dates": _own_dates(below.dates, schedule.dates),
    }


def parts_changed(old: Schedule, new: Schedule) -> tuple[str, ...]:
    """The keys whose part of the schedule differs between `old` and `new`."""
    return tuple(key for key, before, after in (
        ("hours", old.week, new.week), ("timezone", old.zone, new.zone),
        ("holidays", old.country, new.country), ("holiday_dates", old.dates, new.dates),
    ) if before != after)


def describe_own(stored: Mapping[str, str]) -> list[str]:
    """What a scope's stored hours set, for people (`Sat 10:00–14:00`, `time zone
    Europe/London`, `2026-12-31 as usual`); unreadable keys are left out."""
    parts: list[str] = []
    for key in KEYS:
        written = stored.get(key)
        if written is None:
            continue
        try:
            parts += _describe(key, written)
        except ValueError:  # HoursError: not in force, so not said to be
            continue
    return parts


def _describe(key: str, written: str) -> list[str]:
    if key == "hours":
        week = parse_stored_week(written)
        if week is None:
            return ["round the clock"]
        whole = tuple(day for day in week if day is not None)
        if len(whole) == len(week):
            return [f"the whole week ({describe_week(whole)})"]
        return describe_days(week)
    if key == "timezone":
        return [f"time zone {parse_zone(written)}"]
    if key == "holidays":
        country = parse_country(written)
        return [f"public holidays {country}" if country else "no public holidays"]
    return [describe_date(day, hours) for day, hours in parse_dates(written)]


def _week_on(below: tuple[Day, ...] | None,
             own: tuple[Day | None, ...] | None) -> tuple[Day, ...] | None:
    if own is None:
        return None
    under = below or (ROUND_THE_CLOCK,) * 7
    return tuple(under[index] if day is None else day for index, day in enumerate(own))


def _own_week(below: tuple[Day, ...] | None, week: tuple[Day, ...] | None) -> str | None:
    if week == below:
        return None
    if week is None or below is None:
        # Round the clock, or a week over round the clock: the whole week is this scope's
        # (days left to a round-the-clock scope below would open day and night).
        return format_stored_week(week)
    return format_stored_week([None if day == under else day
                               for day, under in zip(week, below, strict=True)])


def _dates_on(below: tuple[tuple[date, Day], ...],
              own: tuple[tuple[date, Day | None], ...]) -> tuple[tuple[date, Day], ...]:
    dates = dict(below)
    for day, hours in own:
        if hours is None:
            dates.pop(day, None)
        else:
            dates[day] = hours
    return tuple(sorted(dates.items()))


def _own_dates(below: tuple[tuple[date, Day], ...],
               dates: tuple[tuple[date, Day], ...]) -> str | None:
    under, over = dict(below), dict(dates)
    own = sorted((day, over.get(day)) for day in under.keys() | over.keys()
                 if over.get(day) != under.get(day))
    return format_dates(own) if own else None

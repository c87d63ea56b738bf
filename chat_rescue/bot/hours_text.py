"""Working hours as people and the settings store write them, and as the bot says them.

One grammar serves `/rescue hours`, `RESCUE_HOURS` and the stored `hours` setting:
`mon-fri 09:00-13:00,14:00-18:00; sat 10:00-14:00`, or `off` (round the clock). Bad
input raises HoursError, whose message is one line that shows the right form. How one
scope's stored text lies on the scope below is `hours_layers`'.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from chat_rescue.bot.durations import clip
from chat_rescue.bot.hours import (
    CLOSED_WEEK,
    DAY,
    Day,
    Interval,
    Schedule,
    next_open,
)

KEYS = ("hours", "timezone", "holidays", "holiday_dates")
FOLLOW = ("team", "inherit")  # `/rescue hours team`: a channel drops its own hours
USAGE = {
    "hours": "/rescue hours [<days> <from-to>[,<from-to>] [<zone>] | <days> closed | <zone> | off"
             " | team]",
    "holiday": "/rescue holiday <YYYY-MM-DD> [<from-to>[,<from-to>]] | holiday remove <YYYY-MM-DD>",
    "holidays": "/rescue holidays <country, like DE, US or DE-BY> | off",
}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
NIGHT_SHIFT = 12 * 60  # longest interval past midnight a person means (else a swapped typo)
MAX_DATES = 366
# The stored week's last group when the days it does not name are the scope below's.
INHERITED = "other days inherited"
# A stored date's hours when it is as the week says, even if the scope below closes it.
AS_USUAL = "as usual"
_BELOW: Day = ((-1, -1),)  # a day no text names: while parsing, "the scope below's"
_TIME = re.compile(r"([0-9]{1,2})(?::([0-9]{2}))?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SPACED = re.compile(r"\s*([-,;])\s*")
_DASHES = str.maketrans({"–": "-", "—": "-"})


class HoursError(ValueError):
    """Hours, a zone, a date or a country written wrong; the message is the one-line fix."""


# -- the environment -------------------------------------------------------------------

def from_environment(hours: str, timezone: str, holidays: str) -> Schedule:
    """The schedule `RESCUE_HOURS` (which may end with a zone), `RESCUE_TIMEZONE` and
    `RESCUE_HOLIDAYS` describe; empty ones mean always open, UTC, no holidays."""
    zone = parse_zone(timezone) if timezone.strip() else "UTC"
    week: tuple[Day, ...] | None = None
    written_zone = None
    if hours.strip():
        week, written_zone = _parse_hours(hours, CLOSED_WEEK, strict=True)
        if week is CLOSED_WEEK:  # a zone alone: round the clock there
            week = None
    if written_zone is not None and timezone.strip() and written_zone != zone:
        raise HoursError(f"RESCUE_HOURS says {written_zone} but RESCUE_TIMEZONE says {zone}: "
                         "give the zone once")
    return Schedule(zone=written_zone or zone, week=week,
                    country=parse_country(holidays) if holidays.strip() else None)


# -- the commands ------------------------------------------------------------------------

def change_hours(args: Sequence[str], current: Schedule) -> Schedule:
    """`/rescue hours <args>`: the days named get the hours given, the other days and the
    zone stay; a zone alone changes only the zone; `off` is round the clock. If the hours
    were off, the days not named are closed."""
    text = " ".join(args)
    if not text.strip():
        raise HoursError(f"Usage: {USAGE['hours']}")
    start = CLOSED_WEEK if current.week is None else current.week
    week, zone = _parse_hours(text, start, strict=True)
    return replace(current, week=current.week if week is start else week,
                   zone=zone or current.zone)


def change_holiday(args: Sequence[str], current: Schedule) -> Schedule:
    """`/rescue holiday <date> [<hours>]` closes a date or gives it other hours;
    `/rescue holiday remove <date>` undoes that."""
    words = [word.lower() for word in args]
    dates = dict(current.dates)
    if len(words) == 2 and words[0] == "remove":
        day = parse_date(args[1])
        if dates.pop(day, None) is None:
            raise HoursError(f"{day} is not among the dates here; see /rescue hours")
    elif words and words[0] != "remove":
        day = parse_date(args[0])
        hours = _tidy(" ".join(words[1:])).replace(" ", ",")
        dates[day] = () if hours in ("", "closed") else _intervals(hours, strict=True)
        if len(dates) > MAX_DATES:
            raise HoursError(f"That is more than {MAX_DATES} dates: remove some first")
    else:
        raise HoursError(f"Usage: {USAGE['holiday']}")
    return replace(current, dates=tuple(sorted(dates.items())))


def change_holidays(args: Sequence[str], current: Schedule) -> Schedule:
    """`/rescue holidays <country>` follows that country's public holidays; `off` none."""
    if len(args) != 1:
        raise HoursError(f"Usage: {USAGE['holidays']}")
    return replace(current, country=parse_country(args[0]))


# -- the pieces --------------------------------------------------------------------------

def parse_week(text: str, *, strict: bool = True) -> tuple[Day, ...] | None:
    """A weekly schedule without a zone; None for `off`. `strict` refuses night shifts over
    12 hours, most likely a typo for the day shift."""
    week, zone = _parse_hours(text, CLOSED_WEEK, strict=strict, zone_allowed=False)
    return week


def format_week(week: tuple[Day, ...] | None) -> str:
    """The canonical text of a week: `mon-fri 09:00-18:00; sat 10:00-14:00`, `off`, `closed`."""
    if week is None:
        return "off"
    groups = _groups(week)
    if not groups:
        return "closed"
    return "; ".join(f"{_days_text(days, '-', ',')} {_hours_text(hours, '-', ',')}"
                     for days, hours in groups)


def parse_stored_week(text: str) -> tuple[Day | None, ...] | None:
    """The stored `hours`: a whole week as `parse_week` reads it (the days not named are
    closed), `off` (None), or some days ending with `INHERITED`
    (`sat 10:00-14:00; sun closed; other days inherited`), the others None."""
    head, mark, tail = _tidy(text).rpartition(";")
    if not mark or tail.strip() != INHERITED:
        return parse_week(text, strict=False)
    if head.strip() in ("", "off", "closed"):
        raise HoursError(f"'{clip(text)}' names no day before '{INHERITED}'")
    week, _ = _parse_hours(head, (_BELOW,) * 7, strict=False, zone_allowed=False)
    days = tuple(None if day == _BELOW else day for day in week or ())
    if all(day is None for day in days):
        raise HoursError(f"'{clip(text)}' names no day before '{INHERITED}'")
    return days


def format_stored_week(week: Sequence[Day | None] | None) -> str:
    """The text `parse_stored_week` reads back as `week`: days that are None are left to
    the scope below (`... ; other days inherited`); with none such, `format_week`'s."""
    if week is None:
        return "off"
    whole = tuple(day for day in week if day is not None)
    if len(whole) == len(week):
        return format_week(whole)
    groups = [f"{_days_text(days, '-', ',')} {_hours_text(hours, '-', ',') or 'closed'}"
              for days, hours in _groups(week, closed=True)]
    return "; ".join([*groups, INHERITED])


def parse_zone(text: str) -> str:
    """The IANA name of a zone, spelt as the zone database does (`utc` -> `UTC`)."""
    known = _zones()
    name = known.get(text.strip()) or known.get(text.strip().lower())
    if name is None:
        raise HoursError(f"'{clip(text)}' is not a time zone: use an IANA name like "
                         "Europe/Berlin, America/New_York or UTC")
    return name


def parse_country(text: str) -> str | None:
    """A country code the `holidays` package knows (`de` -> `DE`, `de-by` -> `DE-BY`);
    None for `off`."""
    written = text.strip()
    if written.lower() in ("off", "none"):
        return None
    code, dash, subdivision = written.partition("-")
    subdivisions = _countries().get(code.upper())
    if subdivisions is not None and not dash:
        return code.upper()
    for known in subdivisions or ():
        if dash and known.lower() == subdivision.lower():
            return f"{code.upper()}-{known}"
    raise HoursError(f"'{clip(text)}' is not a country the holiday calendar knows: use a "
                     "two-letter code like DE, US or GB, a region like DE-BY, or off")


def parse_date(text: str) -> date:
    """A date written YYYY-MM-DD."""
    try:
        if _DATE.fullmatch(text.strip()):
            return date.fromisoformat(text.strip())
    except ValueError:
        pass
    raise HoursError(f"'{clip(text)}' is not a date: write it YYYY-MM-DD, like 2026-12-24")


def parse_dates(text: str) -> tuple[tuple[date, Day | None], ...]:
    """The stored `holiday_dates`: `2026-12-24 09:00-13:00; 2026-12-25; 2026-12-31 as
    usual` (other hours; closed; None: as the week says), or `none`."""
    written = _tidy(text)
    if written in ("", "none"):
        return ()
    dates: dict[date, Day | None] = {}
    for entry in written.split(";"):
        day, _, hours = entry.strip().partition(" ")
        dates[parse_date(day)] = (() if hours in ("", "closed") else
                                  None if hours == AS_USUAL else _intervals(hours, False))
    return tuple(sorted(dates.items()))


def format_dates(dates: Sequence[tuple[date, Day | None]]) -> str:
    """The canonical text of dated hours, the inverse of `parse_dates`."""
    if not dates:
        return "none"
    return "; ".join(f"{day} {AS_USUAL}" if hours is None else
                     f"{day} {_hours_text(hours, '-', ',')}" if hours else str(day)
                     for day, hours in dates)


# -- what the bot says -------------------------------------------------------------------

def describe(schedule: Schedule) -> str:
    """For people: `Mon–Fri 09:00–18:00 · Sat 10:00–14:00 (Europe/Berlin) · holidays: DE`."""
    if schedule.always_open:
        return "Always open"
    week = "Open round the clock" if schedule.week is None else describe_week(schedule.week)
    parts = [f"{week} ({schedule.zone})"]
    closed = [str(day) for day, hours in schedule.dates if not hours]
    if schedule.country or closed:
        parts.append("holidays: " + ", ".join(filter(None, [schedule.country, *closed])))
    parts += [f"{day} {_hours_text(hours, '–', ', ')}" for day, hours in schedule.dates if hours]
    return " · ".join(parts)


def describe_week(week: tuple[Day, ...]) -> str:
    """A week's open days for people: `Mon–Fri 09:00–18:00 · Sat 10:00–14:00`."""
    return " · ".join(describe_days(week, closed=False)) or "Closed every day"


def describe_days(week: Sequence[Day | None], *, closed: bool = True) -> list[str]:
    """The days of `week` that are not None (closed ones too if `closed`), for people:
    `Sat 10:00–14:00`, `Sun closed`."""
    return [f"{_days_text(days, '–', ', ').title()} {_hours_text(hours, '–', ', ') or 'closed'}"
            for days, hours in _groups(week, closed=closed)]


def describe_date(day: date, hours: Day | None) -> str:
    """One dated entry for people: `2026-12-24 09:00–13:00`, `… closed`, `… as usual`."""
    if hours is None:
        return f"{day} {AS_USUAL}"
    return f"{day} {_hours_text(hours, '–', ', ') or 'closed'}"


def back_at(schedule: Schedule, at: float) -> str | None:
    """When the team is next at work, for a customer: `Monday 09:00 (Berlin time)`, `now`;
    the date too if more than six days away. None: never. Always the weekday, never
    "today" or "tomorrow": the customer's day may not be the team's."""
    opening = next_open(schedule, at)
    if opening is None:
        return None
    if opening <= at:
        return "now"
    return local_time(schedule, opening, at, relative=False)


def local_time(schedule: Schedule, instant: float, now: float, *,
               relative: bool = True) -> str:
    """`instant` in the team's zone as seen at `now`: `today 18:00 (Berlin time)`,
    `tomorrow …` (when `relative`), a weekday, or the date too if more than six days
    away."""
    zone = ZoneInfo(schedule.zone)
    then, now_there = datetime.fromtimestamp(instant, zone), datetime.fromtimestamp(now, zone)
    days = then.toordinal() - now_there.toordinal()
    name = _FULL[then.weekday()].title()
    when = (f"{name} {then.day} {_MONTHS[then.month - 1]} {then.year}" if days > 6 else
            "today" if relative and days == 0 else
            "tomorrow" if relative and days == 1 else name)
    return f"{when} {then:%H:%M} ({zone_label(schedule.zone, then)})"


def zone_label(zone: str, then: datetime) -> str:
    """`Berlin time`, `New York time`; a zone without a place (UTC, Etc/GMT-3, whose sign
    is the reverse of its offset) as its offset: `UTC`, `UTC+03:00`."""
    area, _, place = zone.rpartition("/")
    if area and area != "Etc":
        return f"{place.replace('_', ' ')} time"
    offset = then.utcoffset()
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# -- parsing -----------------------------------------------------------------------------

def _tidy(text: str) -> str:
    """Lower case, dashes as hyphens, no spaces around `-`, `,` and `;`."""
    return _SPACED.sub(r"\1", " ".join(text.translate(_DASHES).split())).lower()


def _parse_hours(text: str, week: tuple[Day, ...], *, strict: bool,
                 zone_allowed: bool = True) -> tuple[tuple[Day, ...] | None, str | None]:
    """(the week after the text's day groups are laid on `week`, the zone it names);
    the week is `week` itself when no day was named, None for `off`."""
    written = _tidy(text)
    if written == "off":
        return None, None
    if written == "closed" and not zone_allowed:
        return CLOSED_WEEK, None
    zone = None
    last = written.rsplit(" ", 1)[-1]
    if zone_allowed and _names_zone(last, alone=last == written):
        zone = parse_zone(last)
        written = written[: -len(last)].rstrip()
    if written == "off":
        return None, zone
    days = list(week)
    for group in filter(None, (g.strip() for g in written.split(";"))):
        named, _, hours = group.partition(" ")
        chosen = _days(named)
        if not hours:
            raise HoursError(f"Say the hours for '{clip(named)}', like {clip(named)} "
                             f"09:00-18:00 or {clip(named)} closed")
        spec = () if hours == "closed" else _intervals(hours.replace(" ", ","), strict)
        for index in chosen:
            days[index] = spec
    if not written:
        return week, zone
    if not any(days):
        raise HoursError("That leaves no working hours in the week: give some, or use "
                         "/rescue hours off to be always open")
    return tuple(days), zone


def _names_zone(word: str, alone: bool) -> bool:
    """Whether the last word is meant as a zone (`Europe/Berlin`, `UTC`, a lone `Berlin`)."""
    if word in ("closed", "daily") or word[:1].isdigit() or word[:3] in DAYS:
        return False
    return alone or "/" in word or word.isalpha()


def _days(text: str) -> list[int]:
    if text in ("daily", "mon-sun"):
        return list(range(7))
    chosen: list[int] = []
    for part in text.split(","):
        first, dash, last = part.partition("-")
        begin = _day(first, text)
        end = _day(last, text) if dash else begin
        chosen += [(begin + step) % 7 for step in range((end - begin) % 7 + 1)]
    return sorted(set(chosen))


def _day(word: str, text: str) -> int:
    for index, full in enumerate(_FULL):
        if len(word) >= 3 and full.startswith(word):
            return index
    raise HoursError(f"'{clip(text)}' is not a day: write mon … sun, a range like mon-fri, "
                     "a list like mon,wed,fri, or daily")


def _intervals(text: str, strict: bool) -> Day:
    """`09:00-13:00,14:00-18:00` as intervals, sorted and without repeats."""
    return tuple(sorted({_interval(part, strict) for part in text.split(",") if part}))


def _interval(text: str, strict: bool) -> Interval:
    first, dash, last = text.partition("-")
    if not dash:
        raise HoursError(f"'{clip(text)}' is not a from-to interval: write it like 09:00-18:00")
    begin, end = _minutes(first, text), _minutes(last, text)
    if begin == DAY:
        raise HoursError(f"'{clip(text)}' starts at 24:00: a day starts at 00:00")
    if end == 0 < begin:
        end = DAY  # 22:00-00:00 is 22:00-24:00
    if begin == end:
        raise HoursError(f"'{clip(text)}' starts and ends at the same time: write 00:00-24:00 "
                         "for the whole day, or closed")
    if end < begin:
        end += DAY  # past midnight
        if strict and end - begin > NIGHT_SHIFT:
            raise HoursError(f"'{clip(text)}' ends before it starts, and a shift past midnight "
                             f"(like 22:00-06:00) lasts at most 12 hours: did you mean "
                             f"{_clock(end - DAY)}-{_clock(begin)}?")
    return begin, end


def _minutes(word: str, text: str) -> int:
    match = _TIME.fullmatch(word)
    hours, minutes = (int(match[1]), int(match[2] or 0)) if match else (99, 0)
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise HoursError(f"'{clip(text)}' is not a time of day: write HH:MM from 00:00 to "
                         "24:00, like 09:00-18:00")
    return hours * 60 + minutes


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Every zone name, by itself and lower-cased."""
    names = available_timezones() | {"UTC"}
    return {**{name.lower(): name for name in names}, **{name: name for name in names}}


@lru_cache(maxsize=1)
def _countries() -> dict[str, list[str]]:
    import holidays

    supported: dict[str, list[str]] = holidays.list_supported_countries()
    return {code: subdivisions for code, subdivisions in supported.items() if len(code) == 2}


# -- formatting --------------------------------------------------------------------------

def _groups(week: Sequence[Day | None], *, closed: bool = False) -> list[tuple[list[int], Day]]:
    """Open days (and closed ones if `closed`) with the same hours together, in the order
    of their first day; days that are None are left out."""
    groups: dict[Day, list[int]] = {}
    for index, hours in enumerate(week):
        if hours is not None and (hours or closed):
            groups.setdefault(hours, []).append(index)
    return [(days, hours) for hours, days in groups.items()]


def _days_text(days: list[int], dash: str, comma: str) -> str:
    if len(days) == 7:
        return "daily"
    runs: list[list[int]] = []
    for index in days:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return comma.join(DAYS[run[0]] if len(run) == 1 else
                      f"{DAYS[run[0]]}{dash if len(run) > 2 else comma}{DAYS[run[-1]]}"
                      for run in runs)


def _hours_text(hours: Day, dash: str, comma: str) -> str:
    return comma.join(f"{_clock(begin)}{dash}{_clock(end if end <= DAY else end - DAY)}"
                      for begin, end in hours)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"

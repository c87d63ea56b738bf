"""Working hours as written: `/rescue hours`, `holiday`, `holidays`, the stored settings, the
environment, and what the bot says about them."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from chat_rescue.bot.hours import ALWAYS_OPEN, CLOSED_WEEK, Schedule
from chat_rescue.bot.hours_text import (
    HoursError,
    back_at,
    change_holiday,
    change_holidays,
    change_hours,
    describe,
    describe_date,
    describe_days,
    format_dates,
    format_stored_week,
    format_week,
    from_environment,
    parse_dates,
    parse_stored_week,
    parse_week,
)


def hours(text: str, current: Schedule) -> Schedule:
    return change_hours(text.split(), current)


def holiday(text: str, current: Schedule) -> Schedule:
    return change_holiday(text.split(), current)


BERLIN = hours("mon-fri 09:00-13:00,14:00-18:00 Europe/Berlin", ALWAYS_OPEN)


def stored(schedule: Schedule) -> tuple[str, str]:
    return format_week(schedule.week), schedule.zone


@pytest.mark.parametrize(
    ("current", "args", "week", "zone"),
    [
        (ALWAYS_OPEN, "mon-fri 09:00-13:00,14:00-18:00 Europe/Berlin",
         "mon-fri 09:00-13:00,14:00-18:00", "Europe/Berlin"),
        # one day changes, the others and the zone stay
        (BERLIN, "sat 10:00-14:00", "mon-fri 09:00-13:00,14:00-18:00; sat 10:00-14:00",
         "Europe/Berlin"),
        (BERLIN, "mon closed", "tue-fri 09:00-13:00,14:00-18:00", "Europe/Berlin"),
        (BERLIN, "wed 10-12", "mon,tue,thu,fri 09:00-13:00,14:00-18:00; wed 10:00-12:00",
         "Europe/Berlin"),
        (BERLIN, "america/new_york", "mon-fri 09:00-13:00,14:00-18:00", "America/New_York"),
        (BERLIN, "off", "off", "Europe/Berlin"),
        (BERLIN, "off UTC", "off", "UTC"),
        # every day, two ways, in any zone
        (BERLIN, "daily 08:00-20:00 UTC", "daily 08:00-20:00", "UTC"),
        (ALWAYS_OPEN, "mon-sun 08:00-20:00", "daily 08:00-20:00", "UTC"),
        (ALWAYS_OPEN, "daily 8-20 utc", "daily 08:00-20:00", "UTC"),
        # lists, ranges, a range over the weekend, full names, several groups at once
        (ALWAYS_OPEN, "mon,wed,fri 9-17", "mon,wed,fri 09:00-17:00", "UTC"),
        (ALWAYS_OPEN, "sat-sun 10:00-14:00", "sat,sun 10:00-14:00", "UTC"),
        (ALWAYS_OPEN, "fri-mon 10-14", "mon,fri-sun 10:00-14:00", "UTC"),
        (ALWAYS_OPEN, "Monday 9:30-17:15", "mon 09:30-17:15", "UTC"),
        (ALWAYS_OPEN, "mon-fri 09-18; sat 10-14 Asia/Kolkata",
         "mon-fri 09:00-18:00; sat 10:00-14:00", "Asia/Kolkata"),
        # spacing, en dashes as the bot writes them, intervals given with spaces
        (ALWAYS_OPEN, "mon - fri  9:00 - 13:00 , 14:00 - 18:00",
         "mon-fri 09:00-13:00,14:00-18:00", "UTC"),
        (ALWAYS_OPEN, "Mon–Fri 09:00–18:00", "mon-fri 09:00-18:00", "UTC"),
        (ALWAYS_OPEN, "mon 14:00-18:00 09:00-13:00", "mon 09:00-13:00,14:00-18:00", "UTC"),
        # past midnight, and midnight as the end of a day
        (ALWAYS_OPEN, "mon-fri 22:00-06:00", "mon-fri 22:00-06:00", "UTC"),
        (ALWAYS_OPEN, "mon 18:00-06:00", "mon 18:00-06:00", "UTC"),
        (ALWAYS_OPEN, "mon 22:00-00:00", "mon 22:00-24:00", "UTC"),
        (ALWAYS_OPEN, "mon 00:00-24:00", "mon 00:00-24:00", "UTC"),
    ],
)
def test_hours_commands(current: Schedule, args: str, week: str, zone: str) -> None:
    changed = change_hours(args.split(), current)
    assert stored(changed) == (week, zone)
    assert (changed.dates, changed.country) == (current.dates, current.country)


def test_hours_set_from_always_open_close_the_days_not_named() -> None:
    assert hours("sat 10:00-14:00", ALWAYS_OPEN).week == (
        (), (), (), (), (), ((600, 840),), ())


HOURS_FORM = "Usage: /rescue hours [<days> <from-to>[,<from-to>] [<zone>] | <days> closed"
TIME_FORM = "is not a time of day: write HH:MM from 00:00 to 24:00, like 09:00-18:00"
ZONE_FORM = "is not a time zone: use an IANA name like Europe/Berlin, America/New_York or UTC"
DAY_FORM = "is not a day: write mon … sun, a range like mon-fri, a list like mon,wed,fri, or daily"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", HOURS_FORM),
        ("   ", HOURS_FORM),
        ("mon-fri 09:00-18:00 Mars/Olympus", f"'mars/olympus' {ZONE_FORM}"),
        ("mon-fri 09:00-18:00 Berlin", f"'berlin' {ZONE_FORM}"),
        ("Berlin", f"'berlin' {ZONE_FORM}"),
        ("garbage", f"'garbage' {ZONE_FORM}"),
        ("mon 25:00-26:00", f"'25:00-26:00' {TIME_FORM}"),
        ("mon 09:00-25:00", f"'09:00-25:00' {TIME_FORM}"),
        ("mon 12:60-13:00", f"'12:60-13:00' {TIME_FORM}"),
        ("mon 24:30-01:00", f"'24:30-01:00' {TIME_FORM}"),
        ("mon-fri 0900-1800", f"'0900-1800' {TIME_FORM}"),
        ("mon-fri nine-five", f"'nine-five' {TIME_FORM}"),
        ("mon 9:5-17:00", f"'9:5-17:00' {TIME_FORM}"),
        ("mon 24:00-06:00", "'24:00-06:00' starts at 24:00: a day starts at 00:00"),
        ("mon 09:00-09:00", "'09:00-09:00' starts and ends at the same time: write 00:00-24:00 "
                            "for the whole day, or closed"),
        ("mon 00:00-00:00", "'00:00-00:00' starts and ends at the same time"),
        ("mon 18:00-09:00", "'18:00-09:00' ends before it starts, and a shift past midnight "
                            "(like 22:00-06:00) lasts at most 12 hours: did you mean "
                            "09:00-18:00?"),
        ("mon 9", "'9' is not a from-to interval: write it like 09:00-18:00"),
        ("mon 09:00-18:00 closed", "'closed' is not a from-to interval"),
        ("mon-fri", "Say the hours for 'mon-fri', like mon-fri 09:00-18:00 or mon-fri closed"),
        ("mon-fri Europe/Berlin", "Say the hours for 'mon-fri'"),
        ("funday 09-18", f"'funday' {DAY_FORM}"),
        ("mo 09-18", f"'mo' {DAY_FORM}"),
        ("mon-xyz 09-18", f"'mon-xyz' {DAY_FORM}"),
        ("09-18", f"'09-18' {DAY_FORM}"),
        ("mon-sun closed", "That leaves no working hours in the week: give some, or use "
                           "/rescue hours off to be always open"),
        ("closed", f"'closed' {DAY_FORM}"),
    ],
)
def test_bad_hours_are_explained_in_one_line_and_change_nothing(args: str, message: str) -> None:
    with pytest.raises(HoursError) as refused:  # raised, so no new schedule to store
        change_hours(args.split(), BERLIN)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value) and isinstance(refused.value, ValueError)


def test_echoed_input_is_clipped_and_stripped_of_control_characters() -> None:
    with pytest.raises(HoursError) as refused:
        change_hours(["mon", "1" * 500 + "\x00-18:00"], BERLIN)
    assert "…" in str(refused.value) and "\x00" not in str(refused.value)
    assert len(str(refused.value)) < 120


@pytest.mark.parametrize(
    ("current", "args", "dates"),
    [
        (BERLIN, "2026-12-25", "2026-12-25"),
        (BERLIN, "2026-12-24 09:00-13:00", "2026-12-24 09:00-13:00"),
        (BERLIN, "2026-12-24 9 - 13 , 14-16", "2026-12-24 09:00-13:00,14:00-16:00"),
        (BERLIN, "2026-12-31 22:00-02:00", "2026-12-31 22:00-02:00"),
        (BERLIN, "2026-12-24 closed", "2026-12-24"),
    ],
)
def test_holiday_commands(current: Schedule, args: str, dates: str) -> None:
    changed = change_holiday(args.split(), current)
    assert format_dates(changed.dates) == dates
    assert (changed.week, changed.zone) == (current.week, current.zone)


def test_holidays_are_kept_in_date_order_and_a_date_set_again_is_replaced() -> None:
    schedule = BERLIN
    for args in ("2026-12-31", "2026-12-24 09:00-13:00", "2026-01-01", "2026-12-24"):
        schedule = change_holiday(args.split(), schedule)
    assert format_dates(schedule.dates) == "2026-01-01; 2026-12-24; 2026-12-31"
    schedule = change_holiday(["REMOVE", "2026-12-24"], schedule)
    assert format_dates(schedule.dates) == "2026-01-01; 2026-12-31"


HOLIDAY_FORM = "Usage: /rescue holiday <YYYY-MM-DD> [<from-to>[,<from-to>]] | holiday remove"
DATE_FORM = "is not a date: write it YYYY-MM-DD, like 2026-12-24"
WITH_CHRISTMAS = change_holiday(["2026-12-25"], BERLIN)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", HOLIDAY_FORM),
        ("remove", HOLIDAY_FORM),
        ("remove 2026-12-25 2026-12-26", HOLIDAY_FORM),
        ("2026-13-01", f"'2026-13-01' {DATE_FORM}"),
        ("2026-02-30", f"'2026-02-30' {DATE_FORM}"),
        ("26-12-25", f"'26-12-25' {DATE_FORM}"),
        ("2026/12/25", f"'2026/12/25' {DATE_FORM}"),
        ("20261225", f"'20261225' {DATE_FORM}"),
        ("tomorrow", f"'tomorrow' {DATE_FORM}"),
        ("2026-12-24 25:00-13:00", f"'25:00-13:00' {TIME_FORM}"),
        ("2026-12-24 13:00-13:00", "'13:00-13:00' starts and ends at the same time"),
        ("2026-12-24 09:00", "'09:00' is not a from-to interval"),
        ("remove 2026-13-01", f"'2026-13-01' {DATE_FORM}"),
        ("remove 2026-12-26", "2026-12-26 is not among the dates here; see /rescue hours"),
    ],
)
def test_bad_holiday_is_explained_in_one_line_and_changes_nothing(args: str, message: str) -> None:
    with pytest.raises(HoursError) as refused:
        change_holiday(args.split(), WITH_CHRISTMAS)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_the_number_of_dates_is_bounded() -> None:
    start = date(2026, 1, 1)
    full = Schedule(dates=tuple((start + timedelta(days=n), ()) for n in range(366)))
    with pytest.raises(HoursError, match="more than 366 dates: remove some first"):
        change_holiday(["2028-01-01"], full)
    assert len(change_holiday([str(start)], full).dates) == 366  # replacing one is fine


@pytest.mark.parametrize(
    ("args", "country"),
    [("DE", "DE"), ("de", "DE"), ("GB", "GB"), ("us-ca", "US-CA"), ("DE-by", "DE-BY"),
     ("off", None), ("none", None)],
)
def test_holidays_command(args: str, country: str | None) -> None:
    changed = change_holidays([args], BERLIN)
    assert changed.country == country and changed.week == BERLIN.week


COUNTRY_FORM = ("is not a country the holiday calendar knows: use a two-letter code like DE, "
                "US or GB, a region like DE-BY, or off")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("", "Usage: /rescue holidays <country, like DE, US or DE-BY> | off"),
        ("DE BY", "Usage: /rescue holidays"),
        ("XX", f"'XX' {COUNTRY_FORM}"),
        ("DEU", f"'DEU' {COUNTRY_FORM}"),
        ("D", f"'D' {COUNTRY_FORM}"),
        ("germany", f"'germany' {COUNTRY_FORM}"),
        ("DE-XX", f"'DE-XX' {COUNTRY_FORM}"),
        ("DE-", f"'DE-' {COUNTRY_FORM}"),
    ],
)
def test_bad_holidays_are_explained_in_one_line_and_change_nothing(args: str,
                                                                   message: str) -> None:
    with pytest.raises(HoursError) as refused:
        change_holidays(args.split(), BERLIN)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


# -- the stored text ---------------------------------------------------------------------

SAT = ((600, 840),)
NINE_TO_SIX = ((540, 1080),)


@pytest.mark.parametrize(
    ("text", "week"),
    [
        # a whole week, as stored before days were layered: the days not named are closed
        ("sat 10:00-14:00", ((),) * 5 + (SAT, ())),
        ("mon-fri 09:00-18:00", (NINE_TO_SIX,) * 5 + ((), ())),
        ("off", None),
        ("closed", CLOSED_WEEK),
        # some days on the week below: the others None
        ("sat 10:00-14:00; other days inherited", (None,) * 5 + (SAT, None)),
        ("sat 10:00-14:00; sun closed; other days inherited", (None,) * 5 + (SAT, ())),
        ("mon,sat 10:00-14:00; other days inherited", (SAT,) + (None,) * 4 + (SAT, None)),
        ("mon-sun 09:00-18:00; other days inherited", (NINE_TO_SIX,) * 7),
    ],
)
def test_the_stored_week_is_whole_or_some_days_on_the_one_below(
    text: str, week: tuple[object, ...] | None
) -> None:
    assert parse_stored_week(text) == week
    again = format_stored_week(parse_stored_week(text))
    assert parse_stored_week(again) == week
    if "inherited" in text and len(week or ()) == 7 and None in (week or ()):
        assert again == text  # the canonical text


def test_a_week_with_no_day_left_to_the_scope_below_is_written_whole() -> None:
    assert format_stored_week((NINE_TO_SIX,) * 5 + ((), ())) == "mon-fri 09:00-18:00"
    assert format_stored_week([None] * 5 + [(), ()]) == "sat,sun closed; other days inherited"


@pytest.mark.parametrize("text", [
    "other days inherited", "; other days inherited", "off; other days inherited",
    "closed; other days inherited", "sat; other days inherited",
    "someday 10-14; other days inherited"])
def test_a_stored_week_that_names_no_day_right_does_not_read(text: str) -> None:
    with pytest.raises(HoursError):
        parse_stored_week(text)


def test_stored_dates_are_closed_other_hours_or_as_usual() -> None:
    text = "2026-12-24 09:00-13:00; 2026-12-25; 2026-12-31 as usual"
    dates = parse_dates(text)
    assert dates == ((date(2026, 12, 24), ((540, 780),)), (date(2026, 12, 25), ()),
                     (date(2026, 12, 31), None))
    assert format_dates(dates) == text
    assert parse_dates("2026-12-31 AS  USUAL") == ((date(2026, 12, 31), None),)
    assert parse_dates("none") == parse_dates("") == ()
    assert [describe_date(day, hours) for day, hours in dates] == [
        "2026-12-24 09:00–13:00", "2026-12-25 closed", "2026-12-31 as usual"]
    assert describe_days([None] * 5 + [SAT, ()]) == ["Sat 10:00–14:00", "Sun closed"]


def test_stored_hours_accept_a_long_night_shift_the_command_refuses() -> None:
    assert parse_week("mon 18:00-09:00", strict=False) == (((1080, 1980),),) + ((),) * 6
    with pytest.raises(HoursError):
        parse_week("mon 18:00-09:00")


@pytest.mark.parametrize(
    ("hours", "timezone", "holidays", "expected"),
    [
        ("", "", "", ALWAYS_OPEN),
        ("off", "", "off", ALWAYS_OPEN),
        ("mon-fri 09:00-18:00 Europe/Berlin", "", "DE",
         Schedule("Europe/Berlin", (((540, 1080),),) * 5 + ((), ()), country="DE")),
        ("mon-fri 09-18", "europe/berlin", "",
         Schedule("Europe/Berlin", (((540, 1080),),) * 5 + ((), ()))),
        ("mon-fri 09-18 Europe/Berlin", "Europe/Berlin", "",
         Schedule("Europe/Berlin", (((540, 1080),),) * 5 + ((), ()))),
        ("Europe/Berlin", "", "de", Schedule("Europe/Berlin", None, country="DE")),
        ("", "America/New_York", "", Schedule("America/New_York")),
    ],
)
def test_the_environment_sets_the_base_schedule(hours: str, timezone: str, holidays: str,
                                                expected: Schedule) -> None:
    assert from_environment(hours, timezone, holidays) == expected


@pytest.mark.parametrize(
    ("hours", "timezone", "holidays", "message"),
    [
        ("mon-fri 09-18 America/New_York", "Europe/Berlin", "",
         "RESCUE_HOURS says America/New_York but RESCUE_TIMEZONE says Europe/Berlin: "
         "give the zone once"),
        ("mon-fri 25-18", "", "", f"'25-18' {TIME_FORM}"),
        ("", "Mars", "", f"'Mars' {ZONE_FORM}"),
        ("", "", "XX", f"'XX' {COUNTRY_FORM}"),
    ],
)
def test_a_bad_environment_is_explained(hours: str, timezone: str, holidays: str,
                                        message: str) -> None:
    with pytest.raises(HoursError) as refused:
        from_environment(hours, timezone, holidays)
    assert str(refused.value) == message


# -- what the bot says -------------------------------------------------------------------

FULL = holiday("2026-12-24 09:00-13:00", change_holiday(
    ["2026-12-25"], change_holidays(["DE"], change_hours(["sat", "10:00-14:00"], BERLIN))))


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (ALWAYS_OPEN, "Always open"),
        (FULL, "Mon–Fri 09:00–13:00, 14:00–18:00 · Sat 10:00–14:00 (Europe/Berlin) · "
               "holidays: DE, 2026-12-25 · 2026-12-24 09:00–13:00"),
        (change_holidays(["DE"], ALWAYS_OPEN), "Open round the clock (UTC) · holidays: DE"),
        (Schedule(week=CLOSED_WEEK), "Closed every day (UTC)"),
        (hours("mon,wed,fri 09-17", ALWAYS_OPEN), "Mon, Wed, Fri 09:00–17:00 (UTC)"),
        (hours("daily 08-20", ALWAYS_OPEN), "Daily 08:00–20:00 (UTC)"),
        (hours("sat-sun 10-14", ALWAYS_OPEN), "Sat, Sun 10:00–14:00 (UTC)"),
        (hours("mon-fri 22-06", ALWAYS_OPEN), "Mon–Fri 22:00–06:00 (UTC)"),
    ],
)
def test_describe(schedule: Schedule, text: str) -> None:
    assert describe(schedule) == text


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


LONG_BREAK = BERLIN
for _day in range(21, 32):
    LONG_BREAK = change_holiday([f"2026-12-{_day}"], LONG_BREAK)


@pytest.mark.parametrize(
    ("schedule", "when", "phrase"),
    [
        (FULL, "2026-12-24 14:00+01:00", "Monday 09:00 (Berlin time)"),  # 25 and 26: holidays
        # the weekday, not "tomorrow": the customer's day may not be the team's
        (FULL, "2026-12-23 19:00+01:00", "Thursday 09:00 (Berlin time)"),
        (FULL, "2026-12-21 07:00+01:00", "Monday 09:00 (Berlin time)"),
        (FULL, "2026-12-21 13:30+01:00", "Monday 14:00 (Berlin time)"),
        (FULL, "2026-12-21 10:00+01:00", "now"),
        (LONG_BREAK, "2026-12-19 12:00+01:00", "Friday 1 January 2027 09:00 (Berlin time)"),
        (change_hours(["America/New_York"], FULL), "2026-12-24 14:00-05:00",
         "Monday 09:00 (New York time)"),
        (change_hours(["UTC"], FULL), "2026-12-24 14:00Z", "Monday 09:00 (UTC)"),
        (change_hours(["Etc/UTC"], FULL), "2026-12-24 14:00Z", "Monday 09:00 (UTC)"),
        # Etc/GMT-3 is three hours *ahead* of UTC: said as its offset, not its name
        (change_hours(["Etc/GMT-3"], FULL), "2026-12-24 14:00+03:00",
         "Monday 09:00 (UTC+03:00)"),
        (change_hours(["Asia/Kolkata"], FULL), "2026-12-24 14:00+05:30",
         "Monday 09:00 (Kolkata time)"),
        (Schedule(week=CLOSED_WEEK), "2026-12-24 14:00Z", None),
    ],
)
def test_back_at_says_when_the_team_is_back_in_its_own_zone(schedule: Schedule, when: str,
                                                            phrase: str | None) -> None:
    assert back_at(schedule, at(when)) == phrase

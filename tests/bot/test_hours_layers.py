"""One scope's stored hours on the scope below: the week day by day, the dates date by
date, only what differs stored, and text stored before the layering read as before."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_rescue.bot.hours import ALWAYS_OPEN, CLOSED_WEEK, ROUND_THE_CLOCK, Day, Schedule
from chat_rescue.bot.hours_layers import describe_own, lay, own_settings, parts_changed
from chat_rescue.bot.hours_text import HoursError, change_holiday, change_hours, from_environment

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
TEAM = from_environment("mon-fri 09:00-18:00", "Europe/Berlin", "")
NINE_TO_SIX = ((540, 1080),)
SAT = ((600, 840),)
EVE, XMAS, NYE = date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 31)


def stored(below: Schedule, schedule: Schedule) -> dict[str, str]:
    return {key: text for key, text in own_settings(below, schedule).items() if text}


@st.composite
def intervals(draw: st.DrawFn, most: int = 3) -> Day:
    """A day's hours as the grammar keeps them: sorted, no repeats, past midnight allowed."""
    found = set()
    for _ in range(draw(st.integers(0, most))):
        begin = draw(st.integers(0, 1439))
        found.add((begin, begin + draw(st.integers(1, 1440 if begin == 0 else 1439))))
    return tuple(sorted(found))


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    week = tuple(draw(intervals()) for _ in range(7))
    days = draw(st.lists(st.dates(date(2026, 12, 20), date(2027, 1, 5)), max_size=5,
                         unique=True))
    return Schedule(
        zone=draw(st.sampled_from(ZONES)),
        week=draw(st.sampled_from([week, week, CLOSED_WEEK, None])),
        dates=tuple(sorted((day, draw(intervals(2))) for day in days)),
        country=draw(st.sampled_from([None, "DE", "US", "DE-BY", "GB"])),
    )


@settings(max_examples=300, deadline=None)
@given(schedules(), schedules())
def test_what_a_scope_stores_makes_its_schedule_on_the_one_below(below: Schedule,
                                                                  schedule: Schedule) -> None:
    assert lay(below, stored(below, schedule)) == schedule
    assert lay(below, stored(below, below)) == below
    assert stored(below, below) == {}
    assert stored(ALWAYS_OPEN, schedule).keys() == set(parts_changed(ALWAYS_OPEN, schedule))


@settings(max_examples=200, deadline=None)
@given(schedules(), schedules(), schedules())
def test_a_later_change_below_reaches_what_the_scope_did_not_set(
    below: Schedule, schedule: Schedule, later: Schedule
) -> None:
    own = stored(below, schedule)
    now = lay(later, own)
    if "timezone" not in own:
        assert now.zone == later.zone
    if "holidays" not in own:
        assert now.country == later.country
    if "hours" not in own:
        assert now.week == later.week
    mine = dict(lay(ALWAYS_OPEN, {"holiday_dates": own.get("holiday_dates", "none")}).dates)
    for day, hours in later.dates:
        if day not in mine and f"{day} as usual" not in own.get("holiday_dates", ""):
            assert dict(now.dates)[day] == hours


def test_a_channel_stores_only_the_days_it_changes_and_follows_the_team_on_the_others() -> None:
    channel = change_hours(["sat", "10:00-14:00"], TEAM)
    assert stored(TEAM, channel) == {"hours": "sat 10:00-14:00; other days inherited"}
    # the team moves its weekdays: the channel's Saturday stays, its weekdays follow
    later = change_hours(["mon-fri", "08:00-16:00"], TEAM)
    assert lay(later, stored(TEAM, channel)).week == (((480, 960),),) * 5 + (SAT, ())
    # and a day it set back to the team's is the team's again
    back = change_hours(["sat", "closed"], channel)
    assert stored(TEAM, back) == {}


def test_a_week_over_round_the_clock_is_stored_whole() -> None:
    weekdays = change_hours(["mon-fri", "09:00-18:00"], ALWAYS_OPEN)
    assert stored(ALWAYS_OPEN, weekdays) == {"hours": "mon-fri 09:00-18:00"}
    assert stored(TEAM, change_hours(["off"], TEAM)) == {"hours": "off"}
    # some days left to a team that later goes round the clock open day and night
    assert lay(ALWAYS_OPEN, {"hours": "sat 10:00-14:00; other days inherited"}).week == \
        (ROUND_THE_CLOCK,) * 5 + (SAT, ROUND_THE_CLOCK)


def test_a_channels_dates_lie_on_the_teams_date_by_date() -> None:
    channel = change_holiday([str(EVE), "09:00-13:00"], TEAM)
    assert stored(TEAM, channel) == {"holiday_dates": "2026-12-24 09:00-13:00"}
    team_later = change_holiday([str(XMAS)], TEAM)  # the team adds Christmas afterwards
    here = lay(team_later, stored(TEAM, channel))
    assert here.dates == ((EVE, ((540, 780),)), (XMAS, ()))
    # removing the team's holiday in the channel is "as usual" there, for that date only
    removed = change_holiday(["remove", str(XMAS)], here)
    assert stored(team_later, removed) == {
        "holiday_dates": "2026-12-24 09:00-13:00; 2026-12-25 as usual"}
    assert lay(change_holiday([str(NYE)], team_later), stored(team_later, removed)).dates == (
        (EVE, ((540, 780),)), (NYE, ()))
    # the same date as the team's is no date of the channel's own
    assert stored(team_later, change_holiday([str(XMAS)], team_later)) == {}


def test_text_stored_before_the_layering_reads_as_it_did_where_the_team_did_not_change() -> None:
    # a channel's whole copied week and dates, as the old `/rescue hours sat 10:00-14:00`
    # and `/rescue holiday 2026-12-24 09:00-13:00` wrote them over a team with Christmas
    old = {"hours": "mon-fri 09:00-18:00; sat 10:00-14:00",
           "holiday_dates": "2026-12-24 09:00-13:00; 2026-12-25"}
    team = change_holiday([str(XMAS)], TEAM)
    here = lay(team, old)
    assert here.week == (NINE_TO_SIX,) * 5 + (SAT, ())
    assert here.dates == ((EVE, ((540, 780),)), (XMAS, ()))
    # the whole week stays the channel's; the dates are its own, now merged with the team's
    later = change_holiday([str(NYE)], change_hours(["mon-fri", "08:00-16:00"], team))
    there = lay(later, old)
    assert there.week == here.week
    assert there.dates == ((EVE, ((540, 780),)), (XMAS, ()), (NYE, ()))
    assert lay(team, {"holiday_dates": "none"}).dates == team.dates  # no dates of its own


def test_what_a_scope_sets_itself_is_said_part_by_part() -> None:
    assert describe_own({"hours": "sat 10:00-14:00; sun closed; other days inherited",
                         "timezone": "Europe/London", "holidays": "off", "idle": "5m",
                         "holiday_dates": "2026-12-24 09:00-13:00; 2026-12-25 as usual"}) == [
        "Sat 10:00–14:00", "Sun closed", "time zone Europe/London", "no public holidays",
        "2026-12-24 09:00–13:00", "2026-12-25 as usual"]
    assert describe_own({"hours": "mon-fri 09:00-18:00", "holidays": "DE"}) == [
        "the whole week (Mon–Fri 09:00–18:00)", "public holidays DE"]
    assert describe_own({"hours": "off", "timezone": "Pluto/Base"}) == ["round the clock"]


def test_stored_settings_lie_on_top_of_the_base_one_key_at_a_time() -> None:
    base = from_environment("mon-fri 09:00-18:00 Europe/Berlin", "", "")
    team = lay(base, {"holidays": "DE", "idle": "5m"})
    assert (team.zone, team.week, team.country) == ("Europe/Berlin", base.week, "DE")
    channel = lay(team, {"hours": "sat 10:00-14:00"})
    assert (channel.zone, channel.country) == ("Europe/Berlin", "DE")
    assert channel.week == ((),) * 5 + (SAT, ())
    assert lay(base, {"holiday_dates": ""}).dates == ()


@pytest.mark.parametrize(
    ("key", "value"),
    [("hours", "mon-fri 9-"), ("hours", "sometimes"), ("hours", "mon 09:00-09:00"),
     ("hours", "other days inherited"), ("timezone", "Mars/Base"), ("holidays", "ZZ"),
     ("holiday_dates", "2026-99-99"), ("holiday_dates", "2026-12-24 late"),
     ("holiday_dates", "2026-12-24 as ever")],
)
def test_corrupt_stored_text_raises_an_error_the_caller_can_catch(key: str, value: str) -> None:
    with pytest.raises(HoursError):
        lay(TEAM, {key: value})

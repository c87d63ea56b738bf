"""The weekly report: `RESCUE_REPORT_WEEKLY` read or refused in one line, due in the team's
zone, posted once a week to each team channel, not again after a restart or by a second
replica on the same store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.bot.settings import Settings
from chat_rescue.ops import configuration_problems
from chat_rescue.reports.weekly import Weekly, WeeklyReports, last_due, parse_weekly
from chat_rescue.storage.sqlite import SQLiteStore

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


class Channel:
    """A team channel that notes each report posted to it."""

    def __init__(self, team: str = "slack:C0TEAM") -> None:
        self.report_team = team
        self.posted: list[int] = []

    async def post_team_report(self, days: int) -> None:
        self.posted.append(days)


@pytest.mark.parametrize(("text", "weekly"), [
    ("mon 09:00", Weekly(0, 9, 0)), ("Friday 17:30", Weekly(4, 17, 30)),
    ("sun 7:05", Weekly(6, 7, 5)), ("", None), ("off", None)])
def test_the_day_and_time_are_read(text: str, weekly: Weekly | None) -> None:
    assert parse_weekly(text) == weekly


@pytest.mark.parametrize("text", ["monday", "mon 25:00", "xyz 09:00", "mon 9", "09:00 mon"])
def test_a_bad_value_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(ValidationError) as bad:
        Settings(_env_file=None, rescue_report_weekly=text)  # type: ignore[call-arg]
    (line,) = configuration_problems(bad.value)
    assert line.startswith("RESCUE_REPORT_WEEKLY is invalid") and "mon 09:00" in line


def test_due_in_the_teams_zone() -> None:
    weekly = Weekly(0, 9, 0)
    # Monday 7 December 2026, 08:59 in Berlin: last week's is the one due.
    assert last_due(weekly, "Europe/Berlin", berlin("2026-12-07 08:59")) == \
        datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)
    assert last_due(weekly, "Europe/Berlin", berlin("2026-12-07 09:00")).timestamp() == \
        berlin("2026-12-07 09:00")
    assert last_due(weekly, "UTC", berlin("2026-12-07 09:30")).timestamp() == \
        berlin("2026-11-30 10:00")  # 09:00 UTC is 10:00 in Berlin: not yet this week


async def test_posted_once_a_week_not_again_after_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    hours = Policy(schedule=from_environment("mon-fri 09:00-18:00", "Europe/Berlin", ""))
    clock = FakeClock(berlin("2026-12-07 08:59:30"))
    channel = Channel()

    def started() -> tuple[SQLiteStore, WeeklyReports]:
        store = SQLiteStore(url)
        return store, WeeklyReports(Service(store, hours, clock), Weekly(0, 9, 0), [channel])

    store, weekly = started()
    clock.t = berlin("2026-11-30 09:00")  # last week's, posted then
    assert await weekly.post_due() == 1
    clock.t = berlin("2026-12-07 08:59:30")
    assert await weekly.post_due() == 0
    clock.t = berlin("2026-12-07 09:00:10")
    assert await weekly.post_due() == 1 and channel.posted == [7, 7]
    clock.t += 30
    assert await weekly.post_due() == 0
    store.close()
    store, weekly = started()  # restarted, same database
    assert await weekly.post_due() == 0
    other_store, other = started()  # and a second replica looking at the same minute
    assert await other.post_due() == 0
    assert channel.posted == [7, 7]
    clock.t = berlin("2026-12-14 09:00:05")
    assert await other.post_due() == 1 and await weekly.post_due() == 0
    assert channel.posted == [7, 7, 7]
    store.close()
    other_store.close()


async def test_each_team_channel_gets_its_own_and_a_long_outage_skips_the_week(
        tmp_path: Path) -> None:
    clock = FakeClock(berlin("2026-12-07 09:01"))
    store = SQLiteStore(f"sqlite:///{tmp_path}/w.db")
    slack, telegram = Channel("slack:C0TEAM"), Channel("telegram:-100")
    weekly = WeeklyReports(Service(store, Policy(), clock), Weekly(0, 8, 0), [slack, telegram])
    assert await weekly.post_due() == 2  # 08:00 UTC is 09:00 in Berlin
    clock.t = berlin("2026-12-14 22:00")  # down all of that Monday: not posted at night
    assert await weekly.post_due() == 0
    assert slack.posted == telegram.posted == [7]
    store.close()

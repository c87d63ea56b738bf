"""The weekly report (`RESCUE_REPORT_WEEKLY=mon 09:00`): the last 7 days' picture posted to
each platform's team channel once a week, in the team's zone (its hours'; UTC without).

Once means once across restarts and replicas: before posting, the week is claimed in the
store (a `reports` settings row naming the week last sent), checked and written under the
store's shared lock, so two replicas at the same minute, or a restart after the post, find
it sent. A week is claimed before it is posted: a post that fails after its retries says so
in the channel and is not tried again that week (never twice, rather than maybe twice).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from chat_rescue.bot.ports import Store
from chat_rescue.bot.service import Service
from chat_rescue.bot.supervise import Loop

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FORM = re.compile(r"([a-z]{3})[a-z]*\s+([01]?\d|2[0-3]):([0-5]\d)")
SCOPE = "reports"
LATE = 12 * 3600.0  # a bot that was down at the hour still posts within this, not later
LOOK = 30.0  # seconds between looks at the clock
DAYS_SHOWN = 7


@dataclass(frozen=True, slots=True)
class Weekly:
    """When the weekly report goes: a weekday (0 = Monday) and a local time."""

    weekday: int
    hour: int
    minute: int


def parse_weekly(text: str) -> Weekly | None:
    """`mon 09:00` (any day's name or its first three letters, 24-hour time); None for
    "" or `off`. Raises ValueError with the right form."""
    written = text.strip().lower()
    if written in ("", "off"):
        return None
    found = _FORM.fullmatch(written)
    if found is None or found.group(1) not in DAYS:
        raise ValueError(f"'{text.strip()[:40]}' is not a day and a time like mon 09:00 "
                         "(or off)")
    return Weekly(DAYS.index(found.group(1)), int(found.group(2)), int(found.group(3)))


def last_due(weekly: Weekly, zone: str, now: float) -> datetime:
    """The latest moment at or before `now` that the weekly report was due, in `zone`."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(now, tz)
    day = local.date() - timedelta(days=(local.weekday() - weekly.weekday) % 7)
    due = datetime(day.year, day.month, day.day, weekly.hour, weekly.minute, tzinfo=tz)
    if due.timestamp() > now:  # this week's is still to come: last week's
        day -= timedelta(days=7)
        due = datetime(day.year, day.month, day.day, weekly.hour, weekly.minute, tzinfo=tz)
    return due


def claim_week(service: Service, team: str, weekly: Weekly) -> bool:
    """Whether this process is to post the team's weekly report now (store work: on the
    store's thread). True once per week and team, whoever asks: the week is claimed."""
    now = service.clock.now()
    due = last_due(weekly, service.team_policy(team).schedule.zone, now)
    if now - due.timestamp() > LATE:
        return False  # long past: wait for next week's
    return _claim(service.store, f"weekly:{team}", due.date().isoformat(), now)


def _claim(store: Store, key: str, week: str, now: float) -> bool:
    if store.settings(SCOPE).get(key, "") >= week:
        return False  # sent: the usual answer, found without taking the lock
    lock = store.lock("weekly-report")
    if not lock.try_take():
        return False  # another replica is claiming this minute: it posts, or finds it sent
    try:
        with store.batch():
            if store.settings(SCOPE).get(key, "") >= week:
                return False
            store.put_setting(SCOPE, key, week, "weekly report", now)
            return True
    finally:
        lock.give_up()


@runtime_checkable
class TeamChannel(Protocol):
    """An adapter that can post a report to its team channel."""

    @property
    def report_team(self) -> str: ...

    async def post_team_report(self, days: int) -> None: ...


class WeeklyReports:
    """Looks at the clock every LOOK seconds and posts each team's weekly report when due."""

    def __init__(self, service: Service, weekly: Weekly, channels: Sequence[TeamChannel]
                 ) -> None:
        self.service = service
        self.weekly = weekly
        self.channels = channels

    async def post_due(self) -> int:
        """Post the reports that are due and not yet sent this week; returns how many."""
        posted = 0
        for channel in self.channels:
            team = channel.report_team
            if await self.service.call(claim_week, self.service, team, self.weekly):
                log.info("posting the weekly report of %s", team)
                await channel.post_team_report(DAYS_SHOWN)
                posted += 1
        return posted

    async def run(self, loop: Loop) -> None:
        while True:
            await self.post_due()
            loop.ok()
            await asyncio.sleep(LOOK)

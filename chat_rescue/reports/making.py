"""How the bot makes a report: history read on the store's thread, the report built and drawn
on a thread of its own, so neither the event loop nor the store's other callers wait.

Drawing a 30-day chart over 100,000 conversations is about a second of CPU: on the store's
thread it would stall every store call, on the loop every platform request. One drawing
thread is enough (reports are rare) and keeps two at once from sharing the CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chat_rescue.bot import report as report_module
from chat_rescue.bot.hours import Schedule
from chat_rescue.bot.model import HistoryEvent
from chat_rescue.bot.report import Report
from chat_rescue.bot.report_text import summary
from chat_rescue.bot.service import Service

PERIODS = {"7d": 7, "30d": 30}
_DRAWING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a report is built from, as read on the store's thread."""

    team: str
    days: int
    now: float
    history: list[HistoryEvent]
    schedule: Schedule  # the team's hours
    target: float | None  # the team's first_response
    channels: Mapping[tuple[str, str], Schedule]  # (platform, channel) -> its hours


@dataclass(frozen=True, slots=True)
class Picture:
    """A drawn report: the PNG and the lines that go with it."""

    png: bytes
    text: str
    report: Report


def read(service: Service, team: str, days: int) -> Inputs:
    """The team's history of the last `days` local days and the hours each of its channels
    has (store work: run it on the store's thread)."""
    now = service.clock.now()
    policy = service.team_policy(team)
    since = report_module.period_start(days, now, policy.schedule.zone)
    history = service.store.history(team, since)
    channels = {}
    for event in history:
        where = (event.ref.platform, event.ref.channel)
        if event.kind == "first_reply" and where not in channels:
            channels[where] = service.policy(team, event.ref).schedule
    return Inputs(team, days, now, history, policy.schedule, policy.first_response, channels)


def draw(inputs: Inputs) -> Picture:
    """Build and draw the report (CPU work, no store: run it off the loop and the store's
    thread)."""
    from chat_rescue.reports import chart  # matplotlib loads once, when first needed

    channels, team_hours = inputs.channels, inputs.schedule
    built = report_module.build(
        inputs.history, team=inputs.team, days=inputs.days, now=inputs.now,
        schedule=team_hours, target=inputs.target,
        schedule_of=lambda e: channels.get((e.ref.platform, e.ref.channel), team_hours))
    return Picture(chart.render(built), summary(built), built)


async def make(service: Service, team: str, days: int) -> Picture:
    """The team's report of the last `days` days, as the bot makes it."""
    inputs = await service.call(read, service, team, days)
    return await asyncio.get_running_loop().run_in_executor(_DRAWING, draw, inputs)

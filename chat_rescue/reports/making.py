"""How the bot makes a report: history read on the store's thread, the report built on a
thread of its own, and drawn in a process of its own, so neither the event loop nor the
store's other callers wait.

Drawing a 30-day chart is about a second of CPU: on the store's thread it would stall every
store call, and in any thread of the bot's process it would hold the interpreter's lock
away from the event loop for hundreds of milliseconds. Only the small `Report` crosses to
the drawing process (started on the first report, then kept); the history stays here.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

from chat_rescue.bot import report as report_module
from chat_rescue.bot.bulk import no_collections
from chat_rescue.bot.hours import Schedule
from chat_rescue.bot.model import ConversationRef
from chat_rescue.bot.report import Report, Tallies
from chat_rescue.bot.report_text import summary
from chat_rescue.bot.service import Service

log = logging.getLogger(__name__)

PERIODS = {"7d": 7, "30d": 30}
_BUILDING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")
_drawing: Executor | None = None


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a report is built from, as read on the store's thread."""

    team: str
    days: int
    now: float
    tallies: Tallies  # the period's history, counted by the store
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
    with no_collections():
        tallies = service.store.tallies(team, since, now)
    channels = {}
    for key, _, _, _ in tallies.first_replies:
        where = channel_of(key)
        if where not in channels:
            channels[where] = service.policy(team, ConversationRef.parse(key)).schedule
    return Inputs(team, days, now, tallies, policy.schedule, policy.first_response, channels)


def channel_of(key: str) -> tuple[str, str]:
    """(platform, channel) of a conversation key: whose hours its waits count."""
    platform, channel, _ = key.split(":", 2)
    return platform, channel


def build(inputs: Inputs) -> Report:
    """The report from what was read (CPU work, no store)."""
    channels, team_hours = inputs.channels, inputs.schedule
    return report_module.from_tallies(
        inputs.tallies, team=inputs.team, days=inputs.days, now=inputs.now,
        schedule=team_hours, target=inputs.target,
        schedule_of=lambda key: channels.get(channel_of(key), team_hours))


def render(report: Report) -> bytes:
    """The report's PNG (matplotlib loads once, when first needed)."""
    from chat_rescue.reports import chart

    return chart.render(report)


def draw(inputs: Inputs) -> Picture:
    """Build and draw the report here, in the caller's thread (the command line's way)."""
    built = build(inputs)
    return Picture(render(built), summary(built), built)


def drawing_process() -> Executor:
    """The process reports are drawn in (and `/rescue tune` replays in), started once."""
    global _drawing
    if _drawing is None:
        # Spawned, not forked: a fork of a process with threads (the store's) may inherit
        # a lock held mid-operation.
        _drawing = ProcessPoolExecutor(max_workers=1,
                                       mp_context=multiprocessing.get_context("spawn"))
    return _drawing


def forget_drawing_process() -> None:
    """The drawing process died: the next report starts another."""
    global _drawing
    _drawing = None


async def make(service: Service, team: str, days: int,
               name: Callable[[str], str] | None = None) -> Picture:
    """The team's report of the last `days` days, as the bot makes it; `name` shows an
    operator's id as people know them (the ids themselves without it)."""
    loop = asyncio.get_running_loop()
    inputs = await service.call(read, service, team, days)
    built = await loop.run_in_executor(_BUILDING, build, inputs)
    if name is not None:
        built = replace(built, operators=tuple(replace(row, operator=name(row.operator))
                                               for row in built.operators))
    try:
        png = await loop.run_in_executor(drawing_process(), render, built)
    except (BrokenProcessPool, OSError) as broken:  # the drawing process died or can't start
        log.warning("drawing the report in this process: %s", broken)
        forget_drawing_process()
        png = await loop.run_in_executor(_BUILDING, render, built)
    return Picture(png, summary(built), built)

"""Working hours end to end through slack-bolt and the sandbox: a conversation at closing
time waits for the opening, and the customer is told once when the team is back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from chat_rescue.bot.clock import ShiftedClock
from chat_rescue.bot.model import State
from chat_rescue.bot.settings import Settings
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_world import ANNA, BOB, HELP, TEAM, SlackWorld, eventually

BERLIN = ZoneInfo("Europe/Berlin")
# The sweep before 18:00 has tests of its own (test_slack_sweep.py).
HOURS = {"rescue_hours": "mon-fri 09:00-18:00", "rescue_timezone": "Europe/Berlin",
         "rescue_idle": "1s", "rescue_sweep": "off"}


def at(text: str) -> float:
    """Berlin time; 4 December 2026 is a Friday."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def nudges(world: SlackWorld, card: dict[str, Any]) -> list[str]:
    return [str(m.get("text")) for m in world.thread(str(card["ts"]))
            if "are you still with" in str(m.get("text"))]


def to_customer(world: SlackWorld, ts: str) -> list[str]:
    """What the bot said in the customer's thread."""
    return [str(m.get("text")) for m in world.sandbox.messages(HELP, ts)
            if m.get("bot_id") == world.sandbox.bot_id]


async def test_a_conversation_at_closing_time_is_nudged_after_the_opening_not_at_night(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    clock = ShiftedClock(at("2026-12-04 17:00"))
    world = SlackWorld(sandbox, settings_for(**HOURS), clock=clock)
    await world.start()
    try:
        ts = await world.says("Hi, my order #1042 hasn't arrived")
        card = await world.card_of(ts)
        await world.says("Let me check", thread=ts, user=BOB)
        await eventually(lambda: world.conv(ts).state is State.WAITING_ON_CUSTOMER)

        clock.jump_to(at("2026-12-04 17:59:59.5"))  # closing time
        world.bot.runtime.ticker.wake()
        await world.says("Any news?", thread=ts)
        conv = world.conv(ts)
        assert conv.state is State.WAITING_ON_OPERATOR and conv.away_told_until is None
        # half a second of `idle` is left for Monday morning
        assert at("2026-12-07 09:00") < conv.deadline < at("2026-12-07 09:00:01")

        # Past the wall-clock deadline: Bob is not nudged in his evening.
        await eventually(lambda: clock.now() > at("2026-12-04 18:00:01"), timeout=5)
        assert nudges(world, card) == []

        # The customer writes twice that evening, and is told once when the team is back.
        await world.says("Hello??", thread=ts)
        await world.says("Is anyone there?", thread=ts)
        await world.bot.runtime.drained()
        assert to_customer(world, ts) == [
            "Thanks for your message. Our team is away right now; we're back Monday 09:00 "
            "(Berlin time). We'll answer you then."]
        assert nudges(world, card) == [] and len(world.team_posts()) == 1  # the card only

        clock.jump_to(at("2026-12-07 08:59:59.5"))  # Monday, just before the opening
        world.bot.runtime.ticker.wake()  # it slept towards Monday on the real clock
        await eventually(lambda: nudges(world, card), timeout=5)
        nudged = [e.at for e in world.bot.store.history(None, 0) if e.kind == "nudged"]
        assert len(nudged) == 1 and nudged[0] >= at("2026-12-07 09:00")
        assert len(to_customer(world, ts)) == 1
    finally:
        await world.stop()


async def test_rescue_hours_in_slack_shows_changes_and_explains(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    clock = ShiftedClock(at("2026-12-05 11:00"))  # a Saturday
    world = SlackWorld(sandbox, settings_for(), clock=clock)
    await world.start()
    try:
        async def rescue(text: str, user: str = ANNA, channel: str = TEAM) -> str:
            reply: str = json.loads(await world.rescue(text, user=user, channel=channel))["text"]
            return reply

        assert await rescue("hours", user=BOB) == "Working hours here: Always open\nOpen now."
        assert await rescue("hours mon-fri 09:00-18:00 Europe/Berlin") == (
            "Working hours for the team: Mon–Fri 09:00–18:00 (Europe/Berlin). "
            "Closed now, back Monday 09:00 (Berlin time).")
        assert (await rescue("hours sat 10:00-14:00", channel=HELP)).startswith(
            "Working hours for this channel: Mon–Fri 09:00–18:00 · Sat 10:00–14:00")
        assert (await rescue("hours off", user=BOB)).startswith("Sorry, only admins")
        assert "is not a day" in await rescue("hours mon-fry 09:00-18:00")
        assert "is not a country" in await rescue("holidays XX")
        store = world.bot.store
        assert store.settings("team:slack:C0TEAM") == {"hours": "mon-fri 09:00-18:00",
                                                        "timezone": "Europe/Berlin"}
        assert store.settings(f"channel:slack:{HELP}") == {
            "hours": "sat 10:00-14:00; other days inherited"}  # the rest is the team's
        assert (await rescue("hours team", user=BOB, channel=HELP)).startswith(
            "Sorry, only admins")
        assert await rescue("hours team", channel=HELP) == (
            "This channel follows the team's working hours again: Mon–Fri 09:00–18:00 "
            "(Europe/Berlin). Closed now, back Monday 09:00 (Berlin time).")
        assert store.settings(f"channel:slack:{HELP}") == {}
    finally:
        await world.stop()

"""Working hours end to end through python-telegram-bot and the sandbox: a conversation at
closing time waits for the opening, and the customer is told once, in their private chat,
when the team is back."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from chat_rescue.bot.clock import ShiftedClock
from chat_rescue.bot.model import State
from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    ANA,
    BEN,
    BRUNO,
    GROUP,
    SupportGroup,
    eventually,
    sandbox_settings,
)

BERLIN = ZoneInfo("Europe/Berlin")
TIMERS = {"rescue_accept": "10m", "rescue_first_response": "10m", "rescue_idle": "1s",
          "rescue_escalate": "10m", "rescue_close_reminder": "10m",
          "rescue_hours": "mon-fri 09:00-18:00", "rescue_timezone": "Europe/Berlin",
          "rescue_sweep": "off"}  # the sweep before 18:00: test_telegram_sweep.py
AWAY = ("Thanks for your message. Our team is away right now; we're back Monday 09:00 "
        "(Berlin time). We'll answer you then.")


def at(text: str) -> float:
    """Berlin time; 4 December 2026 is a Friday."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def nudges(group: SupportGroup, thread: int) -> list[str]:
    return [str(m.get("text")) for m in group.in_topic(thread)
            if "are you still with" in str(m.get("text"))]


def told_away(group: SupportGroup) -> list[str]:
    return [str(m.get("text")) for m in group.to_customer(ALICE)
            if "away" in str(m.get("text"))]


def replies(group: SupportGroup) -> list[str]:
    return [m["text"] for m in group.general() if "reply_to_message" in m and "text" in m]


async def test_a_conversation_at_closing_time_is_nudged_after_the_opening_not_at_night(
    sandbox: TelegramSandbox, mode: str, tmp_path: Path
) -> None:
    clock = ShiftedClock(at("2026-12-04 17:00"))
    settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db",
                                webhook=mode == "webhook", **TIMERS)
    group = await SupportGroup(sandbox, settings, clock=clock).start()
    try:
        sandbox.private_message(ALICE, "Hello, my parcel is late")
        thread = await group.topic()
        group.say_in_topic(BEN, thread, "Hi Alice, let me check")
        await eventually(lambda: group.conversation().state is State.WAITING_ON_CUSTOMER)

        clock.jump_to(at("2026-12-04 17:59:59.5"))  # closing time
        group.bot.runtime.ticker.wake()
        sandbox.private_message(ALICE, "Any news?")
        conv = await eventually(
            lambda: (c := group.conversation()) and c.state is State.WAITING_ON_OPERATOR and c)
        assert conv.away_told_until is None  # written while open: nothing to tell
        assert at("2026-12-07 09:00") < conv.deadline < at("2026-12-07 09:00:01")

        # Past the wall-clock deadline: Ben is not nudged in his evening.
        await eventually(lambda: clock.now() > at("2026-12-04 18:00:01"), timeout=5)
        assert nudges(group, thread) == []

        # Alice writes twice that evening, and is told once when the team is back.
        before = group.conversation().last_customer_at
        sandbox.private_message(ALICE, "Hello??")
        sandbox.private_message(ALICE, "Is anyone there?")
        await eventually(lambda: len(told_away(group)) == 1)
        await eventually(lambda: group.conversation().last_customer_at != before)
        await eventually(lambda: sum("anyone there" in str(m.get("text"))
                                     for m in sandbox.history(GROUP, thread)) == 1)
        await group.drained()
        assert told_away(group) == [AWAY]
        assert nudges(group, thread) == [] and group.history("escalated") == []

        clock.jump_to(at("2026-12-07 08:59:59.5"))  # Monday, just before the opening
        group.bot.runtime.ticker.wake()  # it slept towards Monday on the real clock
        await eventually(lambda: nudges(group, thread), timeout=5)
        nudged = [e.at for e in group.bot.store.history(None, 0) if e.kind == "nudged"]
        assert len(nudged) == 1 and nudged[0] >= at("2026-12-07 09:00")
        assert len(told_away(group)) == 1
    finally:
        await group.stop()


async def test_rescue_hours_in_the_support_group(
    sandbox: TelegramSandbox, mode: str, tmp_path: Path
) -> None:
    clock = ShiftedClock(at("2026-12-05 11:00"))  # a Saturday
    settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db",
                                webhook=mode == "webhook")
    group = await SupportGroup(sandbox, settings, clock=clock).start()
    try:
        sandbox.group_message(GROUP, BEN, "/rescue hours")
        sandbox.group_message(GROUP, BEN, "/rescue hours mon-fri 09:00-18:00")
        sandbox.group_message(GROUP, ANA, "/rescue holiday 2026-12-24 09:00")
        sandbox.group_message(GROUP, ANA, "/rescue hours mon-fri 09:00-18:00 Europe/Berlin")
        sandbox.group_message(GROUP, BEN, "/rescue hours team")
        sandbox.group_message(GROUP, ANA, "/rescue hours team")
        answers = await eventually(lambda: len(replies(group)) == 6 and replies(group))
        assert answers[0] == "Working hours here: Always open\nOpen now."
        assert answers[1].startswith("Sorry, only admins")
        assert "is not a from-to interval" in answers[2]
        assert answers[3] == ("Working hours for the team: Mon–Fri 09:00–18:00 (Europe/Berlin). "
                              "Closed now, back Monday 09:00 (Berlin time).")
        assert answers[4].startswith("Sorry, only admins")
        # the support group is the team's one scope: nothing to follow, nothing changed
        assert answers[5].startswith("These are the team's own working hours (Mon–Fri "
                                     "09:00–18:00 (Europe/Berlin))")
        assert answers[5].endswith("Nothing was changed.")
        assert group.bot.store.settings(f"team:telegram:{GROUP}") == {
            "hours": "mon-fri 09:00-18:00", "timezone": "Europe/Berlin"}
    finally:
        await group.stop()


async def test_a_new_conversation_is_announced_without_a_sound_while_the_team_is_closed(
    sandbox: TelegramSandbox, mode: str, tmp_path: Path
) -> None:
    clock = ShiftedClock(at("2026-12-05 11:00"))  # Saturday: closed
    settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db",
                                webhook=mode == "webhook", **TIMERS)
    group = await SupportGroup(sandbox, settings, clock=clock).start()
    try:
        sandbox.private_message(ALICE, "Hello, anyone?")
        await group.topic()
        await group.drained()
        clock.jump_to(at("2026-12-07 10:00"))  # Monday, open
        sandbox.private_message(BRUNO, "Good morning")
        await group.topic(1)
        await group.drained()
        announced = [call for call in sandbox.calls_to("sendMessage")
                     if "is waiting" in str(call.get("text"))]
        assert [str(call.get("disable_notification")).lower() for call in announced] == [
            "true", "none"]
    finally:
        await group.stop()

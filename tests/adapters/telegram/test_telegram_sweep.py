"""The sweep end to end through python-telegram-bot and the sandbox: a card per operator in
General before the shift ends, mentioning them; Close all finished closes exactly the
finished ones; only the card's operator (or an admin) decides; a press after the end
changes nothing; the next shift opens with the handover digest, each with Claim."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from chat_rescue.adapters.telegram import keyboards, render
from chat_rescue.adapters.telegram.memory import Memory
from chat_rescue.bot.clock import ShiftedClock
from chat_rescue.bot.model import HandoverDigest, HandoverLine, State, SweepCard, SweepLine
from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    ANA,
    BEN,
    BRUNO,
    CHLOE,
    GROUP,
    SupportGroup,
    button_data,
    buttons,
    eventually,
    sandbox_settings,
)

BERLIN = ZoneInfo("Europe/Berlin")
TIMERS = {"rescue_accept": "1h", "rescue_first_response": "1h", "rescue_idle": "1h",
          "rescue_escalate": "1h", "rescue_close_reminder": "30m",
          "rescue_hours": "mon-fri 09:00-18:00", "rescue_timezone": "Europe/Berlin"}


def at(text: str) -> float:
    """Berlin time; 4 December 2026 is a Friday."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def sweep_cards(group: SupportGroup) -> list[dict[str, Any]]:
    return [m for m in group.general() if "your shift ends" in str(m.get("text"))]


def answers(group: SupportGroup) -> list[dict[str, Any]]:
    return group.sandbox.calls_to("answerCallbackQuery")


def jump(group: SupportGroup, clock: ShiftedClock, when: str) -> None:
    clock.jump_to(at(when))
    group.bot.runtime.ticker.wake()


async def test_a_sweep_card_closes_exactly_the_finished_ones_and_the_next_shift_gets_the_rest(
    sandbox: TelegramSandbox, mode: str, tmp_path: Path
) -> None:
    clock = ShiftedClock(at("2026-12-04 17:00"))
    settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db",
                                webhook=mode == "webhook", **TIMERS)
    group = await SupportGroup(sandbox, settings, clock=clock).start()
    try:
        sandbox.private_message(ALICE, "Hello, my parcel is late")
        alice = await group.topic()
        sandbox.private_message(BRUNO, "Hi, a question about my invoice")
        bruno = await group.topic(1)
        group.say_in_topic(BEN, alice, "Here is your tracking link")
        group.say_in_topic(CHLOE, bruno, "Let me look")
        await eventually(lambda: group.conversation(BRUNO).state is State.WAITING_ON_CUSTOMER
                         and group.conversation(ALICE).state is State.WAITING_ON_CUSTOMER)
        jump(group, clock, "2026-12-04 17:44")
        sandbox.private_message(BRUNO, "And one more thing")
        await eventually(lambda: group.conversation(BRUNO).state is State.WAITING_ON_OPERATOR)

        jump(group, clock, "2026-12-04 17:44:59.5")
        cards = await eventually(lambda: len(sweep_cards(group)) == 2 and sweep_cards(group),
                                 timeout=5)
        bens = next(c for c in cards if "Ben, your shift" in c["text"])
        chloes = next(c for c in cards if "Chloe, your shift" in c["text"])
        lines = bens["text"].splitlines()
        # The clock runs on from each jump: Ben answered a moment after 17:00, however long
        # the start took, and the card is drawn at 17:45 (45m, or 44m5Xs on a slow machine).
        assert re.fullmatch("1. Alice: “Hello, my parcel is late” · silent (45m|44m5[0-9]s)",
                            lines[4]), lines[4]
        assert lines[:4] + lines[5:] == [
            "🧹 Ben, your shift ends today 18:00 (Berlin time). You have 1 open conversation:",
            "Finished but not closed 1",
            "",
            "Finished but not closed",
            "",
            "What you don't decide by then: finished ones are closed, the others go to the "
            "next shift.",
        ]
        sent = next(params for params in sandbox.calls_to("sendMessage")
                    if f'<a href="tg://user?id={BEN}">Ben</a>, your shift' in params["text"])
        assert sent["parse_mode"] == "HTML"  # Ben is mentioned: notified
        assert "message_thread_id" not in sent  # General
        assert buttons(bens) == ["Close all finished (1)", "Close 1. Alice", "Keep 1",
                                 "Hand off 1"]
        assert buttons(chloes) == ["Hand the rest to the next shift", "Close 1. Bruno",
                                   "Keep 1", "Hand off 1"]

        # Chloe may not decide for Ben; Ben closes all his finished ones.
        group.press(CHLOE, bens, "Close all finished (1)")
        await eventually(lambda: len(answers(group)) == 1)
        assert answers(group)[0]["text"] == ("Only Ben, whose sweep card it is, or an admin "
                                             "can decide here: nothing changed.")
        assert answers(group)[0]["show_alert"] is True
        assert group.conversation(ALICE).state is State.WAITING_ON_CUSTOMER
        group.press(BEN, bens, "Close all finished (1)")
        await eventually(lambda: group.conversation(ALICE).state is State.CLOSED)
        await eventually(lambda: len(answers(group)) == 2)
        assert answers(group)[1]["text"] == "Closed 1 conversation."
        assert group.conversation(BRUNO).state is State.WAITING_ON_OPERATOR
        closes = [h.detail for h in group.bot.store.history(None, 0) if h.kind == "closed"]
        assert closes == ["closed_at_shift_end"]

        # The shift ends: Bruno, whom nobody decided about, goes to the next shift.
        jump(group, clock, "2026-12-04 17:59:59.5")
        await eventually(lambda: group.conversation(BRUNO).state is State.QUEUED, timeout=5)
        assert group.conversation(BRUNO).owner is None
        group.press(CHLOE, chloes, "Keep 1")
        await eventually(lambda: len(answers(group)) == 3)
        assert answers(group)[2]["text"] == ("That shift has ended: its sweep is over, and "
                                             "nothing changed.")
        assert group.conversation(BRUNO).owner is None

        # Monday morning: the handover digest, with Claim.
        jump(group, clock, "2026-12-07 08:59:59.5")
        digest = await eventually(lambda: next(
            (m for m in group.general() if "Handed over" in str(m.get("text"))), None),
            timeout=5)
        assert digest["text"].splitlines() == [
            "📋 Handed over from the last shift: 1 conversation, oldest waiting first.",
            "• Bruno: “Hi, a question about my invoice” · since 2d15h16m ago (had: Chloe)"]
        assert buttons(digest) == ["Claim Bruno"]
        group.press(ANA, digest, "Claim Bruno")
        await eventually(lambda: group.conversation(BRUNO).owner == str(ANA))
    finally:
        await group.stop()


def test_a_long_sweep_card_is_split_within_telegrams_limits() -> None:
    lines = tuple(SweepLine(f"telegram:{n}:", f"Customer {n} " + "x" * 60, "y" * 150,
                            "finished" if n % 3 else "customer_waiting", 0.0)
                  for n in range(1000, 1080))
    card = SweepCard("telegram:-1001234567890", "s", 123456, "8", 3600.0, 1800.0,
                     "today 18:00 (Berlin time)", lines, unowned=3)
    parts = render.sweep_cards(card, Memory())
    assert len(parts) >= 4
    assert all(len(text) <= render.MESSAGE_LIMIT for text, _ in parts)
    assert [number for _, part in parts for number, _ in part] == list(range(1, 81))
    for index, (_, part) in enumerate(parts):
        markup = keyboards.sweep_card(card, part, index == 0, render.sweep_names(part))
        assert markup is not None
        rows = markup.inline_keyboard
        assert sum(len(row) for row in rows) <= 100
        assert all(len(str(b.callback_data).encode()) <= 64 for row in rows for b in row)
    assert keyboards.parse_sweep(keyboards.sweep_data("keep", 123456, "telegram:1000:")) == (
        123456, "keep", "telegram:1000:")
    for bad in ("swk:x", "swz:1", "swk:1|slack:C:1", "claim:telegram:1:", "", None):
        assert keyboards.parse_sweep(bad) is None
    digest = HandoverDigest("telegram:-1", "s", 0.0, 3600.0, tuple(
        HandoverLine(f"telegram:{n}:", "Z" * 80, "q" * 150, 0.0, "8") for n in range(300)))
    split = render.handovers(digest, Memory())
    assert sum(len(part) for _, part in split) == 300
    assert all(len(text) <= render.MESSAGE_LIMIT and len(part) <= render.HANDOVER_LINES
               for text, part in split)
    assert button_data({"reply_markup": {"inline_keyboard": [[{
        "text": "x", "callback_data": keyboards.sweep_data("close_all", 1)}]]}}, "x") == "swa:1"


def replies(group: SupportGroup) -> list[str]:
    return [m["text"] for m in group.general() if "reply_to_message" in m and "text" in m]


async def test_rescue_shift_in_the_support_group(
    sandbox: TelegramSandbox, mode: str, tmp_path: Path
) -> None:
    clock = ShiftedClock(at("2026-12-04 10:00"))
    settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db",
                                webhook=mode == "webhook", **TIMERS)
    group = await SupportGroup(sandbox, settings, clock=clock).start()
    try:
        # The bot knows a username once its owner has written in the group.
        sandbox.group_message(GROUP, BEN, "// morning")
        sandbox.group_message(GROUP, CHLOE, "// hi all")
        sandbox.group_message(GROUP, ANA, "/rescue shift late 14:00-22:00 @ben @chloe")
        sandbox.group_message(GROUP, ANA, "/rescue shift late 14:00-22:00 @nobody")
        sandbox.group_message(GROUP, BEN, "/rescue shift early 06:00-14:00 @ben")
        sandbox.group_message(GROUP, ANA, "/rescue set sweep 10m")
        sandbox.group_message(GROUP, BEN, "/rescue shifts")
        answers = await eventually(lambda: len(replies(group)) == 5 and replies(group))
        assert answers[0] == ("Shift late: Daily 14:00–22:00 (Europe/Berlin), Ben, Chloe. "
                              "Their sweep comes at its ends, not the team's.")
        assert answers[1].startswith("I don't know @nobody")
        assert answers[2].startswith("Sorry, only admins")
        assert answers[3] == "sweep is now 10m for the team."
        assert answers[4].splitlines()[0] == ("Shift late: Daily 14:00–22:00 (Europe/Berlin), "
                                              "Ben, Chloe")
        assert group.bot.store.settings(f"team:telegram:{GROUP}") == {
            "shift:late": f"daily 14:00-22:00 | {BEN} {CHLOE}", "sweep": "10m"}
        ends = [s.ends_at for s in group.bot.store.sweeps(f"telegram:{GROUP}")]
        assert ends == [at("2026-12-04 18:00"), at("2026-12-04 22:00")]
    finally:
        await group.stop()

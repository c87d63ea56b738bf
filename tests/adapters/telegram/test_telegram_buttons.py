"""Who may press what, end to end through python-telegram-bot and the sandbox (rule 8)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from chat_rescue.bot.model import State
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    ANA,
    BEN,
    CHLOE,
    SupportGroup,
    button_data,
    eventually,
)

World = Callable[..., Awaitable[SupportGroup]]
Json = dict


def texts(messages: list[Json]) -> list[str]:
    return [m.get("text", "") for m in messages]


def nudges(group: SupportGroup, thread: int) -> list[Json]:
    return [m for m in group.in_topic(thread) if "are you still with" in m.get("text", "")]


async def nudged(group: SupportGroup, owner: int) -> tuple[int, Json]:
    """`owner` answered Alice, she wrote again and waited: the nudge in her topic."""
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.say_in_topic(owner, thread, "Hi!")
    await eventually(lambda: (c := group.conversation()) is not None and c.owner == str(owner))
    group.sandbox.private_message(ALICE, "Are you there?")
    nudge = (await eventually(lambda: nudges(group, thread)))[-1]
    await group.drained()
    return thread, nudge


def answers(group: SupportGroup) -> list[Json]:
    return group.sandbox.calls_to("answerCallbackQuery")


async def answered(group: SupportGroup, count: int) -> Json:
    """The `count`-th answer to a pressed button."""
    await eventually(lambda: len(answers(group)) >= count)
    return answers(group)[count - 1]


async def test_yesterdays_hand_off_leaves_todays_owner_alone(world: World) -> None:
    """Ana's nudge went unanswered and the conversation went back to the inbox; Ben took it
    and answered. Ana presses Hand off on her old nudge: even for the group's creator, a
    button of a notice that is over changes nothing, and she is told why."""
    group = await world(rescue_idle="300ms", rescue_escalate="300ms")
    thread, old_nudge = await nudged(group, ANA)
    back = await eventually(lambda: [m for m in group.general() if "Back in" in m["text"]])
    group.press(BEN, back[0], "Claim")
    await eventually(lambda: group.conversation().owner == str(BEN))
    group.say_in_topic(BEN, thread, "Sorry for the wait, here is the tracking link")
    await eventually(lambda: group.conversation().state is State.WAITING_ON_CUSTOMER)
    await group.drained()
    before, history = group.conversation(), group.history()

    group.press(ANA, old_nudge, "Hand off")
    answer = await answered(group, 2)  # after Ben's Claim
    assert answer["text"] == ("That button belongs to an earlier nudge or reminder: nothing "
                              "changed. Ben has the conversation now.")
    assert answer["show_alert"] is True
    await group.drained()
    assert group.conversation() == before and group.history() == history
    assert not any("handed off" in t for t in texts(group.general()))


async def test_snooze_by_somebody_else_is_refused(world: World) -> None:
    group = await world(rescue_idle="300ms")
    _, nudge = await nudged(group, BEN)
    group.press(CHLOE, nudge, "Snooze")
    answer = await answered(group, 1)
    assert answer["text"] == "Only Ben, who has this conversation, or an admin can do that."
    assert answer["show_alert"] is True
    assert [c["user_id"] for c in group.sandbox.calls_to("getChatMember")] == [CHLOE]
    conv = group.conversation()
    assert conv is not None and not conv.snoozed and conv.owner == str(BEN)
    assert "snoozed" not in group.history()


async def test_an_admin_may_hand_off_for_the_owner(world: World) -> None:
    group = await world(rescue_idle="300ms")
    _, nudge = await nudged(group, BEN)
    group.press(ANA, nudge, "Hand off")  # Ana created the support group
    await eventually(lambda: any("handed off by Ana" in t for t in texts(group.general())))
    conv = group.conversation()
    assert conv is not None and conv.owner is None and conv.state is State.QUEUED
    assert (await answered(group, 1))["text"] == "Handed back to the inbox."


async def test_the_owners_own_presses_ask_telegram_nothing(world: World) -> None:
    group = await world(rescue_idle="300ms")
    _, nudge = await nudged(group, BEN)
    group.press(BEN, nudge, "Snooze")
    await eventually(lambda: "snoozed" in group.history())
    assert group.sandbox.calls_to("getChatMember") == []


async def test_claim_by_an_operator_and_the_cards_hand_off(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    await group.drained()
    group.press(CHLOE, group.card(thread), "Claim")
    await eventually(lambda: group.conversation().owner == str(CHLOE))
    await eventually(lambda: "Hand off" in _labels(group, thread))
    group.press(CHLOE, group.card(thread), "Hand off")  # the card is always current
    await eventually(lambda: group.conversation().owner is None)


def _labels(group: SupportGroup, thread: int) -> list[str]:
    rows = group.card(thread).get("reply_markup", {}).get("inline_keyboard", [])
    return [b["text"] for row in rows for b in row]


async def test_a_hand_off_when_nobody_waits_calls_nobody_in(world: World) -> None:
    """Ben answered last, then hands the conversation back: nobody waits on us, so the
    inbox says so and nobody is called in with "has waited"."""
    group = await world(rescue_accept="300ms")
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.say_in_topic(BEN, thread, "Here is your invoice, anything else?")
    await eventually(lambda: group.conversation().state is State.WAITING_ON_CUSTOMER)
    await eventually(lambda: "Hand off" in _labels(group, thread))
    group.press(BEN, group.card(thread), "Hand off")
    back = await eventually(lambda: [t for t in texts(group.general()) if "Back in" in t])
    assert back == ["↩️ Back in the inbox (handed off by Ben): Alice is not waiting on us; "
                    "who follows it up?"]
    await asyncio.sleep(0.8)  # accept is 300 ms: long past
    await group.drained()
    assert not any(t.startswith("🚨") for t in texts(group.general()))
    assert "escalated" not in group.history()


async def test_a_close_command_by_somebody_else_is_refused_in_the_topic(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.say_in_topic(BEN, thread, "Hi Alice!")
    await eventually(lambda: group.conversation().owner == str(BEN))
    group.say_in_topic(CHLOE, thread, "/close")
    await eventually(lambda: any("Only Ben" in t for t in texts(group.in_topic(thread))))
    note = next(t for t in texts(group.in_topic(thread)) if "Only Ben" in t)
    assert note == "Chloe: Only Ben, who has this conversation, or an admin can do that."
    assert group.conversation().state is State.WAITING_ON_CUSTOMER


async def test_a_nudge_button_from_before_notice_ids_is_stale(world: World) -> None:
    group = await world(rescue_idle="300ms")
    _, nudge = await nudged(group, BEN)
    old = button_data(nudge, "Snooze").split("|")[0]  # how buttons looked before
    group.sandbox.callback_query(BEN, nudge, old)
    answer = await answered(group, 1)
    assert answer["text"].startswith("That button belongs to an earlier nudge or reminder")
    assert "snoozed" not in group.history()

"""Claims, rescues and closing, end to end: buttons, replies, timers, /close and reopen."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chat_rescue.bot.model import State
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    BEN,
    CHLOE,
    GROUP,
    SupportGroup,
    buttons,
    eventually,
)

World = Callable[..., Awaitable[SupportGroup]]


def owner(group: SupportGroup) -> str | None:
    conv = group.conversation()
    return conv.owner if conv else None


def texts(messages: list[dict]) -> list[str]:
    return [m.get("text", "") for m in messages]


async def test_claim_by_button_updates_the_card_and_a_second_claim_is_refused(
    world: World,
) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    await group.drained()
    group.press(BEN, group.card(thread), "Claim")
    await eventually(lambda: owner(group) == str(BEN))
    await eventually(lambda: "claimed by Ben" in group.card(thread)["text"])
    assert buttons(group.card(thread)) == ["Hand off", "Close"]

    group.press(CHLOE, group.general()[0], "Claim")
    await eventually(lambda: len(group.sandbox.calls_to("answerCallbackQuery")) == 2)
    refusal = group.sandbox.calls_to("answerCallbackQuery")[1]
    assert refusal["text"] == "Already claimed by Ben." and refusal["show_alert"] is True
    await group.drained()
    assert owner(group) == str(BEN)
    assert not any("Already claimed" in text for text in texts(group.in_topic(thread)))


async def test_a_reply_claims_and_answers(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.say_in_topic(CHLOE, thread, "Hi Alice, how can I help?")
    await eventually(lambda: owner(group) == str(CHLOE))
    assert group.history()[:3] == ["opened", "claimed", "first_reply"]


async def test_a_missed_first_response_returns_it_to_the_inbox(world: World) -> None:
    group = await world(rescue_first_response="300ms")
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    await group.drained()
    group.press(BEN, group.card(thread), "Claim")
    await eventually(lambda: len(group.general()) == 2, timeout=3)
    back = group.general()[1]
    assert "Back in the inbox" in back["text"] and "no first response within" in back["text"]
    assert buttons(back)[0] == "Claim"
    await eventually(lambda: any("went back to the inbox" in t
                                 for t in texts(group.in_topic(thread))))
    note = next(m for m in group.in_topic(thread) if "went back" in m.get("text", ""))
    assert note["text"].startswith("Ben,")  # the owner is mentioned by name
    assert owner(group) is None and "returned" in group.history()


async def _nudged(world: World) -> tuple[SupportGroup, int]:
    """A conversation Ben answered, where Alice wrote again and Ben stayed silent."""
    group = await world(rescue_idle="300ms")
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.say_in_topic(BEN, thread, "Hi!")
    await eventually(lambda: owner(group) == str(BEN))
    group.sandbox.private_message(ALICE, "Are you there?")
    await eventually(lambda: any("are you still with" in t for t in texts(group.in_topic(thread))))
    await group.drained()
    return group, thread


def nudges(group: SupportGroup, thread: int) -> list[dict]:
    return [m for m in group.in_topic(thread) if "are you still with" in m.get("text", "")]


async def test_idle_nudges_the_owner_and_snooze_restarts_the_timer(world: World) -> None:
    group, thread = await _nudged(world)
    [nudge] = nudges(group, thread)
    assert nudge["text"].startswith("Ben, are you still with Alice?")
    assert buttons(nudge) == ["Snooze", "Close", "Hand off"]
    assert "overdue" in group.topic_name(thread)
    group.press(BEN, nudge, "Snooze")
    await eventually(lambda: "snoozed" in group.history())
    await eventually(lambda: len(nudges(group, thread)) == 2)  # once more after the snooze


async def test_close_from_the_nudge_closes_the_topic(world: World) -> None:
    group, thread = await _nudged(world)
    group.press(BEN, nudges(group, thread)[0], "Close")
    await eventually(lambda: group.topic_closed(thread))
    conv = group.conversation()
    assert conv is not None and conv.state is State.CLOSED
    assert "closed" in group.topic_name(thread)
    assert buttons(group.card(thread)) == []


async def test_hand_off_from_the_nudge_announces_it_in_general(world: World) -> None:
    group, thread = await _nudged(world)
    group.press(BEN, nudges(group, thread)[0], "Hand off")
    await eventually(lambda: any("handed off by Ben" in t for t in texts(group.general())))
    assert owner(group) is None
    await eventually(lambda: buttons(group.card(thread)) == ["Claim", "Close"])


async def test_unclaimed_conversations_call_in_the_escalation_target(world: World) -> None:
    group = await world(rescue_accept="300ms", rescue_escalate_to="@oncall_lead")
    group.sandbox.private_message(ALICE, "Anyone?")
    await group.topic()
    await eventually(lambda: any("@oncall_lead" in t for t in texts(group.general())))
    call = next(m for m in group.general() if "@oncall_lead" in m.get("text", ""))
    assert "Claim" in buttons(call) and "Anyone?" in call["text"]
    assert "escalated" in group.history()


async def test_rescue_escalate_to_changes_who_is_called_in(world: World) -> None:
    group = await world(rescue_accept="400ms")
    group.sandbox.group_message(GROUP, 7, "/rescue escalate-to @ben @chloe")
    await eventually(lambda: any("escalate_to is now" in t for t in texts(group.general())))
    group.sandbox.private_message(ALICE, "Anyone?")
    await eventually(lambda: any(t.startswith("🚨 @ben @chloe") for t in texts(group.general())))


async def test_close_command_closes_the_topic_and_the_customer_reopens_it(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.say_in_topic(BEN, thread, "Done, anything else?")
    group.say_in_topic(BEN, thread, "/close")
    await eventually(lambda: group.topic_closed(thread))
    await group.drained()
    assert "closed" in group.topic_name(thread)
    assert texts(group.to_customer()) == ["Done, anything else?"]  # /close is not relayed

    group.sandbox.private_message(ALICE, "One more thing")
    await eventually(lambda: not group.topic_closed(thread))
    await eventually(lambda: "One more thing" in texts(group.in_topic(thread)))
    conv = group.conversation()
    assert conv is not None
    assert conv.state is State.WAITING_ON_OPERATOR and conv.owner == str(BEN)
    assert len(group.topics()) == 1  # the same topic, reused
    assert group.history()[-2:] == ["closed", "reopened"]


async def test_at_here_calls_in_the_groups_administrators_by_mention(world: World) -> None:
    group = await world(rescue_accept="300ms", rescue_escalate_to="@here")
    group.sandbox.private_message(ALICE, "Anyone?")
    await group.topic()
    await eventually(lambda: any(t.startswith("🚨") for t in texts(group.general())))
    sent = [c["text"] for c in group.sandbox.calls_to("sendMessage")
            if str(c.get("text", "")).startswith("🚨")]
    assert '<a href="tg://user?id=7">' in sent[0]  # Ana, the group's creator, is notified
    assert "@here" not in sent[0]  # Telegram has no such mention: it would notify nobody
    assert len(group.sandbox.calls_to("getChatAdministrators")) == 1

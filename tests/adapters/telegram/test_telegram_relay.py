"""Customers and operators talk through the bot: topics, cards, copies both ways, notes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chat_rescue.bot.model import State
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    BEN,
    SupportGroup,
    buttons,
    eventually,
)

World = Callable[..., Awaitable[SupportGroup]]


async def test_first_message_opens_a_topic_with_a_card_and_an_announcement(
    world: World,
) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hi, my order #1042 hasn't arrived")
    thread = await group.topic()
    await group.drained()

    [topic] = group.topics()
    assert "Alice" in topic.name and "waiting" in topic.name
    copy, card = group.in_topic(thread)  # the customer's words first, then the card
    assert "Alice" in card["text"] and "order #1042" in card["text"]
    assert buttons(card) == ["Claim", "Close"]
    assert copy["text"] == "Hi, my order #1042 hasn't arrived"
    [announcement] = group.general()
    assert "message_thread_id" not in announcement
    assert "Alice" in announcement["text"] and "Claim" in buttons(announcement)
    data = announcement["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert data == f"claim:telegram:{ALICE}:" and len(data.encode()) <= 64
    conv = group.conversation()
    assert conv is not None and conv.card == f"{thread}:{card['message_id']}"


async def test_messages_are_copied_both_ways_including_a_photo(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.sandbox.private_message(ALICE, photo=True, caption="the damaged box")
    await eventually(lambda: len(group.in_topic(thread)) == 3)
    photo = group.copies(thread)[1]
    assert photo["photo"] and photo["caption"] == "the damaged box"

    group.say_in_topic(BEN, thread, "Sorry about that, a new one is on its way")
    [reply] = await eventually(group.to_customer)
    assert reply["text"] == "Sorry about that, a new one is on its way"
    await group.drained()
    conv = group.conversation()
    assert conv is not None
    assert conv.owner == str(BEN) and conv.state is State.WAITING_ON_CUSTOMER
    assert "answered" in group.topics()[0].name
    assert "first_reply" in group.history()


async def test_an_internal_note_and_commands_are_not_relayed(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.say_in_topic(BEN, thread, "// she wrote last week too")
    group.say_in_topic(BEN, thread, "/rescue help")
    await eventually(lambda: any("chat-rescue" in m.get("text", "")
                                 for m in group.in_topic(thread)))
    await group.drained()
    assert group.to_customer() == []
    conv = group.conversation()
    assert conv is not None and conv.state is State.QUEUED  # a note is no reply


async def test_start_greets_the_customer_without_opening_a_conversation(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "/start")
    [greeting] = await eventually(group.to_customer)
    assert "support team" in greeting["text"]
    assert group.topics() == [] and group.conversation() is None

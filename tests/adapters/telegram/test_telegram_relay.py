"""Customers and operators talk through the bot: topics, cards, copies both ways, notes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chat_rescue.bot.model import State
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    BEN,
    BRUNO,
    GROUP,
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
    assert "with operator" in group.topics()[0].name
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


async def test_a_customer_writing_a_command_is_heard_like_any_message(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "/refund my order never came")
    thread = await group.topic()
    await eventually(lambda: len(group.in_topic(thread)) == 2)
    copy, card = group.in_topic(thread)
    assert copy["text"] == "/refund my order never came"
    assert "/refund my order never came" in card["text"]
    group.sandbox.private_message(ALICE, "/help")  # this one is for the bot: it answers
    [greeting] = await eventually(group.to_customer)
    assert "support team" in greeting["text"]
    await group.drained()
    assert len(group.in_topic(thread)) == 2


async def test_an_anonymous_admin_answers_for_the_group(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.sandbox.anonymous_admin_message(GROUP, "Hi Alice, we are on it", thread,
                                          signature="Head of support")
    [reply] = await eventually(group.to_customer)
    assert reply["text"] == "Hi Alice, we are on it"
    await group.drained()
    conv = group.conversation()
    assert conv is not None and conv.owner == str(GROUP)
    assert conv.state is State.WAITING_ON_CUSTOMER and "first_reply" in group.history()
    assert "anonymous admin" in group.card(thread)["text"]

    other_bot = {"id": 5550001, "is_bot": True, "first_name": "Helper", "username": "helper_bot"}
    chat = group.sandbox.chats[GROUP]
    posted = group.sandbox.new_message(chat, other_bot, {"text": "I am a bot"}, thread_id=thread)
    group.sandbox.inject({"message": posted})  # another bot's messages stay ignored
    group.sandbox.anonymous_admin_message(GROUP, "/rescue set idle 7m", thread)
    await eventually(lambda: any("idle" in m.get("text", "") and "7m" in m.get("text", "")
                                 for m in group.in_topic(thread)))  # an admin, by definition
    await group.drained()
    assert [m["text"] for m in group.to_customer()] == ["Hi Alice, we are on it"]


async def test_edits_are_copied_both_ways_marked_and_move_no_timer(world: World) -> None:
    group = await world()
    asked = group.sandbox.private_message(ALICE, "Where is order #1024?")
    thread = await group.topic()
    answer = group.say_in_topic(BEN, thread, "Looking into it")
    await eventually(group.to_customer)
    await group.drained()
    before, history = group.conversation(), group.history()

    group.sandbox.edit_message(ALICE, asked["message"]["message_id"], "Where is order #1042?")
    await eventually(lambda: len(group.in_topic(thread)) == 4)
    mark, copy = group.in_topic(thread)[2:]
    assert "edited" in mark["text"] and copy["text"] == "Where is order #1042?"

    group.sandbox.edit_message(GROUP, answer["message"]["message_id"], "Found it: it ships today")
    await eventually(lambda: len(group.to_customer()) == 3)
    mark, copy = group.to_customer()[1:]
    assert "edited" in mark["text"] and copy["text"] == "Found it: it ships today"

    note = group.say_in_topic(BEN, thread, "// she ordered twice")
    group.sandbox.edit_message(GROUP, note["message"]["message_id"], "// she ordered 3 times")
    group.sandbox.private_message(BRUNO, "Hi")  # a later update, to know the edit was seen
    await group.topic(1)
    await group.drained()
    assert len(group.to_customer()) == 3  # the edited note stayed internal
    assert group.conversation() == before  # no turn: the customer's edit is no new message
    assert group.history() == [*history, "opened"]  # Bruno's


async def test_an_edit_after_the_close_is_not_copied_and_reopens_nothing(world: World) -> None:
    group = await world()
    asked = group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    group.say_in_topic(BEN, thread, "/close")
    await eventually(lambda: group.topic_closed(thread))
    await group.drained()
    shown = group.in_topic(thread)
    group.sandbox.edit_message(ALICE, asked["message"]["message_id"], "Hello again")
    group.sandbox.private_message(BRUNO, "Hi")  # a later update, to know the edit was seen
    await group.topic(1)
    await group.drained()
    conv = group.conversation()
    assert group.in_topic(thread) == shown and group.topic_closed(thread)
    assert conv is not None and conv.state is State.CLOSED

"""The Telegram sandbox against the real python-telegram-bot client and Application."""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChatAdministrators,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes

from chat_rescue.sandbox.flood import TelegramFlood
from chat_rescue.sandbox.telegram import SANDBOX_TOKEN, TelegramSandbox

GROUP = -1001234567890
CUSTOMER = 1001
OPERATOR = 2001
OWNER = 3001
CLAIM = InlineKeyboardMarkup([[InlineKeyboardButton("Claim", callback_data="claim:1")]])


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as world:
        world.add_user(OWNER, "Olga", "olga")
        world.add_user(OPERATOR, "Oscar", "oscar")
        world.add_forum_group(GROUP, "Support", admins={OWNER: "creator"})
        world.set_member(GROUP, OPERATOR, "member")
        yield world


@pytest.fixture
async def bot(sandbox: TelegramSandbox) -> AsyncIterator[Bot]:
    async with Bot(
        SANDBOX_TOKEN, base_url=sandbox.api_url, base_file_url=sandbox.file_url
    ) as client:
        yield client


async def eventually(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    """Wait, in small steps, until condition() holds."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


# -- the basics --------------------------------------------------------------------------------


async def test_get_me_is_the_sandbox_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "rescue_sandbox_bot", True)


async def test_a_wrong_token_is_unauthorized(sandbox: TelegramSandbox) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sandbox.api_url}999:WRONG/getMe") as response,
    ):
        assert response.status == 401
        assert await response.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=sandbox.api_url):
            pass


async def test_an_unknown_method_is_not_found(sandbox: TelegramSandbox) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sandbox.api_url}{SANDBOX_TOKEN}/sendTelepathy") as response,
    ):
        assert response.status == 404
        assert await response.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found",
        }


async def test_json_bodies_and_query_strings_are_understood(sandbox: TelegramSandbox) -> None:
    sandbox.private_message(CUSTOMER, "hi")
    url = f"{sandbox.api_url}{SANDBOX_TOKEN}/sendMessage"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"chat_id": CUSTOMER, "text": "123"}) as response:
            assert (await response.json())["result"]["text"] == "123"
        async with http.get(url, params={"chat_id": str(CUSTOMER), "text": "true"}) as response:
            assert (await response.json())["result"]["text"] == "true"
    assert [m["text"] for m in sandbox.messages(CUSTOMER)] == ["123", "true"]


async def test_calls_record_decoded_parameters(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.private_message(CUSTOMER, "hi")
    await bot.send_message(CUSTOMER, "42", reply_markup=CLAIM)
    (params,) = sandbox.calls_to("sendmessage")
    assert params["chat_id"] == CUSTOMER
    assert params["text"] == "42"
    assert params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Claim", "callback_data": "claim:1"}]]
    }


# -- relaying a customer into a forum topic ----------------------------------------------------


async def test_copy_a_customer_message_into_a_new_topic(sandbox: TelegramSandbox, bot: Bot) -> None:
    asked = sandbox.private_message(CUSTOMER, "Where is my order?")["message"]

    topic = await bot.create_forum_topic(GROUP, "Customer 1001")
    card = await bot.send_message(
        GROUP, "New conversation", message_thread_id=topic.message_thread_id, reply_markup=CLAIM
    )
    copied = await bot.copy_message(
        GROUP, CUSTOMER, asked["message_id"], message_thread_id=topic.message_thread_id
    )

    assert card.is_topic_message and card.message_thread_id == topic.message_thread_id
    assert card.reply_markup == CLAIM
    sent = sandbox.messages(GROUP, topic.message_thread_id)
    assert [m["text"] for m in sent] == ["New conversation", "Where is my order?"]
    assert sent[1]["message_id"] == copied.message_id
    assert sandbox.messages(GROUP) == []  # nothing leaked into General
    (state,) = sandbox.topics(GROUP)
    assert (state.name, state.closed, state.icon_custom_emoji_id) == ("Customer 1001", False, None)


async def test_topic_messages_answer_the_topic_creation_message(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    topic = await bot.create_forum_topic(GROUP, "Customer")
    sent = await bot.send_message(GROUP, "hello", message_thread_id=topic.message_thread_id)
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.forum_topic_created is not None
    assert sent.reply_to_message.message_id == topic.message_thread_id


async def test_an_operator_reply_in_a_topic_arrives_as_a_topic_message(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    sandbox.private_message(CUSTOMER, "help", update_id=1)
    topic = await bot.create_forum_topic(GROUP, "Customer")
    sandbox.group_message(GROUP, OPERATOR, "On it!", thread_id=topic.message_thread_id)
    (update,) = await bot.get_updates(offset=2)
    assert update.message is not None
    assert update.message.is_topic_message
    assert update.message.message_thread_id == topic.message_thread_id
    reply = await bot.copy_message(CUSTOMER, GROUP, update.message.message_id)
    (relayed,) = sandbox.messages(CUSTOMER)
    assert (relayed["message_id"], relayed["text"]) == (reply.message_id, "On it!")


async def test_an_anonymous_admin_posts_as_the_group(sandbox: TelegramSandbox, bot: Bot) -> None:
    topic = await bot.create_forum_topic(GROUP, "Customer")
    sandbox.anonymous_admin_message(GROUP, "On it", topic.message_thread_id, signature="Lead")
    (update,) = await bot.get_updates()
    message = update.message
    assert message is not None and message.from_user is not None
    assert (message.from_user.id, message.from_user.username, message.from_user.is_bot) == (
        1087968824, "GroupAnonymousBot", True)
    assert message.sender_chat is not None and message.sender_chat.id == GROUP
    assert message.author_signature == "Lead" and message.is_topic_message


async def test_an_edit_arrives_as_edited_message_and_copies_show_it(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    sent = sandbox.private_message(CUSTOMER, "typo", update_id=1)
    sandbox.edit_message(CUSTOMER, sent["message"]["message_id"], "/fixed it")
    (_, update) = await bot.get_updates()
    edited = update.edited_message
    assert update.message is None and edited is not None and edited.edit_date is not None
    assert edited.message_id == sent["message"]["message_id"] and edited.text == "/fixed it"
    assert edited.entities[0].type == "bot_command"
    await bot.copy_message(GROUP, CUSTOMER, edited.message_id)
    assert sandbox.messages(GROUP)[-1]["text"] == "/fixed it"
    await bot.get_updates(offset=update.update_id + 1, allowed_updates=["message"])
    sandbox.edit_message(CUSTOMER, sent["message"]["message_id"], "again")
    assert await bot.get_updates() == ()  # not asked for


async def test_copying_from_a_chat_the_bot_cannot_see_fails(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    sandbox.private_message(CUSTOMER, "hi")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.copy_message(GROUP, -100999, 1)
    with pytest.raises(BadRequest, match="Message to copy not found"):
        await bot.copy_message(GROUP, CUSTOMER, 999)


async def test_forward_keeps_the_origin(sandbox: TelegramSandbox, bot: Bot) -> None:
    asked = sandbox.private_message(CUSTOMER, "help")["message"]
    forwarded = await bot.forward_message(GROUP, CUSTOMER, asked["message_id"])
    assert forwarded.text == "help"
    assert forwarded.forward_origin is not None
    assert forwarded.forward_origin.sender_user.id == CUSTOMER  # type: ignore[attr-defined]


# -- forum quirks ------------------------------------------------------------------------------


async def test_general_topic_takes_no_thread_id(sandbox: TelegramSandbox, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(GROUP, "New conversation", message_thread_id=1)
    announced = await bot.send_message(GROUP, "New conversation", reply_markup=CLAIM)
    assert not announced.is_topic_message and announced.message_thread_id is None
    assert [m["text"] for m in sandbox.messages(GROUP)] == ["New conversation"]


async def test_a_reply_in_general_carries_a_thread_id_that_is_no_topic(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    announced = await bot.send_message(GROUP, "New conversation")
    sandbox.group_message(GROUP, OPERATOR, "mine", reply_to=announced.message_id)
    (update,) = await bot.get_updates()
    assert update.message is not None
    assert update.message.message_thread_id == announced.message_id
    assert not update.message.is_topic_message
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(GROUP, "x", message_thread_id=update.message.message_thread_id)


async def test_closed_topics_refuse_messages_until_reopened(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    topic = await bot.create_forum_topic(GROUP, "Customer")
    thread = topic.message_thread_id
    assert await bot.close_forum_topic(GROUP, thread)
    assert sandbox.topics(GROUP)[0].closed
    with pytest.raises(BadRequest, match="Topic_closed"):
        await bot.send_message(GROUP, "late", message_thread_id=thread)
    with pytest.raises(BadRequest, match="Topic_not_modified"):
        await bot.close_forum_topic(GROUP, thread)
    assert await bot.reopen_forum_topic(GROUP, thread)
    await bot.send_message(GROUP, "back", message_thread_id=thread)
    assert [m["text"] for m in sandbox.messages(GROUP, thread)] == ["back"]


async def test_edit_forum_topic_renames_and_sets_the_icon(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    topic = await bot.create_forum_topic(GROUP, "Customer")
    stickers = await bot.get_forum_topic_icon_stickers()
    icon = stickers[0].custom_emoji_id
    assert icon is not None
    await bot.edit_forum_topic(
        GROUP, topic.message_thread_id, name="⏳ Customer", icon_custom_emoji_id=icon
    )
    (state,) = sandbox.topics(GROUP)
    assert (state.name, state.icon_custom_emoji_id) == ("⏳ Customer", icon)
    with pytest.raises(BadRequest, match="Topic_not_modified"):
        await bot.edit_forum_topic(GROUP, topic.message_thread_id, name="⏳ Customer")


async def test_topics_need_a_forum_and_admin_rights(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.add_group(-100555, "Plain group")
    with pytest.raises(BadRequest, match="The chat is not a forum"):
        await bot.create_forum_topic(-100555, "Customer")
    sandbox.add_forum_group(-100666, "Forum", bot_is_admin=False)
    with pytest.raises(BadRequest, match="Not enough rights to create a topic"):
        await bot.create_forum_topic(-100666, "Customer")


# -- editing, deleting, callbacks ---------------------------------------------------------------


async def test_editing_without_the_keyboard_drops_it(sandbox: TelegramSandbox, bot: Bot) -> None:
    card = await bot.send_message(GROUP, "waiting 30 s", reply_markup=CLAIM)
    kept = await bot.edit_message_text("waiting 60 s", GROUP, card.message_id, reply_markup=CLAIM)
    assert isinstance(kept, Message) and kept.reply_markup == CLAIM
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("waiting 60 s", GROUP, card.message_id, reply_markup=CLAIM)
    dropped = await bot.edit_message_text("claimed by Oscar", GROUP, card.message_id)
    assert isinstance(dropped, Message)
    assert dropped.reply_markup is None and dropped.edit_date is not None
    stored = sandbox.message(GROUP, card.message_id)
    assert stored is not None and stored["text"] == "claimed by Oscar"
    assert "reply_markup" not in stored


async def test_edit_reply_markup_and_delete(sandbox: TelegramSandbox, bot: Bot) -> None:
    card = await bot.send_message(GROUP, "card", reply_markup=CLAIM)
    await bot.edit_message_reply_markup(GROUP, card.message_id, reply_markup=None)
    assert "reply_markup" not in sandbox.messages(GROUP)[0]
    assert await bot.delete_message(GROUP, card.message_id)
    assert sandbox.messages(GROUP) == []
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(GROUP, card.message_id)


async def test_callback_data_is_limited_to_64_bytes(sandbox: TelegramSandbox, bot: Bot) -> None:
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="c" * 65)]])
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(GROUP, "card", reply_markup=too_long)


async def test_a_callback_query_can_be_answered_once(sandbox: TelegramSandbox, bot: Bot) -> None:
    card = await bot.send_message(GROUP, "card", reply_markup=CLAIM)
    sandbox.callback_query(OPERATOR, card.to_dict(), "claim:1")
    (update,) = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.data == "claim:1" and query.from_user.id == OPERATOR
    assert query.message is not None and query.message.message_id == card.message_id
    assert await bot.answer_callback_query(query.id, text="Claimed")
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query.id)


# -- members, commands, chat actions ----------------------------------------------------------


async def test_members_have_their_status(sandbox: TelegramSandbox, bot: Bot) -> None:
    owner = await bot.get_chat_member(GROUP, OWNER)
    operator = await bot.get_chat_member(GROUP, OPERATOR)
    me = await bot.get_chat_member(GROUP, 123456)
    assert (owner.status, operator.status, me.status) == ("creator", "member", "administrator")
    assert me.can_manage_topics  # type: ignore[attr-defined]
    admins = await bot.get_chat_administrators(GROUP)
    assert {admin.user.id for admin in admins} == {OWNER, 123456}
    chat = await bot.get_chat(GROUP)
    assert chat.is_forum and chat.title == "Support"


async def test_set_my_commands_records_the_scope(sandbox: TelegramSandbox, bot: Bot) -> None:
    scope = BotCommandScopeChatAdministrators(GROUP)
    commands = [BotCommand("rescue", "Rescue settings"), BotCommand("close", "Close")]
    assert await bot.set_my_commands(commands, scope=scope)
    assert sandbox.my_commands({"type": "chat_administrators", "chat_id": GROUP}) == [
        {"command": "rescue", "description": "Rescue settings"},
        {"command": "close", "description": "Close"},
    ]
    assert sandbox.my_commands() == []
    assert tuple(await bot.get_my_commands(scope=scope)) == tuple(commands)
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Rescue", "bad")])


async def test_chat_actions_follow_the_thread_rules(sandbox: TelegramSandbox, bot: Bot) -> None:
    assert await bot.send_chat_action(GROUP, "typing")
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_chat_action(GROUP, "typing", message_thread_id=1)


# -- private chats, media and files ------------------------------------------------------------


async def test_the_bot_cannot_start_a_private_chat(sandbox: TelegramSandbox, bot: Bot) -> None:
    with pytest.raises(Forbidden, match="can't initiate conversation"):
        await bot.send_message(OPERATOR, "psst")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(424242, "who?")


async def test_a_blocked_user_answers_403(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.private_message(CUSTOMER, "hi")
    sandbox.block_user(CUSTOMER)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(CUSTOMER, "hello?")
    sandbox.private_message(CUSTOMER, "sorry, back")  # writing again unblocks
    await bot.send_message(CUSTOMER, "welcome back")


async def test_customer_media_parses_and_downloads(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.private_message(CUSTOMER, photo=True, caption="broken")
    sandbox.private_message(CUSTOMER, document=True)
    sandbox.private_message(CUSTOMER, voice=True)
    sandbox.private_message(CUSTOMER, sticker=True)
    photo, document, voice, sticker = [u.message for u in await bot.get_updates()]
    assert photo is not None and photo.caption == "broken" and len(photo.photo) == 2
    assert document is not None and document.document is not None
    assert voice is not None and voice.voice is not None
    assert sticker is not None and sticker.sticker is not None
    file = await bot.get_file(photo.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()).startswith(b"photo")


async def test_uploads_are_multipart_and_downloadable(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.private_message(CUSTOMER, "send me the invoice")
    sent = await bot.send_document(CUSTOMER, b"%PDF-1.4 invoice", filename="invoice.pdf")
    assert sent.document is not None and sent.document.file_name == "invoice.pdf"
    file = await bot.get_file(sent.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"%PDF-1.4 invoice"
    again = await bot.send_photo(GROUP, sent.document.file_id)  # a file_id string is fine
    assert again.photo[-1].file_id == sent.document.file_id


async def test_html_markup_is_not_shown_to_users(sandbox: TelegramSandbox, bot: Bot) -> None:
    await bot.send_message(GROUP, "<b>Olga</b> waits &lt;5 min&gt;", parse_mode="HTML")
    assert sandbox.messages(GROUP)[0]["text"] == "Olga waits <5 min>"


async def test_commands_carry_a_bot_command_entity(sandbox: TelegramSandbox, bot: Bot) -> None:
    topic = await bot.create_forum_topic(GROUP, "Customer")
    sandbox.group_message(GROUP, OPERATOR, "/close now", thread_id=topic.message_thread_id)
    (update,) = await bot.get_updates()
    assert update.message is not None
    assert update.message.parse_entities(["bot_command"]) != {}


async def test_membership_changes_arrive_and_take_effect(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    sandbox.my_chat_member(GROUP, "administrator", "member")
    sandbox.private_message(CUSTOMER, "hi")
    sandbox.my_chat_member(CUSTOMER, "member", "kicked")
    demoted, _, blocked = await bot.get_updates()
    assert demoted.my_chat_member is not None
    assert demoted.my_chat_member.new_chat_member.status == "member"
    assert demoted.my_chat_member.from_user.id == OWNER
    assert blocked.my_chat_member is not None and blocked.my_chat_member.chat.id == CUSTOMER
    with pytest.raises(BadRequest, match="Not enough rights"):
        await bot.create_forum_topic(GROUP, "Customer")
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(CUSTOMER, "hello?")


async def test_raw_updates_are_remembered(sandbox: TelegramSandbox, bot: Bot) -> None:
    message = {
        "message_id": 77,
        "date": 1_700_000_000,
        "chat": {"id": 4004, "type": "private", "first_name": "Raw"},
        "from": {"id": 4004, "is_bot": False, "first_name": "Raw"},
        "text": "raw hello",
    }
    queued = sandbox.inject({"message": message})
    sandbox.inject(
        {
            "update_id": 9,
            "callback_query": {
                "id": "q1",
                "from": message["from"],
                "chat_instance": "1",
                "data": "d",
            },
        }
    )
    (first, second) = await bot.get_updates()
    assert (first.update_id, second.update_id) == (queued["update_id"], 9)
    await bot.copy_message(GROUP, 4004, 77)
    assert sandbox.messages(GROUP)[0]["text"] == "raw hello"
    assert await bot.answer_callback_query("q1")


# -- getUpdates ---------------------------------------------------------------------------------


async def test_updates_stay_until_an_offset_confirms_them(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    first = sandbox.private_message(CUSTOMER, "one")["update_id"]
    sandbox.private_message(CUSTOMER, "two")
    assert [u.update_id for u in await bot.get_updates()] == [first, first + 1]
    assert [u.update_id for u in await bot.get_updates()] == [first, first + 1]
    assert [u.update_id for u in await bot.get_updates(offset=first + 1)] == [first + 1]
    assert await bot.get_updates(offset=first + 2) == ()
    assert sandbox.updates == []


async def test_a_redelivered_update_id_is_handed_out_twice(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    sandbox.private_message(CUSTOMER, "one", update_id=500)
    sandbox.private_message(CUSTOMER, "one", update_id=500)
    assert [u.update_id for u in await bot.get_updates()] == [500, 500]
    assert await bot.get_updates(offset=501) == ()


async def test_update_ids_may_restart_lower_after_silence(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    last = sandbox.private_message(CUSTOMER, "before")["update_id"]
    assert await bot.get_updates(offset=last + 1) == ()
    sandbox.reset_update_ids(7)
    sandbox.private_message(CUSTOMER, "after a week")
    # The poller's offset is now far past the new ids: the server ignores it.
    (update,) = await bot.get_updates(offset=last + 1)
    assert update.update_id == 7
    assert await bot.get_updates(offset=8) == ()


async def test_a_negative_offset_keeps_only_the_newest(sandbox: TelegramSandbox, bot: Bot) -> None:
    for text in ("a", "b", "c"):
        sandbox.private_message(CUSTOMER, text)
    (update,) = await bot.get_updates(offset=-1)
    assert update.message is not None and update.message.text == "c"
    assert len(sandbox.updates) == 1


async def test_allowed_updates_filters_updates_created_later(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    sandbox.private_message(CUSTOMER, "before")
    await bot.get_updates(allowed_updates=["callback_query"])
    card = sandbox.private_message(CUSTOMER, "after")["message"]
    sandbox.callback_query(CUSTOMER, card, "x")
    kinds = [
        "message" if u.message else "callback_query" if u.callback_query else "?"
        for u in await bot.get_updates()
    ]
    assert kinds == ["message", "callback_query"]


async def test_a_long_poll_returns_as_soon_as_an_update_arrives(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.05)
    assert not poll.done()
    sandbox.private_message(CUSTOMER, "hello?")
    (update,) = await asyncio.wait_for(poll, 1)
    assert update.message is not None and update.message.text == "hello?"
    assert loop.time() - started < 1


async def test_a_long_poll_waits_out_its_timeout(sandbox: TelegramSandbox, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=dtm.timedelta(seconds=0.2)) == ()
    assert loop.time() - started >= 0.19


async def test_a_second_poller_ends_the_first(sandbox: TelegramSandbox, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    async with Bot(SANDBOX_TOKEN, base_url=sandbox.api_url) as twin:
        second = asyncio.create_task(twin.get_updates(timeout=5))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 1)
        sandbox.private_message(CUSTOMER, "hi")
        assert len(await asyncio.wait_for(second, 1)) == 1


async def test_a_poll_answered_at_once_still_ends_the_one_waiting(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    async with Bot(SANDBOX_TOKEN, base_url=sandbox.api_url) as twin:
        # The twin does not wait (a short poll) yet ends the long poll, which would
        # otherwise stay open and be handed the same updates as the twin.
        assert await twin.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 1)


# -- failures -----------------------------------------------------------------------------------


async def test_429_raises_retry_after(
    sandbox: TelegramSandbox, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # else reading retry_after warns (deprecation)
    sandbox.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(GROUP, "flood")
    assert caught.value.retry_after == dtm.timedelta(seconds=7)
    await bot.send_message(GROUP, "later")
    assert [m["text"] for m in sandbox.messages(GROUP)] == ["later"]
    assert len(sandbox.calls_to("sendMessage")) == 2


async def test_flood_control_answers_429_beyond_telegrams_limits(
    sandbox: TelegramSandbox, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    now = [1000.0]
    sandbox.flood = TelegramFlood(clock=lambda: now[0])
    sandbox.private_message(CUSTOMER, "hi")  # the customer started the bot
    for n in range(20):  # a group: 20 in any minute, topics' service messages included
        now[0] += 0.5
        if n == 0:
            await bot.create_forum_topic(GROUP, "Alice")
        else:
            await bot.send_message(GROUP, f"card {n}")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(GROUP, "one too many")
    assert caught.value.retry_after == dtm.timedelta(seconds=51)  # the first leaves at 60 s
    await bot.edit_message_text("edits are not counted", GROUP, sandbox.messages(GROUP)[-1]
                                ["message_id"])
    await bot.send_message(CUSTOMER, "a private chat is counted apart")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CUSTOMER, "but takes one a second")
    assert caught.value.retry_after == dtm.timedelta(seconds=1)
    now[0] += 51
    await bot.send_message(GROUP, "the window moved on")
    assert sandbox.flood.refused == {"group": 1, "chat": 1}
    assert [m["text"] for m in sandbox.messages(CUSTOMER)] == ["a private chat is counted apart"]


async def test_flood_control_caps_a_bot_at_30_messages_a_second(
    sandbox: TelegramSandbox, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    sandbox.flood = TelegramFlood(clock=lambda: 1000.0)
    for user_id in range(5000, 5031):
        sandbox.add_user(user_id, f"Customer {user_id}")
        sandbox.private_message(user_id, "hi")
    for user_id in range(5000, 5030):
        await bot.send_message(user_id, "hello")
    with pytest.raises(RetryAfter):
        await bot.send_message(5030, "the 31st in one second")
    assert sandbox.flood.refused == {"bot": 1}


async def test_injected_403_and_5xx(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.fail_next("sendMessage", status=403)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(GROUP, "x")
    sandbox.fail_next("*", status=502, count=2)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.get_me()
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(GROUP, "x")
    await bot.send_message(GROUP, "fine")


async def test_a_hung_call_times_out_but_is_still_carried_out(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    sandbox.hang("sendMessage", 0.2)
    with pytest.raises(TimedOut):
        await bot.send_message(GROUP, "slow", read_timeout=0.05)
    await eventually(lambda: sandbox.messages(GROUP) != [])
    assert sandbox.messages(GROUP)[0]["text"] == "slow"


# -- webhooks -----------------------------------------------------------------------------------


async def test_a_webhook_blocks_get_updates(sandbox: TelegramSandbox, bot: Bot) -> None:
    assert await bot.set_webhook("https://bot.example/telegram/webhook", secret_token="s3cret")
    info = await bot.get_webhook_info()
    assert info.url == "https://bot.example/telegram/webhook"
    assert sandbox.webhook_secret == "s3cret"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates() == ()


class Receiver:
    """A stand-in for the bot's webhook endpoint, answering with the given statuses."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[str | None, dict[str, Any]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/telegram/webhook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/telegram/webhook"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        self.received.append((secret, await request.json()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


async def test_push_mode_posts_updates_with_the_secret_and_retries() -> None:
    async with (
        TelegramSandbox(push_updates_to_webhook=True) as sandbox,
        Receiver([500]) as receiver,
        Bot(SANDBOX_TOKEN, base_url=sandbox.api_url) as bot,
    ):
        queued = sandbox.private_message(CUSTOMER, "before the webhook")
        await bot.set_webhook(receiver.url, secret_token="s3cret")
        sandbox.private_message(CUSTOMER, "after")
        await eventually(lambda: len(receiver.received) == 3)
        assert [secret for secret, _ in receiver.received] == ["s3cret"] * 3
        ids = [update["update_id"] for _, update in receiver.received]
        assert ids == [queued["update_id"], queued["update_id"], queued["update_id"] + 1]
        # The sandbox notes a delivery once the receiver's answer is in: after it received it.
        await eventually(lambda: len(sandbox.webhook_deliveries) == 3)
        assert [d.status for d in sandbox.webhook_deliveries] == [500, 200, 200]
        parsed = Update.de_json(receiver.received[-1][1], bot)
        assert parsed.message is not None and parsed.message.text == "after"
        await eventually(lambda: sandbox.updates == [])
        assert (await bot.get_webhook_info()).pending_update_count == 0


# -- python-telegram-bot's Application -----------------------------------------------------------


def application(
    sandbox: TelegramSandbox, *, with_updater: bool
) -> Application[Any, Any, Any, Any, Any, Any]:
    builder = (
        ApplicationBuilder()
        .token(SANDBOX_TOKEN)
        .base_url(sandbox.api_url)
        .base_file_url(sandbox.file_url)
    )
    if not with_updater:
        builder = builder.updater(None)
    return builder.build()


async def test_an_application_initializes_against_the_sandbox(sandbox: TelegramSandbox) -> None:
    app = application(sandbox, with_updater=False)
    await app.initialize()
    try:
        assert app.bot.username == "rescue_sandbox_bot"
    finally:
        await app.shutdown()


async def test_an_application_polls_and_answers(sandbox: TelegramSandbox) -> None:
    app = application(sandbox, with_updater=True)

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text("Hi! An operator will be with you shortly.")

    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=5))
        sandbox.private_message(CUSTOMER, "/start")
        await eventually(lambda: sandbox.messages(CUSTOMER) != [])
        await app.updater.stop()
        await app.stop()
    assert sandbox.messages(CUSTOMER)[0]["text"].startswith("Hi!")
    assert sandbox.updates == []  # the final poll confirmed what was handled
    assert sandbox.calls_to("deleteWebhook")  # polling starts by removing any webhook

"""Duplicates, webhook security, flood control and unreachable customers, end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from chat_rescue.sandbox.telegram_support import (
    ALICE,
    BEN,
    SECRET,
    SupportGroup,
    eventually,
)

World = Callable[..., Awaitable[SupportGroup]]


def copies_to(group: SupportGroup, chat_id: int) -> list[dict]:
    return [c for c in group.sandbox.calls_to("copyMessage") if c["chat_id"] == chat_id]


async def test_a_redelivered_update_is_processed_once(world: World) -> None:
    group = await world()
    update = group.sandbox.private_message(ALICE, "Hello")
    group.sandbox.private_message(ALICE, "Second")
    thread = await group.topic()
    await eventually(lambda: len(group.in_topic(thread)) == 3)
    await group.drained()
    seen = len(group.sandbox.webhook_deliveries) + len(group.sandbox.calls_to("getUpdates"))
    group.sandbox.inject(update)  # the same update_id again, as after a lost confirmation
    await eventually(lambda: not group.sandbox.updates)  # handed to the bot and confirmed
    assert len(group.sandbox.webhook_deliveries) + len(group.sandbox.calls_to("getUpdates")) \
        > seen
    group.sandbox.private_message(ALICE, "Third")
    await eventually(lambda: len(group.in_topic(thread)) == 4)
    await group.drained()
    assert [m.get("text") for m in group.copies(thread)] == ["Hello", "Second", "Third"]
    assert group.history("opened") == ["opened"]


async def test_update_ids_may_restart_lower(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    await group.drained()
    group.sandbox.reset_update_ids(5)  # after a long silence ids need not increase
    group.sandbox.private_message(ALICE, "Still there?")
    await eventually(lambda: len(group.in_topic(thread)) == 3)


@pytest.mark.parametrize("mode", ["webhook"], indirect=True)
async def test_the_webhook_refuses_strangers_and_garbage(world: World) -> None:
    group = await world()
    url = f"http://127.0.0.1:{group.bot.port}/telegram/webhook"
    update = {"update_id": 999, "message": {
        "message_id": 1, "date": 0, "chat": {"id": ALICE, "type": "private", "first_name": "A"},
        "from": {"id": ALICE, "is_bot": False, "first_name": "A"}, "text": "forged"}}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 403
        good = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with http.post(url, data="{not json", headers=good) as response:
            assert response.status == 400
        async with http.post(url, data=json.dumps([1, 2]), headers=good) as response:
            assert response.status == 400
    await asyncio.sleep(0.1)
    assert group.conversation() is None and group.topics() == []
    assert group.bot.store.history(None, 0) == []


async def test_flood_control_is_honoured_through_the_outbox(world: World) -> None:
    group = await world()
    group.sandbox.fail_next("copyMessage", 429, retry_after=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    await eventually(lambda: len(group.in_topic(thread)) == 2, timeout=4)
    assert loop.time() - started >= 0.9  # waited as told, not sooner
    assert len(group.sandbox.calls_to("copyMessage")) == 2  # one 429, one retry


async def test_a_reply_in_a_new_topic_reaches_the_customer_while_its_card_waits(
        world: World) -> None:
    """The topic is made, then the group answers 429: an operator who writes in the topic
    before its card is up is still heard by the customer."""
    group = await world()
    group.sandbox.fail_next("sendMessage", 429, retry_after=2)
    group.sandbox.private_message(ALICE, "Hello")
    await eventually(lambda: group.sandbox.calls_to("sendMessage"))  # the card, refused
    [topic] = group.topics()
    group.say_in_topic(BEN, topic.thread_id, "Hi Alice, on it")
    # The customer's own lane: it does not wait for the card, held back by the 429.
    [reply] = await eventually(group.to_customer, timeout=5)
    assert reply["text"] == "Hi Alice, on it"
    await group.drained()
    copy, card = group.in_topic(topic.thread_id)
    assert copy["text"] == "Hello" and "Ben" in card["text"]
    conv = group.conversation()
    assert conv is not None and conv.owner == str(BEN) and conv.first_reply_at is not None


async def test_a_server_error_is_retried(world: World) -> None:
    group = await world()
    group.sandbox.fail_next("createForumTopic", 502)
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic(timeout=4)
    await eventually(lambda: len(group.in_topic(thread)) == 2, timeout=4)
    assert len(group.topics()) == 1


async def test_a_customer_who_blocked_the_bot_is_marked_not_retried(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()
    await group.drained()
    group.sandbox.block_user(ALICE)
    group.say_in_topic(BEN, thread, "Hi Alice!")
    group.say_in_topic(BEN, thread, "Are you there?")
    await eventually(lambda: group.history("customer_blocked"))
    await group.drained()
    await asyncio.sleep(0.2)
    assert len(copies_to(group, ALICE)) == 2  # each tried once, neither retried
    assert group.history("customer_blocked") == ["customer_blocked"]  # marked once
    notes = [m["text"] for m in group.in_topic(thread) if "blocked the bot" in m.get("text", "")]
    assert notes == ["⚠️ Alice has blocked the bot: they will not get our messages until they "
                     "write again."]

    group.sandbox.private_message(ALICE, "Sorry, I'm back")  # writing unblocks
    group.say_in_topic(BEN, thread, "Welcome back")
    await eventually(lambda: [m.get("text") for m in group.to_customer()] == ["Welcome back"])


async def test_a_customer_blocking_the_bot_is_recorded(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    await group.topic()
    group.sandbox.my_chat_member(ALICE, "member", "kicked")
    await eventually(lambda: group.history("customer_blocked"))


async def test_healthz_shows_the_update_intake_and_each_loop(world: World) -> None:
    group = await world()
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{group.bot.port}/healthz") as answer:
        report = await answer.json()
        assert answer.status == 200
    assert report["status"] == "ok"
    assert report["loops"] == {"ticker": "alive", "prune": "alive", "metrics": "alive",
                               "outbox:telegram": "alive", "telegram:updates": "alive"}

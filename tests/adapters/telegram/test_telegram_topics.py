"""Topics that heal: a topic deleted by hand, a card deleted, rights taken away; the
customer is never cut off and nothing waits for ever."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from telegram import Bot, Message

from chat_rescue.adapters.telegram import render
from chat_rescue.adapters.telegram.deliver import Deliverer
from chat_rescue.adapters.telegram.memory import Memory
from chat_rescue.adapters.telegram.topics import Topics
from chat_rescue.adapters.telegram.translate import customer_ref
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import Conversation, PostCard, State, UpdateCard
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change
from chat_rescue.bot.service import Service
from chat_rescue.sandbox.telegram import SANDBOX_TOKEN, TelegramSandbox
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    BEN,
    GROUP,
    SupportGroup,
    eventually,
    furnish,
)
from chat_rescue.storage.sqlite import SQLiteStore

World = Callable[..., Awaitable[SupportGroup]]


async def test_a_deleted_topic_is_made_anew_and_what_waited_is_delivered(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hi, my parcel is late")
    old = await group.topic()
    await group.drained()
    group.sandbox.delete_topic(GROUP, old)  # an operator tidies up the forum by hand
    group.sandbox.private_message(ALICE, "Hello? Anyone there?")
    group.sandbox.private_message(ALICE, "Order #1042")
    await eventually(lambda: len(group.topics()) == 1 and group.topics()[0].thread_id != old)
    new = group.topics()[0].thread_id
    await group.drained()
    conv = group.conversation()
    assert conv is not None and conv.card is not None and conv.card.startswith(f"{new}:")
    assert "Alice" in group.card(new)["text"]  # a new card, with its buttons
    assert [m.get("text") for m in group.copies(new)] == ["Hello? Anyone there?", "Order #1042"]
    # The team answers in the new topic, and the customer gets it.
    group.sandbox.group_message(GROUP, BEN, "Sorry for the wait!", thread_id=new)
    await eventually(lambda: any(m.get("text") == "Sorry for the wait!"
                                 for m in group.to_customer()))
    assert group.bot.store.resolve(f"telegram:topic:{new}") == conv.ref.key


async def test_a_deleted_card_is_posted_again(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hi")
    thread = await group.topic()
    await group.drained()
    card = group.card(thread)
    del group.sandbox.chat(GROUP).messages[card["message_id"]]
    group.sandbox.group_message(GROUP, BEN, "On it", thread_id=thread)  # the card changes
    await eventually(lambda: group._card_id(thread) not in (0, card["message_id"]))
    await group.drained()
    assert "Ben" in group.card(thread)["text"]


async def test_without_rights_nothing_is_given_up_and_the_team_is_told(world: World) -> None:
    group = await world()
    group.sandbox.set_member(GROUP, group.sandbox.bot_id, "member")  # demoted by someone
    group.sandbox.private_message(ALICE, "Hi, my parcel is late")
    await eventually(lambda: any("cannot work here" in str(m.get("text"))
                                 for m in group.general()))
    await eventually(lambda: any(i.not_before > 0 for i in group.bot.store.pending(10)))
    assert all(item.attempts == 0 for item in group.bot.store.pending(10))  # not counted
    notices = [m for m in group.general() if "cannot work here" in str(m.get("text"))]
    assert len(notices) == 1 and "Manage Topics" in notices[0]["text"]
    dead = group.bot.store.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    assert dead == 0
    # An admin gives the rights back: Telegram says so, and what waited goes at once.
    group.sandbox.my_chat_member(GROUP, "member", "administrator")
    thread = await group.topic()
    await group.drained()
    assert [m.get("text") for m in group.copies(thread)] == ["Hi, my parcel is late"]


async def test_a_group_that_became_a_supergroup_is_followed(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hi, my parcel is late")
    thread = await group.topic()
    await group.drained()
    moved = GROUP - 1
    group.sandbox.migrate(GROUP, moved)  # Telegram gives the group a new id
    group.sandbox.private_message(ALICE, "Hello? Anyone there?")
    await eventually(lambda: group.sandbox.messages(moved, thread)[-1].get("text")
                     == "Hello? Anyone there?")  # into the same topic, under the new id
    await group.drained()
    group.sandbox.group_message(moved, BEN, "Here, sorry!", thread_id=thread)
    await eventually(lambda: any(m.get("text") == "Here, sorry!" for m in group.to_customer()))
    # Remembered for the next start; the team keeps its name (and so its settings).
    assert group.bot.store.settings(f"telegram-group:{GROUP}") == {"moved_to": str(moved)}
    conv = group.conversation()
    assert conv is not None and conv.team == f"telegram:{GROUP}"
    dead = group.bot.store.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    assert dead == 0


async def test_a_healed_topic_gets_its_card_though_the_first_try_is_refused(
        world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hi, my parcel is late")
    old = await group.topic()
    await group.drained()
    group.sandbox.delete_topic(GROUP, old)
    group.sandbox.fail_next("sendMessage", 429, retry_after=1)  # the new card, at first
    group.sandbox.private_message(ALICE, "Hello? Anyone there?")
    await eventually(lambda: len(group.topics()) == 1 and group.topics()[0].thread_id != old)
    new = group.topics()[0].thread_id
    await eventually(lambda: group._card_id(new) != 0, timeout=5)
    await group.drained(timeout=5)
    assert "Claim" in str(group.card(new).get("reply_markup"))
    assert [m.get("text") for m in group.copies(new)] == ["Hello? Anyone there?"]


async def test_a_move_is_followed_when_telegram_says_so_before_the_bot_sends_anything(
        world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hi, my parcel is late")
    thread = await group.topic()
    await group.drained()
    moved = GROUP - 1
    group.sandbox.migrate(GROUP, moved)  # the service messages arrive as updates
    await eventually(lambda: group.adapter.support_chat_id == moved)
    group.sandbox.group_message(moved, BEN, "Here, sorry!", thread_id=thread)
    await eventually(lambda: any(m.get("text") == "Here, sorry!" for m in group.to_customer()))
    conv = group.conversation()
    assert conv is not None and conv.owner == str(BEN) and conv.team == f"telegram:{GROUP}"
    assert group.bot.store.settings(f"telegram-group:{moved}") == {"moved_from": str(GROUP)}


async def test_two_processes_keep_a_topic_name_current(tmp_path: Path) -> None:
    async with TelegramSandbox() as sandbox:
        furnish(sandbox)
        store = SQLiteStore(f"sqlite:///{tmp_path}/t.db")
        try:
            async with Bot(SANDBOX_TOKEN, base_url=sandbox.api_url) as bot:
                async def no_message(*args: object, **kwargs: object) -> Message:
                    raise AssertionError("no message is sent here")

                old, new = (Topics(bot, store, Memory(), GROUP, no_message) for _ in "ab")
                waiting = Conversation(customer_ref(ALICE), f"telegram:{GROUP}", "Alice",
                                       time.time())
                answered = replace(waiting, state=State.WAITING_ON_CUSTOMER, owner=str(BEN))
                assert render.topic_name(waiting) != render.topic_name(answered)
                store.commit(Change(waiting), time.time())
                topic = await old.of(waiting)  # the old process makes the topic
                await new.sync(answered, topic)  # the new one renames it: answered
                await old.sync(waiting, topic)  # the customer wrote: waiting again
                (shown,) = sandbox.topics(GROUP)
                assert shown.name == render.topic_name(waiting)
        finally:
            store.close()


async def test_two_processes_keep_a_card_current(tmp_path: Path) -> None:
    """Either process may deliver a card's next update: what the other made the card show
    since is known, so an edit it made necessary is not skipped."""
    async with TelegramSandbox() as sandbox:
        furnish(sandbox)
        store = SQLiteStore(f"sqlite:///{tmp_path}/t.db")
        clock = FakeClock(time.time())
        try:
            async with Bot(SANDBOX_TOKEN, base_url=sandbox.api_url) as bot:
                service = Service(store, Policy(), clock)
                old, new = (Deliverer(bot, service, clock, Memory(), GROUP) for _ in "ab")
                waiting = Conversation(customer_ref(ALICE), f"telegram:{GROUP}", "Alice",
                                       clock.now())
                store.commit(Change(waiting), clock.now())
                posted = await old.deliver(PostCard(waiting))
                assert posted is not None and posted.card is not None
                waiting = replace(waiting, card=posted.card)
                claimed = replace(waiting, state=State.WAITING_ON_CUSTOMER, owner=str(BEN))
                await old.deliver(UpdateCard(waiting))  # the old process: as posted
                await new.deliver(UpdateCard(claimed))  # the new one: Ben has it
                await old.deliver(UpdateCard(waiting))  # Ben gave it back: waiting again
                topic, card = (int(part) for part in posted.card.split(":"))
                message = sandbox.message(GROUP, card)
                assert message is not None
                assert message["text"] == render_text(render.card(waiting, old.memory))
                (shown,) = sandbox.topics(GROUP)
                assert shown.thread_id == topic and shown.name == render.topic_name(waiting)
        finally:
            store.close()


def render_text(html: str) -> str:
    """The card's text as Telegram shows it (the HTML markup taken out)."""
    return re.sub(r"<[^>]*>", "", html).replace("&lt;", "<").replace("&gt;", ">") \
        .replace("&amp;", "&")

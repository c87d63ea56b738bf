"""Each conversation's forum topic: made when first needed and stored at once, made anew
when Telegram says it is gone, its name and open/closed state kept in step with the status.

The stored card id is `<topic>:<card message>`; `<topic>:0` is a topic whose card is not
posted yet (a copy of the customer's first message may go before the card does). So an
operator's first message in a new topic always finds its conversation, and neither a
retry nor a restart makes a second topic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from telegram import Bot, Message
from telegram.error import BadRequest

from chat_rescue.adapters.telegram import keyboards, render, shown
from chat_rescue.adapters.telegram.memory import Memory
from chat_rescue.adapters.telegram.pacing import RECHECK, RENAME_PATIENCE, RENAME_SPARE, RoomWait
from chat_rescue.adapters.telegram.translate import topic_alias
from chat_rescue.bot.clock import Clock, SystemClock
from chat_rescue.bot.model import Conversation, State
from chat_rescue.bot.outbox import Postpone
from chat_rescue.bot.ports import Conversations, ScopeSettings
from chat_rescue.bot.worker import StoreWorker

log = logging.getLogger(__name__)

T = TypeVar("T")
NO_CARD = 0
# What Telegram says about a topic that was deleted (or never was).
GONE = ("message thread not found", "topic_deleted", "topic_id_invalid", "thread not found")

Send = Callable[..., Awaitable[Message]]


class TopicStore(Conversations, ScopeSettings, Protocol):
    """Conversations' cards, and what their topics show (`shown.py`)."""


def says(error: BadRequest, *needles: str) -> bool:
    text = error.message.lower()
    return any(needle.lower() in text for needle in needles)


class Topics:
    """Finds, makes and heals conversations' topics in the support group."""

    def __init__(self, bot: Bot, store: TopicStore, memory: Memory, group: int, send: Send,
                 room_wait: RoomWait = lambda messages, spare: 0.0,
                 clock: Clock | None = None, worker: StoreWorker | None = None) -> None:
        self.bot = bot
        self.store = store
        self._call = (worker or StoreWorker()).call  # store work off the event loop
        self.memory = memory
        self.group = group
        self._send = send  # Deliverer._send: a message into a topic or General
        self._card_owed: set[str] = set()  # healed topics whose new card is not up yet
        self._room_wait = room_wait  # seconds until the group's window has room
        self._clock = clock or SystemClock()
        self._renames_waiting: dict[int, float] = {}  # topic -> since when (monotonic)

    async def of(self, conv: Conversation) -> int:
        """The conversation's topic, made (and stored) when it has none yet."""
        ids = render.parse_card(conv.card)
        if ids is None:
            return await self._create(conv)
        self.memory.note_topic(conv.ref.key, ids[0])
        return ids[0]

    async def _create(self, conv: Conversation) -> int:
        name = render.topic_name(conv)
        topic = (await self.bot.create_forum_topic(self.group, name)).message_thread_id
        self.memory.topic_names[topic] = name
        self.memory.topic_closed[topic] = False
        self.memory.note_topic(conv.ref.key, topic)
        await self.keep(topic, {shown.NAME: name, shown.CLOSED: "0"})
        await self._call(self.store.attach, conv.ref.key, render.card_id(topic, NO_CARD),
                         (topic_alias(topic),))
        return topic

    async def post_card(self, conv: Conversation, topic: int) -> tuple[int, str]:
        """Post the card into the topic; returns the topic and the card id (also stored)."""
        card = await self._send(render.card(conv, self.memory), thread=topic,
                                markup=keyboards.card(conv))
        card_id = render.card_id(topic, card.message_id)
        await self._call(self.store.attach, conv.ref.key, card_id, (topic_alias(topic),))
        return topic, card_id

    async def heal(self, conv: Conversation, why: str, *, with_card: bool = True) -> int:
        """The topic is gone (deleted by hand, say): make a new one with a new card, so
        the customer is never cut off; what was waiting is delivered into it."""
        log.warning("Telegram: the topic of %s is gone (%s); making a new one", conv.ref.key,
                    why)
        topic = await self._create(conv)
        if with_card:
            self._card_owed.add(conv.ref.key)  # until it is posted: a 429 may come first
            await self.post_card(conv, topic)
            self._card_owed.discard(conv.ref.key)
        return topic

    async def send_in(self, key: str, send: Callable[[int], Awaitable[T]], *,
                      posts_card: bool = False, reopen: bool = True) -> T:
        """`send(topic)` into the conversation's topic: reopened if closed underneath us
        (unless not to `reopen`), made anew if gone (with a new card, unless `send` posts
        it)."""
        conv = await self._call(self.store.load, key)
        if conv is None:
            raise LookupError(f"no conversation {key}")
        topic = await self.of(conv)
        if conv.ref.key in self._card_owed and not posts_card:
            await self.post_card(conv, topic)  # the new topic's card, before anything else
            self._card_owed.discard(conv.ref.key)
        try:
            return await send(topic)
        except BadRequest as bad:
            if says(bad, "topic_closed") and reopen:
                await self.call(self.bot.reopen_forum_topic(self.group, topic))
                self.memory.topic_closed[topic] = False
                await self.keep(topic, {shown.CLOSED: "0"})
                return await send(topic)
            if says(bad, "topic_closed") or not says(bad, *GONE):
                raise
            now = await self._call(self.store.load, key)
            topic = await self.heal(now or conv, bad.message, with_card=not posts_card)
        return await send(topic)

    async def recall(self, topic: int) -> None:
        """What the topic and its cards show, as the replica that last changed them stored
        it: another may have delivered since this one did."""
        self.memory.take(topic, await self._call(shown.recall, self.store, self.group, topic))

    async def keep(self, topic: int, marks: dict[str, str]) -> None:
        """Store what a delivery just made the topic or a card show, for every replica."""
        await self._call(shown.keep, self.store, self.group, topic, marks, self._clock.now())

    async def sync(self, conv: Conversation, topic: int, *, recalled: bool = False) -> None:
        """Topic name shows the status; a closed conversation has a closed topic. What it
        shows now is read from the store first, unless the caller just did (`recalled`).

        Each change leaves a service message, which counts against the group's limit:
        while the group lacks room, this raises Postpone (the card's update looks again
        soon). A rename alone leaves room for customers' messages for a while (pacing.py)."""
        if not recalled:
            await self.recall(topic)
        closed = conv.state is State.CLOSED
        name = render.topic_name(conv)
        opens = not closed and self.memory.topic_closed.get(topic) is not False
        renames = self.memory.topic_names.get(topic) != name
        closes = closed and self.memory.topic_closed.get(topic) is not True
        if opens or renames or closes:
            now = self._clock.monotonic()
            since = self._renames_waiting.setdefault(topic, now)
            urgent = opens or closes or now - since >= RENAME_PATIENCE
            wait = self._room_wait(opens + renames + closes, 0 if urgent else RENAME_SPARE)
            if wait > 0:
                raise Postpone(min(wait, RECHECK), "the support group's window is full")
            self._renames_waiting.pop(topic, None)
        made: dict[str, str] = {}
        try:
            if opens:
                await self.call(self.bot.reopen_forum_topic(self.group, topic))
                self.memory.topic_closed[topic] = False
                made[shown.CLOSED] = "0"
            if renames:
                await self.call(self.bot.edit_forum_topic(self.group, topic, name=name))
                self.memory.topic_names[topic] = name
                made[shown.NAME] = name
            if closes:
                await self.call(self.bot.close_forum_topic(self.group, topic))
                self.memory.topic_closed[topic] = True
                made[shown.CLOSED] = "1"
        finally:  # what was done is stored though a later step failed
            if made:
                await self.keep(topic, made)

    async def call(self, call: Awaitable[bool]) -> None:
        """A topic call where "nothing to change" is fine."""
        try:
            await call
        except BadRequest as bad:
            if not says(bad, "not_modified", "not modified"):
                raise


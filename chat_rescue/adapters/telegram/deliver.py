"""Outbound: one handler per action type, Telegram errors mapped to the outbox's terms.

RetryAfter (429) becomes RetryLater; a customer who blocked the bot makes the action
Undeliverable (and is recorded once); other Bad Requests are permanent; network
errors, timeouts and 5xx propagate so the outbox backs off. Steps of a multi-call
action that already succeeded are not repeated when the action is retried.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import timedelta
from typing import Any, TypeVar

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError
from telegram.warnings import PTBDeprecationWarning

from chat_rescue.adapters.telegram import keyboards, render
from chat_rescue.adapters.telegram.health import mark_blocked
from chat_rescue.adapters.telegram.memory import NAMES_SCOPE, RELOAD, RELOAD_UNKNOWN, Memory
from chat_rescue.adapters.telegram.pacing import RoomWait
from chat_rescue.adapters.telegram.shown import CARD, digest
from chat_rescue.adapters.telegram.topics import GONE, NO_CARD, Topics
from chat_rescue.adapters.telegram.translate import topic_alias
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.hours import is_open
from chat_rescue.bot.model import (
    Action,
    CloseNotice,
    CloseReminder,
    ConversationRef,
    Digest,
    Escalate,
    HandoverDigest,
    Nudge,
    OffHoursNotice,
    PostCard,
    Refused,
    Relay,
    ReturnToInbox,
    State,
    SweepCard,
    UpdateCard,
)
from chat_rescue.bot.outbox import Lacking, Posted, RetryLater, Undeliverable
from chat_rescue.bot.service import Service

log = logging.getLogger(__name__)

ADMINS_FOR = 600.0  # seconds the support group's administrator list is trusted

T = TypeVar("T")
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# Bad Requests that a fixed configuration cures: retried with backoff, not dropped.
FIXABLE = ("not enough rights", "chat not found", "chat_admin_required", "need administrator")
MAX_STEPS = 1000
RIGHTS_RETRY = 60.0  # seconds between tries while the bot lacks a right
EDITED_MARK = "✏️ edited:"  # before the copy of an edited message


def retry_seconds(error: RetryAfter) -> float:
    """`retry_after` in seconds: an int before PTB_TIMEDELTA, a timedelta after."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: int | float | timedelta = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _is(error: BadRequest, *needles: str) -> bool:
    text = error.message.lower()
    return any(needle.lower() in text for needle in needles)


class Deliverer:
    """Delivers each action type to the support group or a customer's private chat."""

    def __init__(self, bot: Bot, service: Service, clock: Clock, memory: Memory,
                 support_chat_id: int, room_wait: RoomWait = lambda messages, spare: 0.0
                 ) -> None:
        self.bot = bot
        self.service = service
        self.clock = clock
        self.memory = memory
        self.group = support_chat_id
        self._steps: OrderedDict[Hashable, Any] = OrderedDict()
        # When the administrators were asked (monotonic), and their mentions.
        self._admins: tuple[float, str | None] = (-ADMINS_FOR, None)
        self._names_at: float | None = None  # when the stored names were last learned
        self._names_loading: asyncio.Future[None] | None = None  # that look, under way
        self.topics = Topics(bot, service.store, memory, support_chat_id, self._send,
                             room_wait, clock, service.worker)
        self.lacking: str | None = None  # the right the bot was last refused for
        self.on_moved: Callable[[int], Awaitable[None]] = self._moved
        self._handlers: dict[type, Callable[[Any], Awaitable[Posted | None]]] = {
            PostCard: self._post_card,
            UpdateCard: self._update_card,
            Relay: self._relay,
            Nudge: self._nudge,
            ReturnToInbox: self._returned,
            Escalate: self._escalate,
            CloseReminder: self._close_reminder,
            CloseNotice: self._to_customer,
            OffHoursNotice: self._to_customer,
            Refused: self._refused,
            Digest: self._digest,
            SweepCard: self._sweep_card,
            HandoverDigest: self._handover,
        }

    async def deliver(self, action: Action) -> Posted | None:
        """Deliver one action; refuses types it does not know."""
        handler = self._handlers.get(type(action))
        if handler is None:
            raise TypeError(f"telegram cannot deliver {type(action).__name__}")
        await self.learn_names(unknown=self.memory.unknown_in(action))
        try:
            posted = await handler(action)
        except RetryAfter as wait:
            raise RetryLater(retry_seconds(wait), "Telegram flood control") from wait
        except ChatMigrated as moved:
            # The group became a supergroup with a new id: follow it, and try again there.
            await self.on_moved(int(moved.new_chat_id))
            raise RetryLater(0.0, f"the support group moved to {moved.new_chat_id}") from moved
        except BadRequest as bad:
            if _is(bad, *FIXABLE):
                # Only an admin can cure this: keep the action (it goes once the right is
                # given back) without using up its attempts, and say what is missing.
                await self._lacking(bad.message)
                raise Lacking(RIGHTS_RETRY, f"the bot lacks a right in the support group "
                                 f"({bad.message})") from bad
            raise Undeliverable(f"Telegram refused {type(action).__name__}: {bad.message}") \
                from bad
        self.lacking = None
        self._forget(action)
        if isinstance(action, Digest):
            for notice in action.notices:
                self._steps.pop(("digest", notice), None)
        return posted

    # -- cards -------------------------------------------------------------------------------

    async def _post_card(self, action: PostCard) -> Posted:
        conv = action.conversation
        key = conv.ref.key
        ids = render.parse_card(conv.card)
        if ids is not None and ids[1] != NO_CARD and conv.card:
            topic, card = ids[0], conv.card  # posted before a restart: announce it only
        else:  # into its topic, made now unless a copy of a message made it first
            topic, card = await self.topics.send_in(
                key, lambda t: self.topics.post_card(conv, t), posts_card=True)
        if conv.owner is not None or conv.state is State.CLOSED:
            self._forget(key)  # answered before its card went out: nothing to announce
            return Posted(card, (topic_alias(topic),))
        # While the team is closed the group hears of it at the opening, not at night.
        policy = await self.service.call(self.service.policy, conv.team, conv.ref)
        quiet = not is_open(policy.schedule, self.clock.now())
        try:
            await self._once((key, "announce"), lambda: self._send(
                render.announcement(conv),
                markup=keyboards.claim(key, render.topic_link(self.group, topic)), quiet=quiet))
        except BadRequest as bad:  # the topic and card exist: losing the announcement is minor
            if _is(bad, *FIXABLE):
                raise
            log.warning("could not announce a new conversation in General: %s", bad.message)
        self._forget(key)
        return Posted(card, (topic_alias(topic),))

    async def _update_card(self, action: UpdateCard) -> None:
        conv = action.conversation
        ids = render.parse_card(conv.card)
        if ids is None:
            return None  # nothing posted yet: the PostCard queued before this shows it all
        topic, card = ids
        if card == NO_CARD:
            # Its PostCard went first (a lane's order), so the card was lost on the way (a
            # healed topic whose card post failed): post it now.
            topic, _ = await self.topics.send_in(
                conv.ref.key, lambda t: self.topics.post_card(conv, t), posts_card=True)
            await self.topics.sync(conv, topic)
            return None
        text, markup = render.card(conv, self.memory), keyboards.card(conv)
        shown = digest(text + (markup.to_json() if markup else ""))
        await self.topics.recall(topic)  # another replica may have edited it since
        if self.memory.cards.get(card) != shown:  # the card may not show what changed
            try:
                await self.bot.edit_message_text(
                    text, chat_id=self.group, message_id=card, parse_mode=ParseMode.HTML,
                    reply_markup=markup)
                await self._shown_on_card(topic, card, shown)
            except BadRequest as bad:
                if _is(bad, "not modified"):
                    await self._shown_on_card(topic, card, shown)
                elif _is(bad, "message to edit not found", *GONE):
                    # Deleted by hand (or with its topic): a new card, in a new topic if need be.
                    topic, _ = await self.topics.send_in(
                        conv.ref.key, lambda t: self.topics.post_card(conv, t), posts_card=True)
                else:
                    raise
        try:
            await self.topics.sync(conv, topic, recalled=True)
        except BadRequest as bad:
            if not _is(bad, *GONE):
                raise
            await self.topics.heal(conv, bad.message)
        return None

    async def _shown_on_card(self, topic: int, card: int, shown: str) -> None:
        self.memory.shown_on_card(card, shown)
        await self.topics.keep(topic, {f"{CARD}{card}": shown})

    # -- relaying ----------------------------------------------------------------------------

    async def _relay(self, action: Relay) -> None:
        """Copy a message across; an edited one is copied again (copyMessage takes its
        current content) after a short mark saying it is an edit, sent once."""
        if action.to_customer:
            chat = int(action.ref.channel)
            try:
                if action.edited:
                    await self._once((action, "mark"),
                                     lambda: self.bot.send_message(chat, EDITED_MARK))
                await self.bot.copy_message(chat, int(action.from_chat), int(action.message_id))
            except (Forbidden, BadRequest) as gone:
                await self._customer_gone(action.ref, gone)
            return None
        key = action.ref.key
        if await self.service.call(self.service.store.load, key) is None:
            raise Undeliverable("no conversation to copy into")

        async def copy(topic: int) -> int:
            if action.edited:
                await self._once((action, "mark"), lambda: self._send(EDITED_MARK, thread=topic))
            return await self._copy_to_topic(action, topic)

        # An edit is no new message: it reopens no closed topic (Telegram refuses; dropped).
        # The topic's name follows the card's status, so it changes with a card update,
        # never here: a copy is one message of the group's window, not two.
        await self.topics.send_in(key, copy, reopen=not action.edited)
        return None

    async def _copy_to_topic(self, action: Relay, topic: int) -> int:
        await self.bot.copy_message(self.group, int(action.from_chat), int(action.message_id),
                                    message_thread_id=topic)
        return topic

    async def _customer_gone(self, ref: ConversationRef, error: TelegramError) -> None:
        """The customer blocked the bot (or never started it): record once, tell the topic.

        Other refusals of a message to the customer (it was deleted, say) are just dropped.
        """
        if isinstance(error, BadRequest):
            if _is(error, "chat not found", "user is deactivated"):
                raise Undeliverable(f"customer {ref.channel} is gone: {error.message}") from error
            raise error
        if await self.service.call(mark_blocked, self.service, self.memory, ref,
                                   self.clock.now()):
            conv = await self.service.call(self.service.store.load, ref.key)
            topic = await self._topic(ref)
            who = conv.customer if conv else "The customer"
            if topic is not None:
                await self._best_effort(self._send(
                    f"⚠️ {html.escape(who)} has blocked the bot: they will not get our messages "
                    "until they write again.", thread=topic))
        raise Undeliverable(f"customer {ref.channel} is unreachable: {error.message}")

    # -- notices -----------------------------------------------------------------------------

    async def _nudge(self, action: Nudge) -> None:
        await self._in_topic(action.ref, render.nudge(action, self.memory),
                             keyboards.nudge(action.ref.key, action.notice_id))

    async def _returned(self, action: ReturnToInbox) -> None:
        if action.previous_owner:
            await self._once((action, "owner"), lambda: self._in_topic(
                action.ref, render.returned_to_owner(action, self.memory)))
        await self._send(render.returned(action, self.memory),
                         markup=self._claim_markup(action.ref, await self._topic(action.ref)))

    async def _escalate(self, action: Escalate) -> None:
        topic = await self._topic(action.ref, action.card)
        everyone = await self._administrators() if render.calls_everyone(action.target) else None
        await self._send(render.escalated(action, everyone),
                         markup=self._claim_markup(action.ref, topic))

    async def _administrators(self) -> str | None:
        """Mentions of the support group's human administrators (asked at most every
        ADMINS_FOR seconds): Telegram has no @here, so they are who `@here` calls in.
        None (the target stays as written) when Telegram cannot tell us."""
        asked_at, mentions = self._admins
        if mentions is not None and self.clock.monotonic() - asked_at < ADMINS_FOR:
            return mentions
        try:
            members = await self.bot.get_chat_administrators(self.group)
        except RetryAfter:
            raise
        except TelegramError as failed:
            log.warning("could not list the support group's administrators for @here: %s",
                        failed)
            return mentions
        people = [m.user for m in members if not m.user.is_bot]
        for person in people:
            self.memory.remember(person)
        mentions = " ".join(render.mention(str(p.id), self.memory) for p in people) or None
        self._admins = (self.clock.monotonic(), mentions)
        return mentions

    async def _close_reminder(self, action: CloseReminder) -> None:
        await self._in_topic(action.ref, render.close_reminder(action, self.memory),
                             keyboards.close_reminder(action.ref.key, action.notice_id))

    async def _to_customer(self, action: CloseNotice | OffHoursNotice) -> None:
        """A closing message or the off-hours notice, in the customer's private chat."""
        try:
            await self.bot.send_message(int(action.ref.channel), action.text)
        except (Forbidden, BadRequest) as gone:
            await self._customer_gone(action.ref, gone)

    async def _refused(self, action: Refused) -> None:
        if action.via == "button":
            return None  # answered on the press itself, as an alert (`Inbound._act`)
        await self._in_topic(action.ref, render.refused(action, self.memory))
        return None

    async def _digest(self, action: Digest) -> None:
        everyone = None
        if any(isinstance(n, Escalate) and render.calls_everyone(n.target)
               for n in action.notices):
            everyone = await self._administrators()
        # As many messages as Telegram's length limit needs. A notice already sent in an
        # earlier try is not sent again, though the digest is made anew for the retry
        # (a 429 on the second message, say, then one notice dropped as no longer true).
        left = tuple(n for n in action.notices if ("digest", n) not in self._steps)
        for text, notices in render.digests(left, self.memory, everyone) if left else ():
            await self._send(text, markup=keyboards.digest(_choices(notices)))
            for notice in notices:
                self._note(("digest", notice))

    async def _sweep_card(self, action: SweepCard) -> None:
        """The operator's sweep card in General, mentioning them; as many messages as the
        length limit and keyboard size need (a retry does not send the parts that went)."""
        for index, (text, part) in enumerate(render.sweep_cards(action, self.memory)):
            markup = keyboards.sweep_card(action, part, index == 0, render.sweep_names(part))
            await self._once((action, "part", index),
                             functools.partial(self._send, text, markup=markup))

    async def _handover(self, action: HandoverDigest) -> None:
        """What the last shift handed over, in General, each with Claim."""
        for index, (text, lines) in enumerate(render.handovers(action, self.memory)):
            markup = keyboards.digest(("claim", line.key, line.customer or "customer", "")
                                      for line in lines)
            await self._once((action, "part", index),
                             functools.partial(self._send, text, markup=markup))

    # -- helpers -----------------------------------------------------------------------------

    def _claim_markup(self, ref: ConversationRef, topic: int | None) -> InlineKeyboardMarkup:
        link = render.topic_link(self.group, topic) if topic is not None else None
        return keyboards.claim(ref.key, link)

    async def _in_topic(self, ref: ConversationRef, text: str,
                        markup: InlineKeyboardMarkup | None = None) -> Message:
        """A message into the conversation's topic (made anew if it was deleted)."""
        return await self.topics.send_in(
            ref.key, lambda topic: self._send(text, thread=topic, markup=markup))

    async def _topic(self, ref: ConversationRef, card: str | None = None) -> int | None:
        """The conversation's topic id, from the card id (the stored one when not given)."""
        if card is None:
            conv = await self.service.call(self.service.store.load, ref.key)
            card = conv.card if conv else None
        ids = render.parse_card(card)
        return ids[0] if ids else None

    async def _send(self, text: str, *, thread: int | None = None,
                    markup: InlineKeyboardMarkup | None = None,
                    quiet: bool = False) -> Message:
        """A message to the support group: a topic, or General (no message_thread_id);
        `quiet`: without a notification sound (the team is closed)."""
        return await self.bot.send_message(
            self.group, text, parse_mode=ParseMode.HTML, message_thread_id=thread,
            reply_markup=markup, link_preview_options=NO_PREVIEW,
            disable_notification=quiet or None)

    async def _once(self, step: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        """Run a step of a multi-call action once, even if the action is retried."""
        if step in self._steps:
            done: T = self._steps[step]
            return done
        result = await call()
        self._steps[step] = result
        while len(self._steps) > MAX_STEPS:
            self._steps.popitem(last=False)
        return result

    def _note(self, step: Hashable) -> None:
        """Remember a step as done (see `_once`)."""
        self._steps[step] = True
        while len(self._steps) > MAX_STEPS:
            self._steps.popitem(last=False)

    def _forget(self, owner: Hashable) -> None:
        for step in [s for s in self._steps if isinstance(s, tuple) and s[0] == owner]:
            del self._steps[step]

    async def learn_names(self, *, unknown: bool = False) -> None:
        """Operators' names as the replica that polls stored them: only that one sees
        updates, and a card or notice shows names. At most every RELOAD seconds, or
        every RELOAD_UNKNOWN when the action names somebody this replica does not know;
        deliveries asking at once share one look."""
        now = self.clock.monotonic()
        wait = RELOAD_UNKNOWN if unknown else RELOAD
        if self._names_at is not None and now - self._names_at < wait:
            if not unknown:
                return
            # Somebody this replica does not know, and it looked a moment ago: perhaps
            # before the leader stored the name (a claim's card follows the claim within
            # milliseconds). Wait out the rest of the pause and look again, not skip.
            looked = self._names_at
            await asyncio.sleep(self.clock.real(min(wait, max(0.0, wait - (now - looked)))))
            if self._names_at != looked:  # another delivery looked meanwhile
                if self._names_loading is not None:
                    await asyncio.shield(self._names_loading)
                return
        self._names_at = self.clock.monotonic()
        if self._names_loading is None:
            self._names_loading = asyncio.ensure_future(self._load_names())
        await asyncio.shield(self._names_loading)

    async def _load_names(self) -> None:
        try:
            self.memory.learn(await self.service.call(self.service.store.settings,
                                                      NAMES_SCOPE))
        finally:
            self._names_loading = None

    def move_to(self, chat_id: int) -> None:
        """Deliver to the support group under its new id from now on."""
        self.group = self.topics.group = chat_id

    async def _moved(self, chat_id: int) -> None:
        self.move_to(chat_id)

    async def _lacking(self, message: str) -> None:
        """Say once (log and General) which right the bot lacks, until it works again."""
        if self.lacking is not None:
            return
        self.lacking = message
        log.error("Telegram: the bot cannot do its work in the support group: %s. Make it an "
                  "administrator with 'Manage Topics' (and 'Delete messages'); `chat-rescue "
                  "check` tells what is missing. Nothing is lost meanwhile.", message)
        await self._best_effort(self._send(
            "⚠️ chat-rescue cannot work here: Telegram says <i>"
            f"{html.escape(message)}</i>. Make the bot an administrator with "
            "<b>Manage Topics</b>; what waits is sent as soon as it can be."))

    async def _best_effort(self, call: Awaitable[Any]) -> None:
        """A secondary call after the action's main effect: failing it must not repeat that."""
        try:
            await call
        except TelegramError as failed:
            log.warning("secondary Telegram call failed: %s", failed)


def _choices(notices: tuple[Action, ...]) -> list[tuple[str, str, str, str]]:
    """(kind, key, customer, notice id) of each notice of a digest, for its buttons."""
    choices = []
    for notice in notices:
        if isinstance(notice, ReturnToInbox | Escalate):
            choices.append(("claim", notice.ref.key, notice.customer or "customer", ""))
        elif isinstance(notice, Nudge | CloseReminder):
            kind = "nudge" if isinstance(notice, Nudge) else "reminder"
            choices.append((kind, notice.ref.key, notice.customer or "customer",
                            notice.notice_id))
    return choices

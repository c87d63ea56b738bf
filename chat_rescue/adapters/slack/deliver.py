"""Model actions out: one Web API sequence per action type, unknown types refused.

Slack's answers become the outbox's vocabulary: a 429 is `RetryLater(Retry-After)`,
a channel that is gone or closed to us is `Undeliverable`, anything else (5xx,
network) is raised as is so the outbox backs off and tries again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from chat_rescue.adapters.slack import blocks
from chat_rescue.adapters.slack.errors import api_error, outbox_verdict
from chat_rescue.adapters.slack.mentions import escape, user
from chat_rescue.adapters.slack.translate import card_alias
from chat_rescue.bot import texts
from chat_rescue.bot.model import (
    Action,
    CloseNotice,
    CloseReminder,
    Conversation,
    ConversationRef,
    Digest,
    Escalate,
    HandoverDigest,
    Nudge,
    OffHoursNotice,
    PostCard,
    Refused,
    ReturnToInbox,
    SweepCard,
    UpdateCard,
)
from chat_rescue.bot.outbox import Posted

log = logging.getLogger(__name__)

# chat.update cannot find the card: post a fresh one instead.
CARD_GONE = frozenset({"message_not_found", "cant_update_message"})


class SlackDelivery:
    """Delivers actions through the Web API. A card posted anew (for an UpdateCard whose
    card is gone) is returned as Posted: the outbox records it, as for a PostCard."""

    def __init__(self, client: AsyncWebClient, team_channel: str, *,
                 sweep_dm: bool = False) -> None:
        self.client = client
        self.team_channel = team_channel
        self.sweep_dm = sweep_dm  # sweep cards in each operator's DM with the app
        # Steps of multi-message actions already sent, so a retry does not repeat them.
        self._sent: set[tuple[str, ...]] = set()
        self._handlers: dict[type, Callable[[Any], Awaitable[Posted | None]]] = {
            PostCard: self._post_card,
            UpdateCard: self._update_card,
            Nudge: self._nudge,
            ReturnToInbox: self._returned,
            Escalate: self._escalate,
            CloseReminder: self._close_reminder,
            CloseNotice: self._close_notice,
            OffHoursNotice: self._off_hours_notice,
            Refused: self._refused,
            Digest: self._digest,
            SweepCard: self._sweep_card,
            HandoverDigest: self._handover,
        }

    async def deliver(self, action: Action) -> Posted | None:
        """Deliver one action; raises RetryLater / Undeliverable / the API error."""
        handler = self._handlers.get(type(action))
        if handler is None:
            raise TypeError(f"Slack cannot deliver {type(action).__name__}")
        try:
            return await handler(action)
        except SlackApiError as failed:
            verdict = outbox_verdict(failed)
            if verdict is None:
                raise
            raise verdict from failed

    # --- one handler per action type

    async def _post_card(self, action: PostCard) -> Posted:
        return await self._new_card(action.conversation)

    async def _update_card(self, action: UpdateCard) -> Posted | None:
        conv = action.conversation
        if conv.card is None:
            return await self._new_card(conv)
        message = blocks.card(conv)
        try:
            await self.client.chat_update(channel=self.team_channel, ts=conv.card,
                                          text=message.text, blocks=message.blocks)
        except SlackApiError as failed:
            if api_error(failed) not in CARD_GONE:
                raise
            log.info("card of %s is gone (%s); posting a new one", conv.ref.key, api_error(failed))
            return await self._new_card(conv)
        return None

    async def _nudge(self, action: Nudge) -> None:
        link = await self._permalink(action.ref)
        await self._post(blocks.nudge(action, link), thread=action.card)

    async def _returned(self, action: ReturnToInbox) -> None:
        step = (action.ref.key, "returned", f"{action.waited}", "told owner")
        if action.previous_owner:  # in the operator thread (top level if there is no card)
            await self._once(step, lambda: self._post_text(blocks.told_owner(action),
                                                           thread=action.card))
        await self._post(blocks.returned(action))
        self._sent.discard(step)

    async def _escalate(self, action: Escalate) -> None:
        await self._post(blocks.escalated(action))

    async def _close_reminder(self, action: CloseReminder) -> None:
        await self._post(blocks.close_reminder(action), thread=action.card)

    async def _close_notice(self, action: CloseNotice) -> None:
        await self._to_customer(action.ref, texts.close_notice(action))

    async def _off_hours_notice(self, action: OffHoursNotice) -> None:
        await self._to_customer(action.ref, texts.off_hours_notice(action))

    async def _refused(self, action: Refused) -> None:
        if action.via == "button":
            return  # answered on the click itself (`SlackAdapter._answer_click`)
        await self.client.chat_postEphemeral(
            channel=self.team_channel, user=action.who,
            text=texts.refused(action, user(action.owner or "")))

    async def _digest(self, action: Digest) -> None:
        await self._post(blocks.digest(action.notices))

    async def _sweep_card(self, action: SweepCard) -> None:
        channel = self.sweep_card_channel(action)
        for number, message in enumerate(blocks.sweep_card(action)):
            # A retry after a failure half-way does not post the parts that went out.
            await self._once(("sweep", str(action.card), str(number)),
                             functools.partial(self._post, message, channel=channel))
        self._forget(("sweep", str(action.card)))

    def sweep_card_channel(self, action: SweepCard) -> str:
        """Where an operator's sweep card goes: the team channel (mentioning them), or
        their direct messages with the app (a user id as the channel opens them)."""
        return action.operator if self.sweep_dm else self.team_channel

    async def _handover(self, action: HandoverDigest) -> None:
        for number, message in enumerate(blocks.handover(action)):
            await self._once(("handover", action.sweep, str(number)),
                             functools.partial(self._post, message))
        self._forget(("handover", action.sweep))

    # --- helpers

    async def _to_customer(self, ref: ConversationRef, text: str) -> None:
        """A reply in the customer's own thread."""
        await self.client.chat_postMessage(channel=ref.channel, thread_ts=ref.thread or None,
                                           text=escape(text))

    async def _new_card(self, conv: Conversation) -> Posted:
        ts = await self._post(blocks.card(conv))
        return Posted(card=ts, aliases=(card_alias(ts),))

    async def _post(self, message: blocks.Message, thread: str | None = None, *,
                    channel: str | None = None) -> str:
        response = await self.client.chat_postMessage(
            channel=channel or self.team_channel, thread_ts=thread or None, text=message.text,
            blocks=message.blocks, unfurl_links=False, unfurl_media=False)
        return str(response["ts"])

    async def _post_text(self, text: str, thread: str | None = None) -> str:
        response = await self.client.chat_postMessage(
            channel=self.team_channel, thread_ts=thread or None, text=text)
        return str(response["ts"])

    async def _once(self, step: tuple[str, ...], send: Callable[[], Awaitable[object]]) -> None:
        if step in self._sent:
            return
        await send()
        self._sent.add(step)

    def _forget(self, prefix: tuple[str, ...]) -> None:
        self._sent = {step for step in self._sent if step[:len(prefix)] != prefix}

    async def _permalink(self, ref: ConversationRef) -> str | None:
        """A link to the customer's thread for *Reply now*; None if Slack will not say."""
        try:
            response = await self.client.chat_getPermalink(channel=ref.channel,
                                                           message_ts=ref.thread)
        except SlackApiError as failed:
            if failed.response.status_code == 429:
                raise
            log.info("no permalink for %s: %s", ref.key, api_error(failed))
            return None
        link = response.get("permalink")
        return str(link) if link else None

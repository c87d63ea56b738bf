"""Steady support traffic for reliability tests of a bot in another process.

`SlackTraffic` plays Slack: customers write in #help, operators reply, react (👀 claims,
✅ closes) and press Claim, every event signed and retried until acknowledged, as Slack
retries; each attempt goes to one of the bot's HTTP endpoints (several endpoints: as a
load balancer spreads them, passing a request that an endpoint refuses on to another).
`TelegramTraffic` queues updates in the Telegram sandbox for the bot to fetch: customers
write to the bot, operators reply in topics and press Claim or Close on the card. Both
remember what the platform considers acknowledged, so a test can check that nothing
acknowledged was lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from chat_rescue.adapters.slack.translate import CLAIM_REACTION, CLOSE_REACTION
from chat_rescue.adapters.telegram.keyboards import callback_data
from chat_rescue.sandbox.slack_world import ANNA, BOB, CARL, HELP, SECRET, TEAM
from chat_rescue.sandbox.store_view import StoreView
from chat_rescue.sandbox.telegram import SANDBOX_TOKEN
from chat_rescue.sandbox.telegram_support import ANA, BEN, CHLOE, GROUP
from chat_rescue.sandbox.testbeds import RecordingEventsClient, SlackTestbed, TelegramTestbed

SLACK_OPERATORS = (ANNA, BOB, CARL)
TELEGRAM_OPERATORS = (ANA, BEN, CHLOE)
TELEGRAM_NAMES = {"Ana": str(ANA), "Ben": str(BEN), "Chloe": str(CHLOE)}
SEND_TIMEOUT = 5.0


def sandbox_env(database: Path | str, slack: SlackTestbed, telegram: TelegramTestbed,
                **extra: str) -> dict[str, str]:
    """The environment of a `chat-rescue run` child (`BotProcess`) that serves both
    sandboxes' standard worlds from `database` (a SQLite file, or a database URL), with
    the sandbox pacing; `extra` adds or overrides variables (the rescue timers,
    LOG_LEVEL, TELEGRAM_API_URL for one replica of several)."""
    return {
        "DATABASE_URL": database if isinstance(database, str) else f"sqlite:///{database}",
        "LOG_LEVEL": "WARNING",
        "PTB_TIMEDELTA": "true",
        "SANDBOX_PACING": "0.01",
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "SLACK_TEAM_CHANNEL": TEAM,
        "SLACK_INTAKE_CHANNELS": HELP,
        "TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN,
        "TELEGRAM_API_URL": telegram.api_url,
        "TELEGRAM_SUPPORT_CHAT_ID": str(GROUP),
        **extra,
    }


# -- Slack's side: signed events, retried until acknowledged --------------------------------


@dataclass
class SlackDelivery:
    """One event or click as Slack would deliver it, with its attempts."""

    what: str  # message | reaction | click
    key: str
    event: dict[str, Any] | None = None
    event_id: str = ""
    click: tuple[str, str, str] | None = None  # (user, card ts, key)
    attempts: int = 0
    acked: bool = False
    acked_at: float = 0.0  # time.monotonic() of the first 200
    inbound: str = ""  # the id the store keeps for it
    operator_reply: bool = False


@dataclass
class SlackConversation:
    customer: str
    root: str
    opened: bool = False  # its first message was acknowledged


class SlackTraffic:
    """Customers write, operators reply, react and click; Slack retries what failed.

    `clients` are the bot's endpoints (one per process); each attempt picks one.
    `closing` is the share of steps in which an operator closes a conversation with ✅.
    """

    def __init__(self, sandbox: SlackTestbed, clients: Sequence[RecordingEventsClient],
                 rng: random.Random, *, customers: int, closing: float = 0.0,
                 tag: str = "CRASH", send_timeout: float = SEND_TIMEOUT) -> None:
        self.sandbox = sandbox
        self.clients = list(clients)
        self.rng = rng
        self.customers = customers
        self.closing = closing
        self.tag = tag
        self.send_timeout = send_timeout
        self.view: StoreView | None = None
        self.conversations: dict[str, SlackConversation] = {}
        self.deliveries: list[SlackDelivery] = []
        self.retry: list[SlackDelivery] = []
        self.acked_inbound: dict[str, str] = {}  # inbound id -> conversation key
        self.click_ids: list[str] = []
        self.latencies: list[float] = []
        self.failed_attempts = 0
        self.late_retries = 0  # deliveries of an already acknowledged event_id
        self.passed_on = 0  # attempts an endpoint refused, passed on to another
        self.sent_to: Counter[str] = Counter()  # attempts per endpoint (events URL)
        self._ids = 0

    def add_endpoint(self, client: RecordingEventsClient) -> None:
        """One more endpoint to spread attempts over (another process is up)."""
        self.clients.append(client)

    def remove_endpoint(self, client: RecordingEventsClient) -> None:
        """Send no more attempts to `client`'s endpoint (its process is about to stop)."""
        self.clients.remove(client)

    @property
    def client(self) -> RecordingEventsClient:
        """The first endpoint's client (it makes the events; any endpoint takes them)."""
        return self.clients[0]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
            await asyncio.sleep(self.rng.uniform(0.04, 0.12))

    async def step(self) -> None:
        if self.retry and self.rng.random() < 0.7:
            await self.send(self.retry.pop(0))
            return
        roll = self.rng.random()
        opened = [k for k, c in self.conversations.items() if c.opened]
        if roll < 0.15 and len(self.conversations) < self.customers or not opened:
            if len(self.conversations) < self.customers:
                await self.new_conversation()
            return
        key = self.rng.choice(opened)
        conv = self.conversations[key]
        if self.closing and self.rng.random() < self.closing:
            await self.close(key, conv.root)
        elif roll < 0.40:
            await self.message(key, conv.customer, thread=conv.root)
        elif roll < 0.62:
            await self.message(key, self.rng.choice(SLACK_OPERATORS), thread=conv.root,
                               operator=True)
        elif roll < 0.72:
            await self.reaction(key, conv.root)
        elif roll < 0.85:
            await self.click(key)
        else:
            await self.late_retry()

    async def new_conversation(self) -> None:
        number = len(self.conversations) + 1
        customer = f"U0CUST{number:03d}"
        event = self.client.message_event(HELP, customer, f"Order {number} never arrived")
        key = f"slack:{HELP}:{event['ts']}"
        self.conversations[key] = SlackConversation(customer, str(event["ts"]))
        await self.send(SlackDelivery("message", key, event, self._event_id()))

    async def message(self, key: str, user: str, thread: str, operator: bool = False) -> None:
        event = self.client.message_event(HELP, user, "any news?" if not operator
                                          else "looking into it", thread_ts=thread)
        await self.send(SlackDelivery("message", key, event, self._event_id(),
                                      operator_reply=operator))

    async def reaction(self, key: str, root: str) -> None:
        event = self.client.reaction_event(self.rng.choice(SLACK_OPERATORS), CLAIM_REACTION,
                                           HELP, root)
        await self.send(SlackDelivery("reaction", key, event, self._event_id()))

    async def close(self, key: str, root: str) -> None:
        """The owner closes with ✅ (anybody may while nobody owns the conversation)."""
        owner = self.view.owner(key) if self.view else None
        closer = owner if owner in SLACK_OPERATORS else self.rng.choice(SLACK_OPERATORS)
        event = self.client.reaction_event(closer, CLOSE_REACTION, HELP, root)
        await self.send(SlackDelivery("reaction", key, event, self._event_id()))

    async def click(self, key: str) -> None:
        card = self.view.card(key) if self.view else None
        if card and self.sandbox.message(TEAM, card):
            user = self.rng.choice(SLACK_OPERATORS)
            await self.send(SlackDelivery("click", key, click=(user, card, key)))

    async def late_retry(self) -> None:
        done = [d for d in self.deliveries if d.acked and d.event is not None]
        if done:
            again = self.rng.choice(done)
            self.late_retries += 1
            await self.attempt(again, retry_num=min(3, again.attempts))

    async def send(self, delivery: SlackDelivery) -> None:
        if delivery.attempts == 0:
            self.deliveries.append(delivery)
        acked = await self.attempt(delivery, retry_num=delivery.attempts or None)
        if not acked and delivery.what != "click":  # Slack retries events, never clicks
            self.retry.append(delivery)

    async def attempt(self, delivery: SlackDelivery, retry_num: int | None) -> bool:
        began = time.monotonic()
        first = delivery.attempts == 0
        delivery.attempts += 1
        # The balancer picks an endpoint; one that refuses the connection (its process is
        # down) never saw the request, so the balancer passes it on to the next, as
        # nginx's proxy_next_upstream does. Once sent, a failure is Slack's to retry.
        picked = self.rng.choice(self.clients) if len(self.clients) > 1 else self.clients[0]
        others = [c for c in self.clients if c is not picked]
        self.rng.shuffle(others)
        for client in (picked, *others):
            self.sent_to[client.events_url] += 1
            try:
                async with asyncio.timeout(self.send_timeout):
                    if delivery.click is not None:
                        user, card, key = delivery.click
                        status, _ = await client.click_button(user, "claim", key, TEAM, card)
                        inbound = f"slack:action:{client.last_ts}"
                    else:
                        assert delivery.event is not None
                        status, _ = await client.send_event(
                            delivery.event, event_id=delivery.event_id, retry_num=retry_num)
                        inbound = f"slack:{delivery.event_id}"
                break
            except aiohttp.ClientConnectorError:
                self.passed_on += 1
                continue
            except (aiohttp.ClientError, TimeoutError):
                self.failed_attempts += 1
                return False
        else:
            self.failed_attempts += 1  # no endpoint took the connection
            return False
        if status != 200:
            self.failed_attempts += 1
            return False
        self.latencies.append(time.monotonic() - began)
        if first or not delivery.acked:
            delivery.acked, delivery.acked_at = True, time.monotonic()
            delivery.inbound = inbound
            self.acked_inbound[inbound] = delivery.key
            if delivery.click is not None:
                self.click_ids.append(inbound)
            conv = self.conversations[delivery.key]
            if delivery.event is not None and delivery.event.get("ts") == conv.root:
                conv.opened = True
        return True

    async def flush(self, timeout: float) -> None:
        """Deliver every event not yet acknowledged (the bot is up)."""
        until = time.monotonic() + timeout
        while self.retry and time.monotonic() < until:
            await self.send(self.retry.pop(0))

    def _event_id(self) -> str:
        self._ids += 1
        return f"Ev{self._ids:08d}{self.tag}"


# -- Telegram's side: updates queued in the sandbox, fetched by the bot ---------------------


@dataclass
class TelegramConversation:
    user_id: int
    name: str


@dataclass
class TelegramTraffic:
    """Customers write to the bot, operators reply in topics and press Claim (and, for a
    `closing` share of steps, Close on the card)."""

    sandbox: TelegramTestbed
    rng: random.Random
    customers: int
    closing: float = 0.0
    view: StoreView | None = None
    conversations: dict[str, TelegramConversation] = field(default_factory=dict)
    # update id -> (conversation key, relay source "<chat>:<message id>" or "" for a click)
    updates: dict[int, tuple[str, str]] = field(default_factory=dict)
    customer_updates: list[dict[str, Any]] = field(default_factory=list)
    reinjected: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.step()
            await asyncio.sleep(self.rng.uniform(0.04, 0.12))

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.15 and len(self.conversations) < self.customers or not self.conversations:
            if len(self.conversations) < self.customers:
                self.new_conversation()
            return
        key = self.rng.choice(list(self.conversations))
        conv = self.conversations[key]
        if self.closing and self.rng.random() < self.closing:
            self.press(key, "close")
        elif roll < 0.45:
            self.customer_writes(key, conv.user_id, "any news?")
        elif roll < 0.7:
            self.operator_replies(key)
        elif roll < 0.9:
            self.press(key, "claim")
        else:
            self.redeliver()

    def new_conversation(self) -> None:
        number = len(self.conversations) + 1
        user_id, name = 2000 + number, f"Cust{number:03d}"
        self.sandbox.add_user(user_id, name)
        key = f"telegram:{user_id}:"
        self.conversations[key] = TelegramConversation(user_id, name)
        self.customer_writes(key, user_id, f"Order {number} never arrived")

    def customer_writes(self, key: str, user_id: int, text: str) -> None:
        update = self.sandbox.private_message(user_id, text)
        source = f"{user_id}:{update['message']['message_id']}"
        self.updates[int(update["update_id"])] = (key, source)
        self.customer_updates.append(update)

    def operator_replies(self, key: str) -> None:
        topic = self._card(key)
        if topic is None:
            return
        update = self.sandbox.group_message(GROUP, self.rng.choice(TELEGRAM_OPERATORS),
                                            "on it", thread_id=topic[0])
        source = f"{GROUP}:{update['message']['message_id']}"
        self.updates[int(update["update_id"])] = (key, source)

    def press(self, key: str, verb: str) -> None:
        """Claim (anybody) or Close (the owner; anybody while nobody owns it) on the card."""
        topic = self._card(key)
        card = self.sandbox.message(GROUP, topic[1]) if topic else None
        if card is None:
            return
        presser = self.rng.choice(TELEGRAM_OPERATORS)
        owner = self.view.owner(key) if self.view and verb == "close" else None
        if owner is not None and owner.isdigit() and int(owner) in TELEGRAM_OPERATORS:
            presser = int(owner)
        update = self.sandbox.callback_query(presser, card, callback_data(verb, key))
        self.updates[int(update["update_id"])] = (key, "")

    def claim(self, key: str) -> None:
        self.press(key, "claim")

    def redeliver(self) -> None:
        """The same update again, as Telegram does when a confirmation went astray."""
        confirmed = [u for u in self.customer_updates
                     if int(u["update_id"]) in self.sandbox.confirmed]
        if confirmed and not self.sandbox.updates:
            self.sandbox.inject(self.rng.choice(confirmed))
            self.reinjected += 1

    def _card(self, key: str) -> tuple[int, int] | None:
        card = self.view.card(key) if self.view else None
        topic, _, message = (card or "").partition(":")
        return (int(topic), int(message)) if topic.isdigit() and message.isdigit() else None

"""A Telegram support group with chat-rescue running in it, for end-to-end tests and the demo.

`furnish` sets up the standard world in a `TelegramSandbox` (a forum support group,
operators, customers); `SupportGroup` starts the real bot (`server.Bot`, the real
python-telegram-bot stack) against it, in polling or webhook mode, and reads back what
the group and the customers see.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from chat_rescue.adapters.telegram import TelegramAdapter
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.model import Conversation
from chat_rescue.bot.pacing import uniform
from chat_rescue.bot.settings import Settings
from chat_rescue.sandbox.telegram import SANDBOX_TOKEN, TelegramSandbox
from chat_rescue.server import Bot

Json = dict[str, Any]

GROUP = -1001234567890  # the forum support group
ANA, BEN, CHLOE = 7, 8, 9  # operators; Ana created the group
ALICE, BRUNO = 42, 43  # customers
SECRET = "sandbox-webhook-secret"


def furnish(sandbox: TelegramSandbox) -> None:
    """The standard world: the support group with Ana (creator), Ben and Chloe; two customers."""
    group = sandbox.add_forum_group(GROUP, "Support", admins={ANA: "creator"})
    # A real group has service messages before its first topic, so no topic gets id 1
    # (the id of General).
    group.last_message_id = max(group.last_message_id, 10)
    for user_id, name, username in ((ANA, "Ana", "ana"), (BEN, "Ben", "ben"),
                                    (CHLOE, "Chloe", "chloe"), (ALICE, "Alice", "alice_k"),
                                    (BRUNO, "Bruno", None)):
        sandbox.add_user(user_id, name, username)
    sandbox.set_member(GROUP, BEN, "member")
    sandbox.set_member(GROUP, CHLOE, "member")


def free_port() -> int:
    """A port that was free a moment ago (the webhook URL must be known before start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sandbox_settings(sandbox: TelegramSandbox, database_url: str, *, webhook: bool = False,
                     **overrides: Any) -> Settings:
    """Settings pointing at the sandbox's support group; keywords override."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "host": "127.0.0.1",
        "port": 0,
        "telegram_bot_token": SANDBOX_TOKEN,
        "telegram_api_url": sandbox.api_url,
        "telegram_support_chat_id": str(GROUP),
    }
    if webhook:
        port = free_port()
        values["port"] = port
        values["telegram_webhook_url"] = f"http://127.0.0.1:{port}/telegram/webhook"
        values["telegram_webhook_secret"] = SECRET
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def eventually(check: Callable[[], Any], timeout: float = 3.0, poll: float = 0.01) -> Any:
    """Poll until `check()` is truthy and return it."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(poll)
    return result


def buttons(message: Json) -> list[str]:
    """The labels of a message's inline buttons."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [button["text"] for row in rows for button in row]


def button_data(message: Json, label: str) -> str:
    """The callback data of the button labelled `label`."""
    for row in message.get("reply_markup", {}).get("inline_keyboard", []):
        for button in row:
            if button["text"] == label:
                data: str = button["callback_data"]
                return data
    raise KeyError(f"no button {label!r} on {message.get('text')!r}")


class SupportGroup:
    """The sandbox with a running bot: read what the group and customers see."""

    def __init__(self, sandbox: TelegramSandbox, settings: Settings, *,
                 clock: Clock | None = None, pacing: float | None = 0.0) -> None:
        self.sandbox = sandbox
        self.settings = settings
        self.bot = Bot(settings, clock)
        if pacing is not None:
            self.adapter.paces = uniform(self.adapter.paces, pacing)  # None: Telegram's

    async def start(self) -> SupportGroup:
        await self.bot.start()
        return self

    async def stop(self) -> None:
        await self.bot.stop()

    @property
    def adapter(self) -> TelegramAdapter:
        adapter = next(a for a in self.bot.adapters if isinstance(a, TelegramAdapter))
        return adapter

    # -- what there is to see ----------------------------------------------------------------

    def topics(self) -> list[Any]:
        """The support group's forum topics (TopicState), oldest first."""
        return self.sandbox.topics(GROUP)

    async def topic(self, index: int = 0, timeout: float = 3.0) -> int:
        """The thread id of the `index`-th topic, once its card is posted and attached."""
        topics = await eventually(lambda: len(self.topics()) > index and self.topics(), timeout)
        thread: int = topics[index].thread_id
        await eventually(lambda: self._card_id(thread), timeout)
        return thread

    def topic_name(self, thread: int) -> str:
        name: str = next(t.name for t in self.topics() if t.thread_id == thread)
        return name

    def topic_closed(self, thread: int) -> bool:
        closed: bool = next(t.closed for t in self.topics() if t.thread_id == thread)
        return closed

    def in_topic(self, thread: int) -> list[Json]:
        """What the bot posted in a topic: the card, copies, notes, nudges."""
        return self.sandbox.messages(GROUP, thread)

    def card(self, thread: int) -> Json:
        """The conversation's card in the topic (a copy of the customer's first message
        may come before it)."""
        card_id = self._card_id(thread)
        return next(m for m in self.in_topic(thread) if m["message_id"] == card_id)

    def copies(self, thread: int) -> list[Json]:
        """What the topic shows besides the card: copies, notes, nudges, in order."""
        card_id = self._card_id(thread)
        return [m for m in self.in_topic(thread) if m["message_id"] != card_id]

    def _card_id(self, thread: int) -> int:
        key = self.bot.store.resolve(f"telegram:topic:{thread}")
        conv = self.bot.store.load(key) if key else None
        return int((conv.card if conv and conv.card else ":0").partition(":")[2] or 0)

    def general(self) -> list[Json]:
        """What the bot posted in the General topic."""
        return self.sandbox.messages(GROUP, None)

    def to_customer(self, user_id: int = ALICE) -> list[Json]:
        """What the bot sent to a customer's private chat."""
        return self.sandbox.messages(user_id)

    def conversation(self, user_id: int = ALICE) -> Conversation | None:
        return self.bot.store.load(f"telegram:{user_id}:")

    def history(self, kind: str | None = None) -> list[str]:
        kinds = [event.kind for event in self.bot.store.history(None, 0)]
        return [k for k in kinds if k == kind] if kind else kinds

    async def drained(self, timeout: float = 3.0) -> None:
        if not await self.bot.runtime.drained(timeout=timeout):
            raise TimeoutError("the outbox did not drain")

    # -- operators act -----------------------------------------------------------------------

    def press(self, user_id: int, message: Json, label: str) -> Json:
        """An operator presses the button labelled `label` on a message of the bot."""
        return self.sandbox.callback_query(user_id, message, button_data(message, label))

    def say_in_topic(self, user_id: int, thread: int, text: str) -> Json:
        return self.sandbox.group_message(GROUP, user_id, text, thread_id=thread)


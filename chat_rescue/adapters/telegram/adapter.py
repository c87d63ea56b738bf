"""TelegramAdapter: the server's Adapter for a forum support group and private chats."""

from __future__ import annotations

import logging

from aiohttp import web
from telegram import Update
from telegram.error import InvalidToken, TelegramError

from chat_rescue.adapters.telegram import health
from chat_rescue.adapters.telegram.app import TelegramApp
from chat_rescue.adapters.telegram.deliver import Deliverer
from chat_rescue.adapters.telegram.inbound import Inbound
from chat_rescue.adapters.telegram.memory import Memory
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.model import Action, CloseNotice, Digest, Relay
from chat_rescue.bot.outbox import Posted
from chat_rescue.bot.service import Service
from chat_rescue.bot.settings import Settings

log = logging.getLogger(__name__)


class TelegramAdapter:
    """Customers in private chats, one forum topic each in the support group.

    `group_interval` and `chat_interval` are the pacing (seconds between posts) for the
    support group (Telegram allows about 20 a minute) and a private chat (1 a second).
    """

    name = "telegram"

    def __init__(self, settings: Settings, service: Service, clock: Clock) -> None:
        self.settings = settings
        self.group_interval = 3.0
        self.chat_interval = 1.0
        written = settings.telegram_support_chat_id.strip()
        self.support_chat_id = int(written) if written.lstrip("-").isdigit() else 0
        self.memory = Memory()
        self.app = TelegramApp(settings, self._on_update)
        self.inbound = Inbound(self.app.bot, service, clock, self.memory, self.support_chat_id)
        self.deliverer = Deliverer(self.app.bot, service, clock, self.memory,
                                   self.support_chat_id)
        self._started = False

    # -- server.Adapter ----------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        self.app.routes(app)

    async def start(self) -> None:
        if not self.support_chat_id:
            raise ValueError("TELEGRAM_SUPPORT_CHAT_ID must be the support group's numeric id "
                             "(it starts with -100)")
        # httpx logs every request URL at INFO, and Bot API URLs carry the token.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        await self.app.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.app.stop()

    async def check(self) -> list[str]:
        """getMe, and the bot's rights in the support group; never shows the token."""
        token = self.app.token
        if self._started:
            return await health.check(self.app.bot, self.settings.telegram_support_chat_id,
                                      token)
        try:
            await self.app.bot.initialize()
            return await health.check(self.app.bot, self.settings.telegram_support_chat_id,
                                      token)
        except InvalidToken:
            return ["Telegram rejected TELEGRAM_BOT_TOKEN: get a valid token from @BotFather"]
        except TelegramError as failed:
            return [f"cannot reach the Telegram Bot API: {str(failed).replace(token, '<token>')}"]
        finally:
            await self.app.bot.shutdown()

    # -- outbox.Platform ---------------------------------------------------------------------

    async def deliver(self, action: Action) -> Posted | None:
        return await self.deliverer.deliver(action)

    def destination(self, action: Action) -> str:
        """`chat:<id>` for a customer's private chat, `group:<id>` for the support group."""
        if isinstance(action, Digest):
            return action.lane
        if isinstance(action, CloseNotice) or (isinstance(action, Relay) and action.to_customer):
            return f"chat:{action.ref.channel}"
        return f"group:{self.support_chat_id}"

    def interval(self, destination: str) -> float:
        if destination.startswith("group:"):
            return self.group_interval
        if destination.startswith("chat:"):
            return self.chat_interval
        return 0.0

    # -- inbound -----------------------------------------------------------------------------

    @property
    def admin_problem(self) -> str | None:
        """Set when a my_chat_member update said the bot lost its rights in the support group."""
        return self.inbound.admin_problem

    async def _on_update(self, update: Update) -> None:
        await self.inbound.handle(update)

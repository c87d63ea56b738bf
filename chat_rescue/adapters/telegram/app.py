"""The python-telegram-bot Application inside the project's event loop.

Long polling by default, with our own getUpdates loop rather than PTB's Updater:
the Updater confirms a batch (by asking for the next offset) while it is still
handling it, so a kill would lose updates Telegram never sends again. Here an
update is confirmed only after it was handled and committed; one whose handling
failed (a store error) is asked for again after a pause, as the webhook answers 500
and Telegram sends it again. With
TELEGRAM_WEBHOOK_URL set, the webhook is registered with a secret and updates
arrive on `POST /telegram/webhook` of the shared aiohttp app. Either way every
update ends in the same `handle(update)`.

No rate limiter and no retries are configured in PTB on purpose: a 429 must reach
the outbox, which owns pacing and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScope,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    Update,
)
from telegram.error import RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from chat_rescue.adapters.telegram.deliver import retry_seconds
from chat_rescue.adapters.telegram.pacing import Noted, NotingRequest
from chat_rescue.bot.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
POLL_TIMEOUT = 10  # seconds a getUpdates long poll waits for news
HANDLING_GRACE = 5.0  # seconds a stop waits for the update under way
FIRST_PAUSE, MAX_PAUSE = 1.0, 30.0  # seconds after a failure, doubling while it lasts
PRIVATE_COMMANDS = [BotCommand("start", "Talk to our support team")]
GROUP_COMMANDS = [
    BotCommand("rescue", "Rescue timers, escalation and stats (/rescue help)"),
    BotCommand("close", "Close this customer's conversation (in its topic)"),
]

UpdateHandler = Callable[[Update], Awaitable[None]]


def file_url(api_url: str) -> str:
    """The file download base that goes with a Bot API base (…/bot -> …/file/bot)."""
    head, _, _ = api_url.rstrip("/").rpartition("/bot")
    return f"{head}/file/bot" if head else "https://api.telegram.org/file/bot"


class TelegramApp:
    """Builds the Application, runs polling or the webhook, and serves the webhook route.

    `state` says how taking updates goes, for a health check: "alive", "failing" (getUpdates
    or handling an update fails, and is being retried; `last_error` says what), "stopped".
    """

    def __init__(self, settings: Settings, handle: UpdateHandler,
                 noted: Noted | None = None) -> None:
        token = settings.telegram_bot_token
        if token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self.token = token.get_secret_value()
        self.handle = handle
        self.webhook_url = settings.telegram_webhook_url
        configured = settings.telegram_webhook_secret
        # Without a configured secret, a random one for this run still keeps strangers out.
        self.secret = configured.get_secret_value() if configured else secrets.token_urlsafe(32)
        self.support_chat = settings.telegram_support_chat_id
        builder = (
            ApplicationBuilder()
            .token(self.token)
            .base_url(settings.telegram_api_url)
            .base_file_url(file_url(settings.telegram_api_url))
        )
        if noted is not None:  # every call counted against Telegram's limits (pacing.py)
            builder = builder.request(NotingRequest(noted, connection_pool_size=256))
        builder = builder.updater(None)  # see the module docstring: we poll ourselves
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)
        self._webhook_lock = asyncio.Lock()
        self._serving = False
        self._polling: asyncio.Task[None] | None = None
        self._handling: asyncio.Future[None] | None = None  # the update under way
        self.state = "stopped"
        self.last_error: str | None = None  # while failing: what failed
        self.failing_since: float | None = None  # time.monotonic() of its first failure
        self.first_pause, self.max_pause = FIRST_PAUSE, MAX_PAUSE
        self._offset: int | None = None  # the first update not handled yet
        self._failures = 0  # in a row, since the last update or poll that went through

    @property
    def bot(self) -> Bot:
        bot: Bot = self.application.bot
        return bot

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """getMe, register commands, then poll or set the webhook."""
        await self.application.initialize()  # each step is safe to repeat after a failure
        await self._set_commands()
        if not self.application.running:
            await self.application.start()
        if self.webhook_url:
            await self.bot.set_webhook(self.webhook_url, secret_token=self.secret,
                                       allowed_updates=ALLOWED_UPDATES)
            self._serving = True
            self.state = "alive"
            log.info("Telegram: webhook set, updates arrive on %s", WEBHOOK_PATH)
            return
        await self.bot.delete_webhook()  # polling and a webhook exclude each other
        self.state = "standby"  # polling starts when this replica leads (`start_polling`)

    @property
    def polls(self) -> bool:
        """Whether updates come by long polling (only one replica may poll)."""
        return not self.webhook_url

    async def start_polling(self) -> None:
        """Long-poll getUpdates from the first update not confirmed (this replica leads)."""
        if self._polling is not None:
            return
        self._offset = None  # what another replica confirmed is not asked again
        self.state = "alive"
        self._polling = asyncio.create_task(self._poll(), name="telegram-polling")
        log.info("Telegram: long polling started")

    async def stop_polling(self) -> None:
        """Stop long-polling (the lead went to another replica); the update under way ends
        first, unconfirmed ones come to the next poller."""
        await self._stop_poll()
        if self.state != "stopped":
            self.state = "standby"

    async def _poll(self) -> None:
        """getUpdates forever; the next offset (which confirms) only after handling.

        Nothing ends it but stop_intake: when getUpdates or an update fails, it pauses
        (doubling up to `max_pause`) and asks again from the first update not handled, so
        the updates before it in the batch stay confirmed and the failed one comes again.
        """
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=self._offset, timeout=POLL_TIMEOUT, allowed_updates=ALLOWED_UPDATES)
            except RetryAfter as wait:  # flood control is no failure: wait as told
                await asyncio.sleep(retry_seconds(wait))
                continue
            except Exception as failed:
                await self._failed("getUpdates", failed)
                continue
            if not updates:
                self._going()
            for update in updates:
                try:
                    # Shielded: a stop (the lead lost, SIGTERM) waits for the update under
                    # way, so what it committed is also answered (`_stop_poll`).
                    self._handling = asyncio.ensure_future(self.handle(update))
                    await asyncio.shield(self._handling)
                except Exception as failed:
                    await self._failed(f"update {update.update_id}", failed, trace=True)
                    break
                self._offset = update.update_id + 1
                self._going()

    async def _stop_poll(self) -> None:
        """Stop polling; the update under way ends first (for up to HANDLING_GRACE s), its
        offset unconfirmed: the next poller gets it again and finds it done."""
        if self._polling is not None:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
            self._polling = None
        handling, self._handling = self._handling, None
        if handling is not None and not handling.done():
            await asyncio.wait([handling], timeout=HANDLING_GRACE)

    async def _failed(self, what: str, error: Exception, *, trace: bool = False) -> None:
        """Note a polling failure and pause before the retry (doubling while it lasts)."""
        pause = min(self.max_pause, self.first_pause * 2 ** min(self._failures, 16))
        self._note_failure(what, error, f"retrying it after {pause:g}s, then up to every "
                           f"{self.max_pause:g}s while it fails", trace=trace)
        await asyncio.sleep(pause)

    def _note_failure(self, what: str, error: Exception, then: str, *, trace: bool) -> None:
        """State "failing"; logged once per kind of error while it lasts, not per retry.

        A traceback comes with the first of a kind from handling an update: that may be a
        bug rather than an outage.
        """
        kind = f"{type(error).__name__}: {self._scrub(error)}"
        self._failures += 1
        if kind != self.last_error:
            log.warning("Telegram: %s failed (%s); %s (logged once)", what, kind, then,
                        exc_info=error if trace else None)
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.state, self.last_error = "failing", kind

    def _going(self) -> None:
        """getUpdates answered or an update was handled: taking updates is alive."""
        if self.state == "failing":
            log.info("Telegram: updates go through again after %d failed attempt(s) (%s)",
                     self._failures, self.last_error)
        self.state, self.last_error = "alive", None
        self._failures = 0
        self.failing_since = None

    async def stop_intake(self) -> None:
        """Take no more updates: stop polling, answer webhook calls 503 (Telegram resends)."""
        self._serving = False
        self.state = "stopped"
        await self._stop_poll()

    async def stop(self) -> None:
        """Stop taking updates and close the HTTP client.

        The webhook stays set so Telegram keeps updates until the bot is back.
        """
        await self.stop_intake()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        await self.bot.shutdown()  # closes the HTTP clients even if getMe never answered

    async def _set_commands(self) -> None:
        scopes: list[tuple[list[BotCommand], BotCommandScope]] = [
            (PRIVATE_COMMANDS, BotCommandScopeAllPrivateChats())]
        if self.support_chat.lstrip("-").isdigit():
            scopes.append((GROUP_COMMANDS, BotCommandScopeChat(int(self.support_chat))))
        for commands, scope in scopes:
            try:
                await self.bot.set_my_commands(commands, scope=scope)
            except TelegramError as failed:
                log.warning("Telegram: could not register commands for %s: %s", scope.type,
                            self._scrub(failed))

    # -- updates -----------------------------------------------------------------------------

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.handle(update)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        error = context.error
        log.error("Telegram update %s failed: %s: %s", update_id, type(error).__name__,
                  self._scrub(error) if error else "", exc_info=error)

    def _scrub(self, error: BaseException) -> str:
        return str(error).replace(self.token, "<token>")

    # -- webhook -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """Serve the webhook route when the webhook is configured."""
        if self.webhook_url:
            app.router.add_post(WEBHOOK_PATH, self.webhook)

    async def webhook(self, request: web.Request) -> web.Response:
        """One update from Telegram: 403 without the secret, 400 if malformed, 200 once handled.

        Handling happens before the answer, so a failure (500) makes Telegram deliver the
        update again; the update_id makes that redelivery harmless.
        """
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("Telegram webhook: request without the right secret refused")
            return web.Response(status=403)
        if not self._serving:
            return web.Response(status=503)
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            update = Update.de_json(payload, self.bot)
        except web.HTTPException:
            raise  # 413 for a body over the size limit
        except Exception:  # any shape PTB cannot read: answering 500 would bring it back forever
            log.warning("Telegram webhook: a body that is not a Telegram update refused (400)")
            return web.Response(status=400, text="not a Telegram update")
        async with self._webhook_lock:  # one at a time, in arrival order, as polling does
            if not self._serving:  # stopped while this one waited for its turn
                return web.Response(status=503)
            try:
                await self.handle(update)
            except Exception as failed:
                self._note_failure(f"webhook update {update.update_id}", failed,
                                   "answered 500, so Telegram sends it again", trace=True)
                return web.Response(status=500)
            self._going()
        return web.Response(status=200)

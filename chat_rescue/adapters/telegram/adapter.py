"""TelegramAdapter: the server's Adapter for a forum support group and private chats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from aiohttp import web
from telegram import Update
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TelegramError

from chat_rescue.adapters.connecting import Unreachable, keep_connecting
from chat_rescue.adapters.telegram import health, render
from chat_rescue.adapters.telegram.app import TelegramApp
from chat_rescue.adapters.telegram.deliver import Deliverer
from chat_rescue.adapters.telegram.inbound import Inbound
from chat_rescue.adapters.telegram.memory import Memory
from chat_rescue.adapters.telegram.pacing import BOT_PACE, CHAT_PACE, GROUP_PACE
from chat_rescue.adapters.telegram.report import post_report
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.leader import Leader
from chat_rescue.bot.model import (
    TO_CUSTOMER,
    Action,
    Digest,
    HandoverDigest,
    PostCard,
    Relay,
    ReturnToInbox,
    SweepCard,
    UpdateCard,
)
from chat_rescue.bot.outbox import Outbox, Posted, RetryLater
from chat_rescue.bot.pacing import Pacer
from chat_rescue.bot.service import Service
from chat_rescue.bot.settings import Settings
from chat_rescue.bot.sweeper import Sweeper

log = logging.getLogger(__name__)

# Settings kept when the support group becomes a supergroup: the new id under the old
# one's scope, and the team's original id under the new one's (if the configuration
# changes to the new id, the team stays the same).
MOVED_TO, MOVED_FROM = "moved_to", "moved_from"
LEADERS_SCOPE = "leaders"  # which replica last took the lead of what (for /healthz)
SPLIT_ROOM = 5  # messages of a split sweep card or handover digest waited for at once



class TelegramAdapter:
    """Customers in private chats, one forum topic each in the support group.

    `paces` are Telegram's limits as the outbox keeps to them (`pacing.py`): for the
    support group (`group`: about 20 messages a minute) and a private chat (`chat`).
    """

    name = "telegram"

    def __init__(self, settings: Settings, service: Service, clock: Clock) -> None:
        self.settings = settings
        self.paces = {"group": GROUP_PACE, "chat": CHAT_PACE, "bot": BOT_PACE}
        self.pacer = Pacer(lambda place: self.paces[place.partition(":")[0]])
        written = settings.telegram_support_chat_id.strip()
        self.support_chat_id = int(written) if written.lstrip("-").isdigit() else 0
        self.memory = Memory()
        self.app = TelegramApp(settings, self._on_update, self._noted)
        self.inbound = Inbound(self.app.bot, service, clock, self.memory, self.support_chat_id)
        self.deliverer = Deliverer(self.app.bot, service, clock, self.memory,
                                   self.support_chat_id, self._room_wait)
        self.deliverer.on_moved = self.inbound.on_moved = self.follow
        self.service = service
        self.clock = clock
        self._started = False  # connected: getMe answered, polling or the webhook is on
        self._connecting: asyncio.Task[None] | None = None
        self.leader = Leader(service.store.lock("telegram-poller"), "Telegram's getUpdates",
                             replica=settings.rescue_replica, on_lead=self._note_leader)
        self._leading: asyncio.Task[None] | None = None
        self._refused = False

    # -- server.Adapter ----------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        self.app.routes(app)

    async def start(self) -> None:
        if not self.support_chat_id:
            raise ValueError("TELEGRAM_SUPPORT_CHAT_ID must be the support group's numeric id "
                             "(it starts with -100)")
        settings = self.service.store.settings
        was = (await self.service.call(settings, self._moves_scope)).get(MOVED_FROM, "")
        if was.lstrip("-").isdigit():  # configured with the new id since: the same team
            self.inbound.team_chat_id = int(was)
        moved = (await self.service.call(settings, self._moves_scope)).get(MOVED_TO, "")
        if moved.lstrip("-").isdigit():
            self._go_to(int(moved))
        # httpx logs every request URL at INFO, and Bot API URLs carry the token.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            await self._connect()
        except Unreachable as down:
            # Telegram keeps updates for a day, and the outbox holds what is to be sent:
            # the rest of the bot (timers, other platforms) runs on while this retries.
            log.error("Telegram is not reachable (%s); the bot runs on and keeps trying.", down)
            self._connecting = asyncio.create_task(self._keep_connecting(),
                                                   name="telegram-connect")

    async def _connect(self) -> None:
        """getMe, commands, polling or the webhook; Unreachable when Telegram did not answer.

        A refusal (a bad token, a bad request) is a configuration problem and raised as is.
        """
        try:
            await self.app.start()
        except BadRequest:  # a NetworkError subclass in PTB, but a refusal
            raise
        except (NetworkError, RetryAfter) as down:
            raise Unreachable(str(down).replace(self.app.token, "<token>")) from None
        self._started = True
        if self.app.polls and self._leading is None:  # one replica polls: the leader
            await self.leader.try_now(self.app.start_polling)
            self._leading = asyncio.create_task(
                self.leader.run(self.app.start_polling, self.app.stop_polling),
                name="telegram-leader")

    async def _keep_connecting(self) -> None:
        try:
            await keep_connecting(self._connect, "Telegram")
        except TelegramError as refused:
            log.error("Telegram refused to start: %s. Fix the configuration "
                      "(`chat-rescue check`) and restart; nothing queued is lost.",
                      str(refused).replace(self.app.token, "<token>"))
            self._refused = True

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
            self._connecting = None
        self._started = False
        if self._leading is not None:  # polling stops, and the lead goes to another replica
            self._leading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._leading
            self._leading = None
        await self.app.stop_intake()  # no new updates, so no new replies ...
        await self.inbound.close()  # ... and those under way finish while the client is open
        await self.app.stop()

    async def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """Names for the queue page, as the poller learned them (ids it has not seen)."""
        return {user_id: self.memory.name(user_id) for user_id in user_ids}

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

    @property
    def _moves_scope(self) -> str:
        return f"telegram-group:{self.inbound.team_chat_id}"

    async def follow(self, chat_id: int) -> None:
        """The support group became a supergroup with a new id (Telegram's ChatMigrated):
        deliver there and take its updates from now on, and remember it across restarts.
        The team keeps its name, settings and conversations."""
        if chat_id == self.support_chat_id:
            return
        log.error("Telegram: the support group %s is now %s; following it (you may set "
                  "TELEGRAM_SUPPORT_CHAT_ID=%s; the team, its settings and conversations "
                  "stay as they are either way).", self.support_chat_id, chat_id, chat_id)
        now = self.clock.now()
        store, was, team = self.service.store, self._moves_scope, self.inbound.team_chat_id

        def remember() -> None:
            with store.batch():
                store.put_setting(was, MOVED_TO, str(chat_id), "telegram", now)
                store.put_setting(f"telegram-group:{chat_id}", MOVED_FROM, str(team),
                                  "telegram", now)

        await self.service.call(remember)
        self._go_to(chat_id)

    def _go_to(self, chat_id: int) -> None:
        self.support_chat_id = self.inbound.support_chat_id = chat_id
        self.deliverer.move_to(chat_id)

    def loop_states(self) -> dict[str, str]:
        """The update intake's state for /healthz: `connecting` while Telegram is out of
        reach at the start (a restart would not help), then polling's or the webhook's;
        `standby` while another replica polls."""
        if self._connecting is not None and not self._started:
            return {"telegram:updates": "connecting"}
        return {"telegram:updates": self.app.state}

    async def leads(self) -> dict[str, object]:
        """For /healthz: whether this replica polls Telegram, and which one does (as the
        last to take the lead wrote it in the store)."""
        if not self.app.polls:
            return {"telegram": {"mode": "webhook (any replica)"}}
        stored = (await self.service.call(self.service.store.settings, LEADERS_SCOPE)
                  ).get("telegram-poller", "")
        return {"telegram": {"mode": "polling", "this_replica_leads": self.leader.leading,
                             "leader": stored or None}}

    async def _note_leader(self) -> None:
        await self.service.call(self.service.store.put_setting, LEADERS_SCOPE,
                                "telegram-poller", self.leader.replica, "leader",
                                self.clock.now())

    def stuck_loops(self, limit: float) -> list[str]:
        """The update intake, when it has been failing for more than `limit` seconds (an
        update that always fails holds the ones behind it)."""
        since = self.app.failing_since
        return ["telegram:updates"] if since is not None and \
            time.monotonic() - since > limit else []

    @property
    def report_team(self) -> str:
        """The team whose weekly report goes to the support group's General topic."""
        return f"telegram:{self.inbound.team_chat_id}"

    async def post_team_report(self, days: int) -> None:
        """The team's report of the last `days` days, in General."""
        await post_report(self.app.bot, self.service, self.report_team, days,
                          self.support_chat_id, None, name=self.memory.name)

    def bind_outbox(self, outbox: Outbox) -> None:
        """The outbox worker that delivers for this adapter: told to retry at once when
        the bot gets its rights in the support group back."""
        self.inbound.on_rights_back = outbox.retry_now

    def bind_sweeper(self, sweeper: Sweeper) -> None:
        """The sweeper whose cards' buttons this adapter passes on."""
        self.inbound.sweeper = sweeper

    async def deliver(self, action: Action) -> Posted | None:
        if self._connecting is not None and not self._started:  # down since the start
            if self._refused:  # kept for after a restart with a configuration that works
                raise RetryLater(300.0, "Telegram refused the bot's start")
            raise RetryLater(2.0, "not connected to Telegram yet")
        return await self.deliverer.deliver(action)

    def destination(self, action: Action) -> str:
        """`chat:<id>` for a customer's private chat, `group:<id>` for the support group."""
        if isinstance(action, Digest):
            return action.destination
        if isinstance(action, TO_CUSTOMER) or (isinstance(action, Relay) and action.to_customer):
            return f"chat:{action.ref.channel}"
        return f"group:{self.support_chat_id}"

    def free_at(self, action: Action, now: float) -> float:
        """When the group's window has room for all the messages `action` takes (a card
        update's edit takes none; its rename waits by itself); and every call is one of
        the bot's."""
        place = self.destination(action)
        if isinstance(action, UpdateCard):
            there = self.pacer.free_at(place, now, message=False)
        else:
            there = self.pacer.free_at(place, now, spare=self._messages(action) - 1)
        return max(there, self.pacer.free_at("bot:", now))

    def _messages(self, action: Action) -> int:
        """How many messages delivering `action` puts in its chat, at most."""
        if isinstance(action, PostCard):  # the card and its announcement, and maybe a topic
            return 2 + (action.conversation.card is None)
        if isinstance(action, Relay):  # an edit's mark; a topic made or reopened for it
            extra = int(action.edited)
            if not action.to_customer:  # (no store read: this runs on the loop too)
                topic = self.memory.topics.get(action.ref.key)
                extra += topic is None or self.memory.topic_closed.get(topic) is True
            return 1 + extra
        if isinstance(action, Digest):  # split at Telegram's length limit
            return len(render.digests(action.notices, self.memory))
        # Split at the length limit and keyboard size. Waited for as room for at most a few
        # at once: a card of hundreds would never find room for all in the group's window of
        # 19 (its parts go one by one then; a 429 halfway does not send the sent ones again).
        if isinstance(action, SweepCard):
            return min(SPLIT_ROOM, len(render.sweep_cards(action, self.memory)))
        if isinstance(action, HandoverDigest):
            return min(SPLIT_ROOM, len(render.handovers(action, self.memory)))
        return 2 if isinstance(action, ReturnToInbox) else 1  # told in the topic and General

    def _noted(self, chat: str | int, message: bool) -> None:
        place = "group" if str(chat) == str(self.support_chat_id) else "chat"
        now = self.clock.monotonic()
        self.pacer.note(f"{place}:{chat}", now, message=message)
        self.pacer.note("bot:", now)

    def _room_wait(self, messages: int, spare: int) -> float:
        """Seconds until the group's window has room for `messages` more and `spare` left
        over (0: now). The window only: these follow the card's edit in one delivery."""
        now = self.clock.monotonic()
        ready = self.pacer.free_at(f"group:{self.support_chat_id}", now,
                                   spare=spare + messages - 1, spaced=False)
        return ready - now

    # -- inbound -----------------------------------------------------------------------------

    @property
    def admin_problem(self) -> str | None:
        """Set when a my_chat_member update said the bot lost its rights in the support group."""
        return self.inbound.admin_problem

    async def _on_update(self, update: Update) -> None:
        await self.inbound.handle(update)

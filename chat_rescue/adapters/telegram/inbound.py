"""Carries out what translated updates mean: service events, commands, button answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from telegram import Bot, ReplyParameters, Update
from telegram.error import TelegramError

from chat_rescue.adapters.telegram import render
from chat_rescue.adapters.telegram import translate as tr
from chat_rescue.adapters.telegram.health import lost_rights, mark_blocked
from chat_rescue.adapters.telegram.memory import NAMES_SCOPE, Memory
from chat_rescue.adapters.telegram.report import post_report
from chat_rescue.bot import commands, texts
from chat_rescue.bot.authority import ADMIN_PRESSES, needs_admin
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    HandOff,
    KeepOpen,
    Relay,
    Snooze,
    State,
)
from chat_rescue.bot.ports import Change, Outcome
from chat_rescue.bot.service import Service
from chat_rescue.bot.sweeper import Sweeper
from chat_rescue.reports import tuning

log = logging.getLogger(__name__)

GREETING = (
    "Hello! Write your question here, with photos or files if that helps, and someone "
    "from our support team will answer you in this chat."
)
CLOSE_HINT = "Use /close inside a customer's topic."
ADMIN_TTL = 60.0  # seconds an answer about a presser's admin rights is trusted
ANSWERS: dict[type, str] = {
    Claim: "It is yours.",
    Close: "Closed.",
    Snooze: "Snoozed: you will be reminded once more.",
    HandOff: "Handed back to the inbox.",
    KeepOpen: "Kept open.",
}


class Inbound:
    """Applies one update at a time; every update_id changes the store at most once.

    Updates are taken in order, so what an update changes is committed before the next is
    looked at (a `/rescue set` waits for its admin check). The Telegram calls that only
    follow up (answering a button, replying to a command, greeting) run beside the next
    updates: one slow or hanging reply must not hold the queue behind it.
    """

    def __init__(self, bot: Bot, service: Service, clock: Clock, memory: Memory,
                 support_chat_id: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.bot = bot
        self.service = service
        self.clock = clock
        self.memory = memory
        self.support_chat_id = support_chat_id  # where the group is now
        self.team_chat_id = support_chat_id  # what it was configured as: the team's name
        self.admin_problem: str | None = None
        self.on_rights_back: Callable[[], None] = lambda: None
        self.on_moved: Callable[[int], Awaitable[None]] = _stay
        self.sweeper: Sweeper | None = None  # bound by the runtime: sweep cards' buttons
        self._monotonic = monotonic
        self._admins: dict[str, tuple[bool, float]] = {}  # presser -> (admin?, when asked)
        self._follow_ups: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}  # lane -> its latest call

    async def handle(self, update: Update) -> None:
        """Translate the update and carry it out."""
        user, chat = update.effective_user, update.effective_chat
        if self.memory.remember(user) and user is not None and chat is not None \
                and chat.id == self.support_chat_id:  # an operator: other replicas name them
            try:
                await self.service.call(self.service.store.put_setting, NAMES_SCOPE,
                                        str(user.id), user.full_name, "telegram",
                                        self.clock.now())
            except BaseException:
                self.memory.names.pop(str(user.id), None)  # stored when the update comes again
                raise
        inbound_id = f"telegram:{update.update_id}"
        ctx = tr.Context(self.support_chat_id, self.clock.now(), self.service.store.resolve,
                         self.bot.username, self.team_chat_id)
        intent = await self.service.call(tr.translate, update, ctx)  # it may read aliases
        if isinstance(intent, tr.Relayed):
            if isinstance(intent.event, CustomerMessage):
                self.memory.blocked.discard(intent.event.ref.key)
            await self.service.submit(intent.event, inbound_id=inbound_id,
                                      extra_actions=[intent.relay])
        elif isinstance(intent, tr.Edited):
            await self.service.call(self._edited, intent.relay, inbound_id, update.update_id)
        elif isinstance(intent, tr.Act):
            await self._act(intent, inbound_id)
        elif isinstance(intent, tr.SweepAct):
            await self._sweep(intent, inbound_id)
        elif isinstance(intent, tr.Moved):
            await self.on_moved(intent.chat_id)
        elif isinstance(intent, tr.Ignored):
            log.log(logging.INFO if intent.notable else logging.DEBUG, "update %s ignored: %s",
                    update.update_id, intent.reason)
            if intent.query_id is not None:
                self._later(self._answer(intent.query_id), "answers")
        elif isinstance(intent, tr.Command):
            await self._command(intent, inbound_id)
        elif await self.service.call(self._first_time, inbound_id):
            await self._membership(intent)

    def _later(self, call: Coroutine[Any, Any, None], lane: str = "replies") -> None:
        """Run Telegram calls that follow a handled update without holding the next ones.

        Calls of one lane run one after another (replies arrive in the order of the
        commands); button answers have a lane of their own.
        """
        task = asyncio.create_task(self._logged(call, self._last.get(lane)))
        self._last[lane] = task
        self._follow_ups.add(task)
        task.add_done_callback(self._follow_ups.discard)

    @staticmethod
    async def _logged(call: Coroutine[Any, Any, None], after: asyncio.Task[None] | None) -> None:
        try:
            if after is not None:
                try:
                    await asyncio.wait([after])
                except asyncio.CancelledError:
                    call.close()  # never started: close it rather than leave it unawaited
                    raise
            await call
        except TelegramError as failed:
            log.warning("Telegram: a reply could not be sent: %s", failed)
        except Exception:
            log.exception("Telegram: a reply failed")

    async def settled(self) -> None:
        """Wait until every reply under way is done."""
        while self._follow_ups:
            await asyncio.wait(set(self._follow_ups))

    async def close(self, timeout: float = 2.0) -> None:
        """Give replies under way a moment to finish, then cancel the rest."""
        if not self._follow_ups:
            return
        _, late = await asyncio.wait(set(self._follow_ups), timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    def _first_time(self, inbound_id: str) -> bool:
        """Record the update as seen; False when it was processed before."""
        outcome = self.service.store.commit(Change(inbound_id=inbound_id), self.clock.now())
        return outcome is not Outcome.DUPLICATE

    def _edited(self, relay: Relay, inbound_id: str, update_id: int) -> None:
        """Copy an edit across while the conversation is open. It is no turn: no claim, no
        reply, no timer moves, and it does not reopen a closed conversation."""
        conv = self.service.store.load(relay.ref.key)
        if conv is None or conv.state is State.CLOSED:
            log.info("update %s ignored: an edit in a conversation that is %s",
                     update_id, "closed" if conv else "unknown")
            return
        self.service.queue([relay], inbound_id=inbound_id)

    # -- buttons and /close ------------------------------------------------------------------

    async def _act(self, intent: tr.Act, inbound_id: str) -> None:
        event = intent.event
        if isinstance(event, ADMIN_PRESSES) \
                and needs_admin(await self.service.call(self.service.store.load, event.ref.key),
                                event) \
                and await self._press_by_admin(event.by):
            event = replace(event, admin=True)
        decision = await self.service.submit(event, inbound_id=inbound_id)
        if intent.query_id is None:
            return  # `/close`: a refusal is posted in the topic, through the outbox
        refused = decision.refusal if decision else None
        if refused is not None:  # shown to the presser alone
            self._later(self._answer(intent.query_id, render.refusal(refused, self.memory),
                                     alert=True), "answers")
        elif decision is not None and decision.changed:
            self._later(self._answer(intent.query_id, ANSWERS.get(type(event), "")), "answers")
        else:
            self._later(self._answer(intent.query_id, "Nothing to do: it has moved on."),
                        "answers")

    async def _sweep(self, intent: tr.SweepAct, inbound_id: str) -> None:
        """A press on a sweep card: by its operator or an admin (asked of Telegram only for
        somebody else); answered on the press, as an alert when it changed nothing."""
        if self.sweeper is None:
            self._later(self._answer(intent.query_id), "answers")
            return
        operator = await self.service.call(self.sweeper.card_operator, intent.card)
        admin = operator is not None and intent.who != operator \
            and await self._press_by_admin(intent.who)
        answer = await self.service.call(self.sweeper.press, intent.card, intent.verb,
                                         intent.key, intent.who, admin=admin,
                                         inbound_id=inbound_id)
        if answer is None:  # the update came again
            return
        text = answer.text if answer.whose is None \
            else texts.not_your_card(self.memory.name(answer.whose))
        self._later(self._answer(intent.query_id, text, alert=answer.refused), "answers")

    async def _answer(self, query_id: str, text: str = "", alert: bool = False) -> None:
        # An old or already answered query must not fail the update.
        with contextlib.suppress(TelegramError):
            await self.bot.answer_callback_query(query_id, text or None, show_alert=alert)

    # -- commands ----------------------------------------------------------------------------

    async def _command(self, command: tr.Command, inbound_id: str) -> None:
        """Applied in arrival order (the admin check is awaited); the reply follows later.

        A `/rescue` and its update id are committed together: a store error fails both
        (the update comes again), and a repeat of the update changes nothing."""
        if command.name != "rescue" or command.private:
            if not await self.service.call(self._first_time, inbound_id):
                return
            if command.private and command.name in ("start", "help"):
                self._later(self._greet(command.chat_id))
            elif command.name == "close" and not command.private:
                self._later(self._reply(command, CLOSE_HINT))
            return
        ctx = commands.CommandContext(
            team=f"telegram:{self.team_chat_id}",
            here=ConversationRef("telegram", str(self.team_chat_id)),
            user=command.user,
            # Asked only for a verb that changes something: reading is for everyone
            # in the support group, and needs no call to Telegram.
            is_admin=commands.changes_settings(command.args)
            and await self._is_admin(command.user),
            intake=False,
            person=self.memory.person,  # `/rescue shift late 14:00-22:00 @ben`
            name=self.memory.name,
        )

        def run() -> commands.Answer | None:
            with self.service.store.batch():
                if not self._first_time(inbound_id):
                    return None
                return commands.answer(command.args, ctx, self.service)

        said = await self.service.call(run)
        if said is not None:
            self._later(self._reply(command, said.text))
        if said is not None and said.report is not None:  # the picture follows the reply
            self._later(post_report(self.bot, self.service, said.report.team,
                                    said.report.days, command.chat_id, command.thread_id,
                                    command.message_id, self.memory.name), "reports")
        if said is not None and said.tune is not None:  # the answer follows the reply
            self._later(self._tuned(command, said.tune.team), "tune")

    async def _tuned(self, command: tr.Command, team: str) -> None:
        """`/rescue tune`'s answer, in the topic the command was typed in."""
        try:
            text = await tuning.answer(self.service, team)
        except Exception as broken:  # noqa: BLE001 - the asker must hear of it, whatever it is
            log.exception("could not tune %s", team)
            text = f"Sorry, the history could not be replayed ({type(broken).__name__})."
        await self._reply(command, text[:render.MESSAGE_LIMIT])

    async def _greet(self, chat_id: int) -> None:
        await self.bot.send_message(chat_id, GREETING)

    async def _press_by_admin(self, user_id: str) -> bool:
        """`_is_admin` for a press, trusted for ADMIN_TTL: presses come in runs, and
        only those by somebody other than the owner ask."""
        now = self._monotonic()
        known = self._admins.get(user_id)
        if known is not None and now - known[1] < ADMIN_TTL:
            return known[0]
        answer = await self._admin_status(user_id)
        if answer is None:
            return False  # not kept: the next press asks again
        self._admins[user_id] = (answer, now)
        return answer

    async def _is_admin(self, user_id: str) -> bool:
        """Creator or administrator of the support group (asked every time for `/rescue`:
        rights change)."""
        return bool(await self._admin_status(user_id))

    async def _admin_status(self, user_id: str) -> bool | None:
        """Whether the user is an admin of the support group; None if Telegram cannot say.

        The group's own id is its anonymous administrators (see translate._sender).
        """
        if user_id == str(self.support_chat_id):
            return True
        try:
            member = await self.bot.get_chat_member(self.support_chat_id, int(user_id))
        except TelegramError as failed:
            log.warning("could not check the rights of user %s: %s", user_id, failed)
            return None
        return member.status in tr.ADMIN_STATUSES

    async def _reply(self, command: tr.Command, text: str) -> None:
        """Answer in the topic (or General) the command was typed in."""
        await self.bot.send_message(
            command.chat_id, text, message_thread_id=command.thread_id,
            reply_parameters=ReplyParameters(command.message_id,
                                             allow_sending_without_reply=True),
        )

    # -- membership --------------------------------------------------------------------------

    async def _membership(self, change: tr.MembershipChanged) -> None:
        if change.private:
            if change.status == "kicked":
                await self.service.call(mark_blocked, self.service, self.memory,
                                        tr.customer_ref(change.chat_id), self.clock.now())
            return
        if change.usable:
            if self.admin_problem:
                log.info("Telegram: the bot may manage topics in the support group again")
            self.admin_problem = None
            self.on_rights_back()  # what waited for the rights goes now
            return
        self.admin_problem = lost_rights(change.status)
        log.error("Telegram: %s", self.admin_problem)


async def _stay(chat_id: int) -> None:
    """Until the adapter binds its own: a moved group is not followed."""

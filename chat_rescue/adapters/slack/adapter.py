"""The Slack adapter: a workspace app on top of the rescue core (DESIGN §2, Slack)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncRespond
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from chat_rescue.adapters.connecting import Unreachable, keep_connecting
from chat_rescue.adapters.slack import blocks, roster
from chat_rescue.adapters.slack.app import EVENTS_PATH, build_app, http_handler
from chat_rescue.adapters.slack.check import problems
from chat_rescue.adapters.slack.deliver import SlackDelivery
from chat_rescue.adapters.slack.errors import api_error
from chat_rescue.adapters.slack.mentions import escape, marked, person, unmark, user
from chat_rescue.adapters.slack.pacing import (
    EPHEMERAL_PACE,
    POST_PACE,
    UPDATE_PACE,
    NotingClient,
)
from chat_rescue.adapters.slack.people import Admins, Names, channel_members
from chat_rescue.adapters.slack.report import post_report
from chat_rescue.adapters.slack.translate import (
    CLAIM_REACTION,
    CLOSE_REACTION,
    PLATFORM,
    Inbound,
    Membership,
    Skipped,
    SweepPressed,
    Workspace,
    translate_action,
    translate_event,
)
from chat_rescue.bot import commands, engine, texts
from chat_rescue.bot.authority import ADMIN_PRESSES, needs_admin
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.model import (
    TO_CUSTOMER,
    Action,
    Claim,
    Close,
    ConversationRef,
    Digest,
    InboundEvent,
    Refused,
    SweepCard,
    UpdateCard,
)
from chat_rescue.bot.outbox import Posted
from chat_rescue.bot.pacing import Pace, Pacer
from chat_rescue.bot.ports import Held
from chat_rescue.bot.service import Service, preview
from chat_rescue.bot.settings import Settings
from chat_rescue.bot.sweeper import Answer, Sweeper
from chat_rescue.reports import tuning

log = logging.getLogger(__name__)



STALE = "That button no longer applies: the conversation has moved on."
KEPT_FIELDS = {"type", "subtype", "channel", "user", "ts", "thread_ts", "bot_id", "text",
               "reaction", "item"}
CONNECTING = ("chat-rescue cannot reach Slack's Web API right now and is retrying; "
              "please try again in a minute.")
API_TIMEOUT = 10  # seconds; the outbox gives up on a delivery after 15


class SlackAdapter:
    """Events, clicks and `/rescue` in; cards, nudges and notices out.

    `paces` are Slack's limits as the outbox keeps to them (`pacing.py`): chat.postMessage
    per channel (`post`: about one a second, short bursts allowed); card updates
    (`update`) and ephemerals (`ephemeral`) on destinations of their own.
    """

    name = PLATFORM

    def __init__(self, settings: Settings, service: Service, clock: Clock) -> None:
        self.settings = settings
        self.service = service
        self.clock = clock
        self.paces = {"post": POST_PACE, "update": UPDATE_PACE, "ephemeral": EPHEMERAL_PACE}
        self.pacer = Pacer(self._pace)
        token = _secret(settings.slack_bot_token)
        self._app_token = _secret(settings.slack_app_token)
        base_url = settings.slack_api_url.rstrip("/") + "/"
        # No retry handlers: a 429 or an outage goes back to the outbox, which honours
        # Retry-After and backs off, instead of being retried silently in here.
        self.client = NotingClient(self._noted, token=token, base_url=base_url,
                                   timeout=API_TIMEOUT, retry_handlers=[])
        self.workspace = Workspace(settings.slack_team_channel,
                                   frozenset(settings.intake_channels))
        # Slack's member list at connect; the operators follow it and the stored joins
        # and leaves, whichever replica Slack told of them (`roster.py`).
        self._roster: roster.Roster | None = None
        service.on_settings_elsewhere(self._learn_operators)
        self.admins = Admins(self.client, settings.admins)
        self.names = Names(self.client).names  # people on the queue page
        self.delivery = SlackDelivery(self.client, settings.slack_team_channel,
                                      sweep_dm=settings.rescue_sweep_dm)
        self.sweeper: Sweeper | None = None  # bound by the runtime
        self._signing_secret = _secret(settings.slack_signing_secret)
        self._token = token

        # A plain function: bolt passes arguments by the parameter names it sees.
        async def authorize(enterprise_id: str | None = None,
                            team_id: str | None = None) -> AuthorizeResult:
            return self._authorization(enterprise_id, team_id)

        # Bolt gets a client without the token: it would warn that the token is ignored in
        # favour of `authorize` (which hands it the token per request anyway).
        bolt_client = AsyncWebClient(base_url=base_url, timeout=API_TIMEOUT, retry_handlers=[])
        self.app = build_app(bolt_client, self._signing_secret, self,
                             socket_mode=bool(self._app_token), authorize=authorize)
        self._socket: AsyncSocketModeHandler | None = None
        self._session: aiohttp.ClientSession | None = None
        self.ready = False  # connected: who we are and who the operators are is known
        self._connecting: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # --- lifecycle (server.Adapter)

    def routes(self, app: web.Application) -> None:
        """POST /slack/events for events, clicks and commands (not in Socket Mode)."""
        if not self._app_token and self._signing_secret:
            handler = http_handler(self.app, self._signing_secret, self._while_connecting)
            app.router.add_post(EVENTS_PATH, handler)

    async def _while_connecting(self, body: bytes, content_type: str) -> web.Response | None:
        """Answer a verified request that cannot be handled before Slack is reachable.

        Until the operator list is known, nobody can tell an operator's reply from a
        customer's message. Events are kept in the store verbatim, acknowledged, and
        handled in arrival order once connected (Slack gives up resending after three
        tries in about five minutes, so a 503 would lose them in a longer outage). A
        slash command is told to try again; a click gets 503, which Slack shows to the
        person as a failure to try again.
        """
        if self.ready:
            return None
        if content_type == "application/json":
            outer = json.loads(body)
            if outer.get("type") != "event_callback":
                return None  # url_verification needs no Web API
            event_id = str(outer.get("event_id") or "")
            if not event_id:
                return web.Response(status=400, text="an event without event_id")
            kept, at = json.dumps(self._keepable(outer)), self.clock.now()

            def keep() -> bool:
                # On the store's thread, after or before `_take_held`'s last look, never
                # in between: an event is either kept and taken, or handled as usual.
                if self.ready:
                    return False
                self.service.store.hold(PLATFORM, f"{PLATFORM}:{event_id}", kept, at)
                return True

            if not await self.service.call(keep):
                return None  # connected meanwhile
            return web.Response(status=200)
        if b"payload=" not in body:  # a slash command
            return web.json_response({"response_type": "ephemeral", "text": CONNECTING})
        return web.Response(status=503, text="chat-rescue is connecting to Slack")

    async def start(self) -> None:
        """Learn who we are and who the operators are; connect Socket Mode if configured.

        A configuration problem stops the start. An unreachable Slack does not: the
        rest of the bot (timers, other platforms) runs, and this keeps connecting.
        """
        if not self._app_token and not self._signing_secret:
            # Without it nobody can tell Slack's requests from forgeries: refuse to run.
            raise RuntimeError("Slack: SLACK_SIGNING_SECRET is not set (or set SLACK_APP_TOKEN "
                               "for Socket Mode).")
        self._session = aiohttp.ClientSession()
        self.client.session = self._session
        try:
            await self._connect()
        except Unreachable as down:
            log.error("Slack is not reachable (%s); the bot runs on and keeps trying.", down)
            self._connecting = asyncio.create_task(self._keep_connecting(),
                                                   name="slack-connect")
        except RuntimeError:
            await self.stop()
            raise

    async def _connect(self) -> None:
        since = self.clock.now()
        try:
            me = await self.client.auth_test()
            members = await channel_members(self.client, self.workspace.team_channel)
        except SlackApiError as failed:
            status = failed.response.status_code if failed.response is not None else 0
            if status >= 500 or status == 429:
                raise Unreachable(f"HTTP {status}") from None
            raise RuntimeError(f"Slack refused to start: {api_error(failed) or failed}. "
                               "Run `chat-rescue check` for details.") from None
        except (aiohttp.ClientError, TimeoutError) as failed:
            raise Unreachable(f"{self.settings.slack_api_url}: {type(failed).__name__}") \
                from None
        bot_user = str(me.get("user_id") or "")
        self.workspace = replace(self.workspace, bot_user=bot_user,
                                 bot_id=str(me.get("bot_id") or ""))
        self._roster = roster.Roster(members - {bot_user}, since)
        await self.service.call(self._learn_operators)
        log.info("slack: %d operators in %s", len(self.workspace.operators),
                 self.workspace.team_channel)
        if self._app_token and self._socket is None:
            self._socket = AsyncSocketModeHandler(self.app, self._app_token)
            await self._socket.connect_async()
        await self._take_held()  # and ready from its last look at the held events on

    def _keepable(self, outer: dict[str, Any]) -> dict[str, Any]:
        """What the translator reads of an event, with the text clipped to the card preview
        (the only message text the store keeps)."""
        event = {k: v for k, v in outer["event"].items() if k in KEPT_FIELDS}
        if isinstance(event.get("text"), str):
            event["text"] = preview(event["text"], self.service.preview_chars)
        return {"type": outer["type"], "event_id": outer["event_id"], "event": event}

    async def _take_held(self) -> None:
        """Handle the events acknowledged while connecting, in arrival order, at their time;
        then be `ready`, in the job of the look that found none (so `_while_connecting`
        keeps nothing after it)."""
        store = self.service.store

        def next_held() -> list[Held]:
            held = store.held(PLATFORM, 100)
            if not held:
                self.ready = True
            return held

        try:
            while held := await self.service.call(next_held):
                log.info("slack: handling %d events kept while Slack was unreachable",
                         len(held))
                for item in held:
                    try:
                        await self._take_event(json.loads(item.body), item.at)
                    except store.errors:
                        raise  # the store, not the event: keep it and try again later
                    except Exception:  # one bad event must not stop the others
                        log.exception("slack: a kept event %s could not be handled; dropped",
                                      item.inbound_id)
                    await self.service.call(store.release, item.id)
        except store.errors as failed:
            raise Unreachable(f"the store failed handling kept events: {failed}") from None

    async def _keep_connecting(self) -> None:
        try:
            await keep_connecting(self._connect, "Slack")
        except RuntimeError as refused:
            log.error("%s", refused)

    def _authorization(self, enterprise_id: str | None, team_id: str | None
                       ) -> AuthorizeResult:
        """Who we are, from the start-time auth.test: no Web API call per request."""
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id,
                               bot_token=self._token, bot_user_id=self.workspace.bot_user or None,
                               bot_id=self.workspace.bot_id or None)

    async def stop(self) -> None:
        """Disconnect Socket Mode and close the HTTP session."""
        self.ready = False
        for task in [self._connecting, *self._background]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._connecting = None
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._session is not None:
            self.client.session = None
            await self._session.close()
            self._session = None

    async def check(self) -> list[str]:
        """Reach Slack once: the token, the team channel, the intake channels."""
        return await problems(self.settings, self.client)

    def bind_sweeper(self, sweeper: Sweeper) -> None:
        """The sweeper whose cards' buttons this adapter passes on."""
        self.sweeper = sweeper

    # --- outbound (outbox.Platform)

    async def deliver(self, action: Action) -> Posted | None:
        return await self.delivery.deliver(action)

    def destination(self, action: Action) -> str:
        team = self.workspace.team_channel
        if isinstance(action, Digest):
            return action.destination
        if isinstance(action, UpdateCard):
            return f"update:{team}"
        if isinstance(action, Refused):
            return f"ephemeral:{team}"
        if isinstance(action, SweepCard):
            return self.delivery.sweep_card_channel(action)
        if isinstance(action, TO_CUSTOMER):
            return action.ref.channel
        return team

    def free_at(self, action: Action, now: float) -> float:
        return self.pacer.free_at(self.destination(action), now)

    def _pace(self, destination: str) -> Pace:
        kind, _, _ = destination.partition(":")
        return self.paces.get(kind, self.paces["post"])  # a channel id: its posts

    def _noted(self, destination: str) -> None:
        self.pacer.note(destination, self.clock.monotonic())

    # --- inbound (app.Listeners)

    async def on_event(self, body: dict[str, Any]) -> None:
        """An Events API event: a conversation event, an operator joining or leaving, or noise."""
        await self._take_event(body, self.clock.now())

    async def _take_event(self, body: dict[str, Any], at: float) -> None:
        # The workspace as the store's thread has it when the job runs: the operators may
        # have been learnt afresh by a job before this one.
        found = await self.service.call(lambda: translate_event(
            body, self.workspace, at, self.service.store.resolve))
        if isinstance(found, Membership):
            await self.service.call(self._member_changed, found, at)
        elif isinstance(found, Inbound):
            decision = await self.service.submit(await self._with_admin(found.event),
                                                 inbound_id=found.inbound_id,
                                                 aliases=found.aliases)
            if decision is not None and decision.conversation is None:
                await self._unknown_reaction(found.event)
        elif isinstance(found, Skipped):
            log.info("slack: %s ignored: %s", body.get("event_id"), found.reason)
        else:
            event = body.get("event")
            kind = event.get("type") if isinstance(event, dict) else None
            log.debug("slack event %s skipped: a %s that is no conversation's business",
                      body.get("event_id"), kind)

    def _member_changed(self, found: Membership, at: float) -> None:
        """On the store's thread: store a join or leave for every replica, and follow it."""
        roster.record(self.service.store, self.workspace.team_channel, found.user,
                      found.joined, at)
        self._learn_operators()

    def _learn_operators(self) -> None:
        """On the store's thread: the operators from Slack's list at connect and the
        joins and leaves stored since (by any replica)."""
        if self._roster is None:
            return  # not connected: the operators are learnt when it is
        stored = self.service.store.settings(roster.scope(self.workspace.team_channel))
        self.workspace = replace(self.workspace, operators=self._roster.operators(stored))

    async def _unknown_reaction(self, event: InboundEvent) -> None:
        """Say so when a claim or close reaction changed nothing because its message is no
        conversation's (a reaction on a known one that changes nothing needs no word)."""
        if not isinstance(event, Claim | Close) or event.via != "reaction":
            return
        if await self.service.call(self.service.store.load, event.ref.key) is not None:
            return
        name, who = ((CLAIM_REACTION, event.operator) if isinstance(event, Claim)
                     else (CLOSE_REACTION, event.by))
        log.info("slack: %s reaction by %s on %s/%s ignored: the message belongs to no "
                 "conversation", name, who, event.ref.channel, event.ref.thread)

    async def on_action(self, body: dict[str, Any], respond: AsyncRespond) -> None:
        """A button click (already acked); one-tap notices show who pressed what."""
        found = translate_action(body, self.workspace, self.clock.now())
        if found is None:
            return
        if isinstance(found, SweepPressed):
            await self._sweep_press(found, body, respond)
            return
        event = await self._with_admin(found.event)
        decision = await self.service.submit(event, inbound_id=found.inbound_id)
        if decision is None or not body.get("response_url"):
            return  # a retry of a click already handled
        # Committed: Slack gets its 200 now; the answer or the button's new look follows.
        task = asyncio.create_task(self._answer_click(decision, body, respond))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _sweep_press(self, found: SweepPressed, body: dict[str, Any],
                           respond: AsyncRespond) -> None:
        """A press on a sweep card: by its operator, or an admin (asked of Slack only for
        somebody else); the presser alone is told what it did, and the row shows it."""
        if self.sweeper is None:
            return
        operator = await self.service.call(self.sweeper.card_operator, found.card)
        admin = operator is not None and found.who != operator \
            and await self.admins.is_admin(found.who)
        answer = await self.service.call(self.sweeper.press, found.card, found.verb, found.key,
                                         found.who, admin=admin, inbound_id=found.inbound_id)
        if answer is None or not body.get("response_url"):
            return  # a retry of a click already handled
        # Committed: Slack gets its 200 now; the answer and the row's new look follow.
        task = asyncio.create_task(self._answer_sweep_press(answer, body, respond))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _answer_sweep_press(self, answer: Answer, body: dict[str, Any],
                                  respond: AsyncRespond) -> None:
        text = answer.text if answer.whose is None else texts.not_your_card(user(answer.whose))
        message = body.get("message") or {}
        shown = blocks.pressed(message.get("blocks") or [], body) if answer.changed else None
        try:
            await respond(text=text, response_type="ephemeral", replace_original=False)
            if shown is not None:
                await respond(text=str(message.get("text", "")), blocks=shown,
                              replace_original=True)
        except (aiohttp.ClientError, TimeoutError) as failed:
            log.info("could not answer the click: %s", failed)

    async def _with_admin(self, event: InboundEvent) -> InboundEvent:
        """The event with `admin` set when the decision depends on it (a press by somebody
        other than the owner): users.info is asked then only, and its answer cached."""
        if isinstance(event, ADMIN_PRESSES) \
                and needs_admin(await self.service.call(self.service.store.load, event.ref.key),
                                event) \
                and await self.admins.is_admin(event.by):
            return replace(event, admin=True)
        return event

    async def _answer_click(self, decision: engine.Decision, body: dict[str, Any],
                            respond: AsyncRespond) -> None:
        """A refused press is told why (ephemeral, where it was pressed); one that found
        nothing to do is told so; otherwise a notice shows who pressed what."""
        message = body.get("message") or {}
        pressed = blocks.pressed(message.get("blocks") or [], body)
        refused = decision.refusal
        try:
            if refused is not None:
                text = texts.refused(refused, user(refused.owner or ""))
                await respond(text=text, response_type="ephemeral", replace_original=False)
            elif decision.conversation is None:
                await respond(text=STALE, response_type="ephemeral", replace_original=False)
            elif pressed is not None:
                await respond(text=str(message.get("text", "")), blocks=pressed,
                              replace_original=True)
        except (aiohttp.ClientError, TimeoutError) as failed:
            log.info("could not answer the click: %s", failed)

    @property
    def report_team(self) -> str:
        """The team whose weekly report goes to the team channel."""
        return self.workspace.team

    async def post_team_report(self, days: int) -> None:
        """The team's report of the last `days` days, in the team channel."""
        await post_report(self.client, self.service, self.workspace.team, days,
                          self.workspace.team_channel, None)

    async def on_command(self, command: dict[str, Any]) -> str:
        """`/rescue …`: the reply (ephemeral) from the shared command module.

        Only a verb that changes something waits for users.info (the admin check, cached
        for people.ADMIN_TTL); the others answer operators and the configured admins.
        """
        channel, user = str(command.get("channel_id", "")), str(command.get("user_id", ""))
        text = str(command.get("text") or "")
        if commands.changes_settings(text):
            is_admin = await self.admins.is_admin(user)
        else:
            is_admin = user in self.admins.configured
        ctx = commands.CommandContext(
            team=self.workspace.team,
            here=ConversationRef(PLATFORM, channel),
            user=user,
            is_admin=is_admin,
            intake=channel in self.workspace.intake,
            elsewhere=channel not in self.workspace.intake
            and channel != self.workspace.team_channel,
            is_operator=user in self.workspace.operators,
            person=person,  # `/rescue shift late 14:00-22:00 @ben`: Slack sends <@U…|ben>
            name=marked,
        )
        said = await self.service.call(commands.answer, text, ctx, self.service)
        reply = said.text
        if said.report is not None:  # answered now; the picture follows in the background
            thread = str(command.get("thread_ts") or "") or None
            if channel in self.workspace.intake:
                # Customers read intake channels (Slack Connect): the team's figures and
                # operators' names go to the team channel instead.
                channel, thread = self.workspace.team_channel, None
                reply += " It goes to the team channel: customers read this one."
            task = asyncio.create_task(post_report(
                self.client, self.service, said.report.team, said.report.days, channel,
                thread))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if said.tune is not None:  # answered now; what the history says follows, to them alone
            task = asyncio.create_task(self._tune(said.tune.team, channel, user,
                                                  str(command.get("response_url") or "")))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return unmark(escape(reply))

    async def _tune(self, team: str, channel: str, user: str, response_url: str) -> None:
        """`/rescue tune`'s answer, as an ephemeral message to whoever asked: through the
        command's response_url (it reaches them wherever they typed it, for 30 minutes,
        the bot a member or not), else chat.postEphemeral."""
        try:
            text = await tuning.answer(self.service, team)
        except Exception as broken:  # noqa: BLE001 - the asker must hear of it, whatever it is
            log.exception("could not tune %s", team)
            text = f"Sorry, the history could not be replayed ({type(broken).__name__})."
        text = unmark(escape(text))
        if response_url:
            try:
                sent = await AsyncWebhookClient(response_url).send(
                    text=text, response_type="ephemeral", replace_original=False)
                if sent.status_code == 200:
                    return
                log.info("the tuning answer's response_url answered %d", sent.status_code)
            except (aiohttp.ClientError, TimeoutError) as failed:
                log.info("could not answer through the response_url: %s", failed)
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text)
        except Exception as failed:  # noqa: BLE001 - an answer lost is said in the log
            log.warning("could not post the tuning answer to %s: %s", user, failed)


def _secret(value: Any) -> str:
    return str(value.get_secret_value()) if value is not None else ""

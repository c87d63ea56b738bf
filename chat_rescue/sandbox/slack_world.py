"""A Slack workspace with chat-rescue running in it, for end-to-end tests and the demo.

`SlackWorld` starts the real bot (`server.Bot`, the real slack-bolt stack) against a
`SlackSandbox` and plays the people: customers write in intake channels, operators
reply, react and press buttons, admins type `/rescue`. Everything goes over HTTP,
signed the way Slack signs it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from chat_rescue.adapters.slack import SlackAdapter
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.model import Conversation
from chat_rescue.bot.pacing import uniform
from chat_rescue.bot.settings import Settings
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_client import SlackEventsClient
from chat_rescue.server import Bot

Json = dict[str, Any]

# The standard test workspace (see `furnish`).
SECRET = "sandbox-signing-secret"
TEAM, HELP, VIP = "C0TEAM", "C0HELP", "C0VIP"
ANNA, BOB, CARL = "U0ANNA", "U0BOB", "U0CARL"  # operators; ANNA is a workspace admin
CUSTOMER, OTHER = "U0CUSTOMER", "U0OTHER"


def furnish(sandbox: SlackSandbox) -> None:
    """The standard workspace: #support-team (operators), #help and #vip (customers)."""
    bot = sandbox.bot_user_id
    sandbox.add_channel(TEAM, "support-team", [bot, ANNA, BOB, CARL])
    sandbox.add_channel(HELP, "help", [bot, CUSTOMER, OTHER, ANNA, BOB])
    sandbox.add_channel(VIP, "vip", [bot, CUSTOMER])
    sandbox.add_user(ANNA, "anna", is_admin=True)
    for user, name in ((BOB, "bob"), (CARL, "carl"), (CUSTOMER, "customer"), (OTHER, "other")):
        sandbox.add_user(user, name)


def sandbox_settings(sandbox: SlackSandbox, database_url: str, **overrides: Any) -> Settings:
    """Settings pointing at the sandbox's standard workspace; keywords override."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "port": 0,
        "host": "127.0.0.1",
        "slack_bot_token": sandbox.bot_token,
        "slack_signing_secret": SECRET,
        "slack_api_url": sandbox.api_url,
        "slack_team_channel": TEAM,
        "slack_intake_channels": f"{HELP},{VIP}",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def eventually(check: Callable[[], Any], timeout: float = 3.0, poll: float = 0.01) -> Any:
    """Poll until `check()` is truthy and return it (the bot works after Slack's ack)."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(poll)
    return result


class SlackWorld:
    """One workspace with a running bot: customers write, operators click and react."""

    def __init__(self, sandbox: SlackSandbox, settings: Settings, *,
                 clock: Clock | None = None, team: str = TEAM, secret: str = SECRET) -> None:
        self.sandbox = sandbox
        self.settings = settings
        self.clock = clock
        self.team = team
        self.secret = secret
        self._bot: Bot | None = None
        self._slack: SlackEventsClient | None = None

    async def start(self, pace: float = 0.01) -> Bot:
        """Start the bot; `pace` replaces Slack's 1 message/s per channel (tests go faster)."""
        self._bot = Bot(self.settings, self.clock)
        self.adapter.paces = uniform(self.adapter.paces, pace)
        await self._bot.start()
        self._slack = SlackEventsClient(self.events_url, self.secret, sandbox=self.sandbox)
        return self._bot

    async def stop(self) -> None:
        """Stop the bot (its state stays in the database) and Slack's side."""
        if self._slack is not None:
            await self._slack.close()
            self._slack = None
        if self._bot is not None:
            await self._bot.stop()
            self._bot = None

    @property
    def bot(self) -> Bot:
        if self._bot is None:
            raise RuntimeError("the world is not started")
        return self._bot

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.bot.port}/slack/events"

    @property
    def adapter(self) -> SlackAdapter:
        adapter = self.bot.adapters[0]
        assert isinstance(adapter, SlackAdapter)
        return adapter

    @property
    def slack(self) -> SlackEventsClient:
        """Slack's side of the bot's endpoint (signed events, clicks, commands)."""
        if self._slack is None:
            raise RuntimeError("the world is not started")
        return self._slack

    # --- what people do in Slack

    async def says(self, text: str, thread: str | None = None, user: str = CUSTOMER,
                   channel: str = HELP, **extra: Any) -> str:
        """`user` writes in a channel (top level, or in `thread`); returns the message ts."""
        event = self.slack.message_event(channel, user, text, thread_ts=thread, **extra)
        status, _ = await self.slack.send_event(event)
        _expect_ok(status)
        return str(event["ts"])

    async def react(self, user: str, reaction: str, ts: str, channel: str = HELP) -> None:
        """`user` adds a reaction to the message `ts`."""
        event = self.slack.reaction_event(user, reaction, channel, ts)
        status, _ = await self.slack.send_event(event)
        _expect_ok(status)

    async def click(self, user: str, action_id: str, message: Json) -> None:
        """`user` presses the button `action_id` on a team-channel message."""
        value = str(button(message, action_id).get("value", ""))
        status, _ = await self.slack.click_button(user, action_id, value, self.team,
                                                  str(message["ts"]))
        _expect_ok(status)

    async def rescue(self, text: str, user: str = ANNA, channel: str = HELP) -> str:
        """`/rescue text` typed by `user` in `channel`; returns the (ephemeral) reply."""
        status, body = await self.slack.slash_command("/rescue", text, user, channel)
        _expect_ok(status)
        return body

    # --- what the bot did

    def conv(self, ts: str, channel: str = HELP) -> Conversation | None:
        """The conversation started by the message `ts`, as stored."""
        return self.bot.store.load(f"slack:{channel}:{ts}")

    async def card_of(self, ts: str, channel: str = HELP) -> Json:
        """The inbox card of the conversation started by `ts`, once it is posted."""
        def posted() -> Conversation | None:
            conv = self.conv(ts, channel)
            return conv if conv is not None and conv.card else None

        conv = await eventually(posted)
        message = self.sandbox.message(self.team, conv.card)
        if message is None:
            raise LookupError(f"card {conv.card} is not in the team channel")
        return message

    def team_posts(self) -> list[Json]:
        """Top-level messages of the team channel, oldest first."""
        return self.sandbox.messages(self.team)

    def thread(self, card_ts: str) -> list[Json]:
        """The operator thread under an inbox card, oldest first."""
        return self.sandbox.messages(self.team, card_ts)


def button(message: Json, action_id: str) -> Json:
    """The button with this action id on a message."""
    for element in _elements(message):
        if element.get("action_id") == action_id:
            return element
    raise LookupError(f"no {action_id} button on {message.get('text')!r}")


def buttons(message: Json) -> list[str]:
    """The action ids of every button on a message, in order."""
    return [str(element.get("action_id")) for element in _elements(message)]


def _elements(message: Json) -> list[Json]:
    found: list[Json] = []
    for block in message.get("blocks") or []:
        if block.get("type") == "actions":
            found += [e for e in block.get("elements", []) if e.get("type") == "button"]
        elif isinstance(block.get("accessory"), dict):
            found.append(block["accessory"])
    return found


def _expect_ok(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"the bot answered HTTP {status}")

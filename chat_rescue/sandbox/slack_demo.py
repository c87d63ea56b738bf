"""`chat-rescue demo --platform slack`: the scripted support day through the real Slack adapter.

The day from `chat_rescue.demo` is played by people in a sandbox workspace: customers
post in #help and #vip, operators reply in threads, react with 👀 and ✅, press the
buttons on cards and nudges, and type `/rescue`. Every request is signed and goes
through slack-bolt to the bot; every message the bot sends goes through the Web API
to the sandbox. The transcript shows what #support-team, the operator threads and
the customer threads would show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chat_rescue import demo
from chat_rescue.bot.clock import FastClock
from chat_rescue.bot.stats import render, summarize
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_world import SlackWorld, eventually, sandbox_settings

Json = dict[str, Any]
TEAM = "C0TEAM"
CHANNELS = {"#help": "C0HELP", "#vip": "C0VIP", "#support-team": TEAM}
OPERATORS = ("ana", "ben", "chloe", "dev")
CLOSING = "We are closing this chat for now. Write again any time!"
_MENTION = re.compile(r"<([@#!])([^>|]+)(?:\|([^>]*))?>")


def user_id(name: str) -> str:
    return f"U0{name.upper()}"


async def play_slack(speed: float = 500.0, write: Callable[[str], None] = print) -> str:
    """Play the day against the Slack sandbox; prints the transcript, returns the summary."""
    clock = FastClock(demo.DAY_START, speed)
    with tempfile.TemporaryDirectory() as scratch:
        async with SlackSandbox(clock=clock.now) as sandbox:
            _furnish(sandbox)
            settings = sandbox_settings(
                sandbox, f"sqlite:///{Path(scratch) / 'demo.db'}",
                slack_team_channel=TEAM, slack_intake_channels="C0HELP,C0VIP",
                rescue_closing_message=CLOSING)
            world = SlackWorld(sandbox, settings, clock=clock, team=TEAM)
            show = Transcript(world, clock, write)
            write(f"chat-rescue demo on Slack: a support day at ×{speed:g} speed, through "
                  "slack-bolt and a local stand-in for Slack. Timers: accept 2m, first response "
                  "30s, idle 5m, escalate 5m, close reminder 30m; #vip auto-closes after 45m.")
            write("Operators ana (admin), ben, chloe, dev are the members of #support-team; "
                  "customers write in #help and #vip.\n")
            await world.start(pace=1.0)  # Slack's one message per second per channel
            watcher = asyncio.create_task(show.follow())
            try:
                for moment in demo.moments(demo._day()):
                    await _until(clock, demo.DAY_START + moment[0][0].at)
                    await asyncio.gather(*(Person(world, show).act_all(steps)
                                           for steps in moment))
                await _until(clock, demo.DAY_START + 6700)  # the last auto-closes
                await world.bot.runtime.drained()
                await asyncio.sleep(0.05)
                show.catch_up()
                summary = render(summarize(world.bot.store.history(f"slack:{TEAM}", 0)),
                                 "\nSummary of the day")
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                await world.stop()
    write(summary)
    return summary


def _furnish(sandbox: SlackSandbox) -> None:
    operators = [user_id(name) for name in OPERATORS]
    customers = {channel: [user_id(n) for n, c in demo.CUSTOMERS.values() if c == channel]
                 for channel in ("#help", "#vip")}
    sandbox.add_channel(TEAM, "support-team", [sandbox.bot_user_id, *operators])
    for channel, people in customers.items():
        sandbox.add_channel(CHANNELS[channel], channel[1:],
                            [sandbox.bot_user_id, *people, *operators])
    for name in OPERATORS:
        sandbox.add_user(user_id(name), name, is_admin=name in demo.ADMINS)
    for name, _ in demo.CUSTOMERS.values():
        sandbox.add_user(user_id(name), name)


class Person:
    """Does one step of the day the way a person in Slack would."""

    def __init__(self, world: SlackWorld, show: Transcript) -> None:
        self.world = world
        self.show = show

    async def act_all(self, steps: list[demo.Step]) -> None:
        for step in steps:
            await self.act(step)

    async def act(self, step: demo.Step) -> None:
        customer, where = demo.CUSTOMERS[step.conv]
        channel, who = CHANNELS[where], user_id(step.who)
        top = self.show.threads.get(step.conv)
        if step.act == "rescue":
            reply = await self.world.rescue(step.text, user=who, channel=channel)
            self.show.say(f"  to @{step.who}", f"/rescue {step.text} -> {_reply_text(reply)}")
            return
        self.show.catch_up()
        if step.act == "says":
            self.show.say(where, f"{customer}: {step.text}" + ("" if top else "   (new thread)"))
            ts = await self.world.says(step.text, thread=top, user=who, channel=channel)
            if top is None:
                self.show.opened(step.conv, f"slack:{channel}:{ts}", ts)
            return
        if top is None:
            raise ValueError(f"demo step {step} acts on a conversation that has not started")
        if step.act == "replies":
            self.show.say(where, f"  @{step.who} replies in {customer}'s thread")
            await self.world.says("(reply)", thread=top, user=who, channel=channel)
        elif step.act in ("reacts :eyes:", "closes"):
            emoji = "eyes" if step.act != "closes" else "white_check_mark"
            self.show.say(where, f"  @{step.who} reacts :{emoji}: on {customer}'s message")
            await self.world.react(who, emoji, top, channel=channel)
        else:
            action = {"claims": "claim", "snoozes": "snooze", "hands off": "hand_off",
                      "keeps open": "keep_open"}[step.act]
            key = self.show.keys[step.conv]
            message, value = await self._showing(action, key)
            label = action.replace("_", " ").capitalize()
            self.show.say("#support-team", f"@{step.who} presses [{label}] ({customer})")
            await self.world.slack.click_button(who, action, value, TEAM, message)

    async def _showing(self, action: str, key: str) -> tuple[str, str]:
        """The newest team-channel message with this button for this conversation, and the
        button's value; else the card (a screen that has not refreshed yet still shows it)."""
        sandbox = self.world.sandbox
        messages = sandbox.messages(TEAM) + [
            reply for top in sandbox.messages(TEAM) for reply in sandbox.messages(TEAM, top["ts"])
        ]
        carrying = [(m, value) for m in messages for pressed, value in _buttons(m)
                    if pressed == action and value.split("|")[0] == key]
        if carrying:
            newest, value = max(carrying, key=lambda found: _ts(found[0]["ts"]))
            return str(newest["ts"]), value
        def card() -> str | None:  # nobody can press anything before the card is there
            conv = self.world.bot.store.load(key)
            return conv.card if conv is not None else None

        return str(await eventually(card, timeout=5.0)), key


class Transcript:
    """Prints what Slack shows, from the Web API calls the bot made to the sandbox."""

    def __init__(self, world: SlackWorld, clock: FastClock, write: Callable[[str], None]) -> None:
        self.world = world
        self.clock = clock
        self.write = write
        self.threads: dict[int, str] = {}  # conversation number -> its top message ts
        self.keys: dict[int, str] = {}
        # conversation key -> its card's number, in the order the cards were posted
        self._numbers: dict[str, int] = {}
        self._seen = 0
        self._answered = 0  # ephemerals seen (the click answers are not Web API calls)

    def opened(self, number: int, key: str, ts: str) -> None:
        self.threads[number], self.keys[number] = ts, key

    def say(self, where: str, text: str) -> None:
        stamp = datetime.fromtimestamp(self.clock.now(), UTC).strftime("%H:%M:%S")
        self.write(f"{stamp}  {where:<14} {text}")

    async def follow(self) -> None:
        while True:
            self.catch_up()
            await asyncio.sleep(0.01)

    def catch_up(self) -> None:
        """Show every answered Web API call not shown yet, in the order they were made."""
        calls = self.world.sandbox.calls
        while self._seen < len(calls) and calls[self._seen].status is not None:
            call = calls[self._seen]
            self._seen += 1
            if not call.failed:
                self._show(call.method, call.params)
            elif call.status == 429:
                self.say("  (slack)", f"{call.method} answered 429: retried after Retry-After")
        ephemerals = self.world.sandbox.ephemerals
        for answer in ephemerals[self._answered:]:
            if answer.get("via") == "response_url":
                self.say(f"  to @{self._name(str(answer['user']))}",
                         self._plain(str(answer["text"])) + "   (only they see it)")
        self._answered = len(ephemerals)

    def _show(self, method: str, params: Json) -> None:
        channel, text = str(params.get("channel", "")), self._plain(str(params.get("text", "")))
        buttons = "".join(f" [{label}]" for label in _labels(params.get("blocks") or []))
        if method == "chat.postEphemeral":
            self.say(f"  to @{self._name(str(params['user']))}", text + "   (only they see it)")
        elif method == "chat.update":
            number = self._card_number(str(params.get("ts", "")))
            self.say("#support-team", f"[card {number} updated] {self._card(params)}{buttons}")
        elif method != "chat.postMessage":
            return
        elif channel != TEAM:
            self.say(f"#{self._channel(channel)}", f"  bot in the thread: {text}")
        elif params.get("thread_ts"):
            number = self._card_number(str(params["thread_ts"]))
            self.say(f"  thread {number}", text + buttons)
        elif _is_card(params):
            number = self._numbers.setdefault(self._card_key(params), len(self._numbers) + 1)
            self.say("#support-team", f"[card {number}] {self._card(params)}{buttons}")
        else:
            first, *rest = text.splitlines() or [""]
            self.say("#support-team", first + ("" if rest else buttons))
            for line in rest:
                self.say("#support-team", "  " + line)
            if rest and buttons:
                self.say("#support-team", " " + buttons)

    def _card_key(self, params: Json) -> str:
        """The conversation of a card: its Claim button's, else its customer's (a card
        posted once somebody answered has no Claim)."""
        claim = _claim_value(params)
        if claim:
            return claim
        title = _block_text((params.get("blocks") or [{}])[0])
        return next((self.keys[number] for number, (name, _) in demo.CUSTOMERS.items()
                     if f"<@{user_id(name)}>" in title and number in self.keys), "")

    def _card(self, params: Json) -> str:
        parts = [self._plain(_block_text(b)) for b in params.get("blocks") or []]
        return " - ".join(p.replace("\n>", ': "') + ('"' if "\n>" in p else "")
                          for p in parts if p)

    def _card_number(self, card_ts: str) -> int | str:
        for key, number in self._numbers.items():
            conv = self.world.bot.store.load(key)
            if conv is not None and conv.card == card_ts:
                return number
        return "?"

    def _plain(self, text: str) -> str:
        def name(match: re.Match[str]) -> str:
            kind, ref, label = match.groups()
            if kind == "!" and ref.startswith("date^"):
                return label or ""  # a time Slack would show in the reader's zone
            if kind == "@":
                return "@" + self._name(ref)
            if kind == "#":
                return "#" + self._channel(ref)
            return "@" + (label.lstrip("@") if label else ref.replace("subteam^", ""))

        plain = _MENTION.sub(name, text).replace("*", "")
        return plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def _name(self, user: str) -> str:
        known = self.world.sandbox.user(user)
        return str(known["name"]) if known else user

    def _channel(self, channel: str) -> str:
        known = self.world.sandbox.channel(channel)
        return known.name if known else channel


def _buttons(message: Json) -> list[tuple[str, str]]:
    found = []
    for block in message.get("blocks") or []:
        elements = block.get("elements", []) if block.get("type") == "actions" else []
        for element in [*elements, block.get("accessory") or {}]:
            if element.get("type") == "button":
                found.append((str(element.get("action_id")), str(element.get("value", ""))))
    return found


def _labels(blocks: list[Json]) -> list[str]:
    return [str(element["text"]["text"]) for block in blocks
            for element in [*(block.get("elements", []) if block.get("type") == "actions"
                              else []), block.get("accessory") or {}]
            if element.get("type") == "button"]


def _is_card(params: Json) -> bool:
    return any(block.get("type") == "context" for block in params.get("blocks") or [])


def _claim_value(params: Json) -> str:
    return next((value for action, value in _buttons(params) if action == "claim"), "")


def _block_text(block: Json) -> str:
    if block.get("type") == "section":
        return str(block["text"]["text"])
    if block.get("type") == "context":
        return " ".join(str(e.get("text", "")) for e in block.get("elements", []))
    return ""


def _reply_text(body: str) -> str:
    with contextlib.suppress(ValueError):
        return str(json.loads(body).get("text", body)).replace("&lt;", "<").replace("&gt;", ">")
    return body


def _ts(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


async def _until(clock: FastClock, at: float) -> None:
    wait = clock.real(at - clock.now())
    if wait > 0:
        await asyncio.sleep(wait)

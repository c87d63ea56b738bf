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
                  f"slack-bolt and a local stand-in for Slack. {demo.plan()}")
            write("Operators ana (admin), ben, chloe, dev are the members of #support-team; "
                  "customers write in #help and #vip.\n")
            await world.start(pace=1.0)  # Slack's one message per second per channel
            watcher = asyncio.create_task(show.follow())
            try:
                for moment in demo.moments(demo._day()):
                    await demo.until(clock, demo.OPENS + moment[0][0].at, world.bot.runtime)
                    await asyncio.gather(*(Person(world, show).act_all(steps)
                                           for steps in moment))
                await demo.until(clock, demo.OPENS + demo.DAY_END, world.bot.runtime)
                await world.bot.runtime.drained()
                await asyncio.sleep(0.05)
                show.catch_up()
                history = world.bot.store.history(f"slack:{TEAM}", 0)
                summary = render(summarize(history, demo.worked(world.bot.service)),
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
        customer, where = demo.CUSTOMERS.get(step.conv, ("", "#support-team"))
        channel, who = CHANNELS[where], user_id(step.who)
        top = self.show.threads.get(step.conv)
        if step.act == "rescue":
            # Slack sends the people a command mentions as <@U…|name> (escaped).
            typed = re.sub(rf"@({'|'.join(OPERATORS)})\b",
                           lambda m: f"<@{user_id(m[1])}|{m[1]}>", step.text)
            reply = await self.world.rescue(typed, user=who, channel=channel)
            reply_text = self.show.plain(_reply_text(reply))
            self.show.say(f"  to @{step.who}", f"/rescue {step.text} -> {reply_text}")
            return
        self.show.catch_up()
        if step.act == "chats":
            self.show.say(where, f"{step.who}: {step.text}")
            await self.world.says(step.text, user=who, channel=channel)
            return
        if step.act == "sweep":
            await self._press_sweep(step, who)
            return
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

    async def _press_sweep(self, step: demo.Step, who: str) -> None:
        """Press a button on the operator's sweep card: Close all finished, or one on a
        conversation's line."""
        key = "" if step.conv == demo.TEAM_CHANNEL else self.show.keys[step.conv]
        action = f"sweep_{step.text}"

        def on_the_card() -> tuple[Json, Json] | None:
            for message in reversed(self.world.sandbox.messages(TEAM)):
                if f"<@{who}>" not in str(message.get("text")):
                    continue
                for element in _elements(message):
                    value = str(element.get("value", ""))
                    if element.get("action_id") == action and value.partition("|")[2] == key:
                        return message, element
            return None

        card, button = await eventually(on_the_card, timeout=5.0)
        label = str(button["text"]["text"])
        whose = f" for {demo.CUSTOMERS[step.conv][0]}" if key else ""
        self.show.say("#support-team", f"@{step.who} presses [{label}]{whose} on the sweep card")
        await self.world.slack.click_button(who, action, str(button["value"]), TEAM,
                                            str(card["ts"]))

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
                         self.plain(str(answer["text"])) + "   (only they see it)")
        self._answered = len(ephemerals)

    def _show(self, method: str, params: Json) -> None:
        channel, text = str(params.get("channel", "")), self.plain(str(params.get("text", "")))
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
        elif _is_sweep(params):  # a sweep card, or a handover digest: a line a block
            first, *rest = self._lines(params.get("blocks") or [])
            self.say("#support-team", first)
            for line in rest:
                self.say("#support-team", "  " + line)
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

    def _lines(self, blocks: list[Json]) -> list[str]:
        """A message as Slack shows it, a line per block, a line's buttons after it."""
        lines: list[str] = []
        for block in blocks:
            buttons = " ".join(f"[{label}]" for label in _labels([block]))
            text = self.plain(_block_text(block))
            if block.get("type") == "actions" and lines and lines[-1].startswith("• "):
                lines[-1] += "  " + buttons
            elif text or buttons:
                lines.append("  ".join(part for part in (text, buttons) if part))
        return lines

    def _card(self, params: Json) -> str:
        parts = [self.plain(_block_text(b)) for b in params.get("blocks") or []]
        return " - ".join(p.replace("\n>", ': "') + ('"' if "\n>" in p else "")
                          for p in parts if p)

    def _card_number(self, card_ts: str) -> int | str:
        for key, number in self._numbers.items():
            conv = self.world.bot.store.load(key)
            if conv is not None and conv.card == card_ts:
                return number
        return "?"

    def plain(self, text: str) -> str:
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


def _elements(message: Json) -> list[Json]:
    """The buttons of a message, in order (in actions blocks and as section accessories)."""
    found = []
    for block in message.get("blocks") or []:
        elements = block.get("elements", []) if block.get("type") == "actions" else []
        found += [e for e in [*elements, block.get("accessory") or {}]
                  if e.get("type") == "button"]
    return found


def _buttons(message: Json) -> list[tuple[str, str]]:
    return [(str(e.get("action_id")), str(e.get("value", ""))) for e in _elements(message)]


def _labels(blocks: list[Json]) -> list[str]:
    return [str(element["text"]["text"]) for element in _elements({"blocks": blocks})]


def _is_sweep(params: Json) -> bool:
    """A sweep card or a handover digest (by its buttons' ids, or its lines')."""
    ids = [str(block.get("block_id", "")) for block in params.get("blocks") or []]
    return any(action.startswith("sweep_") for action, _ in _buttons(params)) \
        or any(block.startswith("handover_") for block in ids)


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



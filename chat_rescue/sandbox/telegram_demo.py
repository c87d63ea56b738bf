"""`chat-rescue demo --platform telegram`: the scripted support day (demo._day) played through
the real Telegram adapter and python-telegram-bot against the sandbox Bot API.

Customers write to the bot in private chats; operators answer in their topics of the forum
support group, press the buttons the bot posted and type `/close` and `/rescue`. The
transcript shows what people do and what the bot posts where, at the (accelerated) time
of day, and ends with the summary table.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chat_rescue.adapters.telegram.keyboards import parse_sweep
from chat_rescue.bot.clock import FastClock
from chat_rescue.bot.stats import render, summarize
from chat_rescue.demo import (
    CUSTOMERS,
    DAY_END,
    DAY_START,
    OPENS,
    TEAM_CHANNEL,
    Step,
    _day,
    plan,
    until,
    worked,
)
from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_support import (
    GROUP,
    SupportGroup,
    buttons,
    eventually,
    sandbox_settings,
)
from chat_rescue.sandbox.telegram_world import Chat

Write = Callable[[str], None]
Json = dict[str, Any]

OPERATORS = {"ana": 7, "ben": 8, "chloe": 9, "dev": 10}
CUSTOMER_IDS = {n: 1000 + n for n in CUSTOMERS}
CLOSING = "We are closing this chat for now. Write again any time!"
WAIT = 2.0  # real seconds to wait for a topic or a button before giving up on a step


class DayClock(FastClock):
    """The demo's accelerated clock; the day begins when the bot is up, not before."""

    def begin(self) -> None:
        self._origin = time.monotonic()


class DemoSandbox(TelegramSandbox):
    """The sandbox, telling the transcript about every message the bot makes appear."""

    def __init__(self, on_bot_message: Callable[[Chat, Json], None]) -> None:
        super().__init__()
        self.on_bot_message = on_bot_message

    def new_message(self, chat: Chat, sender: Json, content: Mapping[str, Any], *,
                    thread_id: int | None = None,
                    reply_to: Mapping[str, Any] | None = None) -> Json:
        message = super().new_message(chat, sender, content, thread_id=thread_id,
                                      reply_to=reply_to)
        if sender.get("id") == self.bot_id:
            self.on_bot_message(chat, message)
        return message


class Transcript:
    """Lines stamped with the demo clock: who did what, and what the bot posted where."""

    def __init__(self, clock: FastClock, write: Write) -> None:
        self.clock = clock
        self.write = write
        self.topic_names: dict[int, str] = {}
        self.customer_names = {CUSTOMER_IDS[n]: name.capitalize()
                               for n, (name, _) in CUSTOMERS.items()}

    def say(self, where: str, text: str) -> None:
        stamp = datetime.fromtimestamp(self.clock.now(), UTC).strftime("%H:%M:%S")
        self.write(f"{stamp}  {where:<18} {text}")

    def bot_message(self, chat: Chat, message: Json) -> None:
        """What the bot posted, where it landed."""
        thread = message.get("message_thread_id") if message.get("is_topic_message") else None
        created = message.get("forum_topic_created", {}).get("name")
        if created and thread is not None:  # "⏳ Alice · waiting" -> "Alice"
            self.topic_names[thread] = created.split(" ", 1)[-1].rsplit(" · ", 1)[0]
        if chat.type == "private":
            where = f"→ {self.customer_names.get(chat.id, chat.id)}"
        elif thread is None:
            where = "General"
        else:
            where = f"# {self.topic_names.get(thread, thread)}"
        for key, verb in (("forum_topic_created", "topic created"),
                          ("forum_topic_edited", "topic renamed"),
                          ("forum_topic_closed", "topic closed"),
                          ("forum_topic_reopened", "topic reopened")):
            if key in message:
                name = message[key].get("name")
                self.say(where, f"({verb}{': ' + name if name else ''})")
                return
        first, *rest = _shown(message)
        self.say(where, first)
        for line in rest:
            self.say("", "  " + line)


def _shown(message: Json) -> list[str]:
    """A message on one line; a list (a digest, a sweep card, a handover) a line an item,
    its buttons on the last."""
    text = message.get("text") or message.get("caption") or ""
    if not text:
        kind = next((k for k in ("photo", "document", "voice", "sticker") if k in message), "")
        text = f"[{kind or 'message'}]"
    keys = " ".join(f"[{label}]" for label in buttons(message))
    if not _LISTED.search(text):
        return [" ".join([*text.split(), keys]).rstrip()]
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return [*lines, keys] if keys else lines


_LISTED = re.compile(r"^(•|\d+\.) ", re.MULTILINE)  # a line that is an item of a list


class Day:
    """Plays the scripted steps as people in Telegram."""

    def __init__(self, group: SupportGroup, transcript: Transcript) -> None:
        self.group = group
        self.sandbox = group.sandbox
        self.transcript = transcript

    async def play(self, step: Step) -> None:
        who = OPERATORS.get(step.who, 0)
        say = self.transcript.say
        if step.act == "chats":
            say(f"{step.who} in General", step.text)
            self.sandbox.group_message(GROUP, who, step.text)
            return
        if step.act == "sweep":
            await self._press_sweep(step, who)
            return
        if step.act == "rescue":
            say(f"{step.who} in General", f"/rescue {step.text}")
            self.sandbox.group_message(GROUP, who, f"/rescue {step.text}")
            return
        customer = CUSTOMERS[step.conv][0].capitalize()
        customer_id = CUSTOMER_IDS[step.conv]
        if step.act == "says":
            say(customer, f"→ bot: {step.text}")
            self.sandbox.private_message(customer_id, step.text)
            return
        thread = await self._topic(customer_id)
        if thread is None:
            say(step.who, f"(cannot find {customer}'s topic; skipped: {step.act})")
            return
        if step.act == "replies":
            text = f"Hi {customer}, let me help you with that."
            say(f"{step.who} in # {customer}", text)
            self.sandbox.group_message(GROUP, who, text, thread_id=thread)
        elif step.act == "closes":
            say(f"{step.who} in # {customer}", "/close")
            self.sandbox.group_message(GROUP, who, "/close", thread_id=thread)
        else:
            label = {"claims": "Claim", "reacts :eyes:": "Claim", "snoozes": "Snooze",
                     "hands off": "Hand off", "keeps open": "Keep open"}[step.act]
            message = await self._button(thread, label)
            if message is None:
                say(step.who, f"(no [{label}] button for {customer}; skipped)")
                return
            say(f"{step.who} in # {customer}", f"presses [{label}]")
            self.sandbox.callback_query(who, message, _data(message, label))

    async def _press_sweep(self, step: Step, who: int) -> None:
        """Press a button on the operator's sweep card in General: Close all finished, or
        one on a conversation's line."""
        key = "" if step.conv == TEAM_CHANNEL else f"telegram:{CUSTOMER_IDS[step.conv]}:"
        mention = f"{step.who.capitalize()}, your shift ends"

        def on_the_card() -> tuple[Json, Json] | None:
            for message in reversed(self.group.general()):
                if mention not in str(message.get("text")):
                    continue
                for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                    for button in row:
                        found = parse_sweep(button.get("callback_data"))
                        if found is not None and found[1:] == (step.text, key):
                            return message, button
            return None

        found = await _eventually(on_the_card)
        if found is None:
            self.transcript.say(step.who, f"(no sweep card button for {step.text}; skipped)")
            return
        message, button = found
        self.transcript.say(f"{step.who} in General", f"presses [{button['text']}]")
        query = self.sandbox.callback_query(who, message, str(button["callback_data"]))
        answer = await _eventually(lambda: next(
            (params for params in self.sandbox.calls_to("answerCallbackQuery")
             if params.get("callback_query_id") == query["callback_query"]["id"]), None))
        if answer is not None:  # shown to the presser alone, over the chat
            self.transcript.say(f"→ {step.who}", f"{answer.get('text', '')}   (only they see it)")

    async def _topic(self, customer_id: int) -> int | None:
        key = f"telegram:{customer_id}:"

        def topic() -> int | None:
            conv = self.group.bot.store.load(key)
            if conv is None or conv.card is None:
                return None
            return int(conv.card.split(":")[0])

        return await _eventually(topic)

    async def _button(self, thread: int, label: str) -> Json | None:
        """The newest bot message in the topic with this button (the card comes first)."""

        def newest() -> Json | None:
            found = [m for m in self.group.in_topic(thread) if label in buttons(m)]
            return found[-1] if found else None

        return await _eventually(newest)


def _data(message: Json, label: str) -> str:
    for row in message["reply_markup"]["inline_keyboard"]:
        for button in row:
            if button["text"] == label:
                data: str = button["callback_data"]
                return data
    raise KeyError(label)


async def _eventually(check: Callable[[], Any]) -> Any:
    """What `check` finds within WAIT real seconds, or None."""
    try:
        return await eventually(check, WAIT, poll=0.005)
    except TimeoutError:
        return None




def _furnish(sandbox: TelegramSandbox) -> None:
    group = sandbox.add_forum_group(GROUP, "Support", admins={OPERATORS["ana"]: "creator"})
    group.last_message_id = max(group.last_message_id, 10)
    for name, user_id in OPERATORS.items():
        sandbox.add_user(user_id, name.capitalize(), name)
        if name != "ana":
            sandbox.set_member(GROUP, user_id, "member")
    for n, (name, _) in CUSTOMERS.items():
        sandbox.add_user(CUSTOMER_IDS[n], name.capitalize())


async def play_telegram(speed: float = 500.0, write: Write = print,
                        database: Path | None = None) -> str:
    """Run the day through the Telegram adapter against the sandbox; returns the summary."""
    clock = DayClock(DAY_START, speed)
    transcript = Transcript(clock, write)
    write(f"chat-rescue demo on Telegram: a support day at ×{speed:g} speed against a local "
          f"Bot API. {plan('for the team')}")
    write("Operators ana (creator of the support group), ben, chloe and dev answer in the "
          "customers' topics; customers write to the bot in private chats.\n")
    with tempfile.TemporaryDirectory() as scratch:
        path = database or Path(scratch) / "demo-telegram.db"
        async with DemoSandbox(transcript.bot_message) as sandbox:
            _furnish(sandbox)
            settings = sandbox_settings(sandbox, f"sqlite:///{path}",
                                        rescue_closing_message=CLOSING)
            group = SupportGroup(sandbox, settings, clock=clock, pacing=None)
            await group.start()
            clock.begin()
            try:
                day = Day(group, transcript)
                for step in _day():
                    await until(clock, OPENS + step.at, group.bot.runtime)
                    await day.play(step)
                await until(clock, OPENS + DAY_END, group.bot.runtime)
                await group.bot.runtime.drained()
                history = group.bot.store.history(None, 0)
                stats = summarize(history, worked(group.bot.service))
            finally:
                await group.stop()
    summary = render(stats, "\nSummary of the day")
    write(summary)
    return summary

"""Helpers of benchmarks/delivery.py: the sandboxes watched (when each of the bot's posts
appeared, how each call was answered), samples and their figures, and small scheduling and
journal look-ups. Not part of the package."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import percentile

from chat_rescue.bot.model import Action
from chat_rescue.sandbox.journal import OutboxJournal
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_world import ApiError

Json = dict[str, Any]

TAG = re.compile(r"^([co]\d{5}) ")  # the tag our customers and operators start messages with


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Target:
    what: str
    measured: float
    bound: float
    unit: str = "s"

    def line(self) -> str:
        shown = "not reached" if math.isinf(self.measured) else f"{self.measured:.2f} {self.unit}"
        verdict = "MET" if self.measured <= self.bound else "MISSED"
        return f"TARGET {self.what}: {shown} (target <= {self.bound:g} {self.unit}) {verdict}"


@dataclass
class Sample:
    """One message: when it was sent, and when its copy (or card, or notice) showed."""

    tag: str
    sent: float
    kind: str
    seen: float | None = None
    relay: tuple[str, str] | None = None  # (from_chat, message_id) of the Relay it becomes

    @property
    def latency(self) -> float:
        return math.inf if self.seen is None else self.seen - self.sent


def figures(samples: Iterable[float]) -> str:
    ordered = sorted(samples)
    if not ordered:
        return "no samples"
    late = sum(1 for v in ordered if math.isinf(v))
    p50, p99, top = percentile(ordered, 50), percentile(ordered, 99), ordered[-1]
    text = f"n={len(ordered)}  p50 {secs(p50)}  p99 {secs(p99)}  max {secs(top)}"
    return text + (f"  ({late} never shown)" if late else "")


def p99(samples: Iterable[float]) -> float:
    ordered = sorted(samples)
    return percentile(ordered, 99) if ordered else math.inf


def secs(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.2f} s"


class Later:
    """Runs sync actions and coroutines at given times; keeps its tasks; cancels on close."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.handles: list[asyncio.TimerHandle] = []

    def at(self, when: float, call: Callable[[], Any]) -> None:
        """`call()` at monotonic `when`; a coroutine it returns is run as a task."""
        def fire() -> None:
            result = call()
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        self.handles.append(self.loop.call_later(max(0.0, when - time.monotonic()), fire))

    def pending(self) -> int:
        now = self.loop.time()
        return sum(1 for h in self.handles if not h.cancelled() and h.when() > now) + len(
            self.tasks)

    async def close(self) -> None:
        for handle in self.handles:
            handle.cancel()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def wait_for(check: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(poll)
    return True


def poisson(rng: random.Random, per_minute: float, seconds: float) -> list[float]:
    """Arrival offsets of a Poisson process over `seconds`."""
    times, t = [], 0.0
    while per_minute > 0:
        t += rng.expovariate(per_minute / 60.0)
        if t >= seconds:
            return times
        times.append(t)
    return times


def open_conversations(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute(
            "SELECT count(*) FROM conversations WHERE state != 'closed'").fetchone()[0])
    finally:
        conn.close()


def journal_waits(journal: OutboxJournal, platform: str, wanted: Callable[[Action], bool]
                  ) -> list[tuple[Action, float, float | None, list[str]]]:
    """(action, queued at, delivered at or None, errors of failed attempts) per queued
    action that `wanted` picks, from the outbox journal (monotonic times)."""
    found = []
    for entries in journal.queued.values():
        for queued_at, action in entries:
            if not wanted(action):
                continue
            delivered, errors = None, []
            for attempt in journal.attempts:
                if attempt.platform != platform or action not in attempt.actions:
                    continue
                if attempt.delivered:
                    delivered = attempt.at
                    break
                errors.append(attempt.error or "")
            found.append((action, queued_at, delivered, errors))
    return found


def deliveries_between(journal: OutboxJournal, platform: str, start: float, end: float,
                       where: Callable[[Action], bool]) -> Counter[str]:
    """What the outbox delivered (by kind) between two monotonic times, among `where`."""
    kinds: Counter[str] = Counter()
    for attempt in journal.attempts:
        if attempt.platform == platform and attempt.delivered and start < attempt.at <= end:
            first = attempt.actions[0]
            if where(first):
                kind = type(first).__name__
                kinds["Digest" if len(attempt.actions) > 1 else kind] += 1
    return kinds


def quiet_logs(path: Path) -> None:
    """The bot's WARNING and worse go to a file (429s put back are logged at INFO)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def log_lines(path: Path) -> Counter[str]:
    levels: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            for level in ("WARNING", "ERROR", "CRITICAL"):
                if f" {level} " in line:
                    levels[level] += 1
    return levels


# --- the sandboxes, watched ----------------------------------------------------------------


class WatchedTelegram(TelegramSandbox):
    """The Telegram sandbox, noting when each of the bot's messages appeared and how each
    call was answered (a benchmark's view; it changes nothing the bot sees)."""

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[tuple[float, int, int | None, Json]] = []
        self.on_post: Callable[[float, int, int | None, Json], None] = lambda *_: None
        self.answers: Counter[tuple[str, int, str]] = Counter()  # (method, status, chat kind)
        self.edits: list[tuple[float, int]] = []  # (when, message id) of card edits

    def new_message(self, chat: Any, sender: Json, content: Any, *,
                    thread_id: int | None = None, reply_to: Any = None) -> Json:
        message = super().new_message(chat, sender, content, thread_id=thread_id,
                                      reply_to=reply_to)
        if sender.get("id") == self.bot_id:
            at = time.monotonic()
            thread = message.get("message_thread_id") if message.get("is_topic_message") \
                else None
            self.posted.append((at, chat.id, thread, message))
            self.on_post(at, chat.id, thread, message)
        return message

    async def _dispatch(self, method: str, params: Any) -> tuple[str | None, Any]:
        chat = params.raw.get("chat_id")
        kind = "group" if str(chat).startswith("-") else "chat" if chat is not None else "-"
        name = method.lower()
        try:
            result = await super()._dispatch(method, params)
        except ApiError as error:
            self.answers[(name, error.status, kind)] += 1
            raise
        self.answers[(name, 200, kind)] += 1
        if name == "editmessagetext":
            self.edits.append((time.monotonic(), int(params.raw.get("message_id", 0))))
        return result


class WatchedSlack(SlackSandbox):
    """The Slack sandbox, noting when each post and update of the bot was carried out."""

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[tuple[float, str, Json, Json]] = []  # (when, method, params, answer)
        self.on_post: Callable[[float, str, Json, Json], None] = lambda *_: None

    def _dispatch(self, method: str, token: str | None, params: Json) -> Json:
        answer = super()._dispatch(method, token, params)
        if answer.get("ok") and method in ("chat.postMessage", "chat.update"):
            at = time.monotonic()
            self.posted.append((at, method, params, answer))
            self.on_post(at, method, params, answer)
        return answer

    def answers(self) -> Counter[tuple[str, int | None]]:
        return Counter((call.method, call.status) for call in self.calls)


def telegram_group_kind(message: Json) -> str:
    """What one of the bot's messages in the support group is."""
    for key in ("forum_topic_created", "forum_topic_edited", "forum_topic_closed",
                "forum_topic_reopened"):
        if key in message:
            return {"forum_topic_created": "topic created", "forum_topic_edited": "topic renamed",
                    "forum_topic_closed": "topic closed",
                    "forum_topic_reopened": "topic reopened"}[key]
    text = str(message.get("text", ""))
    if TAG.match(text):
        return "copy of a customer's message"
    if "wrote to the bot" in text:
        return "card"
    if text.startswith("🆕"):
        return "announcement"
    if "conversations need attention" in text:
        return "digest"
    if "nobody has taken" in text:
        return "escalation"
    return "other (notices, replies)"

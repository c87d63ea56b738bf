"""Crash: the real `chat-rescue run` process is SIGKILLed at random moments under steady
traffic on Slack and Telegram, and restarted each time.

The sandboxes run in the test process; the bot is a child process
(`python -m chat_rescue.sandbox.paced_run`, i.e. `ops.run` with the sandbox pacing) on
one SQLite file. Afterwards, from the store and the sandboxes' records:

- nothing acknowledged is lost: every Slack event answered 200 and every Telegram update
  confirmed by a later getUpdates offset is in the store (its inbound id), and every
  conversation it opened exists;
- every deadline that came due fired exactly once: the history replays to the stored
  state, no transition repeats within one period, nothing is overdue at the end;
- every nudge, return, escalation, reminder, card and relay reached the platform, and a
  repeat is allowed only when an identical post was made in an earlier life of the process
  (the at-least-once window), at most one action per platform per kill — counted;
- Slack retries (same event_id, X-Slack-Retry-Num) and Telegram redeliveries (the same
  update handed out again) are processed once.

The seed is printed; set CRASH_SEED to replay a run's choices (timing still varies).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from chat_rescue.sandbox.bot_process import BotProcess
from chat_rescue.sandbox.ledger import (
    DROPPED,
    Post,
    Redeliveries,
    announced,
    compare,
    life_of,
    slack_posts,
    telegram_posts,
)
from chat_rescue.sandbox.slack_world import ANNA, BOB, CARL, HELP, SECRET, TEAM
from chat_rescue.sandbox.slack_world import furnish as furnish_slack
from chat_rescue.sandbox.telegram import SANDBOX_TOKEN
from chat_rescue.sandbox.telegram_support import ANA, BEN, CHLOE, GROUP, free_port
from chat_rescue.sandbox.telegram_support import furnish as furnish_telegram
from chat_rescue.sandbox.testbeds import RecordingEventsClient, SlackTestbed, TelegramTestbed

SEED = int(os.environ.get("CRASH_SEED", "20261129"))
KILLS = 7
CUSTOMERS = 20  # per platform
ACCEPT, CLOSE_REMINDER, ESCALATE_REPEATS = 0.6, 1.0, 2
TIMERS = {
    "RESCUE_FIRST_RESPONSE": "400ms",
    "RESCUE_IDLE": "400ms",
    "RESCUE_ACCEPT": "600ms",
    "RESCUE_ESCALATE": "800ms",
    "RESCUE_CLOSE_REMINDER": "1s",
    "RESCUE_AUTO_CLOSE": "off",
    "RESCUE_ESCALATE_REPEATS": str(ESCALATE_REPEATS),
}
TIMER_EVENTS = ("nudged", "returned", "escalated", "reminded")
SLACK_OPERATORS = (ANNA, BOB, CARL)
TELEGRAM_OPERATORS = (ANA, BEN, CHLOE)
SEND_TIMEOUT = 5.0
IN_FLIGHT = 0.2  # seconds for requests of a killed process to land in the sandboxes
# Known bugs (strict xfails in test_crash_windows.py): a Slack 200 and a Telegram getUpdates
# confirmation can precede the commit. A kill this soon after one may lose that item; such
# losses are counted and reported, any other loss fails. Drop this when both are fixed.
KNOWN_WINDOW = 0.5


# -- reading the bot's store from outside ---------------------------------------------------


class StoreView:
    """Read-only queries on the bot's SQLite file (WAL: readers never block the bot)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=5)

    def close(self) -> None:
        self.conn.close()

    def card(self, key: str) -> str | None:
        row = self.conn.execute("SELECT card FROM conversations WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def unsettled(self) -> tuple[int, int]:
        """(conversations with a deadline, outbox rows)."""
        deadlines = self.conn.execute(
            "SELECT count(*) FROM conversations WHERE deadline IS NOT NULL").fetchone()[0]
        outbox = self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return int(deadlines), int(outbox)

    def inbound(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT id FROM inbound")}

    def rows(self) -> dict[str, dict[str, Any]]:
        cursor = self.conn.execute("SELECT * FROM conversations")
        names = [c[0] for c in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor}

    def history(self) -> dict[str, list[tuple[str, float, str | None]]]:
        events: dict[str, list[tuple[str, float, str | None]]] = defaultdict(list)
        for key, kind, at, actor in self.conn.execute(
                "SELECT conversation, kind, at, actor FROM history ORDER BY id"):
            events[key].append((kind, at, actor))
        return events

    def in_flight_drops(self) -> list[tuple[str, str]]:
        """(conversation, action) of notices dropped after a kill that were in flight then."""
        rows = self.conn.execute("SELECT conversation, actor FROM history WHERE "
                                 "kind = 'notice_dropped' AND value = 1").fetchall()
        return [(str(key), str(actor)) for key, actor in rows]

    def dead_letters(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])


# -- Slack's side: signed events, retried until acknowledged --------------------------------


@dataclass
class SlackDelivery:
    """One event or click as Slack would deliver it, with its attempts."""

    what: str  # message | reaction | click
    key: str
    event: dict[str, Any] | None = None
    event_id: str = ""
    click: tuple[str, str, str] | None = None  # (user, card ts, key)
    attempts: int = 0
    acked: bool = False
    acked_at: float = 0.0  # time.monotonic() of the first 200
    inbound: str = ""  # the id the store keeps for it
    operator_reply: bool = False


@dataclass
class SlackConversation:
    customer: str
    root: str
    opened: bool = False  # its first message was acknowledged


class SlackTraffic:
    """Customers write, operators reply, react and click; Slack retries what failed."""

    def __init__(self, sandbox: SlackTestbed, client: RecordingEventsClient,
                 rng: random.Random) -> None:
        self.sandbox = sandbox
        self.client = client
        self.rng = rng
        self.view: StoreView | None = None
        self.conversations: dict[str, SlackConversation] = {}
        self.deliveries: list[SlackDelivery] = []
        self.retry: list[SlackDelivery] = []
        self.acked_inbound: dict[str, str] = {}  # inbound id -> conversation key
        self.click_ids: list[str] = []
        self.latencies: list[float] = []
        self.failed_attempts = 0
        self.late_retries = 0  # deliveries of an already acknowledged event_id
        self._ids = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
            await asyncio.sleep(self.rng.uniform(0.04, 0.12))

    async def step(self) -> None:
        if self.retry and self.rng.random() < 0.7:
            await self.send(self.retry.pop(0))
            return
        roll = self.rng.random()
        opened = [k for k, c in self.conversations.items() if c.opened]
        if roll < 0.15 and len(self.conversations) < CUSTOMERS or not opened:
            if len(self.conversations) < CUSTOMERS:
                await self.new_conversation()
            return
        key = self.rng.choice(opened)
        conv = self.conversations[key]
        if roll < 0.40:
            await self.message(key, conv.customer, thread=conv.root)
        elif roll < 0.62:
            await self.message(key, self.rng.choice(SLACK_OPERATORS), thread=conv.root,
                               operator=True)
        elif roll < 0.72:
            await self.reaction(key, conv.root)
        elif roll < 0.85:
            await self.click(key)
        else:
            await self.late_retry()

    async def new_conversation(self) -> None:
        number = len(self.conversations) + 1
        customer = f"U0CUST{number:03d}"
        event = self.client.message_event(HELP, customer, f"Order {number} never arrived")
        key = f"slack:{HELP}:{event['ts']}"
        self.conversations[key] = SlackConversation(customer, str(event["ts"]))
        await self.send(SlackDelivery("message", key, event, self._event_id()))

    async def message(self, key: str, user: str, thread: str, operator: bool = False) -> None:
        event = self.client.message_event(HELP, user, "any news?" if not operator
                                          else "looking into it", thread_ts=thread)
        await self.send(SlackDelivery("message", key, event, self._event_id(),
                                      operator_reply=operator))

    async def reaction(self, key: str, root: str) -> None:
        event = self.client.reaction_event(self.rng.choice(SLACK_OPERATORS), "eyes", HELP, root)
        await self.send(SlackDelivery("reaction", key, event, self._event_id()))

    async def click(self, key: str) -> None:
        card = self.view.card(key) if self.view else None
        if card and self.sandbox.message(TEAM, card):
            user = self.rng.choice(SLACK_OPERATORS)
            await self.send(SlackDelivery("click", key, click=(user, card, key)))

    async def late_retry(self) -> None:
        done = [d for d in self.deliveries if d.acked and d.event is not None]
        if done:
            again = self.rng.choice(done)
            self.late_retries += 1
            await self.attempt(again, retry_num=min(3, again.attempts))

    async def send(self, delivery: SlackDelivery) -> None:
        if delivery.attempts == 0:
            self.deliveries.append(delivery)
        acked = await self.attempt(delivery, retry_num=delivery.attempts or None)
        if not acked and delivery.what != "click":  # Slack retries events, never clicks
            self.retry.append(delivery)

    async def attempt(self, delivery: SlackDelivery, retry_num: int | None) -> bool:
        began = time.monotonic()
        first = delivery.attempts == 0
        delivery.attempts += 1
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                if delivery.click is not None:
                    user, card, key = delivery.click
                    status, _ = await self.client.click_button(user, "claim", key, TEAM, card)
                    inbound = f"slack:action:{self.client.last_ts}"
                else:
                    assert delivery.event is not None
                    status, _ = await self.client.send_event(
                        delivery.event, event_id=delivery.event_id, retry_num=retry_num)
                    inbound = f"slack:{delivery.event_id}"
        except (aiohttp.ClientError, TimeoutError):
            self.failed_attempts += 1
            return False
        if status != 200:
            self.failed_attempts += 1
            return False
        self.latencies.append(time.monotonic() - began)
        if first or not delivery.acked:
            delivery.acked, delivery.acked_at = True, time.monotonic()
            delivery.inbound = inbound
            self.acked_inbound[inbound] = delivery.key
            if delivery.click is not None:
                self.click_ids.append(inbound)
            conv = self.conversations[delivery.key]
            if delivery.event is not None and delivery.event.get("ts") == conv.root:
                conv.opened = True
        return True

    async def flush(self, timeout: float) -> None:
        """Deliver every event not yet acknowledged (the bot is up)."""
        until = time.monotonic() + timeout
        while self.retry and time.monotonic() < until:
            await self.send(self.retry.pop(0))

    def _event_id(self) -> str:
        self._ids += 1
        return f"Ev{self._ids:08d}CRASH"


# -- Telegram's side: updates queued in the sandbox, fetched by long polling ----------------


@dataclass
class TelegramConversation:
    user_id: int
    name: str


@dataclass
class TelegramTraffic:
    """Customers write to the bot, operators reply in topics and press Claim."""

    sandbox: TelegramTestbed
    rng: random.Random
    view: StoreView | None = None
    conversations: dict[str, TelegramConversation] = field(default_factory=dict)
    # update id -> (conversation key, relay source "<chat>:<message id>" or "" for a click)
    updates: dict[int, tuple[str, str]] = field(default_factory=dict)
    customer_updates: list[dict[str, Any]] = field(default_factory=list)
    reinjected: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.step()
            await asyncio.sleep(self.rng.uniform(0.04, 0.12))

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.15 and len(self.conversations) < CUSTOMERS or not self.conversations:
            if len(self.conversations) < CUSTOMERS:
                self.new_conversation()
            return
        key = self.rng.choice(list(self.conversations))
        conv = self.conversations[key]
        if roll < 0.45:
            self.customer_writes(key, conv.user_id, "any news?")
        elif roll < 0.7:
            self.operator_replies(key)
        elif roll < 0.9:
            self.claim(key)
        else:
            self.redeliver()

    def new_conversation(self) -> None:
        number = len(self.conversations) + 1
        user_id, name = 2000 + number, f"Cust{number:03d}"
        self.sandbox.add_user(user_id, name)
        key = f"telegram:{user_id}:"
        self.conversations[key] = TelegramConversation(user_id, name)
        self.customer_writes(key, user_id, f"Order {number} never arrived")

    def customer_writes(self, key: str, user_id: int, text: str) -> None:
        update = self.sandbox.private_message(user_id, text)
        source = f"{user_id}:{update['message']['message_id']}"
        self.updates[int(update["update_id"])] = (key, source)
        self.customer_updates.append(update)

    def operator_replies(self, key: str) -> None:
        topic = self._card(key)
        if topic is None:
            return
        update = self.sandbox.group_message(GROUP, self.rng.choice(TELEGRAM_OPERATORS),
                                            "on it", thread_id=topic[0])
        source = f"{GROUP}:{update['message']['message_id']}"
        self.updates[int(update["update_id"])] = (key, source)

    def claim(self, key: str) -> None:
        topic = self._card(key)
        card = self.sandbox.message(GROUP, topic[1]) if topic else None
        if card is None:
            return
        update = self.sandbox.callback_query(self.rng.choice(TELEGRAM_OPERATORS), card,
                                             f"claim:{key}")
        self.updates[int(update["update_id"])] = (key, "")

    def redeliver(self) -> None:
        """The same update again, as Telegram does when a confirmation went astray."""
        confirmed = [u for u in self.customer_updates
                     if int(u["update_id"]) in self.sandbox.confirmed]
        if confirmed and not self.sandbox.updates:
            self.sandbox.inject(self.rng.choice(confirmed))
            self.reinjected += 1

    def _card(self, key: str) -> tuple[int, int] | None:
        card = self.view.card(key) if self.view else None
        topic, _, message = (card or "").partition(":")
        return (int(topic), int(message)) if topic.isdigit() and message.isdigit() else None


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Kill:
    when: float  # time.monotonic() of the SIGKILL
    at: float  # seconds into the run
    life: float  # how long that process had been up
    # Where the next life begins in the sandboxes' records (message ts, call index).
    slack_position: float
    telegram_position: float


@dataclass
class CrashRun:
    seed: int
    kills: list[Kill]
    startups: list[float]
    exit_code: int
    slack: SlackTraffic
    telegram: TelegramTraffic
    rows: dict[str, dict[str, Any]]
    history: dict[str, list[tuple[str, float, str | None]]]
    inbound: set[str]
    dead_letters: int
    overdue: int
    posts: list[Post]
    settle_seconds: float
    duration: float
    log_tail: str
    errors: list[str]  # ERROR lines and tracebacks the bot logged over all its lives
    in_flight_drops: list[tuple[str, str]]  # (key, action): maybe posted before a kill

    def life(self) -> dict[str, list[float]]:
        return {"slack": [k.slack_position for k in self.kills],
                "telegram": [k.telegram_position for k in self.kills]}


def logged_errors(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]


async def crash_run(workdir: Path, seed: int) -> CrashRun:
    rng = random.Random(seed)
    began = time.monotonic()
    async with SlackTestbed() as slack_box, TelegramTestbed() as telegram_box:
        furnish_slack(slack_box)
        furnish_telegram(telegram_box)
        port = free_port()
        database = workdir / "crash.db"
        env = {
            "DATABASE_URL": f"sqlite:///{database}",
            "LOG_LEVEL": "WARNING",
            "PTB_TIMEDELTA": "true",
            "SANDBOX_PACING": "0.01",
            "SLACK_BOT_TOKEN": slack_box.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack_box.api_url,
            "SLACK_TEAM_CHANNEL": TEAM,
            "SLACK_INTAKE_CHANNELS": HELP,
            "TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN,
            "TELEGRAM_API_URL": telegram_box.api_url,
            "TELEGRAM_SUPPORT_CHAT_ID": str(GROUP),
            **TIMERS,
        }
        bot = BotProcess(env, port, workdir, workdir / "bot.log")
        client = RecordingEventsClient(f"{bot.url}/slack/events", SECRET, sandbox=slack_box)
        slack = SlackTraffic(slack_box, client, rng)
        telegram = TelegramTraffic(telegram_box, rng)
        kills: list[Kill] = []
        startups = [await bot.start()]
        view = StoreView(database)
        slack.view = telegram.view = view
        try:
            stop = asyncio.Event()
            drivers = [asyncio.create_task(slack.run(stop)),
                       asyncio.create_task(telegram.run(stop))]
            try:
                for number in range(KILLS):
                    # Some kills right after a restart, while overdue work is caught up.
                    life = rng.uniform(0.2, 0.7) if number % 3 == 2 else rng.uniform(2.5, 5.0)
                    await asyncio.sleep(life)
                    killed_at = time.monotonic()
                    await bot.kill()
                    # Requests the dead process had on the wire still reach the sandboxes;
                    # only then does the next life begin (the marks split records by life).
                    await asyncio.sleep(IN_FLIGHT)
                    kills.append(Kill(killed_at, killed_at - began, life,
                                      float(slack_box.next_ts()), float(len(telegram_box.calls))))
                    startups.append(await bot.start())
                await asyncio.sleep(rng.uniform(2.0, 3.0))
            finally:
                stop.set()
                for failed in await asyncio.gather(*drivers, return_exceptions=True):
                    if isinstance(failed, Exception):
                        raise failed
            await slack.flush(timeout=10)
            settle_began = time.monotonic()
            while time.monotonic() - settle_began < 20:
                if view.unsettled() == (0, 0) and not telegram_box.updates:
                    break
                await asyncio.sleep(0.1)
            settle = time.monotonic() - settle_began
        finally:
            exit_code = await bot.stop()
            await client.close()
        rows, history, inbound = view.rows(), view.history(), view.inbound()
        in_flight_drops = view.in_flight_drops()
        overdue = sum(1 for row in rows.values()
                      if row["deadline"] is not None and row["deadline"] <= time.time())
        dead = view.dead_letters()
        view.close()
        names = {c.name: str(c.user_id) for c in telegram.conversations.values()}
        operators = {"Ana": str(ANA), "Ben": str(BEN), "Chloe": str(CHLOE)}
        posts = slack_posts(slack_box, TEAM) + telegram_posts(telegram_box, GROUP, names,
                                                              operators)
        return CrashRun(seed, kills, startups, exit_code, slack, telegram, rows, history,
                        inbound, dead, overdue, posts, settle, time.monotonic() - began,
                        bot.log_tail(), logged_errors(bot.log_path), in_flight_drops)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CrashRun]:
    result = await crash_run(tmp_path_factory.mktemp("crash"), SEED)
    print(report(result))
    yield result


# -- what the store and the platforms must show ---------------------------------------------


def token(key: str, row: dict[str, Any]) -> str:
    """The customer token the ledger uses: the Slack user id, the Telegram user id."""
    return str(row["customer"]) if key.startswith("slack:") else key.split(":")[1]


def audit(run: CrashRun) -> list[str]:
    """Replay each conversation's history: valid transitions, no repeat within one period,
    and the stored state is where the history leads."""
    problems: list[str] = []
    for key, row in run.rows.items():
        events = run.history.get(key, [])
        phase, owner, nudged, reminded = "", None, False, False
        escalations, last_escalation, last_reminder = 0, None, None
        for kind, at, actor in events:
            where = f"{key}: {kind} at {at:.3f} after {phase or 'nothing'}"
            if kind == "opened":
                if phase:
                    problems.append(f"{where}: opened twice")
                phase, owner, escalations, last_escalation = "queued", None, 0, None
            elif kind == "claimed":
                if phase != "queued":
                    problems.append(f"{where}: claim of an owned conversation")
                phase, owner, nudged, reminded = "owned", actor, False, False
                escalations, last_escalation = 0, None
            elif kind in ("first_reply", "reply"):
                if phase != "owned":
                    problems.append(f"{where}: reply without an owner")
                nudged, reminded, escalations, last_escalation = False, False, 0, None
            elif kind == "nudged":
                if phase != "owned" or nudged:
                    problems.append(f"{where}: nudged twice in one idle period"
                                    if nudged else f"{where}: nudge without an owner")
                nudged = True
            elif kind == "reminded":
                # An operator's second message starts a new silence without an event of its
                # own, so two reminders need not have a reply between them; a reminder
                # fired twice for one silence would come sooner than the timer allows.
                if phase != "owned":
                    problems.append(f"{where}: reminder without an owner")
                if last_reminder is not None and at - last_reminder < CLOSE_REMINDER - 0.05:
                    problems.append(f"{where}: reminded again after {at - last_reminder:.3f}s")
                reminded, last_reminder = True, at
            elif kind == "returned":
                if phase != "owned":
                    problems.append(f"{where}: returned twice / without an owner")
                phase, owner, nudged, reminded = "queued", None, False, False
                escalations, last_escalation = 0, None
            elif kind == "escalated":
                escalations += 1
                if phase != "queued":
                    problems.append(f"{where}: escalation of an owned conversation")
                if escalations > ESCALATE_REPEATS + 1:
                    problems.append(f"{where}: escalation {escalations} in one period")
                if last_escalation is not None and at - last_escalation < ACCEPT - 0.05:
                    problems.append(f"{where}: escalated again after {at - last_escalation:.3f}s")
                last_escalation = at
            elif kind == "snoozed":
                nudged = False
            elif kind in ("closed", "reopened"):
                phase = "closed" if kind == "closed" else ("owned" if owner else "queued")
        state = row["state"]
        expected_phase = {"closed": "closed", "queued": "queued"}.get(state, "owned")
        if phase != expected_phase or (phase == "owned" and owner != row["owner"]):
            problems.append(f"{key}: history leads to {phase}/{owner}, stored {state}/"
                            f"{row['owner']}: {[e[0] for e in events]}")
        if state == "queued" and row["escalations"] != escalations:
            problems.append(f"{key}: {row['escalations']} escalations stored, {escalations} "
                            "in the history of this period")
        if row["nudged_at"] is not None and not nudged:
            problems.append(f"{key}: stored as nudged, no nudge in this idle period")
        if row["reminded"] and not reminded:
            problems.append(f"{key}: stored as reminded, no reminder in this silence")
    return problems


def expected_posts(run: CrashRun) -> dict[tuple[str, str], int]:
    """(customer, kind) -> how many posts the store's history and inbound ids call for."""
    wanted: Counter[tuple[str, str]] = Counter()
    for key, row in run.rows.items():
        who = token(key, row)
        for kind, _, actor in run.history.get(key, []):
            if kind in TIMER_EVENTS:
                wanted[(who, kind)] += 1
            elif kind == "notice_dropped" and actor in DROPPED:
                # Its reason had gone by its turn (answered, claimed, replaced): not posted.
                wanted[(who, DROPPED[actor])] -= 1
        wanted[(who, "card")] = 1
        if key.startswith("telegram:"):
            wanted[(who, "topic")] = 1
            # Announced in General unless answered before its card went out.
            wanted[(who, "announce")] = announced(run.posts, who)
    for update_id, (key, source) in run.telegram.updates.items():
        if source and f"telegram:{update_id}" in run.inbound:
            kind = "relay_out" if source.startswith(f"{GROUP}:") else "relay_in"
            wanted[(key.split(":")[1], kind)] += 1
    return wanted


POSTED_KINDS = (*TIMER_EVENTS, "card", "topic", "announce", "relay_in", "relay_out")


def redeliveries(run: CrashRun) -> Redeliveries:
    # A notice in flight at a kill, dropped by the next life as no longer true, may have
    # been posted before the kill: the window of one action per worker per kill.
    window = Counter((token(key, run.rows[key]), DROPPED[action])
                     for key, action in run.in_flight_drops if action in DROPPED)
    return compare(run.posts, expected_posts(run), run.life(), POSTED_KINDS, window)


def actions_per_kill(run: CrashRun, found: Redeliveries) -> dict[tuple[str, int], set[Any]]:
    """Repeated actions by platform and by the kill that interrupted them: a digest is one
    action, every other post belongs to its conversation's one in-flight action."""
    posts_by_key: dict[tuple[str, str, str, str], list[Post]] = defaultdict(list)
    for post in run.posts:
        posts_by_key[(post.platform, post.conversation, post.kind, post.text)].append(post)
    life = run.life()
    repeated: dict[tuple[str, int], set[Any]] = defaultdict(set)
    for post in found.explained:
        earlier = [p for p in posts_by_key[(post.platform, post.conversation, post.kind,
                                            post.text)]
                   if life_of(p, life) < life_of(post, life)]
        first = min(earlier, key=lambda p: p.position)
        action = ("digest", first.message) if first.digest else ("conversation",
                                                                  first.conversation)
        repeated[(post.platform, life_of(first, life))].add(action)
    return repeated


def after_kill(run: CrashRun, moment: float) -> float:
    """Seconds from `moment` to the next kill (infinite when none followed)."""
    return min((k.when - moment for k in run.kills if k.when >= moment), default=float("inf"))


def lost_slack_events(run: CrashRun) -> tuple[list[str], list[str]]:
    """Slack events answered 200 but not in the store: (in the known window, elsewhere)."""
    lost = [d for d in run.slack.deliveries if d.acked and d.inbound not in run.inbound]
    return ([d.inbound for d in lost if after_kill(run, d.acked_at) <= KNOWN_WINDOW],
            [d.inbound for d in lost if after_kill(run, d.acked_at) > KNOWN_WINDOW])


def lost_telegram_updates(run: CrashRun) -> tuple[list[int], list[int]]:
    """Telegram updates confirmed but not in the store: (in the known window, elsewhere)."""
    confirmed = run.telegram.sandbox.confirmed
    lost = [u for u in run.telegram.updates if u in confirmed and f"telegram:{u}" not in
            run.inbound]
    return ([u for u in lost if after_kill(run, confirmed[u]) <= KNOWN_WINDOW],
            [u for u in lost if after_kill(run, confirmed[u]) > KNOWN_WINDOW])


def report(run: CrashRun) -> str:
    history = [kind for events in run.history.values() for kind, _, _ in events]
    kinds = Counter(history)
    found = redeliveries(run)
    platform_repeats = Counter(p.platform for p in found.explained)
    slack_redelivered = sum(1 for d in run.slack.deliveries if d.attempts > 1)
    telegram_redelivered = sum(1 for n in run.telegram.sandbox.handed_out.values() if n > 1)
    latencies = sorted(run.slack.latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
    lines = [
        f"crash run: seed {run.seed}, {run.duration:.1f}s, {len(run.kills)} SIGKILLs at "
        + ", ".join(f"{k.at:.1f}s (up {k.life:.1f}s)" for k in run.kills),
        f"  restarts to /healthz: {', '.join(f'{s:.2f}s' for s in run.startups)}; "
        f"settled {run.settle_seconds:.1f}s after traffic; clean exit code {run.exit_code}",
        f"  conversations: {len(run.rows)} "
        f"({sum(k.startswith('slack:') for k in run.rows)} Slack, "
        f"{sum(k.startswith('telegram:') for k in run.rows)} Telegram); "
        f"history events: {len(history)} {dict(sorted(kinds.items()))}",
        f"  deadlines fired: {sum(kinds[k] for k in TIMER_EVENTS)} "
        f"({', '.join(f'{k} {kinds[k]}' for k in TIMER_EVENTS)}); overdue left: {run.overdue}",
        f"  Slack: {len(run.slack.deliveries)} events/clicks, {len(run.slack.acked_inbound)} "
        f"acknowledged, {run.slack.failed_attempts} attempts failed (bot down), "
        f"{slack_redelivered} delivered again with X-Slack-Retry-Num, "
        f"{run.slack.late_retries} late retries of acknowledged events; "
        f"ack p99 {p99 * 1000:.0f} ms, max {max(latencies, default=0) * 1000:.0f} ms",
        f"  Telegram: {len(run.telegram.updates)} updates, "
        f"{len(run.telegram.sandbox.confirmed)} confirmed, {telegram_redelivered} handed out "
        f"more than once ({run.telegram.reinjected} re-injected by the test)",
        f"  at-least-once window: {len(found.explained)} posts repeated after a kill "
        f"({dict(platform_repeats)}): "
        + ", ".join(f"{p.platform}/{p.kind}" for p in found.explained),
        f"  unexplained repeats: {len(found.unexplained)}; missing posts: {len(found.missing)};"
        f" dead letters: {run.dead_letters}",
        f"  lost in the known ack/confirm-before-commit windows (bugs): Slack "
        f"{len(lost_slack_events(run)[0])}, Telegram {len(lost_telegram_updates(run)[0])}; "
        f"lost elsewhere: Slack {len(lost_slack_events(run)[1])}, "
        f"Telegram {len(lost_telegram_updates(run)[1])}",
    ]
    return "\n".join(lines)


# -- the tests --------------------------------------------------------------------------------


def test_crash_the_run_killed_and_restarted_the_bot(run: CrashRun) -> None:
    assert len(run.kills) >= 5
    assert len(run.startups) == len(run.kills) + 1
    assert run.exit_code == 0, run.log_tail
    assert len(run.rows) >= CUSTOMERS  # both platforms had traffic in every life
    assert not run.errors, "\n".join(run.errors)


def test_crash_no_acknowledged_slack_event_is_lost(run: CrashRun) -> None:
    in_window, elsewhere = lost_slack_events(run)
    assert not elsewhere, f"acknowledged with 200 but not in the store: {elsewhere}"
    excused = {d.key for d in run.slack.deliveries if d.inbound in in_window}
    opened = {key for key, conv in run.slack.conversations.items() if conv.opened}
    assert opened - excused <= set(run.rows)
    assert all(run.history[key][0][0] == "opened" for key in opened - excused)


def test_crash_no_confirmed_telegram_update_is_lost(run: CrashRun) -> None:
    in_window, elsewhere = lost_telegram_updates(run)
    assert not elsewhere, f"confirmed to Telegram but not in the store: {elsewhere}"
    written = {key for key, _ in run.telegram.updates.values()}
    assert written <= set(run.rows) | {run.telegram.updates[u][0] for u in in_window}


def test_crash_every_deadline_fired_exactly_once(run: CrashRun) -> None:
    assert run.overdue == 0
    assert all(row["deadline"] is None for row in run.rows.values())  # all timers ran out
    problems = audit(run)
    assert not problems, "\n".join(problems)
    fired = sum(1 for events in run.history.values() for kind, _, _ in events
                if kind in TIMER_EVENTS)
    assert fired >= len(run.rows)  # the run did exercise the timers


def test_crash_every_post_arrived_and_repeats_only_in_the_window(run: CrashRun) -> None:
    found = redeliveries(run)
    assert run.dead_letters == 0
    assert not found.missing, "\n".join(found.missing)
    assert not found.unexplained, "\n".join(found.unexplained)
    for (platform, killed), actions in actions_per_kill(run, found).items():
        assert len(actions) <= 1, f"kill {killed} repeated {actions} on {platform}"


def test_crash_retries_and_redeliveries_are_processed_once(run: CrashRun) -> None:
    retried = [d for d in run.slack.deliveries if d.attempts > 1 and d.acked]
    assert retried, "no Slack event was delivered twice"
    assert sum(n > 1 for n in run.telegram.sandbox.handed_out.values()) > 0
    # A reply processed twice would show as a second reply event (or a second relay,
    # which the ledger test counts): no conversation has more replies than were sent.
    replies: Counter[str] = Counter(d.key for d in run.slack.deliveries
                                    if d.operator_reply and d.acked)
    for key, events in run.history.items():
        if key.startswith("slack:"):
            answered = sum(kind in ("first_reply", "reply") for kind, _, _ in events)
            assert answered <= replies[key], (key, events)

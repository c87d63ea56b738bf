"""Load: signed Slack events at 200 requests/s and Telegram webhook updates at 200 updates/s.

One bot process (`chat-rescue run`, a subprocess with production settings and pacing) serves
both platforms on 127.0.0.1; this process plays Slack and Telegram: it runs both sandboxes
(the Web API and the Bot API the bot talks to) and sends

* Slack: signed Events API requests and interactivity to POST /slack/events — customers
  opening conversations in the intake channels and writing in their threads, operators
  replying, reacting (eyes / white_check_mark), pressing Claim / Close, an occasional
  `/rescue` status, and retries of earlier deliveries (same event_id, X-Slack-Retry-Num);
* Telegram: updates to POST /telegram/webhook with the secret header — customers writing
  in private (new and known customers), operators replying in topics that exist, internal
  notes, Claim presses, an occasional `/rescue`, and redeliveries of the same update_id.

Requests follow an open-loop schedule (each is sent at its time, whether or not earlier
ones were answered); latency is from sending a request to its answer. On a 2-core machine
the bot is pinned to core 0 and this process (load generator and sandboxes) to core 1.

Afterwards the bot is stopped with SIGTERM and its SQLite file is read: an acknowledged
event is *lost* when the store lacks its inbound id (the mark the service commits together
with the event's effects) or the conversation it opened; an event applied twice shows up
as a conversation opened twice.

Targets (issue 5): no errors, no lost event, p99 acknowledgement < 300 ms per platform.

    .venv/bin/python benchmarks/load.py            # full: 60 s at 200 + 200 requests/s
    .venv/bin/python benchmarks/load.py --quick    # smoke: 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import random
import resource
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

import aiohttp
from _common import machine, percentile

from chat_rescue.adapters.slack import blocks
from chat_rescue.sandbox.slack import APP_ID, TEAM_DOMAIN, TEAM_ID, SlackSandbox
from chat_rescue.sandbox.slack_world import ANNA, BOB, CARL, HELP, TEAM, VIP
from chat_rescue.sandbox.slack_world import SECRET as SLACK_SECRET
from chat_rescue.sandbox.slack_world import furnish as furnish_slack
from chat_rescue.sandbox.telegram import SANDBOX_TOKEN, TelegramSandbox
from chat_rescue.sandbox.telegram_support import ANA, BEN, CHLOE, GROUP
from chat_rescue.sandbox.telegram_support import SECRET as TELEGRAM_SECRET
from chat_rescue.sandbox.telegram_support import furnish as furnish_telegram

Json = dict[str, Any]

TARGET_P99_MS = 300.0
ACK_TIMEOUT = 3.0  # Slack's limit; a request unanswered by then is a timeout
MAX_IN_FLIGHT = 1000  # bounded: the generator never holds more open requests than this
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
SETTLE = 2.0  # seconds after the last request before the bot is stopped
SLACK_OPERATORS = (ANNA, BOB, CARL)
TELEGRAM_OPERATORS = (ANA, BEN, CHLOE)

# What the bot runs with: production pacing, timers short enough to fire during the run.
TIMERS = {
    "RESCUE_ACCEPT": "20s",
    "RESCUE_FIRST_RESPONSE": "30s",
    "RESCUE_IDLE": "15s",
    "RESCUE_ESCALATE": "30s",
    "RESCUE_CLOSE_REMINDER": "40s",
}

SLACK_MIX = {"new": 15, "customer": 30, "operator": 20, "reaction": 10, "click": 10,
             "retry": 12, "command": 3}
TELEGRAM_MIX = {"new": 15, "customer": 40, "operator": 20, "note": 3, "button": 7,
                "redelivery": 12, "command": 3}


# --- measurements --------------------------------------------------------------------------


@dataclass
class Tally:
    """What one platform's generator sent and what came back."""

    name: str
    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    expected_inbound: set[str] = field(default_factory=set)
    expected_conversations: set[str] = field(default_factory=set)
    max_lag: float = 0.0

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p50, p99 = percentile(ordered, 50) * 1000, percentile(ordered, 99) * 1000
        top = (ordered[-1] * 1000) if ordered else float("nan")
        errors = sum(self.errors.values())
        return (f"{self.name:<9} {self.sent:>7,} {self.ok:>7,} {errors:>6,} "
                f"{p50:>8.1f} {p99:>8.1f} {top:>8.1f}")

    @property
    def p99_ms(self) -> float:
        return percentile(sorted(self.latencies), 99) * 1000


async def timed_post(session: aiohttp.ClientSession, tally: Tally, kind: str, url: str,
                     body: bytes, headers: dict[str, str],
                     on_ok: Callable[[], None] | None = None) -> None:
    """POST once; record the latency and whether the answer was a 2xx in time."""
    tally.sent += 1
    tally.kinds[kind] += 1
    started = time.perf_counter()
    try:
        async with asyncio.timeout(ACK_TIMEOUT), session.post(url, data=body,
                                                             headers=headers) as answer:
            await answer.read()
            status = answer.status
    except TimeoutError:
        tally.errors["timeout"] += 1
        return
    except aiohttp.ClientError as failed:
        tally.errors[type(failed).__name__] += 1
        return
    tally.latencies.append(time.perf_counter() - started)
    if 200 <= status < 300:
        tally.ok += 1
        if on_ok is not None:
            on_ok()
    else:
        tally.errors[f"HTTP {status}"] += 1


async def open_loop(rate: float, seconds: float, make: Callable[[], Awaitable[None] | None],
                    tally: Tally) -> None:
    """Start `make()` at `rate` per second for `seconds`, whatever earlier requests do."""
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    in_flight: set[asyncio.Task[None]] = set()
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tally.max_lag = max(tally.max_lag, loop.time() - due)
        while len(in_flight) >= MAX_IN_FLIGHT:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        request = make()
        if request is None:
            continue
        task = asyncio.ensure_future(request)
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=ACK_TIMEOUT + 1)


# --- Slack ---------------------------------------------------------------------------------


def sign(secret: str, stamp: str, body: bytes) -> str:
    base = b"v0:" + stamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackLoad:
    """Signed Slack requests for a busy support channel, built like Slack builds them."""

    def __init__(self, url: str, sandbox: SlackSandbox, session: aiohttp.ClientSession,
                 rng: random.Random) -> None:
        self.url = url
        self.sandbox = sandbox
        self.session = session
        self.rng = rng
        self.tally = Tally("slack")
        self.conversations: list[tuple[str, str, str]] = []  # (channel, root ts, customer)
        self.sent_events: list[bytes] = []  # envelopes, for retries
        self._ids = itertools.count(1)
        self._customers = itertools.count(1)
        self.kinds = list(SLACK_MIX)
        self.weights = list(SLACK_MIX.values())

    def next(self) -> Awaitable[None]:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind != "new" and not self.conversations:
            kind = "new"
        if kind == "retry" and not self.sent_events:
            kind = "customer"
        return getattr(self, f"_{kind}")()

    def _post(self, kind: str, body: bytes, content_type: str,
              headers: dict[str, str] | None = None, expect: str | None = None,
              conversation: str | None = None) -> Awaitable[None]:
        stamp = str(int(time.time()))
        all_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(SLACK_SECRET, stamp, body),
            **(headers or {}),
        }

        def acknowledged() -> None:
            if expect:
                self.tally.expected_inbound.add(expect)
            if conversation:
                self.tally.expected_conversations.add(conversation)

        return timed_post(self.session, self.tally, kind, self.url, body, all_headers,
                          acknowledged)

    def _event(self, kind: str, event: Json, conversation: str | None = None) -> Awaitable[None]:
        event_id = f"Ev{next(self._ids):09d}LOAD"
        envelope = {
            "token": "sandbox-verification-token", "team_id": TEAM_ID,
            "context_team_id": TEAM_ID, "api_app_id": APP_ID, "event": event,
            "type": "event_callback", "event_id": event_id, "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID,
                                "user_id": self.sandbox.bot_user_id, "is_bot": True,
                                "is_enterprise_install": False}],
            "is_ext_shared_channel": False,
        }
        body = json.dumps(envelope).encode()
        self.sent_events.append(body)
        if len(self.sent_events) > 200:
            del self.sent_events[:100]
        return self._post(kind, body, "application/json", expect=f"slack:{event_id}",
                          conversation=conversation)

    def _message(self, channel: str, user: str, text: str, thread: str | None) -> Json:
        ts = self.sandbox.next_ts()
        event: Json = {"type": "message", "user": user, "client_msg_id": f"m{ts}",
                       "text": text, "ts": ts, "team": TEAM_ID, "channel": channel,
                       "event_ts": ts, "channel_type": "channel"}
        if thread:
            event["thread_ts"] = thread
        return event

    def _conversation(self) -> tuple[str, str, str]:
        # Recent conversations are busier than old ones.
        recent = self.conversations[-300:]
        return self.rng.choice(recent)

    def _new(self) -> Awaitable[None]:
        channel = self.rng.choice((HELP, HELP, HELP, VIP))
        customer = f"U0C{next(self._customers):06d}"
        event = self._message(channel, customer, "Hello, my order has not arrived yet, can "
                              "somebody look at it please?", None)
        self.conversations.append((channel, event["ts"], customer))
        return self._event("new", event, conversation=f"slack:{channel}:{event['ts']}")

    def _customer(self) -> Awaitable[None]:
        channel, root, customer = self._conversation()
        event = self._message(channel, customer, "Any news? I am still waiting.", root)
        return self._event("customer", event)

    def _operator(self) -> Awaitable[None]:
        channel, root, _ = self._conversation()
        event = self._message(channel, self.rng.choice(SLACK_OPERATORS),
                              "Looking into it now, one moment.", root)
        return self._event("operator", event)

    def _reaction(self) -> Awaitable[None]:
        channel, root, _ = self._conversation()
        name = "white_check_mark" if self.rng.random() < 0.25 else "eyes"
        event = {"type": "reaction_added", "user": self.rng.choice(SLACK_OPERATORS),
                 "reaction": name, "item": {"type": "message", "channel": channel, "ts": root},
                 "event_ts": self.sandbox.next_ts()}
        return self._event("reaction", event)

    def _click(self) -> Awaitable[None]:
        channel, root, _ = self._conversation()
        action_id = blocks.CLOSE if self.rng.random() < 0.2 else blocks.CLAIM
        user = self.rng.choice(SLACK_OPERATORS)
        action_ts = self.sandbox.next_ts()
        card_ts = self.sandbox.next_ts()
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "name": user.lower(),
                     "team_id": TEAM_ID},
            "api_app_id": APP_ID, "token": "sandbox-verification-token",
            "container": {"type": "message", "message_ts": card_ts, "channel_id": TEAM,
                          "is_ephemeral": False},
            "trigger_id": f"{next(self._ids)}.{int(time.time())}.load",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "channel": {"id": TEAM, "name": "support-team"},
            "message": {"type": "message", "ts": card_ts, "text": "card"},
            "response_url": self.sandbox.response_url(None, None),
            "actions": [{"action_id": action_id, "block_id": blocks.CARD_ACTIONS,
                         "value": f"slack:{channel}:{root}", "type": "button",
                         "action_ts": action_ts}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self._post("click", body, "application/x-www-form-urlencoded",
                          expect=f"slack:action:{action_ts}")

    def _retry(self) -> Awaitable[None]:
        body = self.rng.choice(self.sent_events[-100:])
        headers = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        return self._post("retry", body, "application/json", headers)

    def _command(self) -> Awaitable[None]:
        form = {"token": "sandbox-verification-token", "team_id": TEAM_ID,
                "team_domain": TEAM_DOMAIN, "channel_id": HELP, "channel_name": "help",
                "user_id": BOB, "user_name": "bob", "command": "/rescue", "text": "",
                "api_app_id": APP_ID, "is_enterprise_install": "false",
                "response_url": self.sandbox.response_url(None, None),
                "trigger_id": f"{next(self._ids)}.{int(time.time())}.load"}
        return self._post("command", urlencode(form).encode(),
                          "application/x-www-form-urlencoded")


# --- Telegram ------------------------------------------------------------------------------


class TelegramLoad:
    """Webhook updates for a busy support group, made by the sandbox so they are consistent."""

    def __init__(self, url: str, sandbox: TelegramSandbox, session: aiohttp.ClientSession,
                 rng: random.Random) -> None:
        self.url = url
        self.sandbox = sandbox
        self.session = session
        self.rng = rng
        self.tally = Tally("telegram")
        self.customers: list[int] = []
        self.sent: list[Json] = []
        self.ready_topics: list[tuple[int, Json]] = []  # (thread id, card message)
        self._seen_topics: dict[int, float] = {}
        self._next_customer = itertools.count(1_000_000)
        self.kinds = list(TELEGRAM_MIX)
        self.weights = list(TELEGRAM_MIX.values())
        self.ignored = 0  # updates the bot skips by design (notes, General chatter)

    def next(self) -> Awaitable[None]:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind != "new" and not self.customers:
            kind = "new"
        if kind in ("operator", "note", "button") and not self.ready_topics:
            kind = "customer"
        if kind == "redelivery" and not self.sent:
            kind = "customer"
        return getattr(self, f"_{kind}")()

    def watch_topics(self) -> None:
        """Topics whose card has been up for a second are ones the bot surely knows."""
        now = time.monotonic()
        known = {thread for thread, _ in self.ready_topics}
        for topic in self.sandbox.topics(GROUP):
            posted = self.sandbox.messages(GROUP, topic.thread_id)
            if not posted or topic.thread_id in known:
                continue
            first_seen = self._seen_topics.setdefault(topic.thread_id, now)
            if now - first_seen >= 1.0:
                self.ready_topics.append((topic.thread_id, posted[0]))

    def _send(self, kind: str, update: Json, expect: bool = True,
              conversation: str | None = None) -> Awaitable[None]:
        self.sandbox.updates.clear()  # webhook mode: we deliver, the sandbox does not queue
        self.sent.append(update)
        if len(self.sent) > 200:
            del self.sent[:100]
        body = json.dumps(update).encode()
        headers = {"Content-Type": "application/json",
                   "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        inbound = f"telegram:{update['update_id']}"

        def acknowledged() -> None:
            if expect:
                self.tally.expected_inbound.add(inbound)
            if conversation:
                self.tally.expected_conversations.add(conversation)

        return timed_post(self.session, self.tally, kind, self.url, body, headers,
                          acknowledged)

    def _new(self) -> Awaitable[None]:
        customer = next(self._next_customer)
        self.sandbox.add_user(customer, f"Customer {customer}")
        self.customers.append(customer)
        update = self.sandbox.private_message(customer, "Hello, I was charged twice for my "
                                              "order, can you help?")
        return self._send("new", update, conversation=f"telegram:{customer}:")

    def _customer(self) -> Awaitable[None]:
        customer = self.rng.choice(self.customers[-300:])
        update = self.sandbox.private_message(customer, "Still there? Any update?")
        return self._send("customer", update, conversation=f"telegram:{customer}:")

    def _operator(self) -> Awaitable[None]:
        thread, _ = self.rng.choice(self.ready_topics)
        update = self.sandbox.group_message(GROUP, self.rng.choice(TELEGRAM_OPERATORS),
                                            "Checking your payment now.", thread_id=thread)
        return self._send("operator", update)

    def _note(self) -> Awaitable[None]:
        thread, _ = self.rng.choice(self.ready_topics)
        update = self.sandbox.group_message(GROUP, BEN, "// refund approved by finance",
                                            thread_id=thread)
        self.ignored += 1
        return self._send("note", update, expect=False)

    def _button(self) -> Awaitable[None]:
        _, card = self.rng.choice(self.ready_topics)
        data = None
        for row in card.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                data = data or button.get("callback_data")
        if data is None:
            return self._customer()
        update = self.sandbox.callback_query(self.rng.choice(TELEGRAM_OPERATORS), card, data)
        return self._send("button", update)

    def _redelivery(self) -> Awaitable[None]:
        update = self.rng.choice(self.sent[-100:])
        return self._send("redelivery", update, expect=False)

    def _command(self) -> Awaitable[None]:
        update = self.sandbox.group_message(GROUP, BEN, "/rescue")
        return self._send("command", update)


# --- the bot process -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bot_environment(db: Path, port: int, slack: SlackSandbox,
                    telegram: TelegramSandbox) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SLACK_", "TELEGRAM_", "RESCUE_", "DATABASE_URL"))}
    env.update({
        "DATABASE_URL": f"sqlite:///{db}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "INFO",
        "PTB_TIMEDELTA": "true",
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SLACK_TEAM_CHANNEL": TEAM,
        "SLACK_INTAKE_CHANNELS": f"{HELP},{VIP}",
        "TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN,
        "TELEGRAM_API_URL": telegram.api_url,
        "TELEGRAM_SUPPORT_CHAT_ID": str(GROUP),
        "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook",
        "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
        **TIMERS,
    })
    return env


def pin(pid: int, cores: set[int]) -> bool:
    """Keep a process on `cores` (Linux); False where that is not possible."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return False
    try:
        os.sched_setaffinity(pid, cores)
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PROFILED = """
import cProfile, sys
from chat_rescue.cli import main
profile = cProfile.Profile()
profile.enable()
try:
    main(["run"])
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats(sys.argv[1])
"""


async def start_bot(env: dict[str, str], workdir: Path, log_path: Path,
                    profile: str | None = None) -> asyncio.subprocess.Process:
    command = [sys.executable, "-c", "from chat_rescue.cli import main; main(['run'])"]
    if profile:
        command = [sys.executable, "-c", PROFILED, profile]
    with _log_file(log_path) as log:
        bot = await asyncio.create_subprocess_exec(*command, env=env, cwd=workdir,
                                                   stdout=asyncio.subprocess.PIPE, stderr=log)
    assert bot.stdout is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            line = await bot.stdout.readline()
    except TimeoutError:
        bot.kill()
        raise RuntimeError(f"the bot did not start in {START_TIMEOUT:g} s; "
                           f"see {log_path}") from None
    if b"is running" not in line:
        await bot.wait()
        raise RuntimeError(f"the bot did not start: {line!r}; see {log_path}")
    return bot


def _log_file(path: Path) -> BinaryIO:
    return open(path, "wb")  # noqa: SIM115 - the caller closes it


async def stop_bot(bot: asyncio.subprocess.Process) -> int:
    if bot.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            bot.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_TIMEOUT):
            return await bot.wait()
    except TimeoutError:
        bot.kill()
        return await bot.wait()


# --- the store after the run -------------------------------------------------------------------


@dataclass
class Audit:
    lost_inbound: dict[str, int]
    lost_conversations: dict[str, int]
    opened_twice: int
    conversations: int
    inbound: int
    outbox: int
    dead_letters: int
    integrity: str


def audit(db: Path, tallies: list[Tally]) -> Audit:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        inbound = {row[0] for row in conn.execute("SELECT id FROM inbound")}
        keys = {row[0] for row in conn.execute("SELECT key FROM conversations")}
        opened = Counter(row[0] for row in conn.execute(
            "SELECT conversation FROM history WHERE kind = 'opened'"))
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return Audit(
        lost_inbound={t.name: len(t.expected_inbound - inbound) for t in tallies},
        lost_conversations={t.name: len(t.expected_conversations - keys) for t in tallies},
        opened_twice=sum(1 for n in opened.values() if n > 1),
        conversations=len(keys),
        inbound=len(inbound),
        outbox=outbox,
        dead_letters=dead,
        integrity=integrity,
    )


# --- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="chat-rescue-load-"))
    db, log_path = workdir / "load.db", workdir / "bot.log"
    pinned = not args.no_pin and pin(0, {1})
    async with SlackSandbox() as slack_sandbox, TelegramSandbox() as telegram_sandbox:
        furnish_slack(slack_sandbox)
        furnish_telegram(telegram_sandbox)
        port = free_port()
        env = bot_environment(db, port, slack_sandbox, telegram_sandbox)
        bot = await start_bot(env, workdir, log_path, args.profile)
        pinned = pinned and pin(bot.pid, {0})
        base = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
        async with aiohttp.ClientSession(connector=connector) as session:
            slack = SlackLoad(f"{base}/slack/events", slack_sandbox, session, rng)
            telegram = TelegramLoad(f"{base}/telegram/webhook", telegram_sandbox, session, rng)

            async def watch() -> None:
                while True:
                    telegram.watch_topics()
                    await asyncio.sleep(0.5)

            watcher = asyncio.create_task(watch())
            print(f"load: {seconds:g} s, Slack {args.slack_rate:g}/s + Telegram "
                  f"{args.telegram_rate:g}/s against one bot process"
                  f"{' (bot on core 0, load on core 1)' if pinned else ''}", flush=True)
            bot_cpu_before, own_before = cpu_seconds(bot.pid), _own_cpu()
            started = time.monotonic()
            stopper = None
            if args.stop_at_once:  # SIGTERM as the last requests go out, answered or not
                stopper = asyncio.get_running_loop().call_later(
                    seconds, lambda: bot.send_signal(signal.SIGTERM))
                bot_cpu_at_stop: list[float] = []
                asyncio.get_running_loop().call_later(
                    seconds - 0.05, lambda: bot_cpu_at_stop.append(cpu_seconds(bot.pid)))
            await asyncio.gather(
                open_loop(args.slack_rate, seconds, slack.next, slack.tally),
                open_loop(args.telegram_rate, seconds, telegram.next, telegram.tally),
            )
            elapsed = time.monotonic() - started
            if stopper is None:
                bot_cpu = cpu_seconds(bot.pid) - bot_cpu_before
            else:
                bot_cpu = bot_cpu_at_stop[0] - bot_cpu_before
            own_cpu = _own_cpu() - own_before
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            healthy = True
            if not args.stop_at_once:
                await asyncio.sleep(SETTLE)  # Slack events are worked on after the ack
                async with session.get(f"{base}/healthz") as health:
                    healthy = health.status == 200
        exit_code = await stop_bot(bot)
    tallies = [slack.tally, telegram.tally]
    found = audit(db, tallies)
    log_text = log_path.read_text(errors="replace")
    bot_errors = sum(1 for line in log_text.splitlines() if " ERROR " in line)
    bot_warnings = sum(1 for line in log_text.splitlines() if " WARNING " in line)

    print(f"machine: {machine()}")
    print(f"ran {elapsed:.1f} s; bot CPU {bot_cpu:.1f} s ({bot_cpu / elapsed:.0%} of a core), "
          f"load generator + sandboxes CPU {own_cpu:.1f} s ({own_cpu / elapsed:.0%})")
    print()
    print(f"{'platform':<9} {'sent':>7} {'2xx':>7} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8}")
    for tally in tallies:
        print(tally.row())
    print()
    for tally in tallies:
        mix = ", ".join(f"{n:,} {kind}" for kind, n in tally.kinds.most_common())
        errors = ", ".join(f"{n} {what}" for what, n in tally.errors.items()) or "none"
        print(f"{tally.name}: {mix}; errors: {errors}; generator lag max "
              f"{tally.max_lag * 1000:.0f} ms")
    lost = sum(found.lost_inbound.values()) + sum(found.lost_conversations.values())
    print()
    for tally in tallies:
        print(f"{tally.name}: {len(tally.expected_inbound):,} acknowledged events that must be "
              f"applied, lost {found.lost_inbound[tally.name]}; "
              f"{len(tally.expected_conversations):,} conversations, lost "
              f"{found.lost_conversations[tally.name]}")
    print(f"store: {found.conversations:,} conversations, {found.inbound:,} inbound ids, "
          f"opened twice {found.opened_twice}, outbox backlog {found.outbox:,} (paced "
          f"deliveries still queued), dead letters {found.dead_letters}, integrity "
          f"{found.integrity}")
    print(f"bot: exit code {exit_code}, healthz {'ok' if healthy else 'FAILED'}, "
          f"{bot_errors} ERROR and {bot_warnings} WARNING log lines ({log_path})")
    errors = sum(sum(t.errors.values()) for t in tallies)
    verdicts = [
        ("no errors", errors == 0),
        ("no lost event", lost == 0 and found.opened_twice == 0),
        (f"p99 < {TARGET_P99_MS:g} ms", all(t.p99_ms < TARGET_P99_MS for t in tallies)),
        ("no error logged by the bot", bot_errors == 0),
    ]
    print("targets: " + ", ".join(f"{name} {'ok' if met else 'MISSED'}" for name, met in verdicts))
    return 0 if all(met for _, met in verdicts) else 1


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s smoke run")
    parser.add_argument("--seconds", type=float, help="length of the run (60; quick 10)")
    parser.add_argument("--slack-rate", type=float, default=200.0, help="Slack requests/s")
    parser.add_argument("--telegram-rate", type=float, default=200.0,
                        help="Telegram updates/s")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--profile", metavar="FILE",
                        help="run the bot under cProfile and write its stats to FILE")
    parser.add_argument("--stop-at-once", action="store_true",
                        help="SIGTERM the bot right after the last request instead of letting "
                             "it settle: does a graceful stop under load lose acknowledged "
                             "events?")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    args = parser.parse_args()
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()

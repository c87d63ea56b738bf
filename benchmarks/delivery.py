"""Delivery: how soon what the bot sends shows up on the platforms, under their real limits.

The real bot (`server.Bot`: python-telegram-bot / slack-bolt and slack_sdk, the outbox, the
ticker, SQLite in a temp dir) runs in this process against the sandboxes, with the
adapters' own pacing (Telegram: at most 19 messages a minute in the support group, every
call counted, calls 1 s apart, renames leaving 6 of the 19 to messages; 1 s per private
chat; Slack: per channel a burst of 3 posts, then one a second; 0.5 s between card
updates) and the real clock. The sandboxes enforce the platforms' limits
(`chat_rescue.sandbox.flood`): Telegram 20 messages a minute per group (topic service
messages counted), 1 a second per private chat, 30 a second per bot; Slack
chat.postMessage 1 a second per channel with a burst of 4; 429s with `retry_after` /
`Retry-After`. Every time is taken when the sandbox carries out the bot's call, i.e. when
the message is visible.

Before each measured window the conversations "already in flight" are opened with pacing and
flood control off (as if over the previous hour); then pacing goes back to the adapters'
defaults and flood control is switched on with empty windows.

1. **telegram**: 50 conversations in flight (each claimed by an operator's reply). For the
   window: customers write 15 messages a minute (Poisson; about one in 15 opens a new
   conversation: topic, card, announcement), each copied into its topic; an operator
   answers 3-8 s after a copy shows; twice in the window the operators of all 50
   conversations answer within one second. Measured: customer → operators (private message
   sent → its copy in the topic) and operator → customer (reply in the topic → its copy in
   the customer's chat).
2. **slack**: 50 conversations in flight in #vip (customers write 15 a minute, operators
   answer in the threads); in #help new conversations arrive at 15 a minute, an operator
   answers 3-8 s after the card shows, a third of the customers write back, and #help
   auto-closes a conversation after 40 s of silence with a closing message. Measured:
   customer → operators (a top-level message, signed Events API → its card in the team
   channel) and bot → customer (the closing message in the customer's thread, from the
   moment auto-close came due). On Slack the operators answer in the customer's thread
   themselves: the bot relays nothing, so "operator → customer" has no bot latency; the
   closing message is the only thing the bot sends to the customer side.
3. **storm** (each platform): 300 open conversations, each claimed and answered, whose
   customer wrote again, with `idle` off; once all have waited 30 s an admin types
   `/rescue set idle 30s`, which puts every deadline in the past at once: 300 nudges (and
   300 card updates: "customer waiting") are due together, and nothing else comes due for
   5 minutes. Measured: until every conversation's nudge is visible (in a digest or alone).
   `--storm-timer accept` makes it 300 unclaimed conversations and escalations instead
   (repeated every `accept`; a repeat replaces a call not yet shown).

Targets (issue 8): Telegram operator → customer p99 <= 1.5 s, customer → operators copy p99
<= 6 s; Slack customer → operators p99 <= 1.5 s, bot → customer p99 <= 1.5 s; storm fully
visible within 60 s. The last lines are one `TARGET ...: <measured> (target <bound>) MET`
(or MISSED) per target.

    .venv/bin/python benchmarks/delivery.py                 # full: about 12 min
    .venv/bin/python benchmarks/delivery.py --only telegram # one part (repeatable)
    .venv/bin/python benchmarks/delivery.py --quick         # smoke: about 3 min
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import machine
from _watched import (
    TAG,
    Json,
    Later,
    Sample,
    Target,
    WatchedSlack,
    WatchedTelegram,
    deliveries_between,
    figures,
    journal_waits,
    log_lines,
    open_conversations,
    p99,
    poisson,
    quiet_logs,
    secs,
    telegram_group_kind,
    wait_for,
)

from chat_rescue.adapters.slack.pacing import EPHEMERAL_PACE, POST_PACE, UPDATE_PACE
from chat_rescue.bot.model import CloseNotice, Relay
from chat_rescue.bot.pacing import Pace, Pacer, uniform
from chat_rescue.sandbox.flood import SlackFlood, TelegramFlood
from chat_rescue.sandbox.journal import OutboxJournal
from chat_rescue.sandbox.slack_world import ANNA, BOB, CARL, HELP, TEAM, VIP, SlackWorld
from chat_rescue.sandbox.slack_world import furnish as furnish_slack
from chat_rescue.sandbox.slack_world import sandbox_settings as slack_settings
from chat_rescue.sandbox.telegram_support import ANA, BEN, CHLOE, GROUP, SupportGroup
from chat_rescue.sandbox.telegram_support import furnish as furnish_telegram
from chat_rescue.sandbox.telegram_support import sandbox_settings as telegram_settings

TG_REPLY_P99 = 1.5
TG_COPY_P99 = 6.0
SLACK_CARD_P99 = 1.5
SLACK_CLOSE_P99 = 1.5
STORM_SECONDS = 60.0
TG_OPERATORS = (ANA, BEN, CHLOE)
SLACK_OPERATORS = (ANNA, BOB, CARL)
TG_CUSTOMER = re.compile(r"Customer (\d{7})")
SLACK_CUSTOMER = re.compile(r"<@(U0C\d{6})>")
AUTO_CLOSE = 40.0
CLOSING = "We are closing this conversation; write here again any time."


# --- 1. Telegram: 50 conversations in flight ------------------------------------------------


@dataclass
class TelegramRun:
    sandbox: WatchedTelegram
    group: SupportGroup
    journal: OutboxJournal
    db: Path
    logs: Path
    real_pacing: dict[str, Pace]


@contextlib.asynccontextmanager
async def telegram_bot(workdir: Path, name: str, **settings: Any) -> Any:
    """A support group with the bot running; pacing off until `real_pacing` is restored."""
    db, logs = workdir / f"{name}.db", workdir / f"{name}.log"
    quiet_logs(logs)
    async with WatchedTelegram() as sandbox:
        furnish_telegram(sandbox)
        group = SupportGroup(sandbox, telegram_settings(sandbox, f"sqlite:///{db}", **settings),
                             pacing=None)
        adapter = group.adapter
        real = dict(adapter.paces)  # the adapter's own defaults
        adapter.paces = uniform(real, 0.0)  # for opening what is in flight
        journal = OutboxJournal().attach(group.bot)
        await group.start()
        try:
            yield TelegramRun(sandbox, group, journal, db, logs, real)
        finally:
            await group.stop()


def go_live_telegram(run: TelegramRun) -> None:
    adapter = run.group.adapter
    adapter.paces = run.real_pacing
    adapter.pacer = Pacer(adapter.pacer.pace)  # empty windows, as the sandbox's
    run.sandbox.flood = TelegramFlood()


async def open_telegram(run: TelegramRun, customers: list[int], timeout: float) -> dict[int, int]:
    """Customers write; returns each one's topic once its card is up and the outbox idle."""
    for customer in customers:
        run.sandbox.private_message(customer, "Hello, I have a question about my order.")

    def topics() -> dict[int, int]:
        found = {}
        for customer in customers:
            conv = run.group.conversation(customer)
            topic, _, card = (conv.card or "").partition(":") if conv else ("", "", "")
            if card.isdigit() and card != "0":
                found[customer] = int(topic)
        return found

    if not await wait_for(lambda: len(topics()) == len(customers), timeout):
        raise RuntimeError(f"only {len(topics())} of {len(customers)} topics were made")
    await run.group.drained(timeout)
    return topics()


async def telegram_costs(run: TelegramRun, customer: int) -> list[tuple[str, Counter[str]]]:
    """What each step of one conversation's life costs in support-group messages (pacing
    off: only the count matters)."""
    sandbox, group = run.sandbox, run.group
    costs: list[tuple[str, Counter[str]]] = []
    topic = [0]

    async def step(name: str, act: Callable[[], Any]) -> None:
        before = len(sandbox.posted)
        act()
        await asyncio.sleep(0.3)  # the update is taken, then its actions are queued
        await group.drained(30)
        made = [m for _, chat, _, m in sandbox.posted[before:] if chat == GROUP]
        costs.append((name, Counter(telegram_group_kind(m) for m in made)))
        if not topic[0]:
            topic[0] = next((thread for _, chat, thread, _ in sandbox.posted[before:]
                             if chat == GROUP and thread), 0)

    def operator(text: str) -> Callable[[], Any]:
        return lambda: sandbox.group_message(GROUP, BEN, text, thread_id=topic[0])

    def customer_says(text: str) -> Callable[[], Any]:
        return lambda: sandbox.private_message(customer, text)

    await step("a new conversation (first message)", customer_says("c00000 Hello?"))
    await step("an operator's first reply (a claim)", operator("Hello, how can I help?"))
    await step("the customer writes again", customer_says("c00000 My order is late."))
    await step("the operator answers", operator("It ships today."))
    await step("the customer writes again", customer_says("c00000 Thanks!"))
    await step("/close in the topic", operator("/close"))
    await step("the customer writes again (reopens)", customer_says("c00000 One more thing"))
    return costs


async def telegram_part(args: argparse.Namespace, workdir: Path) -> list[Target]:
    rng = random.Random(args.seed)
    seconds = args.seconds
    flight = args.in_flight
    print(f"\n== Telegram: {flight} conversations in flight, {args.customer_rate:g} customer "
          f"messages/min ({args.new_rate:g} of them new conversations), {seconds:g} s ==",
          flush=True)
    async with telegram_bot(workdir, "telegram") as run:
        sandbox, group = run.sandbox, run.group
        customers = list(range(2_000_001, 2_000_001 + flight + 200))
        for customer in [*customers, 2_999_999]:
            sandbox.add_user(customer, f"Customer {customer}")
        costs = await telegram_costs(run, 2_999_999)
        print("support-group messages per step of a conversation (topic service messages "
              "counted, card edits not):")
        for name, kinds in costs:
            shown = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) or "none"
            print(f"  {name:<38} {sum(kinds.values())}: {shown}")
        started = time.monotonic()
        topics = await open_telegram(run, customers[:flight], 120)
        owners = {c: TG_OPERATORS[i % 3] for i, c in enumerate(customers)}
        for customer, topic in topics.items():
            sandbox.group_message(GROUP, owners[customer], "Hello, I am looking at it.",
                                  thread_id=topic)
        await wait_for(lambda: all(
            (c := group.conversation(x)) is not None and c.owner for x in topics), 60)
        await group.drained(120)
        print(f"opened and claimed {flight} conversations in {time.monotonic() - started:.1f} s "
              "(pacing and flood control off)", flush=True)

        samples: dict[str, Sample] = {}
        later = Later()
        counter = iter(range(1, 100_000))
        fresh = iter(customers[flight:])
        in_flight = list(topics)
        topic_of: dict[int, int] = dict(topics)
        t0 = 0.0
        window_end = [math.inf]

        def operator_reply(customer: int, kind: str) -> None:
            topic = topic_of.get(customer)
            if topic is None:
                return
            tag = f"o{next(counter):05d}"
            update = sandbox.group_message(GROUP, owners[customer],
                                           f"{tag} Thanks, I am checking it now.",
                                           thread_id=topic)
            samples[tag] = Sample(tag, time.monotonic(), kind,
                                  relay=(str(GROUP), str(update["message"]["message_id"])))

        def customer_writes(customer: int | None) -> None:
            kind = "into an existing topic"
            if customer is None:
                customer = next(fresh)
                in_flight.append(customer)
                kind = "opening a new conversation"
            tag = f"c{next(counter):05d}"
            update = sandbox.private_message(customer, f"{tag} Any news about my order?")
            samples[tag] = Sample(tag, time.monotonic(), kind,
                                  relay=(str(customer), str(update["message"]["message_id"])))

        def seen(at: float, chat: int, thread: int | None, message: Json) -> None:
            found = TAG.match(str(message.get("text", "")))
            if not found or found[1] not in samples:
                return
            sample = samples[found[1]]
            if sample.seen is None:
                sample.seen = at
            if found[1].startswith("c") and chat == GROUP and thread is not None:
                customer = int(sample.relay[0]) if sample.relay else 0
                topic_of.setdefault(customer, thread)
                if at < window_end[0]:  # an operator answers what they see
                    later.at(at + rng.uniform(3, 8), lambda: operator_reply(customer, "steady"))

        sandbox.on_post = seen
        go_live_telegram(run)
        t0 = time.monotonic()
        window_end[0] = t0 + seconds
        share_new = args.new_rate / args.customer_rate if args.customer_rate else 0.0
        for offset in poisson(rng, args.customer_rate, seconds):
            new = rng.random() < share_new
            later.at(t0 + offset, lambda new=new: customer_writes(
                None if new else rng.choice(in_flight)))
        for burst in (seconds / 3, 2 * seconds / 3):
            for n, customer in enumerate(list(topics)):
                later.at(t0 + burst + n / len(topics),
                         lambda customer=customer: operator_reply(customer, "burst"))
        await asyncio.sleep(seconds)
        open_at_end = open_conversations(run.db)
        done = await wait_for(lambda: later.pending() == 0 and all(
            s.seen is not None for s in samples.values()), args.drain)
        drained_after = time.monotonic() - t0 - seconds
        await later.close()
        group_posts = [(at, m) for at, chat, _, m in sandbox.posted if chat == GROUP and at >= t0]
        minutes = (max((at for at, _ in group_posts), default=t0) - t0) / 60 or 1.0
        flood = sandbox.flood.refused if sandbox.flood else Counter()
        waits = journal_waits(run.journal, "telegram", lambda a: isinstance(a, Relay))
        stats_of = {(a.from_chat, a.message_id): (q, d, e) for a, q, d, e in waits
                    if isinstance(a, Relay)}
        put_back = sum(1 for a in run.journal.attempts
                       if a.platform == "telegram" and a.error and "flood" in a.error
                       and a.at >= t0)

    to_customer = [s for s in samples.values() if s.tag.startswith("o")]
    to_topic = [s for s in samples.values() if s.tag.startswith("c")]
    print(f"window {seconds:g} s; open conversations at its end: {open_at_end}; "
          f"{'all shown' if done else 'NOT all shown'} {drained_after:.1f} s after it")
    print(f"operator → customer (reply in the topic → copy in the private chat): "
          f"{figures(s.latency for s in to_customer)}")
    for kind in ("steady", "burst"):
        print(f"  {kind:<28} {figures(s.latency for s in to_customer if s.kind == kind)}")
    print(f"customer → operators (private message → copy in the topic): "
          f"{figures(s.latency for s in to_topic)}")
    for kind in ("into an existing topic", "opening a new conversation"):
        print(f"  {kind:<28} {figures(s.latency for s in to_topic if s.kind == kind)}")

    # Where the copies into the topics waited: the bot's intake, or the outbox.
    intake, outbox, retried = [], [], 0
    slow_ahead: Counter[str] = Counter()
    for sample in to_topic:
        found = stats_of.get(sample.relay) if sample.relay else None
        if found is None:
            continue
        queued, delivered, errors = found
        intake.append(queued - sample.sent)
        outbox.append((delivered - queued) if delivered else math.inf)
        retried += len(errors)
        if delivered and sample.latency > TG_COPY_P99:
            slow_ahead += deliveries_between(run.journal, "telegram", queued, delivered,
                                             lambda a: not (isinstance(a, Relay)
                                                            and a.to_customer))
    print(f"  of which: update → queued (polling, service) {figures(intake)}")
    print(f"            queued → delivered (outbox)        {figures(outbox)}; "
          f"{retried} attempts of these copies answered 429")
    slow = sum(1 for s in to_topic if s.latency > TG_COPY_P99)
    if slow_ahead:
        names = {"Relay": "copies into topics", "UpdateCard": "card updates",
                 "PostCard": "new cards", "Digest": "digests"}
        ahead = ", ".join(f"{n} {names.get(kind, kind)}" for kind, n in slow_ahead.most_common())
        print(f"  {slow} copies took longer than {TG_COPY_P99:g} s; the support group's delivery "
              f"slots went meanwhile to (summed over them): {ahead}")
    kinds = Counter(telegram_group_kind(m) for _, m in group_posts)
    print(f"support group: {len(group_posts)} messages in {minutes:.1f} min "
          f"({len(group_posts) / minutes:.1f}/min): "
          + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()))
    print(f"429s answered by the sandbox: group {flood['group']}, private chats "
          f"{flood['chat']}, bot-wide {flood['bot']}; deliveries the outbox put back for a "
          f"429: {put_back}")
    refused_by_method: Counter[str] = Counter()
    for (method, status, chat_kind), n in sandbox.answers.items():
        if status == 429:
            refused_by_method[f"{method} ({chat_kind})"] += n
    if refused_by_method:
        print("  429s by method: " + ", ".join(f"{m} {n}" for m, n in
                                               refused_by_method.most_common()))
    print(f"bot log: {dict(log_lines(run.logs)) or 'no warnings'}")
    return [
        Target(f"telegram operator → customer p99, {flight} in flight",
               p99(s.latency for s in to_customer), TG_REPLY_P99),
        Target(f"telegram customer → operators copy p99 at {args.customer_rate:g}/min",
               p99(s.latency for s in to_topic), TG_COPY_P99),
    ]


# --- 2. Slack: 50 conversations in flight ---------------------------------------------------


@dataclass
class SlackRun:
    sandbox: WatchedSlack
    world: SlackWorld
    journal: OutboxJournal
    db: Path
    logs: Path


@contextlib.asynccontextmanager
async def slack_bot(workdir: Path, name: str, **settings: Any) -> Any:
    db, logs = workdir / f"{name}.db", workdir / f"{name}.log"
    quiet_logs(logs)
    async with WatchedSlack() as sandbox:
        furnish_slack(sandbox)
        world = SlackWorld(sandbox, slack_settings(sandbox, f"sqlite:///{db}", **settings))
        await world.start(pace=0.0)  # pacing off for opening what is in flight
        journal = OutboxJournal().attach(world.bot)
        try:
            yield SlackRun(sandbox, world, journal, db, logs)
        finally:
            await world.stop()


def go_live_slack(run: SlackRun) -> None:
    adapter = run.world.adapter
    adapter.paces = {"post": POST_PACE, "update": UPDATE_PACE, "ephemeral": EPHEMERAL_PACE}
    adapter.pacer = Pacer(adapter.pacer.pace)
    run.sandbox.flood = SlackFlood()


def slack_customer(n: int) -> str:
    return f"U0C{n:06d}"


async def open_slack(run: SlackRun, customers: list[str], channel: str,
                     timeout: float) -> dict[str, str]:
    """Customers write top-level; returns each one's thread once its card is up."""
    roots = {}
    for customer in customers:
        roots[customer] = await run.world.says("Hello, I have a question about my invoice.",
                                               user=customer, channel=channel)

    def carded() -> int:
        return sum(1 for ts in roots.values()
                   if (conv := run.world.conv(ts, channel)) is not None and conv.card)

    if not await wait_for(lambda: carded() == len(customers), timeout):
        raise RuntimeError(f"only {carded()} of {len(customers)} cards were posted")
    await run.world.bot.runtime.drained(timeout)
    return roots


async def slack_part(args: argparse.Namespace, workdir: Path) -> list[Target]:
    rng = random.Random(args.seed + 1)
    seconds, flight = args.seconds, args.in_flight
    print(f"\n== Slack: {flight} conversations in flight in #vip, {args.customer_rate:g} new "
          f"conversations/min in #help (auto-close after {AUTO_CLOSE:g} s there), "
          f"{seconds:g} s ==", flush=True)
    async with slack_bot(workdir, "slack", rescue_closing_message=CLOSING) as run:
        sandbox, world = run.sandbox, run.world
        await world.rescue(f"set auto_close {AUTO_CLOSE:g}s", user=ANNA, channel=HELP)
        started = time.monotonic()
        vip = [slack_customer(n) for n in range(1, flight + 1)]
        roots = await open_slack(run, vip, VIP, 120)
        owners: dict[str, str] = {}
        for i, customer in enumerate(vip):
            owners[customer] = SLACK_OPERATORS[i % 3]
            await world.says("Hello, I am looking at it.", thread=roots[customer],
                             user=owners[customer], channel=VIP)
        await world.bot.runtime.drained(60)
        print(f"opened and answered {flight} conversations in #vip in "
              f"{time.monotonic() - started:.1f} s (pacing and flood control off)", flush=True)

        later = Later()
        counter = iter(range(1, 100_000))
        cards: dict[str, Sample] = {}  # tag of the first message -> sample
        root_of_tag: dict[str, tuple[str, str]] = {}  # tag -> (customer, root ts)
        card_ts: dict[str, str] = {}  # root -> card ts
        closings: dict[str, list[float]] = {}  # root -> when each closing message showed
        reopens: list[Sample] = []
        window_end = [math.inf]

        def says(text: str, user: str, channel: str, thread: str | None = None
                 ) -> Coroutine[Any, Any, str]:
            return world.says(text, thread=thread, user=user, channel=channel)

        async def new_conversation(n: int) -> None:
            customer = slack_customer(10_000 + n)
            owners[customer] = SLACK_OPERATORS[n % 3]
            tag = f"c{next(counter):05d}"
            sample = cards[tag] = Sample(tag, time.monotonic(), "new conversation")
            root = await says(f"{tag} My invoice shows the wrong amount.", customer, HELP)
            root_of_tag[tag] = (customer, root)
            sample.relay = (customer, root)

        async def operator_answers(customer: str, root: str) -> None:
            await says(f"o{next(counter):05d} Thanks, I am fixing it.", owners[customer], HELP,
                       root)
            if time.monotonic() < window_end[0] and rng.random() < 0.33:
                later.at(time.monotonic() + rng.uniform(5, 15),
                         lambda: customer_writes_back(customer, root))

        async def customer_writes_back(customer: str, root: str) -> None:
            await says(f"c{next(counter):05d} Thank you, one more thing.", customer, HELP, root)
            later.at(time.monotonic() + rng.uniform(3, 8),
                     lambda: operator_answers(customer, root))

        async def reopen(customer: str, root: str) -> None:
            sample = Sample(root, time.monotonic(), "reopened")
            reopens.append(sample)
            await says(f"c{next(counter):05d} Sorry, it is still wrong.", customer, HELP, root)

        def seen(at: float, method: str, params: Json, answer: Json) -> None:
            channel, thread = params.get("channel"), params.get("thread_ts")
            if method == "chat.postMessage" and channel == TEAM and not thread:
                found = re.search(r"\b(c\d{5})\b", json.dumps(params, ensure_ascii=False))
                if found and found[1] in cards and cards[found[1]].seen is None:
                    cards[found[1]].seen = at
                    customer, root = root_of_tag.get(found[1], ("", ""))
                    if root:
                        card_ts[root] = str(answer["ts"])
                        later.at(at + rng.uniform(3, 8),
                                 lambda: operator_answers(customer, root))
            elif method == "chat.postMessage" and channel == HELP and thread:
                closings.setdefault(str(thread), []).append(at)
                customer = next((c for c, r in root_of_tag.values() if r == thread), "")
                if customer and at < window_end[0] and rng.random() < 0.2:
                    later.at(at + rng.uniform(5, 10), lambda: reopen(customer, str(thread)))
            elif method == "chat.update":
                for sample in reopens:
                    if sample.seen is None and card_ts.get(sample.tag) == params.get("ts"):
                        sample.seen = at

        sandbox.on_post = seen
        go_live_slack(run)
        t0 = time.monotonic()
        window_end[0] = t0 + seconds
        for n, offset in enumerate(poisson(rng, args.customer_rate, seconds)):
            later.at(t0 + offset, lambda n=n: new_conversation(n))
        for offset in poisson(rng, args.customer_rate, seconds):  # the 50 in #vip
            customer = rng.choice(vip)
            later.at(t0 + offset, lambda c=customer: says(
                "Any news on this?", c, VIP, roots[c]))
            later.at(t0 + offset + rng.uniform(3, 8), lambda c=customer: says(
                "Checking it for you now.", owners[c], VIP, roots[c]))
        await asyncio.sleep(seconds)
        open_at_end = open_conversations(run.db)

        def settled() -> bool:
            if later.pending() or any(s.seen is None for s in cards.values()):
                return False
            conn = sqlite3.connect(f"file:{run.db}?mode=ro", uri=True)
            try:
                waiting = conn.execute(
                    "SELECT count(*) FROM conversations WHERE key LIKE ? AND state != 'closed'",
                    (f"slack:{HELP}:%",)).fetchone()[0]
            finally:
                conn.close()
            return waiting == 0 and world.bot.store.outbox_size() == 0

        done = await wait_for(settled, args.drain + AUTO_CLOSE, poll=0.2)
        drained_after = time.monotonic() - t0 - seconds
        await later.close()
        wall_minus_mono = time.time() - time.monotonic()
        closed = [e for e in world.bot.store.history(None, 0)
                  if e.kind == "closed" and e.actor is None and e.ref.channel == HELP]
        team_posts = [p for p in sandbox.posted if p[0] >= t0 and p[2].get("channel") == TEAM]
        refused = sandbox.flood.refused if sandbox.flood else Counter()
        put_back = sum(1 for a in run.journal.attempts
                       if a.platform == "slack" and a.error and "rate limit" in a.error
                       and a.at >= t0)
        notices = journal_waits(run.journal, "slack", lambda a: isinstance(a, CloseNotice))
        behind = []
        for _, queued, delivered, _ in notices:
            if delivered is not None and delivered - queued > 1.0:
                ahead = deliveries_between(run.journal, "slack", queued, delivered,
                                           lambda a: isinstance(a, CloseNotice))
                behind.append(sum(ahead.values()) - 1)

    # The i-th closing message of a thread goes with its i-th auto-close; latency from
    # the moment that auto-close came due (quiet since + auto_close).
    closing_latency, fired_late = [], []
    by_thread: dict[str, list[Any]] = {}
    for event in closed:
        by_thread.setdefault(event.ref.thread, []).append(event)
    for thread, events in by_thread.items():
        shown = closings.get(thread, [])
        for i, event in enumerate(events):
            due = event.at - (event.value or 0.0) + AUTO_CLOSE - wall_minus_mono
            fired_late.append(event.at - wall_minus_mono - due)
            closing_latency.append(shown[i] - due if i < len(shown) else math.inf)
    print(f"window {seconds:g} s; open conversations at its end: {open_at_end}; "
          f"{'all settled' if done else 'NOT all settled'} {drained_after:.1f} s after it")
    print(f"customer → operators (top-level message → its card in the team channel): "
          f"{figures(s.latency for s in cards.values())}")
    print(f"  a customer reopening a closed conversation → its card updated: "
          f"{figures(s.latency for s in reopens)}")
    print("  a customer writing in an owned conversation: nothing is posted for it in the team "
          "channel (operators see the intake thread itself)")
    print("operator → customer: n/a (operators answer in the customer's thread themselves; "
          "the bot relays nothing)")
    print(f"bot → customer (auto-close due → closing message in the thread): "
          f"{figures(closing_latency)}")
    print(f"  of which the ticker's lateness firing auto-close: {figures(fired_late)}")
    print(f"  queued → delivered (outbox): "
          f"{figures((d - q) if d else math.inf for _, q, d, _ in notices)}; "
          f"{len(behind)} waited > 1 s, behind {sum(behind)} closing messages to the same "
          "channel in all (one post a second per channel)")
    methods = Counter(p[1] for p in team_posts)
    print(f"team channel: {methods['chat.postMessage']} posts and {methods['chat.update']} "
          "card updates in the window and after")
    print(f"429s answered by the sandbox: {sum(refused.values())} "
          f"({', '.join(f'{c} {n}' for c, n in refused.items()) or 'none'}); deliveries the "
          f"outbox put back for a 429: {put_back}")
    print(f"bot log: {dict(log_lines(run.logs)) or 'no warnings'}")
    return [
        Target(f"slack customer → operators (card) p99, {flight} in flight",
               p99(s.latency for s in cards.values()), SLACK_CARD_P99),
        Target("slack bot → customer (closing message) p99", p99(closing_latency),
               SLACK_CLOSE_P99),
    ]


# --- 3. the end-of-shift storm --------------------------------------------------------------

# What the notice each timer makes says (the customer is named after it).
STORM_PHRASE = {"idle": "are you still with", "accept": "nobody has taken"}


async def watch_storm(found: set[str], size: int, timeout: float, t0: float
                      ) -> tuple[float | None, int]:
    """When every conversation's notice was visible (None: not by `timeout`), and how many
    were visible `STORM_SECONDS` after `t0`."""
    at_target = 0
    deadline = t0 + timeout
    while len(found) < size and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if time.monotonic() - t0 <= STORM_SECONDS:
            at_target = len(found)
    if time.monotonic() - t0 <= STORM_SECONDS:
        at_target = len(found)
    return (None if len(found) < size else time.monotonic() - t0), at_target


def storm_lines(args: argparse.Namespace, found: set[str], first_at: list[float], t0: float,
                last: float | None, at_target: int) -> str:
    return (f"first notice after {secs(first_at[0] - t0) if first_at else 'never'}; "
            f"visible after {STORM_SECONDS:g} s: {at_target} of {args.storm}; "
            + (f"all visible after {last:.1f} s" if last is not None else
               f"after {args.storm_timeout:g} s (the cap): {len(found)} of {args.storm}"))


def notice_counts(store: Any, t0: float) -> str:
    since = time.time() - (time.monotonic() - t0)
    kinds = Counter(e.kind for e in store.history(None, since))
    return (f"notices decided: {kinds['nudged']} nudges, {kinds['escalated']} escalations; "
            f"dropped unseen at their turn (reason gone, or a repeat replaced them): "
            f"{kinds['notice_dropped']}")


async def telegram_storm(args: argparse.Namespace, workdir: Path) -> Target:
    size, timer, length = args.storm, args.storm_timer, args.storm_after
    print(f"\n== Telegram storm: {size} conversations overdue at once ({timer} {length:g} s) ==",
          flush=True)
    async with telegram_bot(workdir, "telegram-storm", **{f"rescue_{timer}": "off"}) as run:
        sandbox, group = run.sandbox, run.group
        customers = list(range(3_000_001, 3_000_001 + size))
        for customer in customers:
            sandbox.add_user(customer, f"Customer {customer}")
        started = time.monotonic()
        topics = await open_telegram(run, customers, 300)
        if timer == "idle":  # claimed and answered; then the customer writes again
            for n, topic in enumerate(topics.values()):
                sandbox.group_message(GROUP, TG_OPERATORS[n % 3], "On it.", thread_id=topic)
            await wait_for(lambda: all((c := group.conversation(x)) is not None and c.owner
                                       for x in customers), 120)
            for customer in customers:
                sandbox.private_message(customer, "Are you still there?")
            await wait_for(lambda: all((c := group.conversation(x)) is not None
                                       and c.state == "waiting_on_operator"
                                       for x in customers), 120)
            await group.drained(300)
        print(f"set up {size} conversations in {time.monotonic() - started:.1f} s "
              "(pacing and flood control off)", flush=True)
        await asyncio.sleep(length + 1.0)  # every one has waited longer than the new timer
        found: set[str] = set()
        first_at: list[float] = []

        def seen(at: float, chat: int, thread: int | None, message: Json) -> None:
            text = str(message.get("text", ""))
            if chat == GROUP and STORM_PHRASE[timer] in text:
                first_at.append(at)
                found.update(TG_CUSTOMER.findall(text))

        sandbox.on_post = seen
        go_live_telegram(run)
        t0 = time.monotonic()
        sandbox.group_message(GROUP, ANA, f"/rescue set {timer} {length:g}s")
        last, at_target = await watch_storm(found, size, args.storm_timeout, t0)
        ended = time.monotonic()
        posts = [m for at, chat, _, m in sandbox.posted if chat == GROUP and at >= t0]
        edits = sum(1 for at, _ in sandbox.edits if at >= t0)
        flood = sandbox.flood.refused if sandbox.flood else Counter()
        slots = deliveries_between(run.journal, "telegram", t0, ended, lambda a: True)
        backlog = group.bot.store.outbox_size()
        counts = notice_counts(group.bot.store, t0)
    kinds = Counter(telegram_group_kind(m) for m in posts)
    print(storm_lines(args, found, first_at, t0, last, at_target))
    print(f"support group meanwhile: {len(posts)} messages ("
          + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) + f"), {edits} card edits")
    print("outbox deliveries meanwhile: " + ", ".join(f"{n} {k}" for k, n in slots.most_common())
          + f"; {backlog} actions still queued at the end")
    print(counts)
    print(f"429s answered by the sandbox: group {flood['group']}, private chats "
          f"{flood['chat']}, bot-wide {flood['bot']}")
    print(f"bot log: {dict(log_lines(run.logs)) or 'no warnings'}")
    measured = last if last is not None else math.inf
    return Target(f"telegram storm of {size}: last notice visible", measured, STORM_SECONDS)


async def slack_storm(args: argparse.Namespace, workdir: Path) -> Target:
    size, timer, length = args.storm, args.storm_timer, args.storm_after
    print(f"\n== Slack storm: {size} conversations overdue at once ({timer} {length:g} s) ==",
          flush=True)
    async with slack_bot(workdir, "slack-storm", **{f"rescue_{timer}": "off"}) as run:
        sandbox, world = run.sandbox, run.world
        customers = [slack_customer(n) for n in range(1, size + 1)]
        started = time.monotonic()
        roots = await open_slack(run, customers, HELP, 300)
        if timer == "idle":
            for n, customer in enumerate(customers):
                await world.says("On it.", thread=roots[customer],
                                 user=SLACK_OPERATORS[n % 3], channel=HELP)
            for customer in customers:
                await world.says("Are you still there?", thread=roots[customer],
                                 user=customer, channel=HELP)
            await world.bot.runtime.drained(300)
        print(f"set up {size} conversations in {time.monotonic() - started:.1f} s "
              "(pacing and flood control off)", flush=True)
        await asyncio.sleep(length + 1.0)
        found: set[str] = set()
        first_at: list[float] = []

        def seen(at: float, method: str, params: Json, answer: Json) -> None:
            text = json.dumps(params, ensure_ascii=False)
            if method == "chat.postMessage" and params.get("channel") == TEAM \
                    and STORM_PHRASE[timer] in text:
                first_at.append(at)
                found.update(SLACK_CUSTOMER.findall(text))

        sandbox.on_post = seen
        go_live_slack(run)
        t0 = time.monotonic()
        await world.rescue(f"set {timer} {length:g}s", user=ANNA, channel=TEAM)
        last, at_target = await watch_storm(found, size, args.storm_timeout, t0)
        ended = time.monotonic()
        posts = Counter(p[1] for p in sandbox.posted if p[0] >= t0)
        refused = sandbox.flood.refused if sandbox.flood else Counter()
        slots = deliveries_between(run.journal, "slack", t0, ended, lambda a: True)
        backlog = world.bot.store.outbox_size()
        counts = notice_counts(world.bot.store, t0)
    print(storm_lines(args, found, first_at, t0, last, at_target))
    print(f"team channel meanwhile: {posts['chat.postMessage']} posts, "
          f"{posts['chat.update']} card updates; outbox deliveries: "
          + ", ".join(f"{n} {k}" for k, n in slots.most_common())
          + f"; {backlog} actions still queued at the end")
    print(counts)
    print(f"429s answered by the sandbox: {sum(refused.values())}")
    print(f"bot log: {dict(log_lines(run.logs)) or 'no warnings'}")
    measured = last if last is not None else math.inf
    return Target(f"slack storm of {size}: last notice visible", measured, STORM_SECONDS)


# --- the run -------------------------------------------------------------------------------


PARTS = ("telegram", "slack", "storm")


async def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    workdir = Path(tempfile.mkdtemp(prefix="chat-rescue-delivery-"))
    only = args.only or list(PARTS)
    print(f"machine: {machine()}")
    targets: list[Target] = []
    began = time.monotonic()
    if "telegram" in only:
        targets += await telegram_part(args, workdir)
    if "slack" in only:
        targets += await slack_part(args, workdir)
    if "storm" in only:
        targets.append(await telegram_storm(args, workdir))
        targets.append(await slack_storm(args, workdir))
    print(f"\nran {time.monotonic() - began:.0f} s; bot logs in {workdir}\n")
    for target in targets:
        print(target.line())
    return 0 if all(t.measured <= t.bound for t in targets) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (about 3 min)")
    parser.add_argument("--only", action="append", choices=PARTS,
                        help="run only this part (repeatable)")
    parser.add_argument("--seconds", type=float, help="measured window per part (150; quick 20)")
    parser.add_argument("--in-flight", type=int, help="conversations in flight (50; quick 10)")
    parser.add_argument("--customer-rate", type=float, default=15.0,
                        help="customer messages per minute (Slack: new conversations)")
    parser.add_argument("--new-rate", type=float, default=1.0,
                        help="Telegram: of those, new conversations per minute")
    parser.add_argument("--storm", type=int, help="overdue conversations (300; quick 40)")
    parser.add_argument("--storm-timeout", type=float,
                        help="give up on the storm after this many seconds (240; quick 60)")
    parser.add_argument("--storm-timer", choices=("idle", "accept"), default="idle",
                        help="the timer that comes due for all at once: idle (nudges to the "
                             "owners; default) or accept (escalations, repeated every accept)")
    parser.add_argument("--storm-after", type=float,
                        help="the timer's length the admin sets when the storm begins, seconds "
                             "(30; quick 10): every conversation has waited longer")
    parser.add_argument("--drain", type=float, default=120.0,
                        help="seconds to wait after the window for what is still under way")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    args.seconds = args.seconds or (20.0 if args.quick else 150.0)
    args.in_flight = args.in_flight or (10 if args.quick else 50)
    args.storm = args.storm or (40 if args.quick else 300)
    args.storm_timeout = args.storm_timeout or (60.0 if args.quick else 240.0)
    args.storm_after = args.storm_after or (10.0 if args.quick else 30.0)
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()

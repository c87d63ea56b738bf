"""Failover under traffic: three real `chat-rescue run` replicas on one PostgreSQL
database serve Slack and Telegram while one of them is SIGKILLed at random moments (some
kills aimed at the replica that polls Telegram) and restarted each time.

- The replicas start together on an empty database (they race to migrate it).
- Slack: every signed event and click goes to one replica's HTTP port, picked at random
  per attempt, as a load balancer spreads them; a replica that refuses the connection (it
  is down) has the request passed on to another (nginx's `proxy_next_upstream`). A request
  cut off by a kill is retried by Slack with `X-Slack-Retry-Num`, on any replica.
- Telegram: only the replica holding the `telegram-poller` advisory lock polls
  getUpdates; each replica calls the sandbox under a URL of its own, so the sandbox knows
  who polled when. When the leader dies, the lock is freed with its session and a standby
  takes it over: the takeover time is from the SIGKILL to another replica's first
  getUpdates.

Afterwards, from the store and the sandboxes' records:

- nothing acknowledged is lost: every Slack event answered 200 and every Telegram update
  confirmed by a later getUpdates offset is in the store, and its conversation exists;
- every deadline fired exactly once (the history replays, no transition repeats within a
  period, nothing is overdue at the end). Lateness is not asserted: without the
  LISTEN/NOTIFY wake-ups a replica learns of a sooner deadline that another stored only
  at its next look at the store;
- every post the history calls for was made; a repeat is allowed only when an identical
  post was made before a kill (the at-least-once window), at most one action per platform
  per kill — counted and printed;
- one replica polled at a time, the poller changed only when it had been killed, and each
  leader death was taken over within TAKEOVER_BOUND seconds (printed; about 1 s targeted).

The seed is printed; FAILOVER_SEED replays its choices (timing still varies), and
FAILOVER_SECONDS sets how long the traffic runs (default 60).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from chat_rescue.sandbox.bot_process import BotProcess, leads_telegram
from chat_rescue.sandbox.ledger import (
    DROPPED,
    Death,
    Post,
    Redeliveries,
    compare,
    repeated_actions,
    slack_posts,
    telegram_posts,
)
from chat_rescue.sandbox.postgres import Databases
from chat_rescue.sandbox.replay import (
    POSTED_KINDS,
    TIMER_EVENTS,
    Timers,
    audit,
    expected_posts,
    logged_errors,
    token,
)
from chat_rescue.sandbox.slack_world import SECRET, TEAM
from chat_rescue.sandbox.slack_world import furnish as furnish_slack
from chat_rescue.sandbox.store_view import Event, StoreView
from chat_rescue.sandbox.telegram_support import GROUP, free_port
from chat_rescue.sandbox.telegram_support import furnish as furnish_telegram
from chat_rescue.sandbox.testbeds import RecordingEventsClient, SlackTestbed, TelegramTestbed
from chat_rescue.sandbox.traffic import (
    TELEGRAM_NAMES,
    SlackTraffic,
    TelegramTraffic,
    sandbox_env,
)

SEED = int(os.environ.get("FAILOVER_SEED", "20261203"))
TRAFFIC = float(os.environ.get("FAILOVER_SECONDS", "60"))
REPLICAS = 3
KILLS = 6  # at least 5; every other one aimed at the Telegram leader
CUSTOMERS = 30  # per platform
CLOSING = 0.03  # share of traffic steps in which an operator closes a conversation
TIMERS = Timers()  # first response 400 ms, idle 400 ms, accept 600 ms, escalate 800 ms ...
IN_FLIGHT = 0.2  # seconds for requests of a killed process to land in the sandboxes
TAKEOVER_BOUND = 5.0  # seconds from the leader's death to another replica's getUpdates
SETTLE = 30.0  # seconds the outbox and the timers get to finish after the traffic


@dataclass
class Kill:
    replica: str
    aimed_at_leader: bool
    was_leader: bool
    when: float  # time.monotonic() of the SIGKILL
    at: float  # seconds into the run
    # Where the sandboxes' records stood at the kill, and once what the killed replica had
    # in flight had landed: the survivors' next life begins at the first, its own at the
    # second (a survivor may take its leases over at once, before its requests land).
    slack_position: float
    telegram_position: float
    slack_landed: float
    telegram_landed: float
    down: float = 0.0  # seconds until it answered /healthz again
    takeover: float | None = None  # leader kills: seconds to another replica's getUpdates
    new_leader: str = ""


@dataclass
class FailoverRun:
    seed: int
    duration: float
    kills: list[Kill]
    startups: list[float]
    exit_codes: list[int]
    health: dict[str, dict[str, Any]]  # each replica's last /healthz (its last life)
    slack: SlackTraffic
    telegram: TelegramTraffic
    telegram_box: TelegramTestbed
    polls: list[tuple[str, float]]  # (replica, arrival) of every getUpdates
    rows: dict[str, dict[str, Any]]
    history: dict[str, list[Event]]
    inbound: set[str]
    in_flight_drops: list[tuple[str, str]]
    dead_letters: int
    overdue: int
    posts: list[Post]
    settle_seconds: float
    errors: list[str]
    stopping: float  # time.monotonic() when the replicas were told to stop (SIGTERM)

    def life(self) -> dict[str, list[Death]]:
        return {"slack": [Death(k.slack_position, k.replica, k.slack_landed)
                          for k in self.kills],
                "telegram": [Death(k.telegram_position, k.replica, k.telegram_landed)
                             for k in self.kills]}

    def takeovers(self) -> list[float]:
        return [k.takeover for k in self.kills if k.was_leader and k.takeover is not None]


async def leader_of(bots: dict[str, BotProcess], wait: float = 5.0) -> str | None:
    """The replica that says on /healthz that it polls Telegram (waiting for one)."""
    until = time.monotonic() + wait
    while time.monotonic() < until:
        for name, bot in bots.items():
            if bot.running and leads_telegram(await bot.health(timeout=1.0)):
                return name
        await asyncio.sleep(0.1)
    return None


def first_poll_after(box: TelegramTestbed, moment: float, other_than: str) -> tuple[str, float]:
    """The first getUpdates after `moment` by another replica than `other_than`: (who,
    seconds after `moment`); ("", inf) when there was none."""
    for call, (caller, at) in zip(box.calls, box.callers, strict=True):
        if at > moment and caller != other_than and call.method.lower() == "getupdates":
            return caller, at - moment
    return "", float("inf")


async def failover_run(databases: Databases, workdir: Any, seed: int) -> FailoverRun:
    rng = random.Random(seed)
    began = time.monotonic()
    url = databases.fresh(migrated=False)  # the replicas migrate it, all at once
    async with SlackTestbed() as slack_box, TelegramTestbed() as telegram_box:
        furnish_slack(slack_box)
        furnish_telegram(telegram_box)
        bots: dict[str, BotProcess] = {}
        for number in range(1, REPLICAS + 1):
            name = f"r{number}"
            # INFO: the logs say who took the lead when, and what was found processed.
            env = sandbox_env(url, slack_box, telegram_box, LOG_LEVEL="INFO",
                              RESCUE_REPLICA=name,
                              SLACK_API_URL=slack_box.api_url_of(name),
                              TELEGRAM_API_URL=telegram_box.api_url_of(name), **TIMERS.env())
            bots[name] = BotProcess(env, free_port(), workdir, workdir / f"bot-{name}.log")
        clients = [RecordingEventsClient(f"{bot.url}/slack/events", SECRET, sandbox=slack_box)
                   for bot in bots.values()]
        slack = SlackTraffic(slack_box, clients, rng, customers=CUSTOMERS, closing=CLOSING,
                             tag="FAILOVER")
        telegram = TelegramTraffic(telegram_box, rng, CUSTOMERS, closing=CLOSING)
        kills: list[Kill] = []
        health: dict[str, dict[str, Any]] = {}
        exit_codes: list[int] = []
        startups = list(await asyncio.gather(*(bot.start() for bot in bots.values())))
        view = StoreView(url)
        slack.view = telegram.view = view
        try:
            stop = asyncio.Event()
            drivers = [asyncio.create_task(slack.run(stop)),
                       asyncio.create_task(telegram.run(stop))]
            try:
                # Kills spread over the traffic; each replica is up a while after a
                # restart (a start takes seconds on a busy machine) before the next kill.
                gap = TRAFFIC / (KILLS + 1)
                for number in range(KILLS):
                    planned = began + (number + 1) * gap * rng.uniform(0.85, 1.05)
                    await asyncio.sleep(max(planned - time.monotonic(), rng.uniform(1.0, 2.5)))
                    leader = await leader_of(bots)
                    aimed = number % 2 == 0
                    name = leader if aimed and leader else rng.choice(sorted(bots))
                    at_kill = float(slack_box.next_ts()), float(len(telegram_box.calls))
                    killed_at = time.monotonic()
                    await bots[name].kill()
                    await asyncio.sleep(IN_FLIGHT)
                    kill = Kill(name, aimed, name == leader, killed_at, killed_at - began,
                                *at_kill, float(slack_box.next_ts()),
                                float(len(telegram_box.calls)))
                    kills.append(kill)
                    # Down a while, so that the others (not its own restart) take over.
                    await asyncio.sleep(rng.uniform(0.3, 1.0))
                    startups.append(await bots[name].start())
                    kill.down = time.monotonic() - killed_at
                    if kill.was_leader:
                        kill.new_leader, kill.takeover = first_poll_after(
                            telegram_box, killed_at, name)
                await asyncio.sleep(max(0.0, TRAFFIC - (time.monotonic() - began)))
            finally:
                stop.set()
                for failed in await asyncio.gather(*drivers, return_exceptions=True):
                    if isinstance(failed, Exception):
                        raise failed
            await slack.flush(timeout=10)
            settle_began = time.monotonic()
            while time.monotonic() - settle_began < SETTLE:
                if view.unsettled() == (0, 0) and not telegram_box.updates:
                    break
                await asyncio.sleep(0.1)
            settle = time.monotonic() - settle_began
            for name, bot in bots.items():
                health[name] = await bot.health()
        finally:
            stopping = time.monotonic()  # a clean stop hands the lead on: not a failover
            exit_codes = [await bot.stop() for bot in bots.values()]
            for client in clients:
                await client.close()
        rows, history, inbound = view.rows(), view.history(), view.inbound()
        in_flight_drops = view.in_flight_drops()
        overdue = sum(1 for row in rows.values()
                      if row["deadline"] is not None and row["deadline"] <= time.time())
        dead = view.dead_letters()
        view.close()
        names = {c.name: str(c.user_id) for c in telegram.conversations.values()}
        posts = slack_posts(slack_box, TEAM) + telegram_posts(telegram_box, GROUP, names,
                                                              TELEGRAM_NAMES)
        polls = [(caller, at) for call, (caller, at) in zip(telegram_box.calls,
                                                            telegram_box.callers, strict=True)
                 if call.method.lower() == "getupdates"]
        errors = [f"{name}: {line}" for name, bot in bots.items()
                  for line in logged_errors(bot.log_path)]
        return FailoverRun(seed, time.monotonic() - began, kills, startups, exit_codes,
                           health, slack, telegram, telegram_box, polls, rows, history,
                           inbound, in_flight_drops, dead, overdue, posts, settle, errors,
                           stopping)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(postgres_databases: Databases,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FailoverRun]:
    result = await failover_run(postgres_databases, tmp_path_factory.mktemp("failover"), SEED)
    print(report(result))
    yield result


# -- what the store and the platforms must show ---------------------------------------------


def redeliveries(run: FailoverRun) -> Redeliveries:
    expected = expected_posts(run.rows, run.history, run.telegram.updates, run.inbound, GROUP,
                              run.posts)
    # A notice in flight at a kill, dropped by the next delivery as no longer true, may
    # have been posted before the kill: the window of one action per worker per kill.
    window = Counter((token(key, run.rows[key]), DROPPED[action])
                     for key, action in run.in_flight_drops if action in DROPPED)
    return compare(run.posts, expected, run.life(), POSTED_KINDS, window)


def lost(run: FailoverRun) -> tuple[list[str], list[int]]:
    """Slack events answered 200 and Telegram updates confirmed, but not in the store."""
    slack = [d.inbound for d in run.slack.deliveries if d.acked and d.inbound not in run.inbound]
    confirmed = run.telegram_box.confirmed
    telegram = [u for u in run.telegram.updates
                if u in confirmed and f"telegram:{u}" not in run.inbound]
    return slack, telegram


def poller_changes(run: FailoverRun) -> list[tuple[str, float, str, float]]:
    """(replica, its last poll, next replica, its first poll) each time getUpdates came
    from another replica than the call before."""
    changes = []
    for (before, last), (after, at) in zip(run.polls, run.polls[1:], strict=False):
        if after != before:
            changes.append((before, last, after, at))
    return changes


NAMELESS = re.compile(r'<a href="tg://user\?id=(\d+)">\1</a>')


def nameless_mentions(box: TelegramTestbed) -> int:
    """Messages to the support group that mention an operator by id, not by name: the
    replica that sent it had not learnt the name (names come with updates)."""
    return sum(1 for call in box.calls
               if call.method.lower() in ("sendmessage", "editmessagetext")
               and int(call.params.get("chat_id", 0) or 0) == GROUP
               and NAMELESS.search(str(call.params.get("text", ""))))


def report(run: FailoverRun) -> str:
    kinds = Counter(kind for events in run.history.values() for kind, _, _ in events)
    found = redeliveries(run)
    repeats = repeated_actions(run.posts, found.explained, run.life())
    posts = Counter((p.platform, p.kind) for p in run.posts)
    latencies = sorted(run.slack.latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
    lost_slack, lost_telegram = lost(run)
    takeovers = run.takeovers()
    delivered = {name: {platform: counts.get("delivered", 0)
                        for platform, counts in h.get("outbox", {}).items()}
                 for name, h in run.health.items()}
    lines = [
        f"failover: seed {run.seed}, {run.duration:.1f}s in all, {REPLICAS} replicas on one "
        f"PostgreSQL, {len(run.kills)} SIGKILLs "
        f"({sum(k.was_leader for k in run.kills)} of the Telegram leader): "
        + ", ".join(f"{k.replica}{'*' if k.was_leader else ''} at {k.at:.1f}s "
                    f"(down {k.down:.1f}s)" for k in run.kills),
        f"  starts to /healthz: {', '.join(f'{s:.2f}s' for s in run.startups)}; settled "
        f"{run.settle_seconds:.1f}s after the traffic; exit codes {run.exit_codes}",
        "  Telegram takeovers (leader SIGKILL -> another replica's first getUpdates): "
        + ", ".join(f"{k.replica}->{k.new_leader} {k.takeover:.2f}s" for k in run.kills
                    if k.was_leader and k.takeover is not None)
        + (f"; max {max(takeovers):.2f}s, mean {sum(takeovers) / len(takeovers):.2f}s"
           if takeovers else ""),
        f"  getUpdates: {len(run.polls)} calls, poller changed {len(poller_changes(run))} "
        f"times, {run.telegram_box.poll_conflicts} polls cut off by a newer one (409)",
        f"  conversations: {len(run.rows)} "
        f"({sum(k.startswith('slack:') for k in run.rows)} Slack, "
        f"{sum(k.startswith('telegram:') for k in run.rows)} Telegram); "
        f"history: {sum(kinds.values())} events {dict(sorted(kinds.items()))}",
        f"  deadlines fired: {sum(kinds[k] for k in TIMER_EVENTS)} "
        f"({', '.join(f'{k} {kinds[k]}' for k in TIMER_EVENTS)}); overdue left: {run.overdue}",
        f"  Slack: {len(run.slack.deliveries)} events/clicks, attempts per replica "
        f"{[run.slack.sent_to[c.events_url] for c in run.slack.clients]}, "
        f"{run.slack.passed_on} refused and passed on by the balancer, "
        f"{run.slack.failed_attempts} failed (cut off by a kill; Slack retried), "
        f"{len(run.slack.acked_inbound)} acknowledged, {run.slack.late_retries} late retries; "
        f"ack p99 {p99 * 1000:.0f} ms, max {max(latencies, default=0) * 1000:.0f} ms",
        f"  Telegram: {len(run.telegram.updates)} updates, "
        f"{len(run.telegram_box.confirmed)} confirmed, "
        f"{sum(n > 1 for n in run.telegram_box.handed_out.values())} handed out more than "
        f"once ({run.telegram.reinjected} re-injected by the test)",
        f"  delivered per replica (last life): {delivered}; Telegram messages naming an "
        f"operator by id (name unknown to the sender): {nameless_mentions(run.telegram_box)}",
        "  posts: " + ", ".join(f"{platform}/{kind} {n}"
                                 for (platform, kind), n in sorted(posts.items())),
        f"  repeated after a kill (at-least-once window): {len(found.explained)} posts, "
        f"{sum(len(a) for a in repeats.values())} actions "
        f"({', '.join(f'{p}/kill {k}: {len(a)}' for (p, k), a in sorted(repeats.items()))})"
        + "".join(f"\n    {p.platform}/{p.kind} {p.conversation} {p.text[:60]!r}"
                  for p in found.explained),
        f"  unexplained repeats: {len(found.unexplained)}; missing posts: "
        f"{len(found.missing)}; dead letters: {run.dead_letters}; lost: Slack "
        f"{len(lost_slack)}, Telegram {len(lost_telegram)}; errors logged: {len(run.errors)}",
    ]
    return "\n".join(lines)


# -- the tests --------------------------------------------------------------------------------


def test_failover_replicas_were_killed_restarted_and_stopped_cleanly(run: FailoverRun) -> None:
    assert len(run.kills) >= 5
    assert sum(k.was_leader for k in run.kills) >= 2  # kills aimed at the Telegram leader
    assert len(run.startups) == REPLICAS + len(run.kills)
    assert run.exit_codes == [0] * REPLICAS
    assert run.duration >= TRAFFIC
    assert not run.errors, "\n".join(run.errors)
    assert all(run.slack.sent_to[c.events_url] > 0 for c in run.slack.clients)
    assert run.slack.passed_on > 0  # the balancer met a replica that was down
    for platform in ("slack", "telegram"):  # the work was shared
        assert sum(h.get("outbox", {}).get(platform, {}).get("delivered", 0) > 0
                   for h in run.health.values()) >= 2, run.health


def test_failover_nothing_acknowledged_is_lost(run: FailoverRun) -> None:
    lost_slack, lost_telegram = lost(run)
    assert not lost_slack, f"acknowledged with 200 but not in the store: {lost_slack}"
    assert not lost_telegram, f"confirmed to Telegram but not in the store: {lost_telegram}"
    opened = {key for key, conv in run.slack.conversations.items() if conv.opened}
    assert opened <= set(run.rows)
    assert {key for key, _ in run.telegram.updates.values()} <= set(run.rows)
    assert all(run.history[key][0][0] == "opened" for key in run.rows)


def test_failover_every_deadline_fired_exactly_once(run: FailoverRun) -> None:
    assert run.overdue == 0
    assert all(row["deadline"] is None for row in run.rows.values())  # all timers ran out
    problems = audit(run.rows, run.history, TIMERS)
    assert not problems, "\n".join(problems)
    kinds = Counter(kind for events in run.history.values() for kind, _, _ in events)
    assert all(kinds[kind] > 0 for kind in (*TIMER_EVENTS, "closed")), kinds


def test_failover_every_post_arrived_and_repeats_only_in_the_window(run: FailoverRun) -> None:
    found = redeliveries(run)
    assert run.dead_letters == 0
    assert not found.missing, "\n".join(found.missing)
    assert not found.unexplained, "\n".join(found.unexplained)
    for (platform, killed), actions in repeated_actions(run.posts, found.explained,
                                                        run.life()).items():
        assert len(actions) <= 1, f"kill {killed} repeated {actions} on {platform}"


def test_failover_retries_and_redeliveries_are_processed_once(run: FailoverRun) -> None:
    assert any(d.attempts > 1 and d.acked for d in run.slack.deliveries)
    assert sum(n > 1 for n in run.telegram_box.handed_out.values()) > 0
    replies: Counter[str] = Counter(d.key for d in run.slack.deliveries
                                    if d.operator_reply and d.acked)
    for key, events in run.history.items():
        if key.startswith("slack:"):
            answered = sum(kind in ("first_reply", "reply") for kind, _, _ in events)
            assert answered <= replies[key], (key, events)


def test_failover_one_poller_at_a_time_taken_over_when_the_leader_died(
        run: FailoverRun) -> None:
    # The poller changed only when the replica that polled had been killed since its
    # last getUpdates.
    for before, last, after, at in poller_changes(run):
        if at > run.stopping:
            continue  # stopped with SIGTERM, the replica gave the lead up
        assert any(k.replica == before and last < k.when < at for k in run.kills), \
            (before, last, after, at)
    # Every leader death was taken over by another replica, within the bound.
    for kill in run.kills:
        if kill.was_leader:
            assert kill.new_leader and kill.new_leader != kill.replica, kill
            assert kill.takeover is not None and kill.takeover <= TAKEOVER_BOUND, kill
    assert run.telegram_box.poll_conflicts <= sum(k.was_leader for k in run.kills)


def test_failover_every_replica_names_the_operators(run: FailoverRun) -> None:
    # Only the leader sees updates (and names); the others read them from the store.
    assert nameless_mentions(run.telegram_box) == 0

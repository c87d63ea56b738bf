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
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from chat_rescue.sandbox.bot_process import BotProcess
from chat_rescue.sandbox.ledger import (
    DROPPED,
    Post,
    Redeliveries,
    compare,
    repeated_actions,
    slack_posts,
    telegram_posts,
)
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

SEED = int(os.environ.get("CRASH_SEED", "20261129"))
KILLS = 7
CUSTOMERS = 20  # per platform
TIMERS = Timers()  # first response 400 ms, idle 400 ms, accept 600 ms, escalate 800 ms ...
IN_FLIGHT = 0.2  # seconds for requests of a killed process to land in the sandboxes
# Known bugs (strict xfails in test_crash_windows.py): a Slack 200 and a Telegram getUpdates
# confirmation can precede the commit. A kill this soon after one may lose that item; such
# losses are counted and reported, any other loss fails. Drop this when both are fixed.
KNOWN_WINDOW = 0.5


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
    history: dict[str, list[Event]]
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


async def crash_run(workdir: Path, seed: int) -> CrashRun:
    rng = random.Random(seed)
    began = time.monotonic()
    async with SlackTestbed() as slack_box, TelegramTestbed() as telegram_box:
        furnish_slack(slack_box)
        furnish_telegram(telegram_box)
        port = free_port()
        database = workdir / "crash.db"
        env = sandbox_env(database, slack_box, telegram_box, **TIMERS.env())
        bot = BotProcess(env, port, workdir, workdir / "bot.log")
        client = RecordingEventsClient(f"{bot.url}/slack/events", SECRET, sandbox=slack_box)
        slack = SlackTraffic(slack_box, [client], rng, customers=CUSTOMERS)
        telegram = TelegramTraffic(telegram_box, rng, CUSTOMERS)
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
        posts = slack_posts(slack_box, TEAM) + telegram_posts(telegram_box, GROUP, names,
                                                              TELEGRAM_NAMES)
        return CrashRun(seed, kills, startups, exit_code, slack, telegram, rows, history,
                        inbound, dead, overdue, posts, settle, time.monotonic() - began,
                        bot.log_tail(), logged_errors(bot.log_path), in_flight_drops)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CrashRun]:
    result = await crash_run(tmp_path_factory.mktemp("crash"), SEED)
    print(report(result))
    yield result


# -- what the store and the platforms must show ---------------------------------------------


def redeliveries(run: CrashRun) -> Redeliveries:
    expected = expected_posts(run.rows, run.history, run.telegram.updates, run.inbound, GROUP,
                              run.posts)
    # A notice in flight at a kill, dropped by the next life as no longer true, may have
    # been posted before the kill: the window of one action per worker per kill.
    window = Counter((token(key, run.rows[key]), DROPPED[action])
                     for key, action in run.in_flight_drops if action in DROPPED)
    return compare(run.posts, expected, run.life(), POSTED_KINDS, window)


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
    problems = audit(run.rows, run.history, TIMERS)
    assert not problems, "\n".join(problems)
    fired = sum(1 for events in run.history.values() for kind, _, _ in events
                if kind in TIMER_EVENTS)
    assert fired >= len(run.rows)  # the run did exercise the timers


def test_crash_every_post_arrived_and_repeats_only_in_the_window(run: CrashRun) -> None:
    found = redeliveries(run)
    assert run.dead_letters == 0
    assert not found.missing, "\n".join(found.missing)
    assert not found.unexplained, "\n".join(found.unexplained)
    for (platform, killed), actions in repeated_actions(run.posts, found.explained,
                                                            run.life()).items():
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

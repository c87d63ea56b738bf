"""`GET /metrics` with 1,000,000 open conversations (part of `reports.py`).

A SQLite store is bulk-built with N open conversations spread over the four open states
and both platforms, and a small backlog in the outbox. A `Bot` is started on it as `chat-
rescue run` starts one (two stand-in platforms that never get a slot, so the backlog stays;
METRICS_TOKEN set): its start-up count of the store is timed and printed on its own. Then
SCRAPES requests go through the real HTTP handler (aiohttp client -> server -> the bearer
check -> prometheus-client's handler); each one's wall time is measured at the client.
The gauges come from memory: a scrape never counts rows. Target: p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from _common import percentile
from prometheus_client.parser import text_string_to_metric_families

from chat_rescue.bot.codec import encode_action
from chat_rescue.bot.model import Action, ConversationRef, Nudge, lane_of, priority_of
from chat_rescue.bot.outbox import Posted
from chat_rescue.bot.settings import Settings
from chat_rescue.server import Bot

SCRAPES = 50
TARGET_MS = 50.0
BACKLOG = 2_000  # actions waiting in the outbox
STATES = ("queued", "claimed", "waiting_on_operator", "waiting_on_customer")
PLATFORMS = (("slack", "C01INTAKE"), ("telegram", "-1001234567890"))
TOKEN = "bench-token"


class Paced:
    """A platform whose next slot never comes: its backlog stays in the outbox."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def deliver(self, action: Action) -> Posted | None:
        raise AssertionError("never due")

    def destination(self, action: Action) -> str:
        return "team"

    def free_at(self, action: Action, now: float) -> float:
        return now + 86_400.0

    def routes(self, app: object) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def check(self) -> list[str]:
        return []


def build(path: Path, conversations: int) -> float:
    """N open conversations and a backlog, bulk-inserted into the migrated schema; seconds."""
    started = time.perf_counter()
    Bot(Settings(_env_file=None, database_url=f"sqlite:///{path}"),  # type: ignore[call-arg]
        adapters=[]).store.close()
    now = time.time()

    def rows(lo: int, hi: int):  # noqa: ANN202
        for i in range(lo, hi):
            platform, channel = PLATFORMS[i % 2]
            state = STATES[(i // 2) % len(STATES)]
            owner = None if state == "queued" else f"U{i % 40:04d}"
            opened = now - 600.0 - (i % 3600)
            # Teams are named by their platform, as the adapters name them.
            yield (f"{platform}:{channel}:{1_600_000_000 + i}", f"{platform}:team{i % 3}",
                   f"cust {i}",
                   opened, state, owner, f"customer {i} asks about order {i}", opened,
                   opened, opened, None, opened, None, None, 0, 0, 0, None,
                   opened + 86_400.0, "accept", 0)

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    columns = ("key, team, customer, opened_at, state, owner, preview, timer_from, "
               "waiting_since, queued_at, first_reply_at, last_customer_at, "
               "last_operator_at, nudged_at, snoozed, reminded, escalations, card, deadline, "
               "deadline_timer, version")
    sql = f"INSERT INTO conversations ({columns}) VALUES ({', '.join('?' * 21)})"
    conn.execute("BEGIN")
    for lo in range(0, conversations, 100_000):
        conn.executemany(sql, rows(lo, min(conversations, lo + 100_000)))
    backlog = []
    for i in range(BACKLOG):
        platform, channel = PLATFORMS[i % 2]
        action = Nudge(ConversationRef(platform, channel, str(1_600_000_000 + i)), "U0001",
                       300.0, None, f"cust {i}")
        kind, payload = encode_action(action)
        backlog.append((lane_of(action), priority_of(action), kind, payload, 0.0, now - i))
    conn.executemany("INSERT INTO outbox (lane, priority, kind, payload, not_before, "
                     "created_at) VALUES (?, ?, ?, ?, ?, ?)", backlog)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


async def measure(path: Path, conversations: int) -> list[str]:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{path}",  # type: ignore[call-arg]
                        host="127.0.0.1", port=0, metrics_token=TOKEN)
    bot = Bot(settings, adapters=[Paced("slack"), Paced("telegram")])  # type: ignore[list-item]
    started = time.perf_counter()
    await bot.start()  # counts the store once, on its thread, before serving
    print(f"bot start, with the start-up count: {time.perf_counter() - started:.2f} s")
    try:
        counted = time.perf_counter()
        await bot.service.call(bot.metrics.recount, bot.store)  # what start did, alone
        print(f"start-up count (a few grouped queries, on the store's thread; the same "
              f"every 60 s): {(time.perf_counter() - counted) * 1000:.0f} ms")
        url = f"http://127.0.0.1:{bot.port}/metrics"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        times: list[float] = []
        async with aiohttp.ClientSession() as http:
            for n in range(SCRAPES + 1):
                begun = time.perf_counter()
                async with http.get(url, headers=headers) as answer:
                    text = await answer.text()
                    assert answer.status == 200, answer.status
                if n:  # the first one warms the connection up
                    times.append((time.perf_counter() - begun) * 1000)
    finally:
        await bot.stop()
    open_total = sum(s.value for family in text_string_to_metric_families(text)
                     for s in family.samples if s.name == "chat_rescue_open_conversations")
    depth = sum(s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "chat_rescue_outbox_depth")
    assert open_total == conversations and depth == BACKLOG, (open_total, depth)
    ordered = sorted(times)
    p50, p99 = statistics.median(ordered), percentile(ordered, 99)
    print(f"scrape ({len(text):,} bytes) over {SCRAPES} requests: median {p50:.2f} ms, "
          f"p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms; the scrape shows "
          f"{open_total:,.0f} open conversations and {depth:,.0f} actions waiting")
    verdict = "MET" if p99 <= TARGET_MS else "MISSED"
    return [f"TARGET /metrics scrape with {conversations:,} open conversations: "
            f"p99 {p99:.2f} ms (target <= {TARGET_MS:g} ms) {verdict}"]


def run(quick: bool) -> list[str]:
    conversations = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "metrics.db"
        took = build(path, conversations)
        print(f"built {conversations:,} open conversations and {BACKLOG:,} queued actions "
              f"in {took:.1f} s")
        return asyncio.run(measure(path, conversations))

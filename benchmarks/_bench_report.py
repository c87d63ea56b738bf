"""A 30-day report over 100,000 conversations, as `/rescue report 30d` makes it.

The store (SQLite, a file) holds 30 days of one team's history as the engine writes it:
each conversation opened, claimed, first reply, two or three replies, closed (a third at
shift end); one in eight nudged (most answered after the nudge), one in twenty returned and
reclaimed, one in fifty escalated; about 7.5 events a conversation. The team has hours
(mon-sat 08:00-20:00 Europe/Berlin), so every wait is counted in working time.

Timed apart: reading the history on the store's thread, building the `Report`, drawing the
PNG; then the whole path as the bot runs it (`making.make`: store thread, then the drawing
thread) with the event loop's lag measured meanwhile (it must stay free).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.model import CloseReason, ConversationRef, HistoryEvent
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change
from chat_rescue.bot.report import build
from chat_rescue.bot.service import Service
from chat_rescue.reports import chart, making
from chat_rescue.storage.sqlite import SQLiteStore

TEAM = "support"
NOW = 1_796_000_000.0  # a Sunday evening in December 2026
TARGET_SECONDS = 2.0


def conversation(n: int, rng: random.Random) -> list[HistoryEvent]:
    """One conversation's history, at a random moment of the last 29.5 days."""
    ref = ConversationRef("slack" if n % 3 else "telegram", f"C{n % 40}", f"{n}.0001")
    start = NOW - rng.random() * 29.5 * 86400
    owner = f"U{rng.randrange(40):03d}"

    def event(kind: str, after: float, actor: str | None = None, value: float | None = None,
              detail: str | None = None) -> HistoryEvent:
        return HistoryEvent(ref, TEAM, kind, start + after, actor, value, detail)

    claim = rng.expovariate(1 / 20)
    first = claim + rng.expovariate(1 / 40)
    events = [event("opened", 0, f"cust{n}"), event("claimed", claim, owner, claim),
              event("first_reply", first, owner, first)]
    t = first
    for _ in range(rng.choice((2, 2, 3))):
        t += rng.expovariate(1 / 120)
        wait = rng.expovariate(1 / 60)
        events.append(event("reply", t + wait, owner, wait))
        t += wait
    if n % 8 == 0:
        events.append(event("nudged", t + 300, owner, 300))
        result = "answered" if n % 24 else "handed_off"
        events.append(event("outcome", t + 340, owner, 40, f"nudge:{result}"))
    if n % 20 == 1:
        events.append(event("returned", t + 30, owner, 30))
        events.append(event("outcome", t + 60, f"U{(n * 7) % 40:03d}", 30, "return:reclaimed"))
    if n % 50 == 2:
        events.append(event("escalated", t + 120, None, 120))
        events.append(event("outcome", t + 200, owner, 80, "escalation:answered"))
    reason = CloseReason.AT_SHIFT_END if n % 3 == 0 else CloseReason.AT_DIALOGUE_END
    events.append(event("closed", t + 900, owner, None, reason))
    return events


def fill(store: SQLiteStore, conversations: int) -> int:
    """Write the history in batches, in the order it happened; returns the events."""
    rng = random.Random(11)
    events = sorted((e for n in range(conversations) for e in conversation(n, rng)),
                    key=lambda e: e.at)
    for at in range(0, len(events), 20_000):
        with store.batch():
            store.commit(Change(history=tuple(events[at:at + 20_000])), NOW)
    return len(events)


async def _lag_while(work: asyncio.Future[making.Picture]) -> tuple[float, making.Picture]:
    """The event loop's worst lag (s) while `work` runs, by a 5 ms ticker."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    while not work.done():
        before = loop.time()
        await asyncio.sleep(0.005)
        worst = max(worst, loop.time() - before - 0.005)
    return worst, await work


async def _as_the_bot(service: Service) -> list[tuple[float, float, making.Picture]]:
    """Two reports in a row as `/rescue report 30d` makes them: the first starts the
    drawing process (the first report after a start pays for it), the second finds it."""
    await service.call(lambda: None)  # the store thread is up
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        work = asyncio.ensure_future(making.make(service, TEAM, 30))
        lag, picture = await _lag_while(work)
        runs.append((time.perf_counter() - started, lag, picture))
    return runs


def _load() -> str:
    with open("/proc/loadavg") as load:
        return load.read().split()[0]


def run(quick: bool) -> list[str]:
    conversations = 5_000 if quick else 100_000
    hours = from_environment("mon-sat 08:00-20:00", "Europe/Berlin", "")
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(f"sqlite:///{Path(folder) / 'report.db'}")
        began = time.perf_counter()
        events = fill(store, conversations)
        print(f"store: {conversations:,} conversations, {events:,} history events over 30 "
              f"days (filled in {time.perf_counter() - began:.1f} s)")
        service = Service(store, Policy(schedule=hours, first_response=60.0), FakeClock(NOW))
        chart.render(build([], team=TEAM, days=1, now=NOW))  # matplotlib loaded, as in the bot
        print(f"load average before: {_load()} (2 cores shared with other work)")
        began, cpu = time.perf_counter(), time.process_time()
        inputs = making.read(service, TEAM, 30)
        read = time.perf_counter() - began, time.process_time() - cpu
        began, cpu = time.perf_counter(), time.process_time()
        report = making.build(inputs)
        built = time.perf_counter() - began, time.process_time() - cpu
        began, cpu = time.perf_counter(), time.process_time()
        png = chart.render(report)
        drawn = time.perf_counter() - began, time.process_time() - cpu
        print(f"read history:   {read[0] * 1000:7.0f} ms wall, {read[1] * 1000:5.0f} ms CPU "
              f"({len(inputs.tallies.first_replies):,} first replies; the rest counted by the "
              "store)")
        print(f"build report:   {built[0] * 1000:7.0f} ms wall, {built[1] * 1000:5.0f} ms CPU "
              f"({report.conversations:,} exchanges, {len(report.operators)} operators, "
              f"{report.time_label})")
        print(f"draw PNG:       {drawn[0] * 1000:7.0f} ms wall, {drawn[1] * 1000:5.0f} ms CPU "
              f"({len(png) / 1000:.0f} kB)")
        runs = asyncio.run(_as_the_bot(service))
        store.close()
    for name, (whole, lag, picture) in zip(("first", "next"), runs, strict=True):
        print(f"as the bot ({name}): {whole * 1000:6.0f} ms (store thread, building thread, "
              f"drawing process; loop's worst lag {lag * 1000:.1f} ms; "
              f"{len(picture.png) / 1000:.0f} kB)")
    print(f"load average after: {_load()}")
    first, warm = runs[0][0], runs[1][0]
    verdict = "MET" if warm <= TARGET_SECONDS else "MISSED"
    size = " [quick: 5,000 conversations]" if quick else ""
    return [f"TARGET 30-day report over {conversations:,} conversations: {warm:.2f} s "
            f"(target <= {TARGET_SECONDS:g} s; the first after a start {first:.2f} s){size} "
            f"{verdict}"]

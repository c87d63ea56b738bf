"""`chat-rescue whatif` over 30 days of 10,000 conversations a day (part of reports.py).

The store is filled with what a bot records: the people's events of 300,000 conversations
(customers writing, operators claiming, answering — some slowly enough to be nudged,
returned, rescued by another — and closing) and the history the engine recorded for them,
made by replaying those events with the built-in thresholds (as the bot would have
decided them). Timed, as the command runs it: reading the window's events and history
from a file-backed SQLite store, then comparing `idle 7m, first_response 45s` with today's
(two full replays through the engine, and the counts). Target <= 30 s.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.inputs import Input
from chat_rescue.bot.inputs import encode as encode_input
from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    InboundEvent,
    OperatorMessage,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.replay import replay
from chat_rescue.bot.service import Service
from chat_rescue.ops import replay_days
from chat_rescue.storage.sqlite import SQLiteStore

START = 1_780_000_000.0
DAY = 86400.0
OPERATORS = [f"U0OP{n:03d}" for n in range(60)]
WORKERS = min(4, os.cpu_count() or 1)  # as `chat-rescue whatif` replays by default


def conversations(per_day: int, days: int, seed: int = 11) -> list[Input]:
    """The people's events of `per_day * days` conversations, in time order."""
    rng = random.Random(seed)
    timed: list[tuple[float, int, Input]] = []
    seq = 0
    for n in range(per_day * days):
        ref = ConversationRef("slack", f"C{n % 8}", f"{START + n:.6f}")
        owner = rng.choice(OPERATORS)
        t = START + rng.random() * days * DAY
        gap = lambda scale: 1.0 + rng.expovariate(1 / scale)  # noqa: E731
        events: list[InboundEvent] = [CustomerMessage(ref, t, f"cust-{n}", "", "team-a")]
        if rng.random() < 0.6:
            t += gap(40)
            events.append(Claim(ref, t, owner))
        t += gap(25)
        events.append(OperatorMessage(ref, t, owner))
        for _ in range(rng.choice((1, 1, 2, 3))):
            t += gap(60)
            events.append(CustomerMessage(ref, t, f"cust-{n}", "", "team-a"))
            t += gap(150)  # mostly within idle; a tail nudged, some returned
            events.append(OperatorMessage(ref, t, owner if rng.random() < 0.85
                                          else rng.choice(OPERATORS)))
        if rng.random() < 0.9:
            t += gap(300)
            events.append(Close(ref, t, owner))
        for i, event in enumerate(events):
            timed.append((event.at, seq, Input(event, "team-a", event.at, opened=i == 0)))
            seq += 1
    timed.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in timed]


def fill(path: Path, inputs: list[Input], until: float) -> int:
    """Write the events and the history the built-in thresholds make of them."""
    policy = Policy()
    history = [h for played in replay(inputs, lambda item: policy, until) for h in played.history]
    history.sort(key=lambda h: h.at)
    store = SQLiteStore(f"sqlite:///{path}")
    with store.conn:
        store.conn.executemany("INSERT INTO inputs (conversation, team, at, kind, data) "
                               "VALUES (?, ?, ?, ?, ?)", (encode_input(i) for i in inputs))
        store.conn.executemany(
            "INSERT INTO history (conversation, team, kind, at, actor, value, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((h.ref.key, h.team, h.kind, h.at, h.actor, h.value, h.detail) for h in history))
    store.close()
    return len(history)


def run(quick: bool) -> list[str]:
    per_day, days = (1000, 3) if quick else (10_000, 30)
    until = START + days * DAY + 3600
    made = time.perf_counter()
    inputs = conversations(per_day, days)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "whatif.db"
        recorded = fill(path, inputs, until)
        print(f"store: {per_day * days:,} conversations, {len(inputs):,} recorded events, "
              f"{recorded:,} history rows (built in {time.perf_counter() - made:.0f} s)")
        del inputs
        store = SQLiteStore(f"sqlite:///{path}")
        service = Service(store, Policy(), FakeClock(until))
        try:
            began = time.perf_counter()
            ((_, comparison),) = replay_days(store, service, "team-a", days + 1,
                                             {"idle": 420.0, "first_response": 45.0}, until,
                                             workers=WORKERS,
                                             reopen=lambda: SQLiteStore(f"sqlite:///{path}"))
            took = time.perf_counter() - began
        finally:
            store.close()
    r, c = comparison.recorded, comparison.candidate
    print(f"read, replayed and counted in {took:.1f} s ({WORKERS} processes, each reading "
          "its share)")
    print(f"recorded nudges/returns/escalations {r.nudges:,}/{r.returns:,}/{r.escalations:,}; "
          f"idle 7m + first_response 45s {c.nudges:,}/{c.returns:,}/{c.escalations:,}")
    verdict = "MET" if took <= 30 else "MISSED"
    return [f"TARGET whatif over {days} days of {per_day:,} conversations/day: {took:.1f} s "
            f"(target <= 30 s) {verdict}"]

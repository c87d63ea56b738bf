"""Ingest throughput: events/s through Service.handle versus raw sqlite3 doing the same writes.

Both sides work on a file-backed SQLite database in a temporary directory, with the schema
created by SQLiteStore's migrations (WAL, synchronous=NORMAL).

* service: `Service.handle(event, inbound_id=...)` per event on a `SQLiteStore` — load the
  conversation, run the engine, write conversation + history + outbox + inbound id in one
  transaction.
* raw: per event `BEGIN IMMEDIATE`, the inbound-id insert, the conversation insert/update,
  the recorded inputs (issue 11), the history insert(s), the outbox insert(s), `COMMIT` —
  the very rows SQLiteStore.commit wrote for that event (recorded beforehand from an
  untimed pass, so the raw side does no Python work besides executing SQL). Row counts
  and a digest of every table are compared after each round, so both sides provably
  wrote the same thing.
* raw+read (informational): the same, plus the point SELECT of the conversation that the
  service path needs to decide.

The workload is a support day: conversations open (customer message), the customer writes
more, operators claim (button/reaction) or claim by replying, customer and operator go back
and forth, and most conversations are closed; events of all conversations interleave in
time order. Every event carries a platform inbound id, as the adapters pass one.

Targets (issue 2): service >= 5,000 events/s and service/raw >= 0.6.

    .venv/bin/python benchmarks/ingest.py            # full: 20k conversations, 3 rounds
    .venv/bin/python benchmarks/ingest.py --quick    # smoke: 1.5k conversations, 1 round
    .venv/bin/python benchmarks/ingest.py --profile  # + cProfile of one service pass
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import pstats
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import whatif
from _common import busy_seconds, machine, median, spread

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.codec import encode_action
from chat_rescue.bot.inputs import encode as encode_input
from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    InboundEvent,
    OperatorMessage,
    lane_of,
    priority_of,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change, Outcome
from chat_rescue.bot.service import Service
from chat_rescue.storage.rows import row_of
from chat_rescue.storage.sqlite import SQLiteStore

TABLES = ("conversations", "history", "outbox", "inbound", "inputs")
CHANNELS = ("C01INTAKE", "C02BILLING", "C03SALES", "C04VIP")
TEAMS = ("support", "billing", "sales")
WORDS = ("hello", "my", "order", "is", "late", "and", "the", "invoice", "shows", "a", "wrong",
         "amount", "please", "help", "cannot", "log", "in", "since", "yesterday", "thanks")


# --- workload ------------------------------------------------------------------------


def workload(conversations: int, seed: int = 7) -> list[tuple[InboundEvent, str]]:
    """Events of `conversations` support conversations, interleaved in time order."""
    rng = random.Random(seed)
    start = 1_700_000_000.0
    span = max(3600.0, conversations * 1.5)  # a new conversation every 1.5 s on average

    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 60)))

    def gap() -> float:
        return 1.0 + rng.expovariate(1 / 30)

    timed: list[tuple[float, int, InboundEvent]] = []
    seq = 0
    for c in range(conversations):
        ref = ConversationRef("slack", CHANNELS[c % len(CHANNELS)], f"{1_699_000_000 + c}.{c:06d}")
        customer = f"U{c:08d}"
        operator = f"OP{rng.randrange(40):02d}"
        t = start + rng.random() * span
        events: list[InboundEvent] = [
            CustomerMessage(ref, t, customer, text(), TEAMS[c % len(TEAMS)])
        ]
        for _ in range(rng.choice((0, 0, 1, 2))):  # the customer adds details
            t += gap()
            events.append(CustomerMessage(ref, t, customer, text()))
        if rng.random() < 0.7:  # claimed by button or reaction; else claimed by replying
            t += gap()
            events.append(Claim(ref, t, operator, via=rng.choice(("button", "reaction"))))
        t += gap()
        events.append(OperatorMessage(ref, t, operator))
        for _ in range(rng.choice((0, 1, 1, 2))):  # back and forth
            t += gap()
            events.append(CustomerMessage(ref, t, customer, text()))
            t += gap()
            events.append(OperatorMessage(ref, t, operator))
        if rng.random() < 0.9:
            t += gap()
            events.append(Close(ref, t, operator, via=rng.choice(("button", "reaction"))))
        for event in events:
            timed.append((event.at, seq, event))
            seq += 1
    timed.sort(key=lambda x: (x[0], x[1]))
    return [(event, f"Ev{i:09d}") for i, (_, _, event) in enumerate(timed)]


def mix(events: list[tuple[InboundEvent, str]]) -> str:
    counts = Counter(type(e).__name__ for e, _ in events)
    opened = len({e.ref.key for e, _ in events})
    counts["CustomerMessage"] -= opened
    parts = [f"{opened:,} new conversations"] + [
        f"{n:,} {name}" for name, n in counts.most_common()
    ]
    return ", ".join(parts)


# --- the raw side: record what SQLiteStore.commit writes ---------------------------------


@dataclass(frozen=True, slots=True)
class RawOp:
    inbound: tuple[str, float]
    insert: tuple[object, ...] | None
    update: tuple[object, ...] | None
    history: list[tuple[object, ...]]
    outbox: list[tuple[object, ...]]
    inputs: list[tuple[object, ...]]
    key: str


class RecordingStore(SQLiteStore):
    """An in-memory SQLiteStore that keeps every committed Change (untimed pass)."""

    def __init__(self) -> None:
        super().__init__("sqlite://")
        self.recorded: list[tuple[Change, float]] = []

    def commit(self, change: Change, now: float) -> Outcome:
        outcome = super().commit(change, now)
        if outcome is not Outcome.COMMITTED:
            raise AssertionError(f"unexpected {outcome} while recording")
        self.recorded.append((change, now))
        return outcome


def record(events: list[tuple[InboundEvent, str]]) -> tuple[list[RawOp], str, str, str]:
    """The rows SQLiteStore.commit writes per event, and the SQL it uses."""
    store = RecordingStore()
    clock = FakeClock()
    service = Service(store, Policy(), clock)
    for event, inbound_id in events:
        clock.t = event.at
        service.handle(event, inbound_id=inbound_id)
    if len(store.recorded) != len(events):
        raise AssertionError("every event should commit exactly once")
    ops = []
    for change, now in store.recorded:
        assert change.inbound_id is not None
        conv = change.conversation
        insert = update = None
        if conv is not None:
            values = row_of(conv)
            if change.expected_version is None:
                insert = (conv.ref.key, *values)
            else:
                update = (*values[:-1], conv.ref.key, change.expected_version)
        history = [(h.ref.key, h.team, h.kind, h.at, h.actor, h.value, h.detail)
                   for h in change.history]
        outbox = []
        for action in change.actions:
            kind, payload = encode_action(action)
            outbox.append((lane_of(action), priority_of(action), kind, payload, 0.0, now))
        key = conv.ref.key if conv is not None else ""
        inputs = [encode_input(i) for i in change.inputs]
        ops.append(RawOp((change.inbound_id, now), insert, update, history, outbox,
                         inputs, key))
    sqls = (store._insert_sql, store._update_sql, store._select_sql)
    store.close()
    return ops, *sqls


HISTORY_SQL = ("INSERT INTO history (conversation, team, kind, at, actor, value, detail) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)")
OUTBOX_SQL = ("INSERT INTO outbox (lane, priority, kind, payload, not_before, created_at) "
              "VALUES (?, ?, ?, ?, ?, ?)")
INBOUND_SQL = "INSERT OR IGNORE INTO inbound (id, seen_at) VALUES (?, ?)"
INPUTS_SQL = "INSERT INTO inputs (conversation, team, at, kind, data) VALUES (?, ?, ?, ?, ?)"


def run_raw(path: Path, ops: list[RawOp], insert_sql: str, update_sql: str, select_sql: str,
            read: bool) -> tuple[float, float]:
    """(seconds, CPU seconds) to apply `ops` with plain sqlite3 on a migrated database."""
    SQLiteStore(f"sqlite:///{path}").close()  # same schema and pragmas (WAL persists)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    execute, executemany = conn.execute, conn.executemany
    started, cpu = time.perf_counter(), time.process_time()
    for op in ops:
        if read and op.key:
            execute(select_sql, (op.key,)).fetchone()
        execute("BEGIN IMMEDIATE")
        if execute(INBOUND_SQL, op.inbound).rowcount != 1:
            raise AssertionError("duplicate inbound id")
        if op.insert is not None:
            execute(insert_sql, op.insert)
        elif op.update is not None and execute(update_sql, op.update).rowcount != 1:
            raise AssertionError("conflict")
        if op.inputs:
            executemany(INPUTS_SQL, op.inputs)
        if op.history:
            executemany(HISTORY_SQL, op.history)
        if op.outbox:
            executemany(OUTBOX_SQL, op.outbox)
        execute("COMMIT")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    return elapsed, cpu


def run_service(path: Path, events: list[tuple[InboundEvent, str]],
                profile: cProfile.Profile | None = None) -> tuple[float, float]:
    """(seconds, CPU seconds) to apply `events` through Service.handle on a SQLiteStore."""
    store = SQLiteStore(f"sqlite:///{path}")
    clock = FakeClock()
    service = Service(store, Policy(), clock)
    handle = service.handle
    if profile is not None:
        profile.enable()
    started, cpu = time.perf_counter(), time.process_time()
    for event, inbound_id in events:
        clock.t = event.at
        handle(event, inbound_id=inbound_id)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profile is not None:
        profile.disable()
    store.close()
    return elapsed, cpu


def digest(path: Path) -> dict[str, tuple[int, str]]:
    """Row count and content hash of each written table."""
    conn = sqlite3.connect(path)
    out = {}
    for table in TABLES:
        h = hashlib.sha256()
        n = 0
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid"):
            h.update(repr(row).encode())
            n += 1
        out[table] = (n, h.hexdigest()[:16])
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 20 s)")
    parser.add_argument("--conversations", type=int, help="default 20,000 (quick: 1,500)")
    parser.add_argument("--rounds", type=int, help="repetitions (default 3; quick: 1)")
    parser.add_argument("--profile", action="store_true",
                        help="after the timed rounds, cProfile one service pass")
    parser.add_argument("--top", type=int, default=25, help="profile entries to print")
    args = parser.parse_args()
    patched = whatif.apply()  # BENCH_WHATIF=... prototypes of suggested fixes (default: none)
    conversations = args.conversations or (1_500 if args.quick else 20_000)
    rounds = args.rounds or (1 if args.quick else 3)

    print(f"ingest benchmark — {machine()}, SQLite {sqlite3.sqlite_version}"
          + (f"; WHAT-IF prototypes patched in: {','.join(patched)}" if patched else ""))
    events = workload(conversations)
    print(f"workload: {len(events):,} events: {mix(events)}")
    ops, insert_sql, update_sql, select_sql = record(events)
    rows = Counter()
    for op in ops:
        rows["inbound"] += 1
        rows["conversation inserts"] += op.insert is not None
        rows["conversation updates"] += op.update is not None
        rows["history"] += len(op.history)
        rows["outbox"] += len(op.outbox)
        rows["inputs"] += len(op.inputs)
    print("rows written per pass: " + ", ".join(f"{v:,} {k}" for k, v in rows.items()))

    results: dict[str, list[float]] = {"service": [], "raw": [], "raw+read": []}
    cpu_us: dict[str, list[float]] = {"service": [], "raw": [], "raw+read": []}
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        for r in range(rounds):
            order = ["service", "raw", "raw+read"]
            if r % 2:
                order.reverse()  # alternate the order against drift on a noisy machine
            digests = {}
            noise = []
            for name in order:
                path = Path(tmp) / f"{name}-{r}.db"
                busy = busy_seconds()
                if name == "service":
                    seconds, cpu = run_service(path, events)
                else:
                    seconds, cpu = run_raw(path, ops, insert_sql, update_sql, select_sql,
                                           read=name == "raw+read")
                others = max(0.0, busy_seconds() - busy - cpu) / seconds
                noise.append(f"{name} {100 * cpu / seconds:.0f}/{100 * others:.0f}")
                results[name].append(len(events) / seconds)
                cpu_us[name].append(1e6 * cpu / len(events))
                digests[name] = digest(path)
                for leftover in Path(tmp).glob(f"{name}-{r}.db*"):
                    leftover.unlink()
            if not digests["service"] == digests["raw"] == digests["raw+read"]:
                print("MISMATCH between service and raw writes:", digests, file=sys.stderr)
                sys.exit(1)
            line = ", ".join(f"{n} {results[n][-1]:,.0f}/s" for n in results)
            ratio = results["service"][-1] / results["raw"][-1]
            print(f"round {r + 1}/{rounds}: {line}, ratio {ratio:.2f} (tables identical: "
                  + ", ".join(f"{t} {n:,}" for t, (n, _) in digests['raw'].items()) + ")")
            print("    % of a core used by this process / by other processes meanwhile: "
                  + ", ".join(noise))

        service, raw, raw_read = (median(results[n]) for n in ("service", "raw", "raw+read"))
        ratios = [s / r for s, r in zip(results["service"], results["raw"], strict=True)]
        print()
        print(f"service path     : {spread(results['service'])} events/s   (target >= 5,000)")
        print(f"raw sqlite3      : {spread(results['raw'])} events/s")
        print(f"raw + point read : {spread(results['raw+read'])} events/s   (informational)")
        print(f"ratio service/raw: {median(ratios):.2f} median of per-round ratios "
              f"(target >= 0.60); per-event wall time service {1e6 / service:.0f} us, "
              f"raw {1e6 / raw:.0f} us, raw+read {1e6 / raw_read:.0f} us")
        cpu_ratios = [r / s for s, r in zip(cpu_us["service"], cpu_us["raw"], strict=True)]
        print(f"by CPU time     : service {median(cpu_us['service']):.0f} us/event, raw "
              f"{median(cpu_us['raw']):.0f}, raw+read {median(cpu_us['raw+read']):.0f}; "
              f"ratio {median(cpu_ratios):.2f} (less sensitive to other processes' load)")
        targets = [
            f"TARGET ingest service path: {service:,.0f} events/s (target >= 5,000) "
            + ("MET" if service >= 5000 else "MISSED"),
            f"TARGET ingest ratio service/raw: {median(ratios):.2f} (target >= 0.60) "
            + ("MET" if median(ratios) >= 0.6 else "MISSED"),
        ]

        if args.profile:
            profile = cProfile.Profile()
            run_service(Path(tmp) / "profile.db", events, profile)  # result: profile
            for key in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats(key).print_stats(args.top)
                print(f"\n--- cProfile of one service pass, sorted by {key} ---")
                print("\n".join(out.getvalue().splitlines()[4:]))
        print()
        print("\n".join(targets))


if __name__ == "__main__":
    main()

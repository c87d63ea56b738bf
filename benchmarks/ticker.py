"""The deadline ticker over 1,000,000 open conversations, on SQLite or PostgreSQL.

(a) idle CPU: Ticker.run() as a task with the SystemClock while nothing is due (every
    deadline about a day away) — process CPU time / wall time. Target < 0.1 % of a core.
(b) lateness: N conversations are made due at 5,000 fires/s (deadline = t0 + i/5000, with
    `timer_from` moved so the engine really escalates them) while a producer task injects
    5,000 customer messages/s on other conversations through Service.handle, in the same
    event loop. Lateness = when the fire was committed - the deadline, from
    Ticker(on_fire=...); printed as p50/p99/max with the achieved fire and event rates.
    Target p99 <= 10 ms. No outbox worker runs (delivery excluded). Beside it, the event
    loop's own lag (how late a 5 ms sleep of a probe task wakes, p99; target <= 10 ms: the
    store work runs on the store's thread, so the loop only hands it over) and the inbound
    event latency (from the event's scheduled arrival to its durable commit, p99).
(c) RSS: VmRSS of a process whose ticker idles over the 1M store versus over an empty
    store. Target growth <= 50 MB.

Every measurement runs in a fresh subprocess (honest RSS, no warm caches of the parent).
The store is bulk-built into the migrated schema (executemany on SQLite, COPY on
PostgreSQL): conversations queued, waiting for an operator, `accept` timer = 1 day (so
deadlines are a day away and derived deadlines agree with the engine), inbox card posted.

    .venv/bin/python benchmarks/ticker.py            # full: 1M conversations, 3 rounds each
    .venv/bin/python benchmarks/ticker.py --quick    # smoke: 100k conversations, 1 round
    .venv/bin/python benchmarks/ticker.py --profile  # + cProfile of the ticker/producer loop
    .venv/bin/python benchmarks/ticker.py --postgres # on a throw-away PostgreSQL server
    .venv/bin/python benchmarks/ticker.py --database-url postgresql://…  # EMPTIED first
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import whatif
from _common import busy_seconds, machine, median, percentile, proc_status_kib, spread

from chat_rescue.bot.clock import SystemClock
from chat_rescue.bot.model import ConversationRef, CustomerMessage
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Store
from chat_rescue.bot.service import Service
from chat_rescue.bot.ticker import Ticker
from chat_rescue.bot.worker import hand_over_often
from chat_rescue.storage.factory import is_postgres, open_store

ACCEPT = 86_400.0  # the accept timer of the benchmark policy: deadlines are a day away
PROBE = 0.005  # seconds the loop-lag probe sleeps between readings
POLICY = Policy(accept=ACCEPT)
CHANNELS = ("C01INTAKE", "C02BILLING", "C03SALES", "C04VIP")
TEAMS = ("support", "billing", "sales")
COLUMNS = ("key", "team", "customer", "opened_at", "state", "owner", "preview", "timer_from",
           "waiting_since", "queued_at", "first_reply_at", "last_customer_at",
           "last_operator_at", "nudged_at", "snoozed", "reminded", "escalations", "card",
           "deadline", "deadline_timer", "version")


def key_of(i: int) -> str:
    return f"slack:{CHANNELS[i % len(CHANNELS)]}:{1_600_000_000 + i}.{i % 1000:06d}"


# --- building the store ----------------------------------------------------------------


def build(url: str, conversations: int) -> float:
    """Create a migrated store at `url` holding `conversations` queued ones (a PostgreSQL
    database is emptied first); seconds taken."""
    started = time.perf_counter()
    open_store(url).close()
    now = time.time()

    def rows(lo: int, hi: int, false: object):  # noqa: ANN202
        for i in range(lo, hi):
            opened = now - 600.0 - (i % 3600)
            yield (key_of(i), TEAMS[i % len(TEAMS)], f"U{i:08d}", opened, "queued", None,
                   f"customer {i} asks where order #{i * 7 % 100_000} is", opened, opened,
                   opened, None, opened, None, None, false, false, 0,
                   f"C0TEAM:{1_600_000_000 + i}.1", opened + ACCEPT, "accept", 0)

    if is_postgres(url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE conversations, history, outbox, inbound, aliases, held, "
                         "settings, sweeps, sweep_cards, sweep_items")
            with conn.cursor() as cur, cur.copy(
                    f"COPY conversations ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows(0, conversations, False):
                    copy.write_row(row)
            conn.execute("VACUUM ANALYZE conversations")
        return time.perf_counter() - started
    if not conversations:
        return time.perf_counter() - started
    conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    sql = (f"INSERT INTO conversations ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")
    conn.execute("BEGIN")
    for lo in range(0, conversations, 100_000):
        conn.executemany(sql, rows(lo, min(conversations, lo + 100_000), 0))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


class Raw:
    """Plain SQL on the benchmark's database, outside the store (`?` placeholders)."""

    def __init__(self, url: str) -> None:
        self.postgres = is_postgres(url)
        self.conn: Any = psycopg.connect(url, autocommit=True) if self.postgres \
            else sqlite3.connect(sqlite_path(url), isolation_level=None)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(self._sql(sql), params).fetchall())

    def write(self, sql: str, params: Sequence[object] = ()) -> int:
        """One statement in a transaction of its own; rows changed."""
        if self.postgres:
            return int(self.conn.execute(self._sql(sql), params).rowcount)
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            return int(self.conn.execute(sql, params).rowcount)

    def write_many(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        if self.postgres:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
            return
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(sql, rows)

    def close(self) -> None:
        self.conn.close()


# --- children ------------------------------------------------------------------------------


def open_service(db: str) -> tuple[Store, Service, SystemClock]:
    store = open_store(db)
    clock = SystemClock()
    return store, Service(store, POLICY, clock), clock


def postpone_overdue(db: str, horizon: float) -> int:
    """Push deadlines before `horizon` a timer length on (left over by an aborted run)."""
    raw = Raw(db)
    moved = raw.write(
        "UPDATE conversations SET deadline = deadline + ?, timer_from = timer_from + ? "
        "WHERE deadline IS NOT NULL AND deadline <= ?", (ACCEPT, ACCEPT, horizon))
    raw.close()
    if moved:
        print(f"note: postponed {moved:,} deadlines left due by an earlier, aborted run")
    return int(moved)



async def child_idle(db: str, seconds: float) -> dict[str, float]:
    """(a) CPU of a process whose ticker waits for deadlines a day away."""
    store, service, clock = open_service(db)
    postpone_overdue(db, time.time() + 3600)
    queries = 0
    next_deadline = store.next_deadline

    def counted() -> float | None:
        nonlocal queries
        queries += 1
        return next_deadline()

    store.next_deadline = counted  # type: ignore[method-assign]
    ticker = Ticker(store, service, clock)
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0.2)  # the first pass: one due query, one next-deadline query
    startup_queries = queries
    cpu0, wall0, busy0 = time.process_time(), time.perf_counter(), busy_seconds()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    others = max(0.0, busy_seconds() - busy0 - cpu)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    store.close()
    return {"cpu_s": cpu, "wall_s": wall, "pct": 100.0 * cpu / wall, "fired": ticker.fired,
            "others_pct": 100.0 * others / wall,
            "startup_queries": startup_queries, "idle_queries": queries - startup_queries}


async def child_rss(db: str, seconds: float) -> dict[str, float]:
    """(c) resident memory of a process whose ticker idles over `db`."""
    before = proc_status_kib("VmRSS")
    store, service, clock = open_service(db)
    ticker = Ticker(store, service, clock)
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(seconds)
    rss, hwm = proc_status_kib("VmRSS"), proc_status_kib("VmHWM")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raw = Raw(db)
    count = raw.rows("SELECT count(*) FROM conversations")[0][0]
    raw.close()
    store.close()
    return {"rss_kib": rss, "hwm_kib": hwm, "imports_kib": before, "conversations": count}


async def child_load(db: str, fires: int, events: int, fire_rate: float, event_rate: float,
                     lead: float, burst: int, profile: bool,
                     group_commit: bool = True) -> dict[str, object]:
    """(b) lateness of fires at `fire_rate` while `event_rate` events/s arrive.

    Fires go to conversations never escalated before (so each fire really escalates, as a
    first fire does); events go to other conversations, with inbound ids unique per run.
    """
    store, service, clock = open_service(db)
    hand_over_often()  # as the bot's runtime does
    postpone_overdue(db, time.time() + 3600)
    raw = Raw(db)
    fire_keys = [row[0] for row in raw.rows(
        "SELECT key FROM conversations WHERE state = 'queued' AND escalations = 0 "
        "AND deadline > ? ORDER BY key LIMIT ?", (time.time() + 3600, fires))]
    event_keys = [row[0] for row in raw.rows(
        "SELECT key FROM conversations WHERE state = 'queued' ORDER BY key DESC LIMIT ?",
        (events,))]
    if len(fire_keys) < fires or len(event_keys) < events or set(fire_keys) & set(event_keys):
        raise SystemExit("the store has too few fresh conversations left; build a new one")
    nonce = f"{os.getpid()}-{time.time_ns()}"
    window = max(fires / fire_rate if fire_rate else 0.0,
                 events / event_rate if event_rate else 0.0)
    t0 = time.time() + lead
    rewrite_started = time.perf_counter()
    rows = []
    for n in range(fires):
        deadline = t0 + n / fire_rate
        rows.append((deadline, deadline - ACCEPT, fire_keys[n]))
    raw.write_many("UPDATE conversations SET deadline = ?, timer_from = ?, "
                   "version = version + 1 WHERE key = ?", rows)
    raw.close()
    rewrite_s = time.perf_counter() - rewrite_started
    if time.time() > t0 - 0.2:
        print(f"warning: rewriting deadlines took {rewrite_s:.2f}s, close to the lead of "
              f"{lead}s; raise --lead", file=sys.stderr)

    lateness: list[float] = []
    fired_at: list[float] = []

    def on_fire(deadline: float, at: float) -> None:
        lateness.append(at - deadline)
        fired_at.append(at)

    ticker = Ticker(store, service, clock, on_fire=on_fire)
    # Wall time inside the ticker's fire_due and the store thread's jobs is time the store
    # thread is busy (CPU plus I/O waits; CPU time alone would hide the waits). The event
    # loop's own time shows as its lag (`probe`).
    spent = {"fire_wall": 0.0, "fire_cpu": 0.0, "store_wall": 0.0}
    fire_due = ticker.fire_due

    def timed_fire_due(now: float) -> int:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fire_due(now)
        finally:
            spent["fire_wall"] += time.perf_counter() - wall
            spent["fire_cpu"] += time.process_time() - cpu

    ticker.fire_due = timed_fire_due  # type: ignore[method-assign]
    worker, depth = service.worker, 0

    def timed_job(run: Any) -> Any:
        def timed(*args: Any) -> Any:
            nonlocal depth
            depth, started = depth + 1, time.perf_counter()
            try:
                return run(*args)
            finally:
                depth -= 1
                if not depth:  # a group's jobs count once, with their commit
                    spent["store_wall"] += time.perf_counter() - started
        return timed

    worker._run = timed_job(worker._run)  # type: ignore[method-assign]
    worker._run_together = timed_job(worker._run_together)  # type: ignore[method-assign]
    lags: list[float] = []

    async def probe() -> None:
        """How late the loop wakes a task that sleeps PROBE seconds: its lag."""
        await asyncio.sleep(max(0.0, t0 - time.time()))
        while True:
            started = time.perf_counter()
            await asyncio.sleep(PROBE)
            lags.append(time.perf_counter() - started - PROBE)
    refs = [ConversationRef.parse(key) for key in event_keys]
    latency: list[float] = []
    produced_until = 0.0

    async def answer(scheduled: float, event: CustomerMessage, inbound_id: str) -> None:
        await service.submit(event, inbound_id=inbound_id)
        latency.append(time.time() - scheduled)

    async def produce() -> None:
        # Open loop, as webhooks come: each event is its own request awaiting its own
        # Service.submit (those that wait together share a transaction); the producer
        # does not wait for one to be answered before sending the next.
        nonlocal produced_until
        await asyncio.sleep(max(0.0, t0 - time.time()))
        handle = service.handle
        sent = 0
        inflight: set[asyncio.Task[None]] = set()
        while sent < events:
            owed = min(events, int((time.time() - t0) * event_rate) + 1)
            done = 0
            while sent < owed and done < burst:
                scheduled = t0 + sent / event_rate
                event = CustomerMessage(refs[sent], time.time(), "customer",
                                        "any news about my order? it has been a while")
                inbound_id = f"bench-{nonce}-{sent}"
                if group_commit:
                    task = asyncio.create_task(answer(scheduled, event, inbound_id))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                else:
                    handle(event, inbound_id=inbound_id)
                    latency.append(time.time() - scheduled)
                sent += 1
                done += 1
            if sent < owed:
                await asyncio.sleep(0)  # behind schedule: let the ticker in, then catch up
            else:
                await asyncio.sleep(max(0.0, t0 + sent / event_rate - time.time()))
        if inflight:
            await asyncio.gather(*inflight)
        produced_until = time.time()

    profiler = cProfile.Profile() if profile else None
    ticker_task = asyncio.create_task(ticker.run())
    producer = asyncio.create_task(produce())
    prober = asyncio.create_task(probe())
    await asyncio.sleep(max(0.0, t0 - time.time() - 0.5))
    rss_ready = proc_status_kib("VmRSS")  # everything set up; the window is about to start
    await asyncio.sleep(max(0.0, t0 - time.time()))
    if profiler is not None:
        profiler.enable()
    cpu0, wall0, busy0 = time.process_time(), time.perf_counter(), busy_seconds()
    give_up = t0 + window + max(5.0, window)
    # Polling two conditions under a deadline; an Event would need hooks in both tasks.
    while (ticker.fired < fires or not producer.done()) and time.time() < give_up:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    others = max(0.0, busy_seconds() - busy0 - cpu)
    if profiler is not None:
        profiler.disable()
    ticker_task.cancel()
    producer.cancel()
    prober.cancel()
    for task in (ticker_task, producer, prober):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if ticker.fired < fires:
        print(f"warning: only {ticker.fired:,} of {fires:,} deadlines fired in time")
        postpone_overdue(db, time.time() + 3600)
    rss, hwm = proc_status_kib("VmRSS"), proc_status_kib("VmHWM")
    outbox = store.outbox_size()
    store.close()

    if profiler is not None:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(30)
            print(f"--- cProfile of the load window (ticker + producer), by {order} ---")
            print("\n".join(out.getvalue().splitlines()[4:]))

    lateness.sort()
    latency.sort()
    lags.sort()
    last_fire = fired_at[-1] if fired_at else t0
    return {
        "fired": len(lateness), "expected": fires,
        "p50_ms": 1e3 * percentile(lateness, 50), "p99_ms": 1e3 * percentile(lateness, 99),
        "max_ms": 1e3 * (lateness[-1] if lateness else float("nan")),
        "fire_rate": len(lateness) / max(1e-9, last_fire - t0),
        "events": len(latency),
        "event_rate": len(latency) / max(1e-9, (produced_until or time.time()) - t0),
        "event_p50_ms": 1e3 * percentile(latency, 50),
        "event_p99_ms": 1e3 * percentile(latency, 99),
        "cpu_pct": 100.0 * cpu / wall, "others_pct": 100.0 * others / wall,
        "window_s": window, "rewrite_s": rewrite_s,
        "rss_kib": rss, "hwm_kib": hwm, "rss_ready_kib": rss_ready, "outbox": outbox,
        "us_per_fire": 1e6 * spent["fire_wall"] / max(1, len(lateness)),
        "cpu_us_per_fire": 1e6 * spent["fire_cpu"] / max(1, len(lateness)),
        "us_per_event": 1e6 * max(0.0, spent["store_wall"] - spent["fire_wall"])
        / max(1, len(latency)),
        "store_busy_pct": 100.0 * spent["store_wall"] / wall,
        "lag_p50_ms": 1e3 * percentile(lags, 50), "lag_p99_ms": 1e3 * percentile(lags, 99),
        "lag_max_ms": 1e3 * (lags[-1] if lags else float("nan")), "lag_samples": len(lags),
        "cpu_s": cpu,
    }


def run_child(argv: list[str]) -> dict[str, object]:
    """Run this script as a measurement child; echo its chatter; return its result."""
    proc = subprocess.run([sys.executable, __file__, "--child", *argv],
                          capture_output=True, text=True, check=False)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
        else:
            print("    " + line)
    if proc.returncode != 0 or result is None:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child {argv[0]} failed with exit code {proc.returncode}")
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    return result


def child_main(args: argparse.Namespace) -> None:
    kind = args.child
    if kind == "idle":
        result = asyncio.run(child_idle(args.db, args.idle_seconds))
    elif kind == "rss":
        result = asyncio.run(child_rss(args.db, args.rss_seconds))
    else:
        result = asyncio.run(child_load(
            args.db, args.fires, args.events, args.fire_rate, args.event_rate, args.lead,
            args.burst, args.profile, not args.no_group_commit))
    print("RESULT " + json.dumps(result), flush=True)


# --- the parent ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 20 s)")
    parser.add_argument("--conversations", type=int,
                        help="open conversations in the store (default 1,000,000; quick 100,000)")
    parser.add_argument("--rounds", type=int, help="repetitions of each measurement (3; quick 1)")
    parser.add_argument("--idle-seconds", type=float, help="(a) window (10; quick 5)")
    parser.add_argument("--window", type=float, help="(b) seconds of load (10; quick 2)")
    parser.add_argument("--fire-rate", type=float, default=5000.0, help="(b) fires/s")
    parser.add_argument("--event-rate", type=float, default=5000.0, help="(b) inbound events/s")
    parser.add_argument("--no-group-commit", action="store_true",
                        help="(b) call Service.handle per event instead of awaiting "
                             "Service.submit (which the adapters use)")
    parser.add_argument("--burst", type=int, default=10,
                        help="(b) most events the producer sends (or, without group commit, "
                             "handles) before yielding when behind")
    parser.add_argument("--lead", type=float, default=2.0,
                        help="(b) seconds between rewriting deadlines and the first one")
    parser.add_argument("--rss-seconds", type=float, help="(c) idle time before reading RSS")
    parser.add_argument("--only", choices=("idle", "load", "rss"), action="append",
                        help="run only these measurements (repeatable)")
    parser.add_argument("--db", help="SQLite: reuse/build the big store at this path (kept)")
    parser.add_argument("--database-url",
                        help="run on this PostgreSQL database instead (EMPTIED first)")
    parser.add_argument("--postgres", action="store_true",
                        help="run on a throw-away PostgreSQL server started from this "
                             "machine's binaries (initdb/pg_ctl)")
    parser.add_argument("--profile", action="store_true", help="(b) cProfile the load window")
    # child-only arguments
    parser.add_argument("--child", choices=("idle", "rss", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--fires", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    patched = whatif.apply()  # BENCH_WHATIF=... prototypes of suggested fixes (default: none)
    if args.child:
        child_main(args)
        return

    quick = args.quick
    conversations = args.conversations or (100_000 if quick else 1_000_000)
    rounds = args.rounds or (1 if quick else 3)
    idle_seconds = args.idle_seconds or (5.0 if quick else 10.0)
    window = args.window or (2.0 if quick else 10.0)
    rss_seconds = args.rss_seconds or (1.0 if quick else 2.0)
    only = set(args.only or ("idle", "load", "rss"))
    if not (args.fire_rate > 0 or args.event_rate > 0):
        raise SystemExit("--fire-rate and --event-rate cannot both be 0")
    fires = int(args.fire_rate * window)
    events = int(args.event_rate * window)
    if rounds * fires + events > conversations:
        raise SystemExit("not enough conversations for that many fires and events")
    server = None
    if args.postgres:
        from chat_rescue.sandbox import postgres as throwaway

        server = throwaway.start()
        postgres_url: str | None = server.url()
    else:
        postgres_url = args.database_url
    try:
        measure(args, conversations, rounds, idle_seconds, window, rss_seconds, only, fires,
                events, patched, postgres_url)
    finally:
        if server is not None:
            server.stop()


def measure(args: argparse.Namespace, conversations: int, rounds: int, idle_seconds: float,
            window: float, rss_seconds: float, only: set[str], fires: int, events: int,
            patched: list[str], postgres_url: str | None) -> None:
    if postgres_url is not None:
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            settings = conn.execute("SELECT name, setting FROM pg_settings WHERE name IN "
                                    "('fsync', 'synchronous_commit')").fetchall()
        shown = ", ".join(f"{name}={value}" for name, value in settings)
        backend = f"PostgreSQL {row[0] if row else '?'} ({shown})"
    else:
        backend = f"SQLite {sqlite3.sqlite_version}"
    print(f"ticker benchmark — {machine()}, {backend}"
          + (f"; WHAT-IF prototypes patched in: {','.join(patched)}" if patched else ""))

    with tempfile.TemporaryDirectory(prefix="ticker-bench-") as tmp:
        if postgres_url is not None:
            big = postgres_url
            seconds = build(big, conversations)
            print(f"built {conversations:,} open conversations in {seconds:.1f}s (COPY)")
            if "rss" in only:  # the rows are the server's: the process holds none of them
                print("(c) RSS is SQLite's measurement (the store in the process); skipped")
                only = only - {"rss"}
            empty = big
        else:
            path = Path(args.db) if args.db else Path(tmp) / "big.db"
            big, empty = f"sqlite:///{path}", f"sqlite:///{Path(tmp) / 'empty.db'}"
            if args.db and path.exists():
                with contextlib.closing(sqlite3.connect(path)) as conn:
                    have = conn.execute("SELECT count(*) FROM conversations").fetchone()
                print(f"reusing {path} ({have[0]:,} conversations)")
            else:
                seconds = build(big, conversations)
                print(f"built {conversations:,} open conversations in {seconds:.1f}s "
                      f"({os.path.getsize(path) / 2**20:,.0f} MiB)")
            build(empty, 0)
        common = ["--idle-seconds", str(idle_seconds), "--rss-seconds", str(rss_seconds)]
        summary: list[str] = []
        targets: list[str] = []
        store = "PostgreSQL" if postgres_url is not None else "SQLite"

        if "idle" in only:
            print(f"\n(a) idle CPU, ticker over {conversations:,} conversations, "
                  f"{idle_seconds:g}s per run")
            pcts = []
            for r in range(rounds):
                res = run_child(["idle", "--db", big, *common])
                pcts.append(float(res["pct"]))  # type: ignore[arg-type]
                print(f"  run {r + 1}: {res['cpu_s'] * 1e3:.2f} ms CPU in {res['wall_s']:.1f}s"
                      f" = {res['pct']:.4f} % of a core; deadline queries at start "
                      f"{res['startup_queries']}, while idle {res['idle_queries']}; "
                      f"fired {res['fired']}; other processes used "
                      f"{res['others_pct']:.0f} % of a core meanwhile")
            ok = "MET" if median(pcts) < 0.1 else "MISSED"
            summary.append(f"(a) idle CPU: {spread(pcts, '{:.4f}')} % of a core "
                           f"(target < 0.1 %: {ok})")
            targets.append(f"TARGET idle CPU of the ticker over {conversations:,} "
                           f"conversations: {median(pcts):.4f} % of a core (target < 0.1 %) {ok}")

        if "rss" in only:
            print(f"\n(c) RSS, ticker idling {rss_seconds:g}s over the big vs an empty store")
            bigs, empties = [], []
            for r in range(rounds):
                b = run_child(["rss", "--db", big, *common])
                e = run_child(["rss", "--db", empty, *common])
                bigs.append(b["rss_kib"] / 1024)  # type: ignore[operator]
                empties.append(e["rss_kib"] / 1024)  # type: ignore[operator]
                print(f"  run {r + 1}: {b['conversations']:,} conversations: VmRSS "
                      f"{bigs[-1]:.1f} MiB (HWM {b['hwm_kib'] / 1024:.1f}); empty: VmRSS "
                      f"{empties[-1]:.1f} MiB (HWM {e['hwm_kib'] / 1024:.1f}); after imports "
                      f"{b['imports_kib'] / 1024:.1f} / {e['imports_kib'] / 1024:.1f} MiB")
            diffs = [b - e for b, e in zip(bigs, empties, strict=True)]
            ok = "MET" if median(diffs) <= 50 else "MISSED"
            summary.append(f"(c) RSS: big {median(bigs):.1f} MiB, empty {median(empties):.1f} "
                           f"MiB, growth {spread(diffs, '{:.1f}')} MiB (target <= 50 MB: {ok})")
            targets.append(f"TARGET RSS growth over {conversations:,} conversations: "
                           f"{median(diffs):.1f} MiB (target <= 50 MB) {ok}")

        if "load" in only:
            print(f"\n(b) lateness: {fires:,} deadlines at {args.fire_rate:,.0f}/s while "
                  f"{events:,} events arrive at {args.event_rate:,.0f}/s ({window:g}s), on "
                  f"{store}")
            got: dict[str, list[float]] = {}
            for r in range(rounds):
                argv = ["load", "--db", big, "--fires", str(fires),
                        "--events", str(events), "--fire-rate", str(args.fire_rate),
                        "--event-rate", str(args.event_rate), "--lead", str(args.lead),
                        "--burst", str(args.burst)]
                if args.no_group_commit:
                    argv.append("--no-group-commit")
                if args.profile and r == 0:
                    argv.append("--profile")
                res = run_child(argv)
                for name in ("p50_ms", "p99_ms", "max_ms", "fire_rate", "event_rate",
                             "event_p99_ms", "lag_p99_ms", "lag_max_ms", "us_per_fire",
                             "us_per_event", "store_busy_pct"):
                    got.setdefault(name, []).append(float(res[name]))  # type: ignore[arg-type]
                print(f"  run {r + 1}: fired {res['fired']:,}/{res['expected']:,}; lateness "
                      f"p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms, max "
                      f"{res['max_ms']:.1f} ms; fires {res['fire_rate']:,.0f}/s, events "
                      f"{res['event_rate']:,.0f}/s (event latency p50 "
                      f"{res['event_p50_ms']:.1f} ms, p99 {res['event_p99_ms']:.1f} ms); "
                      f"event-loop lag p50 {res['lag_p50_ms']:.2f} ms, p99 "
                      f"{res['lag_p99_ms']:.2f} ms, max {res['lag_max_ms']:.1f} ms "
                      f"({res['lag_samples']:,} samples); CPU {res['cpu_pct']:.0f} % of a core "
                      f"(others {res['others_pct']:.0f} %); store thread busy "
                      f"{res['store_busy_pct']:.0f} % of the time; per fire "
                      f"{res['us_per_fire']:.0f} us wall ({res['cpu_us_per_fire']:.0f} us CPU), "
                      f"per event {res['us_per_event']:.0f} us wall; RSS "
                      f"{res['rss_ready_kib'] / 1024:.0f} -> {res['rss_kib'] / 1024:.0f} MiB "
                      f"over the window")
            m = {name: median(values) for name, values in got.items()}
            late = "MET" if m["p99_ms"] <= 10 else "MISSED"
            lag = "MET" if m["lag_p99_ms"] <= 10 else "MISSED"
            summary.append(
                f"(b) lateness p50 {spread(got['p50_ms'], '{:.1f}')} ms, p99 "
                f"{spread(got['p99_ms'], '{:.1f}')} ms, max {spread(got['max_ms'], '{:.1f}')} "
                f"ms (target p99 <= 10 ms: {late}); achieved {m['fire_rate']:,.0f} fires/s and "
                f"{m['event_rate']:,.0f} events/s; event-loop lag p99 "
                f"{spread(got['lag_p99_ms'], '{:.2f}')} ms; inbound event latency p99 "
                f"{spread(got['event_p99_ms'], '{:.1f}')} ms")
            if fires and events:
                summary.append(
                    f"    store thread per fire {m['us_per_fire']:.0f} us, per event "
                    f"{m['us_per_event']:.0f} us (wall): busy {m['store_busy_pct']:.0f} % of "
                    f"the time at {args.fire_rate:,.0f} fires/s + {args.event_rate:,.0f} "
                    f"events/s")
            rates = f"{args.fire_rate:,.0f} fires/s + {args.event_rate:,.0f} events/s on {store}"
            targets.append(f"TARGET deadline lateness p99 under {rates}: {m['p99_ms']:.1f} ms "
                           f"(target <= 10 ms) {late}")
            targets.append(f"TARGET event-loop lag p99 under {rates}: {m['lag_p99_ms']:.2f} ms "
                           f"(target <= 10 ms; inbound event latency p99 beside it: "
                           f"{m['event_p99_ms']:.1f} ms) {lag}")

        print("\nsummary (medians):")
        for line in summary:
            print("  " + line)
        print()
        for line in targets:
            print(line)


if __name__ == "__main__":
    main()

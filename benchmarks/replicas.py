"""Due deadlines fired per second by 1 and by 3 replicas on one PostgreSQL, beside pgqueuer.

A database holds N open conversations (queued, waiting for an operator, `accept` timer
1 day) whose deadlines have all passed. Then 1 or 3 replica processes start at the same
moment, each with its own PostgresStore, Service and Ticker running `Ticker.run()` on the
SystemClock, as `chat-rescue run` does (its store worker thread, LISTEN/NOTIFY wake-ups).
A fire is end to end: the claim (`due()`, `FOR UPDATE SKIP LOCKED`, 64 per transaction),
the engine (a first escalation: conversation update, history row, `Escalate` and
`UpdateCard` queued), the commit. Delivery is not included: no outbox worker runs, the
outbox rows stay queued. Fires/s = N / (last commit - first commit), from the replicas'
`Ticker(on_fire=...)`; afterwards the store is checked: every deadline fired exactly once
across the replicas (one `escalated` history row per conversation, escalations = 1
everywhere, the replicas' `Ticker.fired` adding up to N, two outbox rows per fire).

The peer, on the same server in the same run: pgqueuer (its own Queries and QueueManager,
asyncpg driver) enqueueing N jobs 64 per call, then dequeueing and acknowledging them with
a no-op entrypoint, 64 at a time, with 1 and with 3 consumer processes. pgqueuer lives in
benchmarks/.peer-venv only (made here with `python -m venv` + pip when missing; not a
dependency of chat-rescue).

Without --database-url a throw-away cluster is started as the tests do
(`chat_rescue/sandbox/postgres.py`), but durable like a production server: fsync,
full_page_writes and synchronous_commit on (the sandbox's defaults turn them off); other
settings are PostgreSQL's defaults. A last run of 3 replicas with synchronous_commit=off
(set per session, labelled as such) shows what the commit's WAL flush costs. With
--database-url each run gets a fresh database there (the role needs CREATEDB), dropped
afterwards; that server's settings are printed and used as they are.

    .venv/bin/python benchmarks/replicas.py            # full: 50,000 deadlines (~3 min)
    .venv/bin/python benchmarks/replicas.py --quick    # smoke: 8,000 (< 1 min)
    .venv/bin/python benchmarks/replicas.py --profile  # + cProfile of one replica's store thread
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
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from _common import busy_seconds, machine

from chat_rescue.bot import engine
from chat_rescue.bot.clock import SystemClock
from chat_rescue.bot.deadlines import with_deadline
from chat_rescue.bot.model import Conversation, ConversationRef, State
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.bot.ticker import SLICE, Ticker
from chat_rescue.sandbox import postgres
from chat_rescue.storage.postgres import PostgresStore
from chat_rescue.storage.rows import COLUMNS, row_of

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
PEER_SCRIPT = HERE / "_peer_pgqueuer.py"
PEER_REQUIREMENTS = ("pgqueuer==1.6.0", "asyncpg")
ACCEPT = 86_400.0  # a fire's next deadline (the repeat escalation) is a day away
POLICY = Policy(accept=ACCEPT)
CHANNELS = ("C01INTAKE", "C02BILLING", "C03SALES", "C04VIP")
TEAMS = ("support", "billing", "sales")
TARGET = 5_000.0  # fires/s over 3 replicas
DURABLE = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on"}


def key_of(i: int) -> str:
    return f"slack:{CHANNELS[i % len(CHANNELS)]}:{1_600_000_000 + i}.{i % 1000:06d}"


# --- the store ------------------------------------------------------------------------------


def load(url: str, conversations: int) -> float:
    """Migrate the database at `url` and COPY in `conversations` queued conversations whose
    accept deadlines passed 10-60 s ago (spread, in key order); seconds taken."""
    started = time.perf_counter()
    PostgresStore(url).close()
    base = time.time() - 10.0
    columns = ", ".join(["key", *COLUMNS])
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cursor, cursor.copy(
                f"COPY conversations ({columns}) FROM STDIN") as copy:
            for i in range(conversations):
                deadline = base - 50.0 + 50.0 * i / conversations
                opened = deadline - ACCEPT
                conv = Conversation(
                    ConversationRef.parse(key_of(i)), TEAMS[i % len(TEAMS)], f"U{i:08d}",
                    opened, State.QUEUED, preview=f"customer {i} asks where order "
                    f"#{i * 7 % 100_000} is", timer_from=opened, waiting_since=opened,
                    queued_at=opened, last_customer_at=opened,
                    card=f"C0TEAM:{1_600_000_000 + i}.1")
                conv = with_deadline(conv, POLICY)
                copy.write_row((conv.ref.key, *row_of(conv)))
        conn.execute("VACUUM ANALYZE conversations")
    return time.perf_counter() - started


def verify(url: str, conversations: int, fired: list[int]) -> tuple[bool, str]:
    """Every deadline fired exactly once across the replicas; the line that says so."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT conversation) FROM history "
            "WHERE kind = 'escalated'").fetchone() or (0, 0)
        once, more, still_due = conn.execute(
            "SELECT count(*) FILTER (WHERE escalations = 1), "
            "count(*) FILTER (WHERE escalations > 1), "
            "count(*) FILTER (WHERE deadline <= %s) FROM conversations",
            (time.time(),)).fetchone() or (0, 0, 0)
        outbox = (conn.execute("SELECT count(*) FROM outbox").fetchone() or (0,))[0]
    ok = (sum(fired) == rows == distinct == once == conversations and more == 0
          and still_due == 0 and outbox == 2 * conversations)
    by = " + ".join(f"{n:,}" for n in fired)
    return ok, (f"check: {conversations:,} deadlines; fired {sum(fired):,} ({by} by replica); "
                f"{rows:,} 'escalated' history rows over {distinct:,} conversations; "
                f"escalations = 1 on {once:,}, > 1 on {more:,}; still due {still_due:,}; "
                f"outbox rows {outbox:,} (queued, not delivered) — "
                + ("each fired exactly once: OK" if ok else "MISMATCH"))


# --- a replica (child process) ----------------------------------------------------------------


class Spent:
    """Wall seconds on the store's thread inside the parts of a fire."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        seconds = self.seconds
        seconds.setdefault(name, 0.0)
        clock = time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += clock() - started
        return timed


async def replica(url: str, profile: bool) -> dict[str, object]:
    """One replica's ticker, started at the parent's signal, until nothing is due."""
    store = PostgresStore(url)
    clock = SystemClock()
    service = Service(store, POLICY, clock)
    first: list[float] = []
    last = [0.0]

    def on_fire(_deadline: float, at: float) -> None:
        if not first:
            first.append(at)
        last[0] = at

    ticker = Ticker(store, service, clock, on_fire=on_fire)
    spent = Spent()
    store.due = spent.wrap("claim (due)", store.due)  # type: ignore[method-assign]
    store.load = spent.wrap("load", store.load)  # type: ignore[method-assign]
    store.commit = spent.wrap("commit (savepoint + writes)",  # type: ignore[method-assign]
                              store.commit)
    store.commit_all = spent.wrap(  # type: ignore[method-assign]
        "slice commit (savepoint + one statement)", store.commit_all)
    engine_decide = engine.decide
    engine.decide = spent.wrap("engine", engine_decide)  # type: ignore[assignment]
    batch = store.batch

    @contextlib.contextmanager
    def timed_batch() -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            opened = time.perf_counter()
            stack.enter_context(batch())
            spent.seconds["batch begin"] += time.perf_counter() - opened
            yield
            closing = time.perf_counter()
            stack.close()
            spent.seconds["batch COMMIT"] += time.perf_counter() - closing

    spent.seconds["batch begin"] = spent.seconds["batch COMMIT"] = 0.0
    store.batch = timed_batch  # type: ignore[method-assign]
    profiler = cProfile.Profile() if profile else None
    passes = ticker._pass
    pass_seconds = [0.0]

    def timed_pass(now: float) -> tuple[int, float | None]:
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()  # on the store's thread, where the work is
        try:
            return passes(now)
        finally:
            if profiler is not None:
                profiler.disable()
            pass_seconds[0] += time.perf_counter() - started

    ticker._pass = timed_pass  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()

    def soon(callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    await service.call(store.listen, lambda at: soon(ticker.elsewhere, at),
                       lambda _platform: None, lambda: soon(ticker.wake))
    print("READY", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    start_at = float(line.split()[1])
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu0, wall0 = time.process_time(), time.time()
    task = asyncio.create_task(ticker.run())
    give_up = wall0 + 600.0
    await asyncio.sleep(0.05)
    # Done when the ticker sleeps with nothing due: what another replica holds is due.
    while not ticker.idle and time.time() < give_up:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await service.call(store.stop_listening)
    store.close()
    engine.decide = engine_decide  # type: ignore[assignment]
    if profiler is not None:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(25)
            print(f"--- cProfile of this replica's store thread, by {order} ---")
            print("\n".join(out.getvalue().splitlines()[4:]))
    return {"fired": ticker.fired, "first": first[0] if first else None, "last": last[0],
            "started": wall0, "cpu_s": cpu, "wall_s": wall, "pass_s": pass_seconds[0],
            "spent": spent.seconds}


# --- the parent -----------------------------------------------------------------------------


def server_cpu(data: Path | None) -> float:
    """CPU seconds used so far by the cluster in `data`: its postmaster, the processes it
    runs (backends, writers) and those it has reaped (backends of closed connections)."""
    if data is None:
        return 0.0
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # fields from the 3rd on
            pid = int(stat.parent.name)
            if pid == postmaster:
                ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            elif int(fields[1]) == postmaster:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Meter:
    """CPU of the whole machine and of the cluster between `start` and `stop`."""

    def __init__(self, data: Path | None) -> None:
        self.data = data

    def start(self) -> None:
        self.wall, self.busy, self.server = time.time(), busy_seconds(), server_cpu(self.data)

    def stop(self) -> str:
        """'PostgreSQL x, everything on the machine y of n' in cores."""
        wall = time.time() - self.wall
        busy = (busy_seconds() - self.busy) / wall
        server = (server_cpu(self.data) - self.server) / wall
        return ((f"PostgreSQL {server:.2f}, " if self.data is not None else "")
                + f"everything on the machine {busy:.2f} of {os.cpu_count()}")


class Children:
    """Processes started together: each prints READY, then all are told the same start
    moment; each ends with a `RESULT {json}` line."""

    def __init__(self, commands: list[list[str]], env: dict[str, str] | None = None) -> None:
        self.procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=env)
                      for command in commands]

    def start(self, meter: Meter, lead: float = 0.3) -> float:
        """Wait until every child is ready, tell them to start in `lead` seconds, start
        `meter` then; the start moment."""
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "READY":
                raise SystemExit(f"a child did not start: {line!r} {proc.stderr.read()}")
        at = time.time() + lead
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"GO {at!r}\n")
            proc.stdin.flush()
        time.sleep(max(0.0, at - time.time()))
        meter.start()
        return at

    def results(self) -> list[dict[str, Any]]:
        results = []
        for proc in self.procs:
            out, err = proc.communicate()
            result = None
            for line in out.splitlines():
                if line.startswith("RESULT "):
                    result = json.loads(line.removeprefix("RESULT "))
                else:
                    print("    " + line)
            if proc.returncode != 0 or result is None:
                sys.stderr.write(err)
                raise SystemExit(f"a child failed with exit code {proc.returncode}")
            if err.strip():
                sys.stderr.write(err)
            results.append(result)
        return results


def run_replicas(url: str, replicas: int, conversations: int, meter: Meter, *,
                 env: dict[str, str] | None = None, profile: bool = False,
                 label: str = "") -> float:
    """Load a fresh store, fire it with `replicas` processes; prints, returns fires/s."""
    seconds = load(url, conversations)
    print(f"\n{replicas} replica{'s' if replicas > 1 else ''}{label}: {conversations:,} "
          f"due deadlines loaded in {seconds:.1f}s")
    command = [sys.executable, __file__, "--child", "replica", "--url", url]
    children = Children([command + (["--profile"] if profile and i == 0 else [])
                         for i in range(replicas)], env)
    at = children.start(meter)
    results = children.results()
    used = meter.stop()
    first = min(r["first"] for r in results if r["first"] is not None)
    last = max(r["last"] for r in results)
    window = last - at
    rate = conversations / max(1e-9, last - first)
    ours = sum(r["cpu_s"] for r in results)
    ok, check = verify(url, conversations, [int(r["fired"]) for r in results])
    print(f"  fired {conversations:,} in {last - first:.2f}s from the first commit to the "
          f"last: {rate:,.0f} fires/s ({conversations / window:,.0f}/s from the start signal)")
    print(f"  CPU (cores) from the start to the replicas' exit: replicas "
          f"{ours / window:.2f}, {used}")
    for n, r in enumerate(results, 1):
        fired = max(1, int(r["fired"]))
        parts = ", ".join(f"{name} {1e6 * s / fired:.0f}"
                          for name, s in sorted(r["spent"].items(), key=lambda kv: -kv[1]))
        rest = r["pass_s"] - sum(r["spent"].values())
        between = r["wall_s"] - r["pass_s"]
        print(f"  replica {n}: {r['fired']:,} fired; per fire, wall us on the store thread: "
              f"{1e6 * r['pass_s'] / fired:.0f} in passes ({parts}, the rest "
              f"{1e6 * rest / fired:.0f}); between passes {1e6 * between / fired:.0f}; "
              f"process CPU {1e6 * r['cpu_s'] / fired:.0f} us/fire")
    print("  " + check)
    if not ok:
        raise SystemExit("the replicas did not fire every deadline exactly once")
    return rate


def ensure_peer_venv() -> Path:
    """The peer venv's Python, with pgqueuer installed (made on first use)."""
    python = PEER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import pgqueuer, asyncpg"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"making the peer's venv in {PEER_VENV.relative_to(HERE.parent)}/ "
          f"(pip install {' '.join(PEER_REQUIREMENTS)})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True)
    return python


def peer_result(python: Path, *argv: str) -> dict[str, Any]:
    done = subprocess.run([str(python), str(PEER_SCRIPT), *argv], capture_output=True,
                          text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line.removeprefix("RESULT ")))
    sys.stderr.write(done.stderr)
    raise SystemExit(f"pgqueuer's {argv[0]} failed with exit code {done.returncode}")


def run_peer(python: Path, url: str, consumers: int, jobs: int, batch: int,
             meter: Meter) -> tuple[float, float]:
    """pgqueuer on a fresh database: enqueue, then dequeue + ack; (enqueued/s, acked/s)."""
    peer_result(python, "install", url)
    enqueued = peer_result(python, "enqueue", url, str(jobs), str(batch))
    enqueue_rate = jobs / enqueued["seconds"]
    children = Children([[str(python), str(PEER_SCRIPT), "consume", url, str(batch)]
                         for _ in range(consumers)])
    at = children.start(meter)
    results = children.results()
    used = meter.stop()
    ended = max(r["ended"] for r in results)
    window = ended - at
    done = sum(int(r["jobs"]) for r in results)
    firsts = [r["first"] for r in results if r["first"] is not None]
    last = max(r["last"] for r in results if r["last"] is not None)
    rate = jobs / max(1e-9, ended - min(firsts))
    with psycopg.connect(url, autocommit=True) as conn:
        left = (conn.execute("SELECT count(*) FROM pgqueuer").fetchone() or (0,))[0]
        logged, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM pgqueuer_log "
            "WHERE status = 'successful'").fetchone() or (0, 0)
    ok = done == jobs == logged == distinct and left == 0
    print(f"\npgqueuer, {consumers} consumer{'s' if consumers > 1 else ''} (QueueManager, "
          f"asyncpg, batch {batch}, no-op entrypoint): enqueued {jobs:,} in "
          f"{enqueued['seconds']:.2f}s, {enqueue_rate:,.0f} jobs/s ({batch} per call, one "
          f"process); dequeued + acked {rate:,.0f} jobs/s (first job to the last ack "
          f"flushed; to the last job run {jobs / max(1e-9, last - min(firsts)):,.0f}/s)")
    print(f"  CPU (cores) from the start to the consumers' exit: consumers "
          f"{sum(r['cpu_s'] for r in results) / window:.2f}, {used}")
    by = " + ".join(f"{int(r['jobs']):,}" for r in results)
    print(f"  check: {done:,} run ({by} by consumer), {logged:,} 'successful' log rows "
          f"over {distinct:,} jobs, {left:,} left in the queue — "
          + ("each once: OK" if ok else "MISMATCH"))
    return enqueue_rate, rate


@contextlib.contextmanager
def server(url: str | None) -> Iterator[tuple[str, Path | None]]:
    """The server's URL and (for a cluster of our own) the data directory's processes."""
    if url is not None:
        yield url, None
        return
    cluster = postgres.start()
    try:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            for name, value in DURABLE.items():
                conn.execute(f"ALTER SYSTEM SET {name} = {value}")
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)  # the postmaster passes the reload on to its processes
        yield cluster.url(), cluster.data
    finally:
        cluster.stop()


def settings_line(url: str) -> str:
    names = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
             "wal_level", "shared_buffers", "max_wal_size")
    with psycopg.connect(url, autocommit=True) as conn:
        values = [(conn.execute(f"SHOW {name}").fetchone() or ("?",))[0] for name in names]
    return ", ".join(f"{name} {value}" for name, value in zip(names, values, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 1 min)")
    parser.add_argument("--conversations", type=int,
                        help="due deadlines per run (default 50,000; quick 8,000)")
    parser.add_argument("--database-url", help="an existing server (a fresh database per "
                        "run is made and dropped there; the role needs CREATEDB)")
    parser.add_argument("--no-peer", action="store_true", help="skip pgqueuer")
    parser.add_argument("--no-async-commit", action="store_true",
                        help="skip the extra run with synchronous_commit=off")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, one more run of 1 replica under cProfile")
    parser.add_argument("--child", choices=("replica",), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(replica(args.url, args.profile))
        print("RESULT " + json.dumps(result), flush=True)
        return

    conversations = args.conversations or (8_000 if args.quick else 50_000)
    python = None if args.no_peer else ensure_peer_venv()
    print(f"replicas benchmark — {machine()}")
    with server(args.database_url) as (url, data):
        meter = Meter(data)
        where = "--database-url" if args.database_url else "a throw-away cluster"
        print(f"PostgreSQL ({where}): {settings_line(url)}")
        databases = postgres.Databases(url)
        try:
            def fresh() -> Iterator[str]:
                while True:
                    db = databases.fresh(migrated=False)
                    yield db
                    databases.drop(db)

            dbs = fresh()
            one = run_replicas(next(dbs), 1, conversations, meter)
            three = run_replicas(next(dbs), 3, conversations, meter)
            peer: dict[int, tuple[float, float]] = {}
            if python is not None:
                for consumers in (1, 3):
                    peer[consumers] = run_peer(python, next(dbs), consumers, conversations,
                                               SLICE, meter)
            asynchronous = None
            if not args.no_async_commit:
                env = {**os.environ, "PGOPTIONS": "-c synchronous_commit=off"}
                asynchronous = run_replicas(next(dbs), 3, conversations, meter, env=env,
                                            label=", synchronous_commit=off")
            if args.profile:
                run_replicas(next(dbs), 1, conversations, meter, profile=True,
                             label=", profiled (not a measurement)")
            next(dbs, None)
        finally:
            databases.close()

    print("\nsummary (synchronous_commit on, unless said):")
    print(f"  ours, 1 replica:  {one:,.0f} fires/s")
    print(f"  ours, 3 replicas: {three:,.0f} fires/s (x{three / one:.2f} of one)")
    if asynchronous is not None:
        print(f"  ours, 3 replicas, synchronous_commit=off: {asynchronous:,.0f} fires/s")
    for consumers, (enqueue_rate, ack_rate) in peer.items():
        ours = one if consumers == 1 else three
        print(f"  pgqueuer, {consumers} consumer{'s' if consumers > 1 else ''}: enqueue "
              f"{enqueue_rate:,.0f} jobs/s, dequeue + ack {ack_rate:,.0f} jobs/s; ours/theirs "
              f"(fires vs dequeue + ack) {ours / ack_rate:.2f}")
    verdict = "MET" if three >= TARGET else "MISSED"
    print(f"TARGET fires over 3 replicas on one PostgreSQL: {three:,.0f}/s "
          f"(target >= {TARGET:,.0f}/s) {verdict}")


if __name__ == "__main__":
    main()

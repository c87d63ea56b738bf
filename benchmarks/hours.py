"""Working hours: what working-time deadlines cost on the ingest path (issue 9).

1. **next_deadline alone** (informational): the engine's deadline for conversations in
   every state at times spread over a year, with plain addition (always open) and with a
   schedule that has a lunch break, a Saturday, public holidays (DE) and both DST changes
   (Europe/Berlin): nanoseconds a call, and the ratio.
2. **ingest path** (the target): `Service.handle` per event on a file-backed SQLite store
   for the support-day workload of `ingest.py`, once with the built-in always-open policy
   and once with the same policy plus those working hours (events off-hours also queue the
   customer's off-hours notice: the real cost of hours, writes included). Rounds alternate;
   the figure is the median. Target: the hours cost at most 2x plain addition, i.e.
   `with hours / always open` seconds <= 2.
3. **sweep of a team with 10,000 open conversations** (20 operators, a file-backed store,
   Mon–Fri 09–18 Berlin, `sweep` 15 min): the two steps the ticker takes — the cards at
   17:45 (sort every open conversation, record it, queue 20 cards) and the shift's end at
   18:00 (the default rule through the engine: close the finished, hand over the rest) —
   each timed as the ticker runs it, synchronously on the event loop in one transaction.
   Targets: both steps together <= 1 s (the sweep's store and engine time), and no step
   over 50 ms (an event-loop stall: inbound events wait that long).

    .venv/bin/python benchmarks/hours.py           # full: 8k conversations, 3 rounds
    .venv/bin/python benchmarks/hours.py --quick   # smoke
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from _common import machine, median
from ingest import workload

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.deadlines import next_deadline
from chat_rescue.bot.hours import ALWAYS_OPEN, Schedule
from chat_rescue.bot.hours_text import change_holidays, change_hours
from chat_rescue.bot.model import (
    Conversation,
    ConversationRef,
    CustomerMessage,
    HandoverDigest,
    OperatorMessage,
    State,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.bot.sweeper import Sweeper
from chat_rescue.storage.sqlite import SQLiteStore

INGEST_RATIO = 2.0
SWEEP_TOTAL, SWEEP_STALL = 1.0, 0.050
FRIDAY = 1_796_338_800.0  # 2026-12-04 00:00 Berlin (a Friday)


def berlin_hours() -> Schedule:
    week = change_hours(["mon-fri", "09:00-13:00,14:00-18:00", "Europe/Berlin"], ALWAYS_OPEN)
    week = change_hours(["sat", "10:00-14:00"], week)
    return change_holidays(["DE"], week)


def conversations(n: int, seed: int = 3) -> list[Conversation]:
    """Conversations in every open state, their timers started anywhere in 2026."""
    rng = random.Random(seed)
    start = 1_767_225_600.0  # 2026-01-01 00:00 UTC
    states = (State.QUEUED, State.CLAIMED, State.WAITING_ON_OPERATOR,
              State.WAITING_ON_CUSTOMER)
    made = []
    for i in range(n):
        at = start + rng.uniform(0, 365 * 86400.0)
        state = states[i % len(states)]
        made.append(Conversation(
            ConversationRef("slack", "C1", f"{i}"), "support", "cust", at, state=state,
            owner=None if state is State.QUEUED else "U1", timer_from=at,
            waiting_since=at if state in (State.QUEUED, State.WAITING_ON_OPERATOR) else None,
            last_customer_at=at))
    return made


def time_deadlines(convs: list[Conversation], policy: Policy, rounds: int) -> float:
    """Nanoseconds per next_deadline call (best of `rounds`)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for conv in convs:
            next_deadline(conv, policy)
        best = min(best, time.perf_counter() - started)
    return best / len(convs) * 1e9


def run_ingest(path: Path, events: list, policy: Policy) -> tuple[float, int]:
    """Seconds to handle `events`, and the actions queued."""
    store = SQLiteStore(f"sqlite:///{path}")
    clock = FakeClock()
    service = Service(store, policy, clock)
    started = time.perf_counter()
    for event, inbound_id in events:
        clock.t = event.at
        service.handle(event, inbound_id=inbound_id)
    elapsed = time.perf_counter() - started
    queued = store.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    store.close()
    return elapsed, queued


@dataclass
class Swept:
    """What the sweep of a team took: per step, the seconds of each wake-up of the ticker
    that took a slice of it (a wake-up is what holds the event loop)."""

    wakeups: dict[str, list[float]]
    cards: int
    fates: dict[str, int]
    digest_lines: int

    @property
    def total(self) -> float:
        return sum(sum(times) for times in self.wakeups.values())

    @property
    def stall(self) -> float:
        return max(max(times) for times in self.wakeups.values())


def sweep_team(path: Path, size: int) -> Swept:
    """The sweep of a team of `size` open conversations on Friday: cards, end, and the
    handover digest on Monday, each step taken as the ticker takes it."""
    clock = FakeClock(FRIDAY + 9 * 3600)
    store = SQLiteStore(f"sqlite:///{path}")
    policy = replace(Policy(accept=None, first_response=None, idle=None, escalate=None,
                            close_reminder=1800.0),
                     schedule=change_hours(["mon-fri", "09:00-18:00", "Europe/Berlin"],
                                           ALWAYS_OPEN), sweep=900.0)
    service = Service(store, policy, clock)
    sweeper = Sweeper(store, service, clock)
    sweeper.start()
    rng = random.Random(5)
    with store.batch():
        for n in range(size):  # opened and answered over the day, some written to again
            ref = ConversationRef("slack", "C0HELP", f"{n}")
            clock.t = FRIDAY + 9 * 3600 + n * (8 * 3600 / size)
            service.handle(CustomerMessage(ref, clock.t, f"customer {n}", "hello", "team"))
            service.handle(OperatorMessage(ref, clock.t + 1, f"U{n % 20:02d}"))
            if rng.random() < 0.3:
                service.handle(CustomerMessage(ref, clock.t + 2, f"customer {n}", "and?",
                                               "team"))
    clock.t = FRIDAY + 17 * 3600 + 40 * 60
    sweeper.fire_due(clock.t)  # plans the team's sweeps (the ticker's first wake-up)
    wakeups: dict[str, list[float]] = {}
    monday = FRIDAY + 3 * 86400 + 9 * 3600
    for step, moment in (("cards", FRIDAY + 17 * 3600 + 45 * 60), ("end", FRIDAY + 18 * 3600),
                         ("handover digest", monday)):
        clock.t = moment
        times = wakeups[step] = []
        while True:  # the ticker comes back while a step has more (it yields in between)
            started = time.perf_counter()
            taken = sweeper.fire_due(clock.t)
            if not taken:
                break
            times.append(time.perf_counter() - started)
        assert times, f"no sweep step was due at {step}"
    count = store.conn.execute
    cards = count("SELECT count(*) FROM outbox WHERE kind = 'SweepCard'").fetchone()[0]
    fates = dict(count("SELECT fate, count(*) FROM sweep_items GROUP BY fate").fetchall())
    digests = [item.action for item in store.pending(100_000)
               if isinstance(item.action, HandoverDigest)]
    store.close()
    assert len(digests) == 1, f"{len(digests)} handover digests"
    return Swept(wakeups, cards, fates, len(digests[0].lines))


@contextmanager
def collections_timed(pauses: list[float]) -> Iterator[None]:
    """Record how long each of Python's garbage collections takes meanwhile."""
    started = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(timed)
    try:
        yield
    finally:
        gc.callbacks.remove(timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size, rounds = (1500, 1) if args.quick else (8000, 3)
    print(f"machine: {machine()}")
    plain, hours = Policy(), replace(Policy(), schedule=berlin_hours())

    convs = conversations(20_000 if not args.quick else 4000)
    for conv in convs[:200]:  # both give a deadline where one is due, or neither
        assert (next_deadline(conv, plain) is None) == (next_deadline(conv, hours) is None)
    time_deadlines(convs, hours, 1)  # warm the schedule's cached weeks, as a running bot has
    ns_plain = time_deadlines(convs, plain, 5)
    ns_hours = time_deadlines(convs, hours, 5)
    print(f"next_deadline: always open {ns_plain:,.0f} ns, with hours {ns_hours:,.0f} ns "
          f"(x{ns_hours / ns_plain:.1f}; {len(convs):,} conversations over 2026)")

    events = workload(size)
    times: dict[str, list[float]] = {"always open": [], "with hours": []}
    queued: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            for name, policy in (("always open", plain), ("with hours", hours)):
                elapsed, queued[name] = run_ingest(Path(tmp) / f"{name}-{n}.db", events, policy)
                times[name].append(elapsed)
    for name, values in times.items():
        rate = len(events) / median(values)
        print(f"ingest {name:<12} {median(values):6.2f} s for {len(events):,} events "
              f"({rate:,.0f} events/s; {queued[name]:,} actions queued)")
    ratio = median(times["with hours"]) / median(times["always open"])

    sweep_size = 1000 if args.quick else 10_000
    # The bot's process does not hold the parts above (70,000 objects of test data): left
    # alive, Python's full collections of them pause whatever runs, 35-60 ms each here.
    del convs, events
    gc.collect()
    pauses: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, collections_timed(pauses):
        swept = sweep_team(Path(tmp) / "sweep.db", sweep_size)
    fates = ", ".join(f"{n:,} {f}" for f, n in sorted(swept.fates.items(), key=str))
    print(f"sweep of {sweep_size:,} open conversations, 20 operators ({swept.cards} cards; "
          f"{fates}; a digest of {swept.digest_lines:,}):")
    for step, times in swept.wakeups.items():
        print(f"  {step:<16} {sum(times) * 1000:7,.0f} ms in {len(times):,} wake-ups "
              f"(longest {max(times) * 1000:,.1f} ms)")
    print(f"  Python's garbage collections while the team was filled and swept: "
          f"{len(pauses)}, longest {max(pauses, default=0) * 1000:.1f} ms")
    total, stall = swept.total, swept.stall
    print()
    print(f"TARGET working-time deadlines on the ingest path, cost against plain addition: "
          f"x{ratio:.2f} (target <= x{INGEST_RATIO:g}) "
          f"{'MET' if ratio <= INGEST_RATIO else 'MISSED'}")
    print(f"TARGET sweep of a team with {sweep_size:,} open conversations, store and engine "
          f"time: {total:.2f} s (target <= {SWEEP_TOTAL:g} s) "
          f"{'MET' if total <= SWEEP_TOTAL else 'MISSED'}")
    print(f"TARGET sweep of a team with {sweep_size:,} open conversations, longest event-loop "
          f"stall: {stall * 1000:,.0f} ms (target <= {SWEEP_STALL * 1000:g} ms) "
          f"{'MET' if stall <= SWEEP_STALL else 'MISSED'}")


if __name__ == "__main__":
    main()

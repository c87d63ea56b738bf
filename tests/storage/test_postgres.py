"""What only PostgresStore promises: claims that several replicas share out exactly once,
migrations taken once however many start together, a batch that is its thread's alone,
and `describe` for `chat-rescue check`. Each replica is a store of its own (its own pool
and connections) on one database, as separate processes would have."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from urllib.parse import urlsplit

import psycopg
import psycopg_pool
import pytest

from chat_rescue.bot.clock import FakeClock, SystemClock
from chat_rescue.bot.model import (
    Action,
    Conversation,
    ConversationRef,
    CustomerMessage,
    HistoryEvent,
    Nudge,
    Relay,
    Timer,
    UpdateCard,
)
from chat_rescue.bot.outbox import Outbox, Posted
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change, GroupRefused, Intent, Outcome
from chat_rescue.bot.service import Service
from chat_rescue.bot.ticker import Ticker
from chat_rescue.bot.worker import StoreWorker
from chat_rescue.sandbox.postgres import Databases
from chat_rescue.storage.factory import open_store
from chat_rescue.storage.postgres import PostgresStore, describe, migrate_url
from chat_rescue.storage.postgres_group import Changed, Unwritten, for_one_event
from chat_rescue.storage.postgres_lock import AdvisoryLock
from chat_rescue.storage.postgres_schema import MIGRATIONS, migrate, schema_version
from chat_rescue.storage.versions import SchemaTooNew

T0 = 1_700_000_000.0
REPLICAS = 4


def ref(n: int) -> ConversationRef:
    return ConversationRef("slack", "C1", f"{1700000000 + n}.000100")


def due_at(n: int, deadline: float) -> Conversation:
    return Conversation(ref(n), "team-a", f"cust-{n}", T0, timer_from=T0, deadline=deadline,
                        deadline_timer=Timer.ACCEPT)


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[list[PostgresStore]]:
    stores = [PostgresStore(postgres_url) for _ in range(REPLICAS)]
    yield stores
    for store in stores:
        store.close()


def together(stores: list[PostgresStore], work: Callable[[int, PostgresStore], None]) -> None:
    """Run `work` on every replica at once, each on a thread of its own, from one start."""
    start = threading.Barrier(len(stores))

    def run(index: int) -> None:
        start.wait()
        work(index, stores[index])

    with ThreadPoolExecutor(len(stores)) as pool:
        for done in [pool.submit(run, i) for i in range(len(stores))]:
            done.result()


# --- claims ----------------------------------------------------------------------------


def test_a_deadline_claimed_in_a_batch_is_passed_over_by_another_replica(
        replicas: list[PostgresStore]) -> None:
    one, other = replicas[:2]
    for n in range(1, 6):
        one.commit(Change(due_at(n, T0 + n)), T0)
    with one.batch():
        claimed = [conv.ref.key for conv in one.due(T0 + 10, 3)]
        assert claimed == [ref(n).key for n in (1, 2, 3)]
        with other.batch():  # skipped, not waited for
            assert [conv.ref.key for conv in other.due(T0 + 10, 10)] == [ref(4).key, ref(5).key]
    with other.batch():  # the claim ends with the batch (these were not moved on)
        assert len(other.due(T0 + 10, 10)) == 5


def test_a_group_locks_its_conversations_from_the_start_and_writes_them_at_once(
        replicas: list[PostgresStore]) -> None:
    one, other = replicas[:2]
    for n in (1, 2, 3):
        one.commit(Change(due_at(n, T0 + n)), T0)
    with one.batch([Intent(ref(1).key, "a", T0), Intent(ref(3).key, "b", T0)]):
        # Locked and read at the start: another replica passes over them, and meanwhile
        # the group's first loads cost nothing.
        with other.batch():
            assert [conv.ref.key for conv in other.due(T0 + 10, 10)] == [ref(2).key]
        conv = one.load(ref(1).key)
        assert conv is not None
        assert one.commit(Change(replace(conv, deadline=None), conv.version,
                                 inbound_id="a"), T0) is Outcome.COMMITTED
        # Taken, not written yet: the other replica's read (its own transaction) sees the
        # row as it was; this replica's next use of the connection writes it first.
        assert other.load(ref(1).key) == conv
        assert one.load(ref(1).key) == replace(conv, deadline=None, version=conv.version + 1)
    assert other.load(ref(1).key) == replace(conv, deadline=None, version=conv.version + 1)
    assert other.commit(Change(inbound_id="b"), T0) is Outcome.COMMITTED  # b never used


def test_a_group_whose_locked_conversation_changed_keeps_nothing(
        replicas: list[PostgresStore]) -> None:
    one = replicas[0]
    one.commit(Change(due_at(1, T0 + 1)), T0)
    with pytest.raises(GroupRefused) as refused, one.batch([Intent(ref(1).key, "a", T0)]):
        conv = one.load(ref(1).key)
        assert conv is not None
        one.attach(conv.ref.key, "card-1", ())  # a write that is not the event's own commit
        assert one.commit(Change(replace(conv, owner="U0ANA"), conv.version,
                                 inbound_id="a"), T0) is Outcome.COMMITTED
    assert isinstance(refused.value.__cause__, Changed)
    assert one.load(ref(1).key) == due_at(1, T0 + 1)  # not even the card
    assert one.commit(Change(inbound_id="a"), T0) is Outcome.COMMITTED


def _unwritten(cause: BaseException) -> Unwritten:
    failed = Unwritten("writing what this group took failed")
    failed.__cause__ = cause
    return failed


@pytest.mark.parametrize(("failed", "alone"), [
    (psycopg.errors.DeadlockDetected(), True),  # with another replica's group
    (psycopg.errors.SerializationFailure(), True),
    (psycopg.errors.CharacterNotInRepertoire(), True),  # a value the server refuses
    (psycopg.errors.UniqueViolation(), True),
    (psycopg.DataError("cannot dump a NUL"), True),  # refused by the client
    (_unwritten(psycopg.errors.NumericValueOutOfRange()), True),
    (_unwritten(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")), True),
    (Changed("changed underneath"), True),
    (psycopg.OperationalError("the connection is lost"), False),
    (psycopg.InterfaceError("the connection is closed"), False),
    (psycopg_pool.PoolTimeout("couldn't get a connection after 10.00 sec"), False),
    (psycopg.errors.AdminShutdown(), False),  # the server going down
    (psycopg.errors.QueryCanceled(), False),  # a statement timeout: the server is slow
    (_unwritten(psycopg.OperationalError("the connection is lost")), False),
    (ConnectionResetError(), False),
])
def test_only_what_one_event_can_cause_runs_a_group_again_one_by_one(
        failed: BaseException, alone: bool) -> None:
    assert for_one_event(failed) is alone


def test_replicas_claim_each_due_deadline_exactly_once(replicas: list[PostgresStore]) -> None:
    total = 300
    for n in range(total):
        replicas[0].commit(Change(due_at(n, T0 + n % 7)), T0)
    claims: dict[int, list[str]] = defaultdict(list)
    outcomes: Counter[Outcome] = Counter()
    lock = threading.Lock()

    def fire(index: int, store: PostgresStore) -> None:
        while True:
            with store.batch():
                due = store.due(T0 + 10, 8)
                for conv in due:
                    fired = replace(conv, deadline=None, deadline_timer=None, escalations=1)
                    outcome = store.commit(Change(
                        fired, expected_version=conv.version,
                        history=(HistoryEvent(conv.ref, conv.team, "escalated", T0 + 10,
                                              f"replica-{index}"),)), T0 + 10)
                    with lock:
                        claims[index].append(conv.ref.key)
                        outcomes[outcome] += 1
            if not due:
                return

    together(replicas, fire)
    handled = [key for keys in claims.values() for key in keys]
    assert sorted(handled) == sorted(ref(n).key for n in range(total))  # each exactly once
    assert outcomes == {Outcome.COMMITTED: total}  # no replica even tried another's
    assert len(replicas[0].history(None, 0)) == total
    assert len([keys for keys in claims.values() if keys]) > 1  # the work was shared


def test_replica_tickers_fire_each_deadline_once(postgres_url: str) -> None:
    """The ticker, engine and commit end to end: several processes' tickers at once."""
    clock = FakeClock(T0)
    bots = []
    for _ in range(REPLICAS):
        store = PostgresStore(postgres_url)
        service = Service(store, Policy(), clock)
        bots.append((store, Ticker(store, service, clock, batch=16)))
    try:
        opener = bots[0][1].service
        total = 200
        for n in range(total):
            opener.handle(CustomerMessage(ref(n), T0, f"cust-{n}", "help", "team-a"))
        clock.t = T0 + 121  # every conversation's accept deadline has come
        fired = [0] * REPLICAS

        def tick(index: int, store: PostgresStore) -> None:
            while (count := bots[index][1].fire_due(clock.now())) > 0:
                fired[index] += count

        together([store for store, _ in bots], tick)
        escalated = Counter(h.ref for h in bots[0][0].history(None, 0) if h.kind == "escalated")
        assert escalated == {ref(n): 1 for n in range(total)}
        assert sum(fired) == total
    finally:
        for store, _ in bots:
            store.close()


def test_a_lane_item_leased_by_one_replica_is_not_leased_by_another(
        replicas: list[PostgresStore]) -> None:
    one, other = replicas[:2]
    one.commit(Change(actions=(Nudge(ref(1), "ana", 1.0), Nudge(ref(1), "ana", 2.0))), T0)
    first, second = one.pending(10)
    with one.batch():  # a lease under way, not committed yet
        assert one.lease([first.id], "replica-a", T0 + 60, T0) == [first.id]
        assert other.lease([first.id], "replica-b", T0 + 60, T0) == []  # skipped
        assert other.lease([second.id], "replica-b", T0 + 60, T0) == []  # same lane
    assert other.heads("slack:", 10, T0) == []  # committed now: the lane waits
    assert other.lease([second.id], "replica-b", T0 + 60, T0 + 1) == []


def test_replicas_deliver_each_outbox_item_once_and_each_lane_in_order(
        replicas: list[PostgresStore]) -> None:
    lanes, per_lane = 12, 15
    actions = [Nudge(ref(lane), "ana", float(n)) for n in range(per_lane)
               for lane in range(lanes)]
    for start in range(0, len(actions), 30):
        replicas[0].commit(Change(actions=tuple(actions[start:start + 30])), T0)
    delivered: list[tuple[str, int]] = []
    doubly_leased: list[str] = []
    lock = threading.Lock()

    def deliver(index: int, store: PostgresStore) -> None:
        owner = f"replica-{index}"
        while store.pending(1):
            heads = store.heads("slack:", 8, T0)
            taken = store.lease([item.id for item in heads], owner, T0 + 60, T0)
            # As committed now: no lane has two items leased at once.
            doubled = store._rows("SELECT lane FROM outbox WHERE locked_until > %s "
                                  "GROUP BY lane HAVING count(*) > 1", (T0,))
            with lock:
                doubly_leased.extend(str(lane) for (lane,) in doubled)
                delivered.extend((item.lane, item.id) for item in heads if item.id in taken)
            for item_id in taken:
                store.settle(item_id)

    together(replicas, deliver)
    assert doubly_leased == []
    assert Counter(item_id for _, item_id in delivered) == Counter(
        {item_id: 1 for _, item_id in delivered})
    assert len(delivered) == lanes * per_lane
    by_lane: dict[str, list[int]] = defaultdict(list)
    for lane, item_id in delivered:
        by_lane[lane].append(item_id)
    assert all(ids == sorted(ids) for ids in by_lane.values())


def test_a_sweep_step_claimed_in_a_batch_is_passed_over(replicas: list[PostgresStore]) -> None:
    from chat_rescue.bot.sweep import Sweep, sweep_id

    one, other = replicas[:2]
    sweeps = [Sweep(sweep_id("team-a", T0 + end), "team-a", T0 + end, T0 + end - 900,
                    T0 + end + 3600, ("",)) for end in (1000, 2000)]
    one.plan_sweeps("team-a", sweeps, T0)
    with one.batch():
        assert [s.id for s in one.due_sweeps(T0 + 1e6, 1)] == [sweeps[0].id]
        assert [s.id for s in other.due_sweeps(T0 + 1e6, 5)] == [sweeps[1].id]


def test_replica_sweepers_draw_each_operators_card_once(postgres_url: str) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from chat_rescue.bot.hours_text import from_environment
    from chat_rescue.bot.model import OperatorMessage, SweepCard
    from chat_rescue.bot.sweeper import Sweeper

    def at(text: str) -> float:  # Berlin time; 4 December 2026 is a Friday
        return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Berlin")).timestamp()

    policy = Policy(schedule=from_environment("mon-fri 09:00-18:00", "Europe/Berlin", ""),
                    sweep=900)
    clock = FakeClock(at("2026-12-04 10:00"))
    teams = []
    for _ in range(REPLICAS):
        store = PostgresStore(postgres_url)
        service = Service(store, policy, clock)
        teams.append((store, service, Sweeper(store, service, clock)))
    try:
        service = teams[0][1]
        operators = [f"U0OP{n}" for n in range(6)]
        for n in range(60):
            service.handle(CustomerMessage(ref(n), clock.now(), f"cust-{n}", "hi", "team-a"))
            service.handle(OperatorMessage(ref(n), clock.now() + 1, operators[n % 6]))
        for _, _, sweeper in teams:
            sweeper.start()
        teams[0][2].fire_due(clock.now())  # plans the team's sweeps
        clock.t = at("2026-12-04 17:45")

        def sweep(index: int, store: PostgresStore) -> None:
            # As the ticker does: again while a step is due (one that another replica
            # holds is passed over until it commits).
            while any(s.due is not None and s.due <= clock.now()
                      for s in store.sweeps("team-a")):
                teams[index][2].fire_due(clock.now())

        together([store for store, _, _ in teams], sweep)
        cards = Counter(item.action.operator for item in teams[0][0].pending(1000)
                        if isinstance(item.action, SweepCard))
        assert cards == {operator: 1 for operator in operators}
    finally:
        for store, _, _ in teams:
            store.close()


def test_planning_the_same_sweeps_again_does_not_hold_them(
        replicas: list[PostgresStore]) -> None:
    """Another replica planning a team (as each does when it starts) must not make a due
    step look claimed."""
    from chat_rescue.bot.sweep import Sweep, sweep_id

    one, other = replicas[:2]
    sweeps = [Sweep(sweep_id("team-a", T0 + 1000), "team-a", T0 + 1000, T0 + 100, None, ("",))]
    one.plan_sweeps("team-a", sweeps, T0)
    with one.batch():
        one.plan_sweeps("team-a", sweeps, T0 + 100)
        with other.batch():
            assert [s.id for s in other.due_sweeps(T0 + 100, 5)] == [sweeps[0].id]


# --- card updates ----------------------------------------------------------------------


def test_a_card_update_committed_after_the_mark_is_not_superseded(
        replicas: list[PostgresStore]) -> None:
    """Two writers: one queues a card update (with the change it shows) in a transaction
    still open when a worker reads its mark, the other commits later items meanwhile.
    The card that worker draws next cannot show that change, so the update must stay."""
    slow, quick, worker = replicas[:3]
    card = due_at(1, T0 + 100)
    slow.commit(Change(card, actions=(UpdateCard(card),)), T0)
    sent = worker.pending(1)[0]  # the update being delivered
    with slow.batch():
        stored = slow.load(ref(1).key)
        assert stored is not None
        newer = replace(stored, customer="renamed")
        slow.commit(Change(newer, expected_version=stored.version,
                           actions=(UpdateCard(newer),)), T0)
        quick.commit(Change(actions=(Nudge(ref(2), "ana", 1.0),)), T0)  # a later id
        mark = worker.outbox_mark()
        drawn = worker.load(ref(1).key)  # the card is drawn from this
    assert drawn is not None and drawn.customer != "renamed"
    worker.supersede(sent.lane, mark, sent.id)
    left = [i.action for i in worker.pending(10) if i.lane == sent.lane and i.id != sent.id]
    assert [type(a) for a in left] == [UpdateCard]  # still to go: nothing showed "renamed"


# --- one store, several threads ------------------------------------------------------


def test_a_batch_is_its_own_threads_alone(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        seen_inside: list[object] = []
        with store.batch():
            store.commit(Change(due_at(1, T0 + 5)), T0)
            assert store.load(ref(1).key) is not None  # this thread sees its batch
            worker = threading.Thread(target=lambda: seen_inside.append(store.load(ref(1).key)))
            worker.start()
            worker.join()
        assert seen_inside == [None]  # another thread did not join the open transaction
        assert store.load(ref(1).key) is not None
    finally:
        store.close()


# --- migrations ------------------------------------------------------------------------


def versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [int(row[0]) for row in
                conn.execute("SELECT version FROM schema_version ORDER BY version")]


def test_migrations_are_idempotent(postgres_databases: Databases) -> None:
    url = postgres_databases.fresh(migrated=False)
    first = PostgresStore(url)
    first.commit(Change(due_at(1, T0 + 5)), T0)
    first.close()
    second = PostgresStore(url)
    try:
        assert second.schema_version == len(MIGRATIONS)
        with psycopg.connect(url, autocommit=True) as conn:
            assert migrate(conn) == len(MIGRATIONS)
            assert schema_version(conn) == len(MIGRATIONS)
        assert versions(url) == list(range(1, len(MIGRATIONS) + 1))
        assert second.load(ref(1).key) == due_at(1, T0 + 5)
    finally:
        second.close()


def test_replicas_starting_together_on_a_new_database_migrate_it_once(
        postgres_databases: Databases) -> None:
    url = postgres_databases.fresh(migrated=False)
    start = threading.Barrier(REPLICAS)

    def open_one() -> PostgresStore:
        start.wait()
        return PostgresStore(url)

    with ThreadPoolExecutor(REPLICAS) as pool:
        stores = [done.result() for done in [pool.submit(open_one) for _ in range(REPLICAS)]]
    try:
        assert versions(url) == list(range(1, len(MIGRATIONS) + 1))
        stores[0].commit(Change(due_at(1, T0 + 5)), T0)
        assert all(store.load(ref(1).key) is not None for store in stores)
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize("at", range(len(MIGRATIONS)))
def test_a_database_at_an_earlier_version_migrates_to_the_latest(
        postgres_databases: Databases, at: int) -> None:
    url = postgres_databases.fresh(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        assert migrate(conn, MIGRATIONS[:at]) == at
    applied: list[int] = []
    assert migrate_url(url, applied.append) == (at, len(MIGRATIONS))
    assert applied == list(range(at + 1, len(MIGRATIONS) + 1))  # each step once, in order
    store = PostgresStore(url)
    try:
        assert versions(url) == list(range(1, len(MIGRATIONS) + 1))
        assert store.commit(Change(due_at(1, T0 + 5)), T0) is Outcome.COMMITTED
    finally:
        store.close()


def test_a_database_a_newer_release_wrote_is_refused_and_left_as_it_is(
        postgres_databases: Databases) -> None:
    url = postgres_databases.fresh()
    newer = len(MIGRATIONS) + 1
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s, 0)", (newer,))
    with pytest.raises(SchemaTooNew, match=f"schema version {newer} was written by a newer "
                       f"chat-rescue; this one knows up to {len(MIGRATIONS)}"):
        PostgresStore(url)
    with pytest.raises(SchemaTooNew):
        migrate_url(url)
    assert versions(url) == [*range(1, len(MIGRATIONS) + 1), newer]


# --- opening and checking --------------------------------------------------------------


def test_a_postgresql_url_opens_a_postgres_store(postgres_url: str) -> None:
    store = open_store(postgres_url)
    try:
        assert isinstance(store, PostgresStore)
        assert store.next_deadline() is None
    finally:
        store.close()


def test_describe_reports_the_server_and_the_schema(postgres_databases: Databases) -> None:
    empty = postgres_databases.fresh(migrated=False)
    assert "no schema yet" in describe(empty)
    url = postgres_databases.fresh()
    store = PostgresStore(url)
    store.commit(Change(due_at(1, T0 + 5)), T0)
    store.close()
    version = postgres_databases.server_version().split(" ")[0]
    place = urlsplit(url)
    assert describe(url) == (f"PostgreSQL {version} at {place.hostname}:{place.port}"
                             f"{place.path}: 1 conversations, schema {len(MIGRATIONS)}")


def test_describe_says_why_a_server_cannot_be_used_without_the_password() -> None:
    with pytest.raises(ValueError, match="cannot use PostgreSQL at 127.0.0.1:1/db") as said:
        describe("postgresql://bot:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(said.value)


def test_a_newer_schema_is_reported(postgres_databases: Databases) -> None:
    url = postgres_databases.fresh()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s, 0)", (len(MIGRATIONS) + 1,))
    with pytest.raises(ValueError, match="newer chat-rescue"):
        describe(url)


def test_the_advisory_lock_is_held_by_one_replica_and_freed_when_its_session_ends(
        replicas: list[PostgresStore]) -> None:
    one, two = (store.lock("telegram-poller") for store in replicas[:2])
    assert one.try_take() and one.still_held()
    assert not two.try_take() and not two.still_held()
    one.give_up()
    assert two.try_take()
    # the holder's session dies (its process was killed): the server lets the lock go
    held = two._conn  # type: ignore[attr-defined]
    assert held is not None
    with psycopg.connect(replicas[0].url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (held.info.backend_pid,))
    assert not two.still_held()
    assert one.try_take()
    one.give_up()


def test_a_batch_whose_statement_failed_commits_nothing_and_says_so(postgres_url: str) -> None:
    """One failed statement aborts the whole transaction: psycopg would end the batch with
    a silent ROLLBACK, and the store's worker would acknowledge the group's events as
    committed. The batch raises instead."""
    store = PostgresStore(postgres_url)
    try:
        with pytest.raises(psycopg.errors.InFailedSqlTransaction), store.batch():
            assert store.commit(Change(inbound_id="slack:Ev1"), 1.0) is Outcome.COMMITTED
            with pytest.raises(psycopg.errors.DivisionByZero):
                store._rows("SELECT 1 / 0")  # a read that fails, caught by its caller
        assert store.commit(Change(inbound_id="slack:Ev1"), 2.0) is Outcome.COMMITTED
    finally:
        store.close()


# --- leases of a dead replica ------------------------------------------------------------

# Workers "on other hosts": host names that are not this one's, so no process check can
# judge them; only the presence each holds on the server can.
HOST_A = "replica-a.internal:1.4242.4026531836:aaaaaa"
HOST_B = "replica-b.internal:1.4343.4026531836:bbbbbb"


class Recorder:
    """A platform that sends at once and notes when (monotonic) it sent what."""

    name = "slack"

    def __init__(self, expected: int = 0) -> None:
        self.sent: list[tuple[float, Action]] = []
        self.expected = expected
        self.all_sent = asyncio.Event()

    async def deliver(self, action: Action) -> Posted | None:
        self.sent.append((time.monotonic(), action))
        if len(self.sent) >= self.expected:
            self.all_sent.set()
        return None

    def destination(self, action: Action) -> str:
        return "team"

    def free_at(self, action: Action, now: float) -> float:
        return now


def relay(n: int, message: int) -> Relay:
    return Relay(ref(n), True, "-100", f"m{message}")


def die(store: PostgresStore, outbox: Outbox) -> None:
    """The worker's process is gone (as far as the server can tell): its presence's session
    ends, its leases stay as they were."""
    presence = outbox._presence
    assert isinstance(presence, AdvisoryLock) and presence._conn is not None
    with psycopg.connect(store.url, autocommit=True) as admin:
        pid = presence._conn.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            time.sleep(0.001)  # the session ends a moment after it was told to
    presence._drop()  # (this end of the broken connection: closed, not left to the GC)


async def until_sent(platform: Recorder, within: float) -> None:
    async with asyncio.timeout(within):
        await platform.all_sent.wait()


async def test_leases_of_a_worker_on_another_host_that_died_go_within_a_second(
        replicas: list[PostgresStore]) -> None:
    one, other = replicas[:2]
    one.commit(Change(actions=tuple(relay(1, m) for m in range(3))), T0)
    dying = Outbox(one, Recorder(), SystemClock(), owner=HOST_A)
    head = one.pending(1)[0]
    assert dying._lease([head.id]) == [head.id]  # in flight when its replica is killed
    platform = Recorder(expected=3)
    taker = Outbox(other, platform, SystemClock(), owner=HOST_B)
    running = asyncio.create_task(taker.run())
    try:
        await asyncio.sleep(0.3)  # the taker waits for the lane: its holder lives
        assert platform.sent == []
        die(one, dying)
        killed = time.monotonic()
        await until_sent(platform, within=5.0)  # not the lease's 60 s
    finally:
        taker.stop_soon()
        await running
    took = platform.sent[0][0] - killed
    print(f"taken over {took:.3f} s after the holder's session ended")
    assert took < 1.5
    assert [action for _, action in platform.sent] == [relay(1, m) for m in range(3)]
    assert taker.taken_over == 1


async def test_a_live_holder_on_another_host_is_waited_for_however_slow(
        replicas: list[PostgresStore]) -> None:
    one, other = replicas[:2]
    one.commit(Change(actions=(relay(1, 1), relay(1, 2), relay(2, 1))), T0)
    slow = Outbox(one, Recorder(), SystemClock(), owner=HOST_A)
    head = one.pending(1)[0]
    assert slow._lease([head.id]) == [head.id]  # and is still sending it
    platform = Recorder()
    taker = Outbox(other, platform, SystemClock(), owner=HOST_B)
    running = asyncio.create_task(taker.run())
    try:
        await asyncio.sleep(1.5)  # three looks at the holder at least
    finally:
        taker.stop_soon()
        await running
        await asyncio.to_thread(slow._absent)
    assert [action for _, action in platform.sent] == [relay(2, 1)]  # the other lane only
    assert taker.taken_over == 0


def test_a_worker_whose_presence_session_dropped_leases_under_a_new_name(
        replicas: list[PostgresStore]) -> None:
    one, other = replicas[:2]
    one.commit(Change(actions=(relay(1, 1), relay(2, 1), relay(3, 1))), T0)
    first, second, third = one.pending(3)
    outbox = Outbox(one, Recorder(), SystemClock(), owner=HOST_A)
    assert other.gone([HOST_A]) == [HOST_A]  # not present before its first lease
    assert outbox._lease([first.id]) == [first.id]
    assert other.gone([HOST_A]) == []
    die(one, outbox)  # the connection broke; the process lives on
    assert other.gone([HOST_A]) == [HOST_A]  # the others take it for dead now ...
    assert outbox._lease([second.id]) == [second.id]  # ... so it leases as someone else
    renamed = outbox.owner
    assert renamed != HOST_A and other.gone([HOST_A, renamed]) == [HOST_A]
    # What the old name held was ended at once (the others would end it anyway), and an
    # ending of the old name's leases leaves the new name's alone.
    assert other.lease_holders(time.time()) == [renamed]
    assert other.end_leases(HOST_A) == []
    assert other.lease([third.id], HOST_B, time.time() + 60, time.time()) == [third.id]
    outbox._absent()
    assert other.gone([renamed]) == [renamed]


@pytest.mark.parametrize("how", ["value", "statement"])
async def test_a_group_with_a_value_the_server_refuses_fails_that_event_only(
        replicas: list[PostgresStore], caplog: pytest.LogCaptureFixture, how: str) -> None:
    # "value": its write refused (an integer out of range); "statement": a statement of
    # its own failed outside a savepoint, aborting the transaction (all the group sees at
    # its end is 25P02).
    store = replicas[0]
    for n in (1, 2, 3):
        store.commit(Change(due_at(n, T0 + n)), T0)
    worker = StoreWorker(store)

    def escalate(n: int, times: int) -> Outcome:
        conv = store.load(ref(n).key)
        assert conv is not None
        if n == 2 and how == "statement" and store.in_batch and len(caplog.records) == 0:
            store._rows("SELECT 1 / 0")  # refused by the server, once: in the group
        return store.commit(Change(replace(conv, escalations=times), conv.version,
                                   inbound_id=f"e{n}"), T0)

    results = await asyncio.gather(
        *(worker.call(escalate, n, 2**40 if n == 2 and how == "value" else 1, grouped=True,
                      intent=Intent(ref(n).key, f"e{n}", T0)) for n in (1, 2, 3)),
        return_exceptions=True)
    assert "a group of 3 events failed together" in caplog.text  # taken, then refused
    assert results[0] is Outcome.COMMITTED and results[2] is Outcome.COMMITTED
    escalations = [store.load(ref(n).key).escalations for n in (1, 2, 3)]  # type: ignore[union-attr]
    if how == "value":
        assert isinstance(results[1], psycopg.Error)
        assert escalations == [1, 0, 1]
        assert store.commit(Change(inbound_id="e2"), T0) is Outcome.COMMITTED  # not recorded
    else:  # the statement failed in the group only: alone, the event goes through
        assert results[1] is Outcome.COMMITTED and escalations == [1, 1, 1]
    assert store.commit(Change(inbound_id="e1"), T0) is Outcome.DUPLICATE


async def test_an_event_alone_in_its_group_hears_a_store_error(
        replicas: list[PostgresStore]) -> None:
    # What an adapter keeps and tries again (Slack's held events): the store's errors.
    store = replicas[0]
    store.commit(Change(due_at(1, T0 + 1)), T0)
    worker = StoreWorker(store)

    def escalate() -> Outcome:
        conv = store.load(ref(1).key)
        assert conv is not None
        return store.commit(Change(replace(conv, escalations=2**40), conv.version,
                                   inbound_id="e1"), T0)

    [alone] = await asyncio.gather(
        worker.call(escalate, grouped=True, intent=Intent(ref(1).key, "e1", T0)),
        return_exceptions=True)
    assert isinstance(alone, store.errors) and not isinstance(alone, GroupRefused)
    assert isinstance(GroupRefused("a group failed"), store.errors)


def test_what_a_group_s_block_raises_comes_out_as_it_is(
        replicas: list[PostgresStore]) -> None:
    one = replicas[0]
    one.commit(Change(due_at(1, T0 + 1)), T0)
    with pytest.raises(psycopg.errors.UniqueViolation), one.batch([Intent(ref(1).key, "a", T0)]):
        raise psycopg.errors.UniqueViolation("the caller's own, not the group's")
    assert one.commit(Change(inbound_id="a"), T0) is Outcome.COMMITTED  # nothing was kept


def test_a_batch_whose_connection_was_lost_commits_nothing_and_says_so(
        replicas: list[PostgresStore], postgres_url: str) -> None:
    # The body catches the failure (as the store worker's jobs do) and goes on: with the
    # connection gone, psycopg's transaction ends with nothing to say, and the batch must
    # not pass for committed (nor run what waits for its commit).
    store = replicas[0]
    called: list[str] = []
    with pytest.raises(psycopg.OperationalError), store.batch():
        # no deadline: nothing to announce, so no statement of its own at the end
        store.commit(Change(replace(due_at(1, T0 + 1), deadline=None, deadline_timer=None)),
                     T0)
        store.after_commit(lambda: called.append("counted"))
        held = store._held.conn
        assert held is not None
        with psycopg.connect(postgres_url, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (held.info.backend_pid,))
        with contextlib.suppress(psycopg.Error):
            store.load(ref(2).key)
    assert called == [] and store.load(ref(1).key) is None


def test_a_batch_rolled_back_by_psycopg_s_rollback_runs_nothing_after_it(
        replicas: list[PostgresStore]) -> None:
    store = replicas[0]
    called: list[str] = []
    with store.batch():
        store.put_setting("team:a", "idle", "1m", "ana", T0)
        store.after_commit(lambda: called.append("counted"))
        raise psycopg.Rollback()
    assert called == [] and store.settings("team:a") == {}

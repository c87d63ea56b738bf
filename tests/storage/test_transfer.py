"""`copy_store` (chat-rescue copy-db): a working day's SQLite store copied into PostgreSQL
reads the same through the Store's own methods, a bot on the copy fires every deadline
the original would, the way back gives the original row for row, and what would be
wrong or destroy data is refused."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import ConversationRef, CustomerMessage, HistoryEvent, Nudge
from chat_rescue.bot.ports import Change, Outcome
from chat_rescue.bot.service import Service
from chat_rescue.bot.sweeper import Sweeper
from chat_rescue.bot.ticker import Ticker
from chat_rescue.sandbox.populated import (
    CONVERSATIONS,
    POLICY,
    TEAM,
    FilledStore,
    berlin,
    populate,
    ref,
)
from chat_rescue.sandbox.postgres import Databases
from chat_rescue.storage.postgres import PostgresStore
from chat_rescue.storage.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from chat_rescue.storage.schema import MIGRATIONS
from chat_rescue.storage.sqlite import SQLiteStore, migrate
from chat_rescue.storage.transfer import CopyRefused, copy_store
from chat_rescue.storage.transfer_postgres import PostgresEnd
from chat_rescue.storage.transfer_sqlite import SQLiteEnd
from chat_rescue.storage.versions import BACKEND_ONLY, SAME_SCHEMA

TABLES = {"aliases", "conversations", "dead_letters", "held", "history", "inbound", "inputs",
          "outbox", "settings", "sweep_cards", "sweep_items", "sweeps"}


@pytest.fixture
def working_day(tmp_path: Path) -> Iterator[tuple[str, FakeClock]]:
    """The URL of a SQLite store after a working day, and the day's clock."""
    url = f"sqlite:///{tmp_path / 'day.db'}"
    store = SQLiteStore(url)
    clock = populate(store)
    store.close()
    yield url, clock


def raw(url: str, table: str) -> list[tuple[object, ...]]:
    """Every row of a SQLite table, in rowid order, the rowid first."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()


def test_the_newest_schemas_of_both_backends_hold_the_same_tables(
        tmp_path: Path, postgres_url: str) -> None:
    """What a migration adds to one backend must come to the other, with a pair here."""
    assert SAME_SCHEMA[-1] == (len(MIGRATIONS), len(PG_MIGRATIONS))
    sqlite_end = SQLiteEnd.destination(f"sqlite:///{tmp_path / 's.db'}", lambda n: None)
    postgres_end = PostgresEnd.destination(postgres_url, lambda n: None)
    try:
        ours, theirs = sqlite_end.schema(), postgres_end.schema()
        assert set(ours) == set(theirs) == TABLES
        for table in TABLES:
            own = {column for t, column in BACKEND_ONLY if t == table}
            assert set(ours[table]) - own == set(theirs[table]) - own, table
        assert sorted(sqlite_end.counters()) == sorted(postgres_end.counters())
    finally:
        sqlite_end.close()
        postgres_end.close()


def test_a_working_days_store_copied_into_postgresql_reads_the_same(
        working_day: tuple[str, FakeClock], postgres_url: str) -> None:
    source_url, clock = working_day
    said: list[str] = []
    copied = copy_store(source_url, postgres_url, say=said.append, every=25)
    assert set(copied.counts) == TABLES
    assert copied.counts == {table: len(raw(source_url, table)) for table in TABLES}
    assert copied.counts["conversations"] == CONVERSATIONS and copied.counts["sweep_items"] > 0
    assert "  history: 100 of " in "\n".join(said)  # progress, every 25 rows here
    before, after = SQLiteStore(source_url), PostgresStore(postgres_url)
    try:
        now = clock.now()
        keys = [str(row[1]) for row in raw(source_url, "conversations")]
        assert [after.load(key) for key in keys] == [before.load(key) for key in keys]
        assert after.next_deadline() == before.next_deadline() is not None
        assert after.history(None, 0) == before.history(None, 0)
        for scope in ("team:team-a", "channel:slack:C0HELP"):
            assert after.settings(scope) == before.settings(scope) != {}
        assert all(after.resolve(f"msg-{n}") == before.resolve(f"msg-{n}") == ref(n).key
                   for n in range(CONVERSATIONS))
        assert after.held("telegram", 10) == before.held("telegram", 10) != []
        for prefix in ("slack:", "telegram:"):  # once the old sender's lease has run out
            assert after.heads(prefix, 1000, now + 61) == before.heads(prefix, 1000, now + 61)
        # The old install's lease has ended: that lane goes on at once (its item marked as
        # having been in flight, as for a sender known to be dead).
        assert before.lease_holders(now) == ["replica-old:1"] and after.lease_holders(now) == []
        assert [i.was_leased for i in after.pending(1000)] == \
            [i.was_leased for i in before.pending(1000)]
        assert len(after.heads("slack:", 1000, now)) == len(before.heads("slack:", 1000, now)) + 1
        assert after.sweeps(TEAM) == before.sweeps(TEAM) != []
        (sweep,) = before.sweeps(TEAM)
        assert after.sweep_cards(sweep.id) == before.sweep_cards(sweep.id) != []
        assert after.sweep_items(sweep.id) == before.sweep_items(sweep.id)
        assert after.sweep_inbox(sweep.id) == before.sweep_inbox(sweep.id)
        # Inbound ids came along: a platform's retry of a handled event is still a duplicate.
        assert after.commit(Change(inbound_id="Ev0003"), now) is Outcome.DUPLICATE
        # New rows take ids past every one the source handed out (its last outbox item
        # was delivered: the highest id is no longer in the table, but it was used).
        used = int(sqlite3.connect(source_url.removeprefix("sqlite:///")).execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()[0])
        assert used > max(item.id for item in before.pending(1000))
        event = HistoryEvent(ref(0), TEAM, "nudged", now, "U0ANA")
        assert after.commit(Change(history=(event,), actions=(Nudge(ref(0), "U0ANA", 1.0),)),
                            now) is Outcome.COMMITTED
        assert max(item.id for item in after.pending(1000)) == used + 1
        assert after.history(None, 0)[-1] == event
        assert after.add_sweep_card(sweep.id, "U0NEW") > max(
            card for card, _ in before.sweep_cards(sweep.id))
    finally:
        before.close()
        after.close()


def fire_everything(store: FilledStore, at: float) -> Counter[tuple[object, ...]]:
    """A bot's ticker and sweeper on `store` at `at`, until nothing more is due: the
    history it wrote and the actions it queued."""
    clock = FakeClock(at)
    service = Service(store, POLICY, clock)
    sweeper = Sweeper(store, service, clock)
    ticker = Ticker(store, service, clock, sweeper=sweeper)
    history, queued = len(store.history(None, 0)), {item.id for item in store.pending(10_000)}
    sweeper.start()
    while ticker.fire_due(at) > 0:
        pass
    events = Counter((h.ref.key, h.kind, h.at, h.actor, h.value, h.detail)
                     for h in store.history(None, 0)[history:])
    actions = Counter((item.lane, repr(item.action)) for item in store.pending(10_000)
                      if item.id not in queued)
    return events + actions


def test_a_bot_on_the_copy_fires_every_deadline_the_original_would(
        working_day: tuple[str, FakeClock], postgres_url: str) -> None:
    source_url, _ = working_day
    copy_store(source_url, postgres_url, say=lambda line: None)
    monday = berlin("2026-12-07 12:00")  # every timer has come due, the shift's end too
    original, copy = SQLiteStore(source_url), PostgresStore(postgres_url)
    try:
        on_the_original = fire_everything(original, monday)
        on_the_copy = fire_everything(copy, monday)
        assert on_the_copy == on_the_original
        fired = {key for key, kind, *_ in on_the_original if kind in ("escalated", "returned")}
        assert len(fired) >= CONVERSATIONS // 4  # the timers did fire (nothing was lost)
        assert copy.next_deadline() == original.next_deadline()
        assert [s.phase for s in copy.sweeps(TEAM)] == [s.phase for s in original.sweeps(TEAM)]
    finally:
        original.close()
        copy.close()


def test_postgresql_copied_back_into_sqlite_is_the_original_row_for_row(
        working_day: tuple[str, FakeClock], postgres_url: str, tmp_path: Path) -> None:
    source_url, _ = working_day
    back = f"sqlite:///{tmp_path / 'back.db'}"
    copy_store(source_url, postgres_url, say=lambda line: None)
    copy_store(postgres_url, back, say=lambda line: None)
    for table in sorted(TABLES - {"outbox"}):
        assert raw(back, table) == raw(source_url, table), table
    leased = [row for row in raw(source_url, "outbox") if row[-2] is not None]
    assert len(leased) == 1 and leased[0][-1] > 0
    ended = [(*row[:-1], None if row[-1] is None else 0.0) for row in raw(source_url, "outbox")]
    assert raw(back, "outbox") == ended
    assert raw(back, "sqlite_sequence") == raw(source_url, "sqlite_sequence")


def test_copying_a_running_store_reads_one_snapshot(
        working_day: tuple[str, FakeClock], postgres_url: str) -> None:
    """The bot writes on while the copy reads: the copy is the store as it was when the
    copy began, every table of it (what came later is for a second copy, bot stopped)."""
    source_url, clock = working_day
    running = SQLiteStore(source_url)
    service = Service(running, POLICY, clock)
    writes = 0

    def meanwhile(line: str) -> None:
        nonlocal writes
        if line.startswith("  "):  # a progress line: the copy is under way
            writes += 1
            service.handle(CustomerMessage(ConversationRef("slack", "C0HELP", f"9.{writes}"),
                                           clock.now(), "late", "hello?", TEAM),
                           inbound_id=f"late-{writes}", aliases=(f"late-{writes}",))

    try:
        copied = copy_store(source_url, postgres_url, say=meanwhile, every=10)
    finally:
        running.close()
    assert writes > 3
    now_there = {table: len(raw(source_url, table)) for table in TABLES}
    assert now_there["conversations"] == CONVERSATIONS + writes  # the bot did write on
    assert copied.counts["conversations"] == CONVERSATIONS
    assert copied.counts["aliases"] == CONVERSATIONS and copied.counts["inbound"] == CONVERSATIONS
    copy = PostgresStore(postgres_url)
    try:
        assert copy.load(ConversationRef("slack", "C0HELP", "9.1").key) is None
    finally:
        copy.close()


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {table: len(conn.execute(f"SELECT 1 FROM {table}").fetchall())
                for table in TABLES}


def test_a_destination_that_holds_data_is_refused_unless_replaced(
        working_day: tuple[str, FakeClock], postgres_url: str) -> None:
    source_url, clock = working_day
    first = copy_store(source_url, postgres_url, say=lambda line: None)
    extra = PostgresStore(postgres_url)
    extra.commit(Change(actions=(Nudge(ref(0), "U0ANA", 1.0),)), clock.now())
    extra.close()
    held = counts(postgres_url)
    with pytest.raises(CopyRefused, match="is not empty .*outbox .* pass --replace"):
        copy_store(source_url, postgres_url, say=lambda line: None)
    assert counts(postgres_url) == held
    again = copy_store(source_url, postgres_url, replace=True, say=lambda line: None)
    assert again.counts == first.counts == counts(postgres_url)


def test_a_source_at_an_older_schema_is_refused_and_nothing_is_written(
        tmp_path: Path, postgres_databases: Databases) -> None:
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, MIGRATIONS[:-1])
    conn.close()
    destination = postgres_databases.fresh(migrated=False)
    with pytest.raises(CopyRefused, match=f"is at schema {len(MIGRATIONS) - 1}, but this "
                       f"release copies sqlite schema {len(MIGRATIONS)} into postgresql"):
        copy_store(f"sqlite:///{old}", destination, say=lambda line: None)
    with psycopg.connect(destination) as pg:
        assert pg.execute("SELECT to_regclass('schema_version')").fetchone() == (None,)
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS) - 1,)


def test_a_store_is_not_copied_onto_itself(working_day: tuple[str, FakeClock]) -> None:
    source_url, _ = working_day
    path = Path(source_url.removeprefix("sqlite:///"))
    same = f"sqlite:///{path.parent}/./{path.name}"
    with pytest.raises(CopyRefused, match="the same database"):
        copy_store(source_url, same, replace=True, say=lambda line: None)
    assert len(raw(source_url, "conversations")) == CONVERSATIONS

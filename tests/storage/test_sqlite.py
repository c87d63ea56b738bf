"""What only SQLiteStore promises: WAL, migrations, a private file, and surviving a restart."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chat_rescue.bot.model import (
    CloseReason,
    Conversation,
    ConversationRef,
    HistoryEvent,
    Nudge,
    State,
    Timer,
)
from chat_rescue.bot.ports import Change, Outcome
from chat_rescue.storage import factory
from chat_rescue.storage.sqlite import MIGRATIONS, SQLiteStore, describe, migrate
from chat_rescue.storage.versions import SchemaTooNew

T0 = 1_700_000_000.0
REF = ConversationRef("slack", "C1", "1700000001.000100")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "rescue.db"


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """A common umask (0o022) that would leave a plain sqlite3 file world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def open_store(path: Path) -> SQLiteStore:
    return SQLiteStore(f"sqlite:///{path}")


def conversation() -> Conversation:
    return Conversation(REF, "team-a", "alice", T0, state=State.WAITING_ON_OPERATOR, owner="ana",
                        timer_from=T0, waiting_since=T0, deadline=T0 + 300,
                        deadline_timer=Timer.IDLE)


def test_a_file_database_uses_wal_and_synchronous_normal(db_path: Path) -> None:
    store = open_store(db_path)
    try:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        store.close()


def test_migrations_are_idempotent(db_path: Path) -> None:
    first = open_store(db_path)
    first.commit(Change(conversation()), T0)
    first.close()
    second = open_store(db_path)
    try:
        assert second.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert second.migrate() == len(MIGRATIONS)
        assert second.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert second.load(REF.key) == conversation()
    finally:
        second.close()


@pytest.mark.parametrize("at", range(len(MIGRATIONS)))
def test_a_database_at_an_earlier_version_migrates_to_the_latest(db_path: Path,
                                                                 at: int) -> None:
    old = sqlite3.connect(db_path, isolation_level=None)
    assert migrate(old, MIGRATIONS[:at]) == at
    old.close()
    applied: list[int] = []
    assert factory.migrate(f"sqlite:///{db_path}", applied.append) == (at, len(MIGRATIONS))
    assert applied == list(range(at + 1, len(MIGRATIONS) + 1))  # each step once, in order
    store = open_store(db_path)
    try:
        assert store.commit(Change(conversation()), T0) is Outcome.COMMITTED
        assert store.load(REF.key) == conversation()
    finally:
        store.close()


def test_a_database_a_newer_release_wrote_is_refused_and_left_as_it_is(db_path: Path) -> None:
    open_store(db_path).close()
    newer = sqlite3.connect(db_path)
    newer.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    newer.execute("PRAGMA journal_mode = DELETE")  # as it might be left: opening would write
    newer.close()
    before = db_path.read_bytes()
    with pytest.raises(SchemaTooNew, match=f"schema version {len(MIGRATIONS) + 1} was written "
                       f"by a newer chat-rescue; this one knows up to {len(MIGRATIONS)}"):
        open_store(db_path)
    with pytest.raises(SchemaTooNew):
        factory.migrate(f"sqlite:///{db_path}")
    assert db_path.read_bytes() == before


def test_a_database_of_schema_6_opens_and_its_conversations_decode(db_path: Path) -> None:
    old = sqlite3.connect(db_path)
    for number, script in enumerate(MIGRATIONS[:6], start=1):
        for statement in script.split(";"):
            if statement.strip():
                old.execute(statement)
        old.execute(f"PRAGMA user_version = {number}")
    old.execute(
        "INSERT INTO conversations (key, team, customer, opened_at, state, owner, timer_from, "
        "waiting_since, deadline, deadline_timer, version) VALUES (?, 'team-a', 'alice', ?, "
        "'waiting_on_operator', 'ana', ?, ?, ?, 'idle', 4)",
        (REF.key, T0, T0, T0, T0 + 300))
    old.commit()
    old.close()
    store = open_store(db_path)
    try:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 13
        assert store.load(REF.key) == replace(conversation(), version=4)  # rebased_at None
        told = replace(conversation(), version=4, away_told_until=T0 + 3600,
                       rebased_at=T0 + 60, timer_used=30.0, quiet_used=0.0)
        assert store.commit(Change(told, expected_version=4), T0) is Outcome.COMMITTED
        assert store.load(REF.key) == replace(told, version=5)
    finally:
        store.close()


def test_history_of_schema_7_reads_without_a_detail_and_new_closes_keep_theirs(
        db_path: Path) -> None:
    old = sqlite3.connect(db_path)
    for number, script in enumerate(MIGRATIONS[:7], start=1):
        for statement in script.split(";"):
            if statement.strip():
                old.execute(statement)
        old.execute(f"PRAGMA user_version = {number}")
    old.execute("INSERT INTO history (conversation, team, kind, at, actor, value) "
                "VALUES (?, 'team-a', 'closed', ?, 'ana', NULL)", (REF.key, T0))
    old.commit()
    old.close()
    store = open_store(db_path)
    try:
        closed = HistoryEvent(REF, "team-a", "closed", T0 + 1, "ana", None,
                              CloseReason.AT_SHIFT_END)
        kept = replace(conversation(), kept_open_at=T0 + 5)
        assert store.commit(Change(kept, history=(closed,)), T0) is Outcome.COMMITTED
        assert [h.detail for h in store.history("team-a", 0)] == [None, "closed_at_shift_end"]
        assert store.load(REF.key) == kept
    finally:
        store.close()


def test_a_memory_database_is_migrated_too() -> None:
    store = SQLiteStore("sqlite://")
    try:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert {"conversations", "history", "settings", "outbox", "dead_letters", "inbound",
                "aliases"} <= tables
    finally:
        store.close()


@pytest.mark.usefixtures("strict_umask")
def test_the_database_file_is_private_to_its_owner(db_path: Path) -> None:
    store = open_store(db_path)
    try:
        store.commit(Change(conversation()), T0)  # makes SQLite create its -wal file too
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        for sidecar in (Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            if sidecar.exists():
                assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600, sidecar.name
    finally:
        store.close()


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "chat-rescue" / "rescue.db"
    open_store(path).close()
    assert path.exists()


@pytest.mark.parametrize("url", ["postgresql://localhost/rescue", "chat-rescue.db", ""])
def test_a_url_that_is_not_sqlite_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="SQLite URL"):
        SQLiteStore(url)


def test_reopening_the_file_keeps_everything(db_path: Path) -> None:
    before = open_store(db_path)
    conv = conversation()
    history = (HistoryEvent(REF, "team-a", "opened", T0, "alice"),)
    nudge = Nudge(REF, "ana", 300.0, None, "alice")
    assert before.commit(Change(conv, history=history, actions=(nudge,), inbound_id="slack:Ev1"),
                         T0) is Outcome.COMMITTED
    before.attach(REF.key, "card-1", ("C-TEAM:1700.9",))
    before.put_setting("team:team-a", "idle", "10m", "ana", T0)
    before.close()

    after = open_store(db_path)
    try:
        loaded = after.load(REF.key)
        assert loaded is not None
        assert loaded.card == "card-1" and loaded.deadline == T0 + 300
        assert after.resolve("C-TEAM:1700.9") == REF.key
        assert after.settings("team:team-a") == {"idle": "10m"}
        assert after.history("team-a", 0) == list(history)
        assert [i.action for i in after.pending(10)] == [nudge]
        assert after.next_deadline() == T0 + 300
        # The de-duplication memory survives too: a redelivered event is still a duplicate.
        assert after.commit(Change(inbound_id="slack:Ev1"), T0 + 1) is Outcome.DUPLICATE
    finally:
        after.close()


def test_prune_forgets_old_inbound_ids_only(db_path: Path) -> None:
    store = open_store(db_path)
    try:
        store.commit(Change(inbound_id="old"), T0)
        store.commit(Change(inbound_id="new"), T0 + 3600)
        store.prune(T0 + 60)
        assert store.commit(Change(inbound_id="old"), T0 + 7200) is Outcome.COMMITTED
        assert store.commit(Change(inbound_id="new"), T0 + 7200) is Outcome.DUPLICATE
    finally:
        store.close()


def test_outbox_size_counts_what_waits(db_path: Path) -> None:
    store = open_store(db_path)
    try:
        assert store.outbox_size() == 0
        store.commit(Change(conversation(), actions=(Nudge(REF, "ana", 1.0),) * 3), T0)
        assert store.outbox_size() == 3
    finally:
        store.close()


def test_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    db = tmp_path / "race.db"
    code = f"from chat_rescue.storage.sqlite import SQLiteStore; SQLiteStore('sqlite:///{db}')"
    starters = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
                for _ in range(6)]
    errors = [p.communicate()[1].decode() for p in starters]
    assert [p.returncode for p in starters] == [0] * 6, errors
    store = SQLiteStore(f"sqlite:///{db}")
    try:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        store.close()


def test_two_stores_on_one_file_never_take_a_new_item_for_a_settled_one(db_path: Path) -> None:
    """Two processes' outbox workers: one reads a head, the other sends and settles it,
    then a new item is queued. The first must see the new item as new, and must not be
    able to lease the old one (it would send the old action again and lose the new)."""
    old, new = Nudge(REF, "ana", 60.0), Nudge(ConversationRef("slack", "C2", "t2"), "bo", 9.0)
    reader, sender = open_store(db_path), open_store(db_path)
    try:
        reader.commit(Change(actions=(old,)), T0)
        (seen,) = reader.heads("slack:", 10, T0)  # read (and decoded) by the first worker
        assert sender.lease([seen.id], "worker-b", T0 + 60, T0) == [seen.id]
        sender.settle(seen.id)  # delivered by the second
        sender.commit(Change(actions=(new,)), T0 + 1)
        assert reader.lease([seen.id], "worker-a", T0 + 61, T0 + 1) == []
        (head,) = reader.heads("slack:", 10, T0 + 1)
        assert (head.lane, head.action) == (f"{new.ref.key}>team", new)
        assert head.id != seen.id
    finally:
        reader.close()
        sender.close()


def test_decoded_actions_settled_by_another_process_are_forgotten(db_path: Path) -> None:
    reader, sender = open_store(db_path), open_store(db_path)
    try:
        for n in range(10):
            reader.commit(Change(actions=(Nudge(ConversationRef("slack", f"C{n}", "t"), "a",
                                                1.0),)), T0)
        items = reader.heads("slack:", 100, T0)
        for item in items[:8]:
            sender.settle(item.id)
        reader._decoded._limit = 4  # as if the cache had grown past its limit
        reader.heads("slack:", 100, T0)
        assert set(reader._decoded._by_id) == {item.id for item in items[8:]}
    finally:
        reader.close()
        sender.close()


def test_describe_changes_nothing_and_says_what_it_found(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    assert describe("sqlite://") == "in memory: nothing is kept across restarts"
    assert describe(url) == f"{db_path} will be created at the first start"
    assert not db_path.exists()
    store = SQLiteStore(url)
    store.commit(Change(Conversation(REF, "team", "U1", T0)), T0)
    store.close()
    before = db_path.read_bytes()
    assert describe(url) == f"{db_path}: 1 conversations, schema {len(MIGRATIONS)}"
    assert db_path.read_bytes() == before


def test_describe_explains_a_database_the_bot_cannot_use(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    db_path.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(ValueError, match="not a usable SQLite database"):
        describe(url)
    db_path.unlink()
    SQLiteStore(url).close()
    newer = sqlite3.connect(db_path)
    newer.execute("PRAGMA user_version = 99")
    newer.close()
    with pytest.raises(ValueError, match="newer chat-rescue"):
        describe(url)


def test_a_sweep_under_way_in_schema_10_goes_on_after_the_upgrade(db_path: Path) -> None:
    """Cards already out before sweeps were taken in slices: they count as drawn at
    `sweep_at`, so the end still does to each what its owner's card said."""
    old = sqlite3.connect(db_path)
    for number, script in enumerate(MIGRATIONS[:10], start=1):
        for statement in script.split(";"):
            if statement.strip():
                old.execute(statement)
        old.execute(f"PRAGMA user_version = {number}")
    old.execute("INSERT INTO sweeps (id, team, ends_at, sweep_at, opens_at, shifts, phase, due, "
                "version) VALUES ('t@1', 't', ?, ?, NULL, '', 'carded', ?, 1)",
                (T0 + 900, T0, T0 + 900))
    old.execute("INSERT INTO sweep_items (sweep, conversation, operator, card, grp) "
                "VALUES ('t@1', 'slack:C1:1', 'U0ANA', 1, 'finished')")
    old.commit()
    old.close()
    store = open_store(db_path)
    try:
        sweep = store.sweep("t@1")
        assert sweep is not None and (sweep.phase.value, sweep.drawn_at, sweep.cursor,
                                      sweep.unowned, sweep.due) == ("carded", T0, "", 0, T0 + 900)
        [item] = store.sweep_items("t@1")
        assert (item.operator, item.customer, item.since) == ("U0ANA", "", 0.0)
    finally:
        store.close()


def test_a_batch_sqlite_rolled_back_itself_keeps_nothing_after_it() -> None:
    # An error SQLite answers by rolling the whole transaction back (disk full, an I/O
    # error; an explicit ROLLBACK stands in), caught inside the batch: what follows must
    # not commit on its own, and the batch must fail.
    store = SQLiteStore("sqlite://")
    called: list[str] = []
    with pytest.raises(sqlite3.OperationalError), store.batch():
        store.put_setting("team:a", "a", "1", "ana", 0.0)
        store.conn.execute("ROLLBACK")
        with pytest.raises(sqlite3.OperationalError):
            store.commit(Change(actions=(), inbound_id="later"), 0.0)
        store.after_commit(lambda: called.append("counted"))
    assert called == [] and store.settings("team:a") == {}
    assert store.commit(Change(inbound_id="later"), 0.0) is Outcome.COMMITTED  # not kept
    store.close()


def test_a_share_that_raises_says_so_and_nests() -> None:
    store = SQLiteStore("sqlite://")
    store.commit(Change(inbound_id="x", history=()), 0.0)
    with store.conn:
        store.conn.execute("INSERT INTO history (conversation, team, kind, at, actor, value, "
                           "detail) VALUES ('slack:C1:1.0', 't', 'opened', 1.0, '', NULL, '')")

    def broken(key: str) -> bool:
        raise KeyError(key)

    with pytest.raises(KeyError):  # its own error, not SQLite's word for it
        store.history(None, 0, only=broken)
    assert [h.ref.key for h in store.history(None, 0, only=lambda key: True)] == [
        "slack:C1:1.0"]
    with store._only(lambda key: False) as outer:
        with store._only(lambda key: True):
            pass
        rows = store.conn.execute(f"SELECT conversation FROM history WHERE 1 {outer}")
        assert rows.fetchall() == []  # the outer share still holds after an inner one
    store.close()

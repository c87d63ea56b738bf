"""SQLiteStore: the embedded default Store, on sqlite-utils.

WAL journal with `synchronous=NORMAL`, schema migrations keyed on
`PRAGMA user_version`, and prepared SQL on every hot path (sqlite-utils'
`table.upsert()` costs several schema queries per call).
"""

from __future__ import annotations

import functools
import inspect
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from chat_rescue.bot.codec import encode_action
from chat_rescue.bot.inputs import OPENED, Input
from chat_rescue.bot.inputs import decode as decode_input
from chat_rescue.bot.inputs import encode as encode_input
from chat_rescue.bot.leader import Always, Lock
from chat_rescue.bot.model import (
    Action,
    Conversation,
    ConversationRef,
    HandoverLine,
    HistoryEvent,
    lane_of,
    priority_of,
)
from chat_rescue.bot.ports import Change, Held, Intent, Outcome
from chat_rescue.bot.processes import worker_alive
from chat_rescue.bot.report import Tallies
from chat_rescue.storage import census, report_sql
from chat_rescue.storage.decoded import Decoded
from chat_rescue.storage.hooks import OnCommit
from chat_rescue.storage.rows import COLUMNS, conversation_of, due_of, row_of
from chat_rescue.storage.schema import MIGRATIONS
from chat_rescue.storage.sqlite_lock import FileLock
from chat_rescue.storage.sqlite_outbox import OutboxTables
from chat_rescue.storage.sqlite_sweeps import SweepTables
from chat_rescue.storage.versions import SchemaTooNew, refuse_newer

__all__ = ["MIGRATIONS", "SQLiteStore", "connect", "database_file", "describe", "migrate",
           "schema_version"]

_REPORT_SQL = report_sql.queries("?", "CAST(at / 900 AS INTEGER)")
NO_HOLD = 0.0  # an outbox item's `not_before` until a failure or a rate limit sets one


def _path_of(url: str) -> str:
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///") or ":memory:"
    if url.startswith("sqlite://"):
        return ":memory:"
    raise ValueError(f"not a SQLite URL: {url!r} (expected sqlite:///path/to/file.db)")


def database_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for an in-memory database)."""
    path = _path_of(url)
    return None if path == ":memory:" else Path(path)


def describe(url: str) -> str:
    """What `chat-rescue check` says about the database, without creating or changing it.

    Raises ValueError, in plain words, when the bot could not use it.
    """
    file = database_file(url)
    if file is None:
        return "in memory: nothing is kept across restarts"
    path = str(file)
    if not file.exists():
        parent = next(p for p in file.absolute().parents if p.exists())
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"{path} does not exist and {parent} is not writable")
        return f"{path} will be created at the first start"
    if not os.access(file, os.R_OK | os.W_OK):
        raise ValueError(f"{path} is not readable and writable by this user")
    try:
        conn = sqlite3.connect(f"{file.absolute().as_uri()}?mode=ro", uri=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            conversations = (conn.execute("SELECT count(*) FROM conversations").fetchone()[0]
                             if "conversations" in tables else 0)
        finally:
            conn.close()
    except sqlite3.DatabaseError as failed:
        raise ValueError(f"{path} is not a usable SQLite database ({failed})") from None
    if version > len(MIGRATIONS):
        raise ValueError(f"{path}: {SchemaTooNew(version, len(MIGRATIONS))}")
    later = " (brought up to date at the next start)" if version < len(MIGRATIONS) else ""
    return f"{path}: {conversations} conversations, schema {version}{later}"


def connect(url: str) -> sqlite3.Connection:
    """A connection to the database at `url` as the store uses it: the file created private
    to its owner, WAL, `synchronous=NORMAL`. SchemaTooNew, before anything is written to
    an existing file, when a newer release wrote it."""
    path = _path_of(url)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Owner-only from the first byte: the store holds customer names and previews.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        refuse_newer(schema_version(conn), len(MIGRATIONS))
        if path != ":memory:":
            sqlite_utils.Database(conn).enable_wal()
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The newest migration applied (0: a new, empty database)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS,
            applied: Callable[[int], None] | None = None) -> int:
    """Bring the database to the newest version of `migrations`; returns that version, and
    tells `applied` the number of each migration this call ran.

    Each step runs under the write lock and re-reads the version, so several processes
    opening a new database at once migrate it exactly once. A database a newer release
    wrote is refused (SchemaTooNew) and left as it is.
    """
    for number, script in enumerate(migrations, start=1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = schema_version(conn)
            refuse_newer(found, len(migrations))
            if found < number:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if found < number and applied is not None:
            applied(number)
    return len(migrations)


class SQLiteStore(OutboxTables, SweepTables):
    """The core's ports (`bot.ports.Store`) on one SQLite file (or `:memory:`)."""

    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, url: str = "sqlite:///chat-rescue.db") -> None:
        # One connection, used by the store's thread and, in tests and tools, by others:
        # each call (and a whole batch) holds it (`_serialized`).
        self._mutex = threading.RLock()
        conn = connect(url)
        self._path = _path_of(url)
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
        self._batching = False
        self._on_commit = OnCommit()  # what waits for the open batch to commit
        # Which conversations a what-if share reads (`_only`), asked by SQLite per row.
        self._wanted: Callable[[str], bool] = _every
        self._unwanted: Exception | None = None  # what `_wanted` raised
        conn.create_function("chat_rescue_only", 1, self._wants, deterministic=True)
        # Decoded outbox actions by id: a paced backlog is read again and again.
        self._decoded = Decoded()
        try:
            self.migrate()
        except BaseException:
            conn.close()
            raise
        placeholders = ", ".join("?" for _ in COLUMNS)
        assignments = ", ".join(f"{c} = ?" for c in COLUMNS if c != "version")
        self._insert_sql = (
            f"INSERT INTO conversations (key, {', '.join(COLUMNS)}) VALUES (?, {placeholders})"
        )
        self._update_sql = (
            f"UPDATE conversations SET {assignments}, version = version + 1 "
            "WHERE key = ? AND version = ?"
        )
        self._select_sql = f"SELECT key, {', '.join(COLUMNS)} FROM conversations WHERE key = ?"

    def migrate(self) -> int:
        """Bring the schema to the newest version; returns that version (SchemaTooNew,
        with nothing written, for a database a newer release wrote)."""
        return migrate(self.conn)

    # -- conversations --------------------------------------------------------

    def load(self, key: str) -> Conversation | None:
        row = self.conn.execute(self._select_sql, (key,)).fetchone()
        return conversation_of(row) if row else None

    def resolve(self, alias: str) -> str | None:
        row = self.conn.execute(
            "SELECT conversation FROM aliases WHERE alias = ?", (alias,)
        ).fetchone()
        return row[0] if row else None

    def commit(self, change: Change, now: float) -> Outcome:
        conn = self.conn
        if self._batching:
            self._batch_alive()  # else a savepoint would be a transaction of its own
            # Inside batch(): a savepoint keeps this change all-or-nothing, cheaply.
            conn.execute("SAVEPOINT change")
            try:
                outcome = self._write(change, now)
            except BaseException:
                conn.execute("ROLLBACK TO change")
                conn.execute("RELEASE change")
                raise
            if outcome is not Outcome.COMMITTED:
                conn.execute("ROLLBACK TO change")
            conn.execute("RELEASE change")
            return outcome
        conn.execute("BEGIN IMMEDIATE")
        try:
            outcome = self._write(change, now)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT" if outcome is Outcome.COMMITTED else "ROLLBACK")
        return outcome

    def commit_all(self, changes: Sequence[Change], now: float) -> bool:
        for change in changes:
            if change.conversation is None or change.expected_version is None \
                    or change.inbound_id is not None or change.aliases:
                raise ValueError("commit_all takes changes to known conversations only")
        if not changes:
            return True
        conn = self.conn
        began = not self._batching
        conn.execute("BEGIN IMMEDIATE" if began else "SAVEPOINT changes")
        try:
            rows = []
            for change in changes:
                conv = change.conversation
                assert conv is not None
                rows.append((*row_of(conv)[:-1], conv.ref.key, change.expected_version))
            updated = conn.executemany(self._update_sql, rows)
            together = updated.rowcount == len(changes)
            if together:
                self._write_rest([h for c in changes for h in c.history],
                                 [a for c in changes for a in c.actions], now,
                                 [i for c in changes for i in c.inputs])
        except BaseException:
            conn.execute("ROLLBACK" if began else "ROLLBACK TO changes")
            if not began:
                conn.execute("RELEASE changes")
            raise
        if began:
            conn.execute("COMMIT" if together else "ROLLBACK")
        else:
            if not together:
                conn.execute("ROLLBACK TO changes")
            conn.execute("RELEASE changes")
        return together

    @contextmanager
    def batch(self, intents: Sequence[Intent] = ()) -> Iterator[None]:
        # `intents` are not needed: a read or a write here is a call into the library, not
        # a round trip to a server.
        with self._mutex:  # the whole transaction: no other thread's call joins it
            if self._batching:
                yield
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._batching = True
            try:
                yield
            except BaseException:
                self._on_commit.rolled_back()
                self.conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self._batch_alive()
                    self.conn.execute("COMMIT")
                except BaseException:
                    self._on_commit.rolled_back()
                    raise
            finally:
                self._batching = False
            self._on_commit.committed()

    def _batch_alive(self) -> None:
        """Inside batch(): raise if SQLite rolled the transaction back itself (disk full,
        an I/O error), which leaves every later statement to commit on its own."""
        if not self.conn.in_transaction:
            raise sqlite3.OperationalError("the batch's transaction was rolled back by "
                                           "SQLite: nothing of it was committed")

    def after_commit(self, callback: Callable[[], None]) -> None:
        with self._mutex:  # held by this thread's batch, if one is open
            if self._batching:
                self._on_commit.add(callback)
                return
        callback()

    def _write(self, change: Change, now: float) -> Outcome:
        conn = self.conn
        if change.inbound_id is not None:
            seen = conn.execute(
                "INSERT OR IGNORE INTO inbound (id, seen_at) VALUES (?, ?)",
                (change.inbound_id, now),
            )
            if seen.rowcount == 0:
                return Outcome.DUPLICATE
        conv = change.conversation
        if conv is not None:
            values = row_of(conv)
            if change.expected_version is None:
                try:
                    conn.execute(self._insert_sql, (conv.ref.key, *values))
                except sqlite3.IntegrityError:
                    return Outcome.CONFLICT
            else:
                updated = conn.execute(
                    self._update_sql,
                    (*values[:-1], conv.ref.key, change.expected_version),
                )
                if updated.rowcount == 0:
                    return Outcome.CONFLICT
        self._write_rest(change.history, change.actions, now, change.inputs)
        if change.aliases:
            conn.executemany(
                "INSERT OR REPLACE INTO aliases (alias, conversation) VALUES (?, ?)",
                change.aliases,
            )
        return Outcome.COMMITTED

    def _write_rest(self, history: Sequence[HistoryEvent], actions: Sequence[Action],
                    now: float, inputs: Sequence[Input] = ()) -> None:
        """A change's history, actions and recorded inputs (after its conversation)."""
        if inputs:
            self.conn.executemany(
                "INSERT INTO inputs (conversation, team, at, kind, data) "
                "VALUES (?, ?, ?, ?, ?)", [encode_input(i) for i in inputs])
        if history:
            self.conn.executemany(
                "INSERT INTO history (conversation, team, kind, at, actor, value, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(h.ref.key, h.team, h.kind, h.at, h.actor, h.value, h.detail)
                 for h in history],
            )
        if actions:
            rows = []
            for action in actions:
                kind, payload = encode_action(action)
                rows.append((lane_of(action), priority_of(action), kind, payload, NO_HOLD, now))
            self.conn.executemany(
                "INSERT INTO outbox (lane, priority, kind, payload, not_before, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def attach(self, key: str, card: str, aliases: tuple[str, ...]) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "UPDATE conversations SET card = ?, version = version + 1 WHERE key = ?",
                (card, key),
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO aliases (alias, conversation) VALUES (?, ?)",
                [(alias, key) for alias in aliases],
            )

    # -- deadlines --------------------------------------------------------------

    def next_deadline(self) -> float | None:
        # Both minimums come off their partial indexes.
        row = self.conn.execute(
            "SELECT min(coalesce((SELECT min(deadline) FROM conversations "
            "WHERE deadline IS NOT NULL), 1e300), "
            "coalesce((SELECT min(due) FROM sweeps WHERE due IS NOT NULL), 1e300))"
        ).fetchone()
        return None if row[0] is None or row[0] >= 1e300 else float(row[0])

    def due(self, now: float, limit: int) -> list[Conversation]:
        rows = self.conn.execute(
            f"SELECT key, {', '.join(COLUMNS)} FROM conversations WHERE deadline IS NOT NULL "
            "AND deadline <= ? ORDER BY deadline LIMIT ?",
            (now, limit),
        ).fetchall()
        return due_of(rows, now, self.postpone)

    def postpone(self, key: str, until: float) -> None:
        self.conn.execute("UPDATE conversations SET deadline = ? WHERE key = ?", (until, key))

    # -- settings and reports ----------------------------------------------------------

    def settings(self, scope: str) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT key, value FROM settings WHERE scope = ?", (scope,)
        ).fetchall()
        return dict(rows)

    def put_setting(self, scope: str, key: str, value: str, by: str, at: float, *,
                    announce: bool = True) -> None:  # one process: nobody to announce to
        self.conn.execute(
            "INSERT OR REPLACE INTO settings (scope, key, value, updated_by, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (scope, key, value, by, at),
        )

    def drop_setting(self, scope: str, key: str) -> None:
        self.conn.execute("DELETE FROM settings WHERE scope = ? AND key = ?", (scope, key))

    def history(self, team: str | None, since: float,
                kinds: Collection[str] | None = None,
                only: Callable[[str], bool] | None = None) -> list[HistoryEvent]:
        sql = ("SELECT conversation, team, kind, at, actor, value, detail FROM history "
               "WHERE at >= ?")
        params: tuple[object, ...] = (since,)
        if team is not None:
            sql += " AND team = ?"
            params = (since, team)
        if kinds is not None:
            sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params += tuple(kinds)
        with self._only(only) as wanted:
            rows = self.conn.execute(sql + wanted + " ORDER BY id", params).fetchall()
        refs: dict[str, ConversationRef] = {}  # one per conversation, not one per event
        return [
            HistoryEvent(refs.get(key) or refs.setdefault(key, ConversationRef.parse(key)),
                         team_, kind, at, actor, value, detail)
            for key, team_, kind, at, actor, value, detail in rows
        ]

    @contextmanager
    def _only(self, only: Callable[[str], bool] | None) -> Iterator[str]:
        """The condition that keeps only the rows of conversations `only` wants, asked in
        the query (the rows it leaves out are neither sorted nor made Python values): the
        connection's `chat_rescue_only(key)` asks `only` while the block runs."""
        if only is None:
            yield ""
            return
        before, self._wanted, self._unwanted = self._wanted, only, None
        try:
            yield " AND chat_rescue_only(conversation)"
        except sqlite3.OperationalError:
            failed = self._unwanted
            if failed is not None:  # `only` raised: that, not SQLite's word for it
                raise failed from None
            raise
        finally:
            self._wanted, self._unwanted = before, None

    def _wants(self, key: str) -> bool:
        try:
            return self._wanted(key)
        except Exception as failed:
            self._unwanted = failed
            raise

    def tallies(self, team: str, since: float, until: float) -> Tallies:
        return report_sql.tallies(lambda sql, params: self.conn.execute(sql, params).fetchall(),
                                  _REPORT_SQL, team, since, until)

    def inputs(self, team: str | None, since: float,
               only: Callable[[str], bool] | None = None) -> list[Input]:
        sql = "SELECT conversation, team, at, kind, data FROM inputs WHERE at >= ?"
        params: tuple[object, ...] = (since,)
        if team is not None:
            sql += " AND team = ?"
            params = (since, team)
        refs: dict[str, ConversationRef] = {}  # one per conversation, not one per event
        found = []
        with self._only(only) as wanted:
            for key, team_, at, kind, data in self.conn.execute(
                    sql + wanted + " ORDER BY id", params):
                ref = refs.get(key) or refs.setdefault(key, ConversationRef.parse(key))
                found.append(decode_input(key, team_, at, kind, data, ref))
        return found

    def openings(self, team: str, since: float) -> int:
        row = self.conn.execute(
            "SELECT count(DISTINCT conversation) FROM inputs WHERE team = ? AND at >= ? "
            "AND instr(data, ?) > 0",
            (team, since, OPENED)).fetchone()
        return int(row[0])

    def lock(self, name: str) -> Lock:
        if self._path == ":memory:":
            return Always()  # nobody else can open this database
        return FileLock(Path(f"{self._path}.{name}.lock"))

    def present(self, owner: str) -> Lock:
        """Nothing to hold: SQLite's workers share one host, where a worker's process is
        its presence (`gone`)."""
        return Always()

    def gone(self, owners: Sequence[str]) -> list[str]:
        """Workers of this host and pid namespace whose process has ended."""
        return [owner for owner in owners if not worker_alive(owner)]

    def listen(self, deadline: Callable[[float], None], outbox: Callable[[str], None],
               missed: Callable[[], None], settings: Callable[[], None] = lambda: None
               ) -> None:
        """Nothing to hear: SQLite serves one process, whose own commits wake its ticker
        and outbox workers directly."""

    def stop_listening(self) -> None:
        pass

    def open_conversations(self, team: str, after: str, limit: int) -> list[Conversation]:
        rows = self.conn.execute(
            f"SELECT key, {', '.join(COLUMNS)} FROM conversations WHERE team = ? "
            "AND state != 'closed' AND key > ? ORDER BY key LIMIT ?", (team, after, limit)
        ).fetchall()
        return [conversation_of(row) for row in rows]

    def longest_waiting(self, team: str, limit: int) -> list[Conversation]:
        rows = self.conn.execute(
            f"SELECT key, {', '.join(COLUMNS)} FROM conversations WHERE team = ? "
            "AND state != 'closed' ORDER BY waiting_since IS NULL, "
            "coalesce(waiting_since, last_operator_at, queued_at, opened_at), key LIMIT ?",
            (team, limit)).fetchall()
        return [conversation_of(row) for row in rows]

    def sweep_inbox(self, sweep_id: str) -> list[HandoverLine]:
        # `since` as sweep.since_of has it for a conversation in the inbox
        rows = self.conn.execute(
            "SELECT c.key, c.customer, c.preview, "
            "coalesce(c.waiting_since, c.queued_at, c.opened_at) AS since, "
            "CASE WHEN i.fate = 'handed_over' THEN i.operator END "
            "FROM sweep_items i JOIN conversations c ON c.key = i.conversation "
            "WHERE i.sweep = ? AND i.fate IN ('handed_over', 'unowned') "
            "AND c.state = 'queued' AND c.owner IS NULL ORDER BY since, i.rowid",
            (sweep_id,)).fetchall()
        return [HandoverLine(str(key), str(customer), str(preview), float(since), owner)
                for key, customer, preview, since, owner in rows]

    def open_keys(self, team: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT key FROM conversations WHERE team = ? AND state != 'closed' ORDER BY key",
            (team,)
        ).fetchall()
        return [r[0] for r in rows]

    def open_counts(self) -> dict[tuple[str, str], int]:
        conn = self.conn

        def ends(team: str) -> tuple[str, str]:
            first, last = conn.execute(  # each one step down the (team, key) index
                "SELECT (SELECT min(key) FROM conversations WHERE team = ?1 AND state != "
                "'closed'), (SELECT max(key) FROM conversations WHERE team = ?1 AND "
                "state != 'closed')", (team,)).fetchone()
            return str(first), str(last)

        def by_key(team: str) -> list[tuple[str, str, int]]:
            return conn.execute(
                "SELECT substr(key, 1, instr(key, ':') - 1), state, count(*) FROM "
                "conversations WHERE team = ? AND state != 'closed' GROUP BY 1, 2",
                (team,)).fetchall()

        by_team = conn.execute("SELECT team, state, count(*) FROM conversations "
                               "WHERE state != 'closed' GROUP BY 1, 2").fetchall()
        return census.open_counts(by_team, ends, by_key)

    def summary(self, team: str) -> tuple[int, int]:
        """(open, overdue) conversations of a team: overdue = nudged or operators called."""
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(nudged_at IS NOT NULL OR escalations > 0), 0) "
            "FROM conversations WHERE team = ? AND state != 'closed'",
            (team,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def prune(self, before: float) -> None:
        """Forget inbound ids older than `before`; platforms stop redelivering long before."""
        self.conn.execute("DELETE FROM inbound WHERE seen_at < ?", (before,))

    # -- held requests ---------------------------------------------------------

    def hold(self, platform: str, inbound_id: str, body: str, at: float) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO held (platform, inbound_id, body, at) VALUES (?, ?, ?, ?)",
            (platform, inbound_id, body, at))

    def held(self, platform: str, limit: int) -> list[Held]:
        rows = self.conn.execute(
            "SELECT id, inbound_id, body, at FROM held WHERE platform = ? ORDER BY id LIMIT ?",
            (platform, limit)).fetchall()
        return [Held(*row) for row in rows]

    def release(self, held_id: int) -> None:
        self.conn.execute("DELETE FROM held WHERE id = ?", (held_id,))

    def close(self) -> None:
        self.conn.close()


def _serialized(cls: type[SQLiteStore]) -> None:
    """Make every public method of the store hold its lock while it runs."""
    for name in dir(cls):
        method = getattr(cls, name)
        if name.startswith("_") or name == "batch" or not inspect.isfunction(method):
            continue
        setattr(cls, name, _holding_lock(method))


def _holding_lock(method: Callable[..., object]) -> Callable[..., object]:
    @functools.wraps(method)
    def locked(self: SQLiteStore, *args: object, **kwargs: object) -> object:
        with self._mutex:
            return method(self, *args, **kwargs)
    return locked


_serialized(SQLiteStore)


def _every(key: str) -> bool:
    return True

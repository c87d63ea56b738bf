"""PostgresStore: the Store protocol on PostgreSQL (psycopg 3 and its connection pool).

What SQLiteStore promises, on a server several replicas can share. Timestamps are
`double precision` epoch seconds (`postgres_schema.py`). Every commit is conditional on
the conversation's version and an inbound id is recorded once (`INSERT … ON CONFLICT DO
NOTHING`): a conflict or a duplicate writes nothing. Inside `batch()`, one transaction on
one connection, each commit is a savepoint. Due deadlines are claimed, not just read:
`due` locks the rows it returns `FOR UPDATE SKIP LOCKED`, so inside a batch another
replica's `due` passes over them until the batch ends. What a transaction stores, claims
or queues is announced to the other replicas when it commits (`postgres_notices.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from chat_rescue.bot.codec import encode_action
from chat_rescue.bot.inputs import OPENED, Input
from chat_rescue.bot.inputs import decode as decode_input
from chat_rescue.bot.inputs import encode as encode_input
from chat_rescue.bot.leader import Lock
from chat_rescue.bot.model import (
    Conversation,
    ConversationRef,
    HandoverLine,
    HistoryEvent,
    lane_of,
    priority_of,
)
from chat_rescue.bot.ports import Change, GroupRefused, Held, Intent, Outcome
from chat_rescue.bot.report import Tallies
from chat_rescue.storage import census, report_sql
from chat_rescue.storage import postgres_writes as writes
from chat_rescue.storage.decoded import Decoded
from chat_rescue.storage.factory import server_of
from chat_rescue.storage.postgres_group import Group, Unwritten, for_one_event
from chat_rescue.storage.postgres_lock import AdvisoryLock, advisory_key
from chat_rescue.storage.postgres_notices import Listener, News
from chat_rescue.storage.postgres_outbox import OutboxTables
from chat_rescue.storage.postgres_pool import Connection
from chat_rescue.storage.postgres_schema import MIGRATIONS, migrate, schema_version
from chat_rescue.storage.postgres_sweeps import SweepTables
from chat_rescue.storage.rows import COLUMNS, conversation_of, due_of, row_of
from chat_rescue.storage.versions import SchemaTooNew

__all__ = ["PostgresStore", "Unusable", "describe", "migrate_url", "unusable"]

_REPORT_SQL = report_sql.queries("%s", "floor(at / 900)::bigint")
NO_HOLD = 0.0  # an outbox item's `not_before` until a failure or a rate limit sets one


STARTING = "57P03"  # cannot_connect_now: the server is starting up (or shutting down)
BUSY = "the database system is"  # … starting up, shutting down, in recovery mode


class Unusable(ValueError):
    """A PostgreSQL server that cannot be used, in plain words; `passing` when it did not
    answer or is starting up (it may come: a replica started with it waits), not when it
    answered with a refusal (a wrong password, no such database)."""

    def __init__(self, message: str, *, passing: bool) -> None:
        super().__init__(message)
        self.passing = passing


def unusable(url: str, failed: psycopg.Error) -> Unusable:
    """The plain words for a server that cannot be reached or used (never the password)."""
    reason = str(failed).strip().splitlines()[0] if str(failed).strip() else repr(failed)
    # libpq puts what the server answered to a connection after "FATAL:" (and gives no
    # sqlstate then): no answer at all, or "the database system is starting up", passes.
    answered = failed.sqlstate is not None or "FATAL:" in str(failed)
    passing = not answered or failed.sqlstate == STARTING or BUSY in str(failed)
    return Unusable(f"cannot use PostgreSQL at {server_of(url)} ({reason})", passing=passing)


def describe(url: str) -> str:
    """What `chat-rescue check` says about the database, without changing it: the
    server's version and the schema's. Raises ValueError, in plain words, when the bot
    could not use it."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            server = str(row[0]).split(" ")[0] if row else "?"
            version = schema_version(conn)
            conversations = 0
            if 0 < version <= len(MIGRATIONS):
                counted = conn.execute("SELECT count(*) FROM conversations").fetchone()
                conversations = int(counted[0]) if counted else 0
    except psycopg.Error as failed:
        raise unusable(url, failed) from None
    if version > len(MIGRATIONS):
        raise ValueError(f"PostgreSQL at {server_of(url)}: "
                         f"{SchemaTooNew(version, len(MIGRATIONS))}")
    if version == 0:
        return (f"PostgreSQL {server} at {server_of(url)}: no schema yet "
                f"(created at the first start, schema {len(MIGRATIONS)})")
    later = " (brought up to date at the next start)" if version < len(MIGRATIONS) else ""
    return (f"PostgreSQL {server} at {server_of(url)}: {conversations} conversations, "
            f"schema {version}{later}")


def migrate_url(url: str, applied: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Run the migrations on the database at `url`: (the version before, after).
    ValueError in plain words when the server cannot be used, SchemaTooNew for a newer
    schema (nothing written)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10,
                             application_name="chat-rescue") as conn:
            before = schema_version(conn)
            return before, migrate(conn, applied=applied)
    except psycopg.Error as failed:
        raise unusable(url, failed) from None


class PostgresStore(OutboxTables, SweepTables):
    """The Store protocol on one PostgreSQL database; opening it migrates the schema."""

    # A pool timeout is a psycopg.Error too; a group's write that failed (GroupRefused and
    # what it wraps) is the store's failure as well: its events are kept and tried again.
    errors: tuple[type[Exception], ...] = (psycopg.Error, GroupRefused, Unwritten)

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        super().__init__(url, pool_size=pool_size)
        self._decoded = Decoded()
        names = ", ".join(COLUMNS)
        placeholders = ", ".join("%s" for _ in COLUMNS)
        self._insert_sql = (f"INSERT INTO conversations (key, {names}) VALUES (%s, "
                            f"{placeholders}) ON CONFLICT (key) DO NOTHING")
        self._select = f"SELECT key, {names} FROM conversations"
        self._listeners: list[Listener] = []

    def lock(self, name: str) -> Lock:
        return AdvisoryLock(self.url, name)

    def present(self, owner: str) -> Lock:
        return AdvisoryLock(self.url, f"outbox-worker:{owner}")

    def gone(self, owners: Sequence[str]) -> list[str]:
        """Those whose presence lock no session holds now: the server let it go when the
        session ended (the process died, its machine or network went). One key shared by
        two names (a 32-bit hash) can only make a dead worker look alive (its leases are
        then waited out), never the other way."""
        keys = {owner: advisory_key(f"outbox-worker:{owner}") for owner in owners}
        if not keys:
            return []
        rows = self._rows(
            "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = 0 AND objsubid = 1 AND objid::bigint = ANY(%s::bigint[]) "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (list(set(keys.values())),))
        held = {int(key) for (key,) in rows}
        return [owner for owner, key in keys.items() if key not in held]

    def listen(self, deadline: Callable[[float], None], outbox: Callable[[str], None],
               missed: Callable[[], None], settings: Callable[[], None] = lambda: None
               ) -> None:
        listener = Listener(self.url, self.origin, deadline, outbox, missed, settings)
        self._listeners.append(listener)
        listener.start()

    def stop_listening(self) -> None:
        while self._listeners:
            self._listeners.pop().stop()

    def close(self) -> None:
        self.stop_listening()
        super().close()

    # -- conversations --------------------------------------------------------

    @contextmanager
    def batch(self, intents: Sequence[Intent] = ()) -> Iterator[None]:
        if self.in_batch or not intents:
            with super().batch():
                yield
            return
        raised: BaseException | None = None  # by the block: the caller's, as it is
        try:
            with super().batch():
                held = self._held
                assert held.conn is not None
                group = held.pending = Group(held.conn, intents, self._select)
                due = group.earliest_deadline()
                if due is not None and held.news is not None \
                        and due <= max(i.at for i in intents):
                    held.news.held(due)  # another replica's ticker passes over its lock
                try:
                    yield
                except BaseException as failed:
                    raised = failed
                    raise
                finally:
                    held.pending = None
                group.flush(held.conn, ending=True)
        except Exception as failed:
            # The group's own (its read, its write, the COMMIT): for one event, or for all
            if failed is not raised and for_one_event(failed):
                raise GroupRefused(f"a group of {len(intents)} events failed: "
                                   f"{failed!r}") from failed
            raise

    def load(self, key: str) -> Conversation | None:
        group = self._group
        if group is not None:
            read, conv = group.load(key)
            if read:
                return conv
        row = self._row(f"{self._select} WHERE key = %s", (key,))
        return conversation_of(row) if row else None

    @property
    def _group(self) -> Group | None:
        pending = self._held.pending
        return pending if isinstance(pending, Group) else None

    def resolve(self, alias: str) -> str | None:
        row = self._row("SELECT conversation FROM aliases WHERE alias = %s", (alias,))
        return str(row[0]) if row else None

    def commit(self, change: Change, now: float) -> Outcome:
        group = self._group
        if group is None:
            return self._commit(change, now)
        outcome = group.commit(change, lambda taken: _rows_of(taken, now))
        if outcome is not None:
            if outcome is Outcome.COMMITTED and self._held.news is not None:
                _tell(self._held.news, [change])
            return outcome
        # Not the group's to take (a new conversation, one it did not read): the ordinary
        # way, after what it took; an inbound id it recorded is not recorded again.
        recorded = group.use(change.inbound_id)
        outcome = Outcome.CONFLICT
        try:
            outcome = self._commit(change, now, recorded=recorded)
        finally:
            if recorded and outcome is not Outcome.COMMITTED:
                assert change.inbound_id is not None
                group.unuse(change.inbound_id)
        return outcome

    def _commit(self, change: Change, now: float, *, recorded: bool = False) -> Outcome:
        with self._connection() as conn, conn.transaction() as tx:
            outcome = self._write(conn, change, now, recorded=recorded)
            if outcome is not Outcome.COMMITTED:
                raise psycopg.Rollback(tx)  # nothing of it is kept; the block goes on
            self._announce(conn, lambda news: _tell(news, [change]))
        return outcome

    def commit_all(self, changes: Sequence[Change], now: float) -> bool:
        for change in changes:
            if change.conversation is None or change.expected_version is None \
                    or change.inbound_id is not None or change.aliases:
                raise ValueError("commit_all takes changes to known conversations only")
        if not changes:
            return True
        with self._connection() as conn, conn.transaction() as tx:
            together = self._update(conn, changes, now)
            if not together:
                raise psycopg.Rollback(tx)
            self._announce(conn, lambda news: _tell(news, changes))
        return together

    def _write(self, conn: Connection, change: Change, now: float, *,
               recorded: bool = False) -> Outcome:
        """`recorded`: the change's inbound id is recorded already (by its group)."""
        if change.inbound_id is not None and not recorded:
            seen = conn.execute("INSERT INTO inbound (id, seen_at) VALUES (%s, %s) "
                                "ON CONFLICT (id) DO NOTHING", (change.inbound_id, now))
            if seen.rowcount == 0:
                return Outcome.DUPLICATE
        conv = change.conversation
        if conv is not None and change.expected_version is not None:
            return Outcome.COMMITTED if self._update(conn, [change], now) \
                else Outcome.CONFLICT
        if conv is not None and conn.execute(
                self._insert_sql, (conv.ref.key, *row_of(conv))).rowcount == 0:
            return Outcome.CONFLICT
        if change.history or change.actions or change.inputs:  # after its conversation
            conn.execute(writes.REST_SQL, writes.rest(*_rows_of(change, now)))
        if change.aliases:
            self._put_aliases(conn, change.aliases)
        return Outcome.COMMITTED

    def _update(self, conn: Connection, changes: Sequence[Change], now: float) -> bool:
        """Update known conversations, each if still at the version it was read at, and
        write their history, actions and inputs: one statement. False when any had moved
        on (the caller rolls the lot back)."""
        updated = []
        history: list[Any] = []
        actions: list[Any] = []
        inputs: list[Any] = []
        for change in changes:
            conv = change.conversation
            assert conv is not None
            logged, queued, taken = _rows_of(change, now)
            history += logged
            actions += queued
            inputs += taken
            updated.append((*row_of(conv)[:-1], conv.ref.key, change.expected_version))
        aliases = [alias for change in changes for alias in change.aliases]
        row = conn.execute(writes.UPDATE_SQL, writes.changes(
            updated, history, actions, inputs, aliases)).fetchone()
        return row is not None and int(row[0]) == len(changes)

    @staticmethod
    def _put_aliases(conn: Connection, aliases: Sequence[tuple[str, str]]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO aliases (alias, conversation) VALUES (%s, %s) "
                "ON CONFLICT (alias) DO UPDATE SET conversation = excluded.conversation",
                list(aliases))

    def attach(self, key: str, card: str, aliases: tuple[str, ...]) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE conversations SET card = %s, version = version + 1 "
                         "WHERE key = %s", (card, key))
            if aliases:
                self._put_aliases(conn, [(alias, key) for alias in aliases])

    # -- deadlines --------------------------------------------------------------

    def next_deadline(self) -> float | None:
        # Both minimums come off their partial indexes; greatest/least skip NULLs.
        row = self._row("SELECT least((SELECT min(deadline) FROM conversations "
                        "WHERE deadline IS NOT NULL), "
                        "(SELECT min(due) FROM sweeps WHERE due IS NOT NULL))")
        return None if row is None or row[0] is None else float(row[0])

    def due(self, now: float, limit: int) -> list[Conversation]:
        rows = self._rows(f"{self._select} WHERE deadline IS NOT NULL AND deadline <= %s "
                          "ORDER BY deadline LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit))
        claimed = due_of(rows, now, self.postpone)
        if claimed and self._held.news is not None:  # held until the batch ends: say so then
            first = claimed[0].deadline
            assert first is not None
            self._held.news.held(first)
        return claimed

    def postpone(self, key: str, until: float) -> None:
        self._run("UPDATE conversations SET deadline = %s WHERE key = %s", (until, key))

    # -- settings and reports ----------------------------------------------------------

    def settings(self, scope: str) -> dict[str, str]:
        rows = self._rows("SELECT key, value FROM settings WHERE scope = %s", (scope,))
        return {str(key): str(value) for key, value in rows}

    def put_setting(self, scope: str, key: str, value: str, by: str, at: float, *,
                    announce: bool = True) -> None:
        sql = ("INSERT INTO settings (scope, key, value, updated_by, updated_at) "
               "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (scope, key) DO UPDATE SET "
               "value = excluded.value, updated_by = excluded.updated_by, "
               "updated_at = excluded.updated_at")
        if announce:
            self._change_setting(sql, (scope, key, value, by, at))
        else:  # a note: the other replicas' policies are not stale for it
            self._run(sql, (scope, key, value, by, at))

    def drop_setting(self, scope: str, key: str) -> None:
        self._change_setting("DELETE FROM settings WHERE scope = %s AND key = %s",
                             (scope, key))

    def _change_setting(self, sql: str, params: tuple[object, ...]) -> None:
        """A settings write, announced on commit: the other replicas' cached policies are
        stale then."""
        with self._transaction() as conn:
            conn.execute(sql, params)
            self._announce(conn, News.changed)

    def history(self, team: str | None, since: float,
                kinds: Collection[str] | None = None,
                only: Callable[[str], bool] | None = None) -> list[HistoryEvent]:
        sql = ("SELECT conversation, team, kind, at, actor, value, detail FROM history "
               "WHERE at >= %s")
        params: tuple[object, ...] = (since,)
        if team is not None:
            sql += " AND team = %s"
            params = (since, team)
        if kinds is not None:
            sql += " AND kind = ANY(%s)"
            params += (list(kinds),)
        rows = self._rows(sql + " ORDER BY id", params)
        refs: dict[str, ConversationRef] = {}  # one per conversation, not one per event
        return [
            HistoryEvent(refs.get(key) or refs.setdefault(key, ConversationRef.parse(key)),
                         team_, kind, at, actor, value, detail)
            for key, team_, kind, at, actor, value, detail in rows
            if only is None or only(key)
        ]

    def tallies(self, team: str, since: float, until: float) -> Tallies:
        return report_sql.tallies(self._rows, _REPORT_SQL, team, since, until)

    def inputs(self, team: str | None, since: float,
               only: Callable[[str], bool] | None = None) -> list[Input]:
        sql = "SELECT conversation, team, at, kind, data FROM inputs WHERE at >= %s"
        params: tuple[object, ...] = (since,)
        if team is not None:
            sql += " AND team = %s"
            params = (since, team)
        refs: dict[str, ConversationRef] = {}  # one per conversation, not one per event
        found = []
        for key, team_, at, kind, data in self._rows(sql + " ORDER BY id", params):
            if only is None or only(key):
                ref = refs.get(key) or refs.setdefault(key, ConversationRef.parse(key))
                found.append(decode_input(key, team_, at, kind, data, ref))
        return found

    def openings(self, team: str, since: float) -> int:
        rows = self._rows(
            "SELECT count(DISTINCT conversation) FROM inputs WHERE team = %s AND at >= %s "
            "AND strpos(data, %s) > 0",
            (team, since, OPENED))
        return int(rows[0][0])

    def open_conversations(self, team: str, after: str, limit: int) -> list[Conversation]:
        rows = self._rows(f"{self._select} WHERE team = %s AND state <> 'closed' "
                          "AND key > %s ORDER BY key LIMIT %s", (team, after, limit))
        return [conversation_of(row) for row in rows]

    def longest_waiting(self, team: str, limit: int) -> list[Conversation]:
        rows = self._rows(f"{self._select} WHERE team = %s AND state <> 'closed' "
                          "ORDER BY waiting_since IS NULL, coalesce(waiting_since, "
                          "last_operator_at, queued_at, opened_at), key LIMIT %s", (team, limit))
        return [conversation_of(row) for row in rows]

    def sweep_inbox(self, sweep_id: str) -> list[HandoverLine]:
        # `since` as sweep.since_of has it for a conversation in the inbox
        rows = self._rows(
            "SELECT c.key, c.customer, c.preview, "
            "coalesce(c.waiting_since, c.queued_at, c.opened_at) AS since, "
            "CASE WHEN i.fate = 'handed_over' THEN i.operator END "
            "FROM sweep_items i JOIN conversations c ON c.key = i.conversation "
            "WHERE i.sweep = %s AND i.fate IN ('handed_over', 'unowned') "
            "AND c.state = 'queued' AND c.owner IS NULL ORDER BY since, i.seq",
            (sweep_id,))
        return [HandoverLine(str(key), str(customer), str(preview), float(since), owner)
                for key, customer, preview, since, owner in rows]

    def open_keys(self, team: str) -> list[str]:
        rows = self._rows("SELECT key FROM conversations WHERE team = %s "
                          "AND state <> 'closed' ORDER BY key", (team,))  # locked in order
        return [str(row[0]) for row in rows]

    def open_counts(self) -> dict[tuple[str, str], int]:
        with self._connection() as conn:  # one connection for the few reads

            def ends(team: str) -> tuple[str, str]:
                row = conn.execute(
                    "SELECT (SELECT min(key) FROM conversations WHERE team = %(t)s AND "
                    "state <> 'closed'), (SELECT max(key) FROM conversations WHERE "
                    "team = %(t)s AND state <> 'closed')", {"t": team}).fetchone()
                assert row is not None
                return str(row[0]), str(row[1])

            def by_key(team: str) -> list[tuple[str, str, int]]:
                return conn.execute(
                    "SELECT split_part(key, ':', 1), state, count(*) FROM conversations "
                    "WHERE team = %s AND state <> 'closed' GROUP BY 1, 2", (team,)).fetchall()

            by_team = conn.execute("SELECT team, state, count(*) FROM conversations "
                                   "WHERE state <> 'closed' GROUP BY 1, 2").fetchall()
            return census.open_counts(by_team, ends, by_key)

    def summary(self, team: str) -> tuple[int, int]:
        """(open, overdue) conversations of a team: overdue = nudged or operators called."""
        row = self._row("SELECT count(*), count(*) FILTER (WHERE nudged_at IS NOT NULL "
                        "OR escalations > 0) FROM conversations WHERE team = %s "
                        "AND state <> 'closed'", (team,))
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def prune(self, before: float) -> None:
        """Forget inbound ids older than `before`; platforms stop redelivering long before."""
        self._run("DELETE FROM inbound WHERE seen_at < %s", (before,))

    # -- held requests ---------------------------------------------------------

    def hold(self, platform: str, inbound_id: str, body: str, at: float) -> None:
        self._run("INSERT INTO held (platform, inbound_id, body, at) VALUES (%s, %s, %s, %s) "
                  "ON CONFLICT (inbound_id) DO NOTHING", (platform, inbound_id, body, at))

    def held(self, platform: str, limit: int) -> list[Held]:
        rows = self._rows("SELECT id, inbound_id, body, at FROM held WHERE platform = %s "
                          "ORDER BY id LIMIT %s", (platform, limit))
        return [Held(int(id_), str(inbound_id), str(body), float(at))
                for id_, inbound_id, body, at in rows]

    def release(self, held_id: int) -> None:
        self._run("DELETE FROM held WHERE id = %s", (held_id,))


def _rows_of(change: Change, now: float) -> tuple[list[Any], list[Any], list[Any]]:
    """A change's history, outbox and input rows. Actions are encoded first: one that
    cannot be stored raises before anything is written."""
    queued = []
    for action in change.actions:
        kind, payload = encode_action(action)
        queued.append((lane_of(action), priority_of(action), kind, payload, NO_HOLD, now))
    logged = [(h.ref.key, h.team, h.kind, h.at, h.actor, h.value, h.detail)
              for h in change.history]
    return logged, queued, [encode_input(i) for i in change.inputs]


def _tell(news: News, changes: Sequence[Change]) -> None:
    """What committed changes announce: their conversations' deadlines, their lanes."""
    for change in changes:
        if change.conversation is not None:
            news.stored(change.conversation.deadline)
        news.queued([lane_of(action) for action in change.actions])

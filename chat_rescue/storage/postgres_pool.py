"""PostgresStore's connections: a pool, and the one connection a batch holds.

Pooled connections are in autocommit mode, so a lone statement is its own transaction
with no BEGIN/COMMIT round trips. `batch()` takes one connection for its whole duration
and opens a transaction on it; until it ends, every store call on the same thread runs
on that connection, inside that transaction (as every call on a SQLiteStore joins its
open transaction). `_transaction()` is a transaction of its own, or a savepoint inside
the batch. The connection is per thread, not a contextvar: asyncio copies contextvars
into every task created inside a batch, which would hand the batch's connection to work
that outlives it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from chat_rescue.storage.hooks import OnCommit
from chat_rescue.storage.postgres_notices import News, origin
from chat_rescue.storage.postgres_schema import migrate

Connection = psycopg.Connection[tuple[Any, ...]]

# psycopg_pool logs every connection handed out at INFO: far too much for the bot's log.
logging.getLogger("psycopg.pool").setLevel(logging.WARNING)


class Pending(Protocol):
    """Writes a batch holds back to make in one go (`postgres_group.Group`)."""

    def flush(self, conn: Connection, *, ending: bool = False) -> None: ...


class _Held(threading.local):
    conn: Connection | None = None
    news: News | None = None  # what the batch announces when it commits
    pending: Pending | None = None  # written before anything else uses the connection
    on_commit: OnCommit | None = None  # what waits for the batch to commit


class PooledConnections:
    """The pool and per-thread batch connection shared by PostgresStore's halves."""

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 10.0) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": "chat-rescue",
                  "connect_timeout": max(1, int(connect_timeout))}
        # Migrate on a connection of its own first: a bad URL fails here, in the
        # server's own words, rather than as a pool timeout.
        with psycopg.connect(url, **kwargs) as conn:
            self.schema_version = migrate(conn)
            row = conn.execute("SHOW server_version").fetchone()
            self.server_version = str(row[0]) if row else "?"
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            url, kwargs=kwargs, min_size=1, max_size=pool_size, open=False,
            name="chat-rescue", timeout=connect_timeout)
        self.pool.open(wait=True, timeout=connect_timeout)
        self._held = _Held()
        self.origin = origin()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the calls inside into one transaction on one connection (nested: the
        outer batch's)."""
        if self._held.conn is not None:
            yield
            return
        on_commit = OnCommit()
        raised = False  # by the block: psycopg's `Rollback` ends the transaction quietly
        try:
            with self.pool.connection() as conn, conn.transaction():
                self._held.conn, self._held.news = conn, News()
                self._held.on_commit = on_commit
                try:
                    try:
                        yield
                    except BaseException:
                        raised = True
                        raise
                    # A statement that failed inside (and was caught) aborted the
                    # transaction, or the connection was lost: psycopg would end it with a
                    # silent ROLLBACK (or nothing), and the batch's callers would take their
                    # work for committed. Say so instead.
                    status = conn.info.transaction_status
                    if status is TransactionStatus.INERROR:
                        raise psycopg.errors.InFailedSqlTransaction(
                            "a statement of the batch failed: nothing of it was committed")
                    if status is not TransactionStatus.INTRANS:
                        raise psycopg.OperationalError(
                            "the batch's connection was lost: nothing of it was committed")
                    self._held.news.send(conn, self.origin)  # on commit, once for the lot
                finally:
                    self._held.conn = self._held.news = self._held.pending = None
                    self._held.on_commit = None
        except BaseException:
            on_commit.rolled_back()
            raise
        if raised:  # a `Rollback` the transaction took: nothing was committed
            on_commit.rolled_back()
        else:
            on_commit.committed()

    def after_commit(self, callback: Callable[[], None]) -> None:
        on_commit = self._held.on_commit
        if on_commit is not None:
            on_commit.add(callback)
        else:
            callback()  # pooled connections autocommit: what this thread wrote is committed

    @property
    def in_batch(self) -> bool:
        return self._held.conn is not None

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """The batch's connection on this thread (what it holds back written first), else
        one from the pool."""
        held = self._held.conn
        if held is not None:
            if self._held.pending is not None:
                self._held.pending.flush(held)
            yield held
            return
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """All of the block or nothing: a transaction, or a savepoint inside a batch."""
        with self._connection() as conn, conn.transaction():
            yield conn

    def _announce(self, conn: Connection, tell: Callable[[News], None]) -> None:
        """Note news of the transaction open on `conn` (a batch's: when it commits; one of
        its own: now, inside it)."""
        if self._held.news is not None:
            tell(self._held.news)
            return
        news = News()
        tell(news)
        news.send(conn, self.origin)

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _row(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchone()

    def _run(self, sql: str, params: Sequence[object] = ()) -> int:
        """Execute one statement; returns how many rows it changed."""
        with self._connection() as conn:
            return conn.execute(sql, params).rowcount

    def close(self) -> None:
        """Close every connection of the pool."""
        self.pool.close()

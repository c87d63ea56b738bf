"""Read-only queries on a running bot's store, for reliability tests that watch bots in
other processes: a SQLite file (WAL: readers never block the bot) or a PostgreSQL
database that several replicas share (`postgresql://…`, each query its own snapshot)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chat_rescue.storage.factory import is_postgres

# One history event as the audits read it: (kind, at, actor).
Event = tuple[str, float, str | None]


class _Postgres:
    """A PostgreSQL connection that takes SQLite's `?` placeholders (the queries below are
    written once, for both)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(url, autocommit=True)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), tuple(params))

    def close(self) -> None:
        self._conn.close()


class StoreView:
    """The conversations, history, inbound ids and outbox of the bot's store: `where` is
    the SQLite file or a `postgresql://` URL."""

    def __init__(self, where: Path | str) -> None:
        self.conn: sqlite3.Connection | _Postgres
        if isinstance(where, str) and is_postgres(where):
            self.conn = _Postgres(where)
        else:
            self.conn = sqlite3.connect(where, timeout=5)

    def close(self) -> None:
        self.conn.close()

    def card(self, key: str) -> str | None:
        row = self.conn.execute("SELECT card FROM conversations WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def owner(self, key: str) -> str | None:
        """The conversation's owner, None when it has none (or is unknown)."""
        row = self.conn.execute("SELECT owner FROM conversations WHERE key = ?",
                                (key,)).fetchone()
        return row[0] if row else None

    def unsettled(self) -> tuple[int, int]:
        """(conversations with a deadline, outbox rows)."""
        deadlines = self.conn.execute(
            "SELECT count(*) FROM conversations WHERE deadline IS NOT NULL").fetchone()[0]
        outbox = self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return int(deadlines), int(outbox)

    def leases(self, now: float) -> list[str]:
        """Who holds an outbox lease that has not run out at `now` (one entry per item)."""
        return [str(r[0]) for r in self.conn.execute(
            "SELECT locked_by FROM outbox WHERE locked_until > ?", (now,))]

    def inbound(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT id FROM inbound")}

    def rows(self) -> dict[str, dict[str, Any]]:
        cursor = self.conn.execute("SELECT * FROM conversations")
        names = [c[0] for c in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor}

    def history(self) -> dict[str, list[Event]]:
        events: dict[str, list[Event]] = defaultdict(list)
        for key, kind, at, actor in self.conn.execute(
                "SELECT conversation, kind, at, actor FROM history ORDER BY id"):
            events[key].append((kind, at, actor))
        return events

    def in_flight_drops(self) -> list[tuple[str, str]]:
        """(conversation, action) of notices dropped after a kill that were in flight then
        (recorded with value 1): each may have been posted before the kill."""
        rows = self.conn.execute("SELECT conversation, actor FROM history WHERE "
                                 "kind = 'notice_dropped' AND value = 1").fetchall()
        return [(str(key), str(actor)) for key, actor in rows]

    def dead_letters(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

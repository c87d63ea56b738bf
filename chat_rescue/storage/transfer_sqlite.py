"""A SQLite file as one side of `chat-rescue copy-db` (`transfer.py`).

As a source it is opened read-only and read in one transaction: under WAL that is a
snapshot, while a running bot goes on writing. As a destination it is created and
migrated as a first start would, then written in one `BEGIN IMMEDIATE` transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator

from chat_rescue.storage import sqlite
from chat_rescue.storage.schema import MIGRATIONS
from chat_rescue.storage.transfer import Row, Schema
from chat_rescue.storage.versions import SQLITE

# PostgreSQL keeps SQLite's rowid as a column of its own where the code orders by it.
ROWID_AS = {"sweep_items": "seq"}


class SQLiteEnd:
    """One SQLite database, to be read or written by a copy."""

    kind = SQLITE
    known = len(MIGRATIONS)

    def __init__(self, conn: sqlite3.Connection, *, writing: bool) -> None:
        self.conn = conn
        self.writing = writing
        self.version = sqlite.schema_version(conn)

    @classmethod
    def source(cls, url: str) -> SQLiteEnd:
        file = sqlite.database_file(url)
        if file is None:
            raise ValueError("an in-memory database holds nothing to copy")
        if not file.exists():
            raise ValueError(f"there is no database at {file}")
        conn = sqlite3.connect(f"{file.absolute().as_uri()}?mode=ro", uri=True,
                               isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            return cls(conn, writing=False)
        except sqlite3.Error as failed:
            conn.close()
            raise ValueError(f"{file} is not a usable SQLite database ({failed})") from None

    @classmethod
    def destination(cls, url: str, applied: Callable[[int], None]) -> SQLiteEnd:
        if sqlite.database_file(url) is None:
            raise ValueError("a copy into an in-memory database would be lost at once")
        conn = sqlite.connect(url)
        try:
            sqlite.migrate(conn, applied=applied)
            return cls(conn, writing=True)
        except BaseException:
            conn.close()
            raise

    def schema(self) -> Schema:
        tables = [name for (name,) in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        found: Schema = {}
        for table in tables:
            found[table] = {name: kind for _, name, kind, *_ in
                            self.conn.execute(f"PRAGMA table_info({table})")}
            if table in ROWID_AS:
                found[table][ROWID_AS[table]] = "INTEGER"
        return found

    def counters(self) -> list[tuple[str, str]]:
        found = [(table, column) for table, column in ROWID_AS.items()]
        for table in self.schema():
            keys = [(name, kind) for _, name, kind, _, _, pk in
                    self.conn.execute(f"PRAGMA table_info({table})") if pk]
            if len(keys) == 1 and keys[0][1].upper() == "INTEGER":  # the rowid itself
                found.append((table, keys[0][0]))
        return found

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE" if self.writing else "BEGIN")
        self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def rows(self, table: str, columns: list[str]) -> Iterator[Row]:
        names = ", ".join(_stored(table, c) for c in columns)
        yield from self.conn.execute(f"SELECT {names} FROM {table} ORDER BY rowid")

    def high_water(self, table: str, column: str) -> int:
        row = self.conn.execute(f"SELECT coalesce(max({_stored(table, column)}), 0) "
                                f"FROM {table}").fetchone()
        used = int(row[0])
        if self._has_sequence():  # AUTOINCREMENT: what was ever handed out, deleted rows too
            seq = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?",
                                    (table,)).fetchone()
            used = max(used, int(seq[0]) if seq else 0)
        return used

    def clear(self, table: str) -> None:
        self.conn.execute(f"DELETE FROM {table}")

    def write(self, table: str, columns: list[str], rows: Iterable[Row]) -> None:
        names = ", ".join(_stored(table, c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        self.conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)

    def advance(self, table: str, column: str, high_water: int) -> None:
        autoincrement = self.conn.execute(
            "SELECT sql LIKE '%AUTOINCREMENT%' FROM sqlite_master WHERE name = ?",
            (table,)).fetchone()
        if not autoincrement or not autoincrement[0]:
            return  # the next rowid is one past the highest there: the copied rows'
        seq = max(self.high_water(table, column), high_water)
        if self.conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?",
                             (seq, table)).rowcount == 0:
            self.conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                              (table, seq))

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def close(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()

    def _has_sequence(self) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master "
                                 "WHERE name = 'sqlite_sequence'").fetchone() is not None


def _stored(table: str, column: str) -> str:
    return "rowid" if ROWID_AS.get(table) == column else column

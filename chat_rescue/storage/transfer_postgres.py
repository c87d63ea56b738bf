"""A PostgreSQL database as one side of `chat-rescue copy-db` (`transfer.py`).

As a source it is read in one `REPEATABLE READ READ ONLY` transaction (one snapshot of
every table) through a server-side cursor, so a large table is never all in memory. As a
destination it is migrated first, then written in one transaction with `COPY`, which
keeps the values of identity columns as given; their sequences are then set past the
highest id the source ever handed out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psycopg
from psycopg import sql

from chat_rescue.storage.postgres import unusable
from chat_rescue.storage.postgres_schema import MIGRATIONS, migrate, schema_version
from chat_rescue.storage.transfer import Row, Schema
from chat_rescue.storage.versions import POSTGRES

_OWN = ("schema_version",)  # each database's record of its own migrations, not copied


class PostgresEnd:
    """One PostgreSQL database, to be read or written by a copy."""

    kind = POSTGRES
    known = len(MIGRATIONS)

    def __init__(self, url: str, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self.url = url
        self.conn = conn
        self.version = schema_version(conn)

    @classmethod
    def source(cls, url: str) -> PostgresEnd:
        conn = _connect(url)
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        return cls(url, conn)

    @classmethod
    def destination(cls, url: str, applied: Callable[[int], None]) -> PostgresEnd:
        conn = _connect(url)
        try:
            migrate(conn, applied=applied)
            return cls(url, conn)
        except psycopg.Error as failed:
            conn.close()
            raise unusable(url, failed) from None
        except BaseException:
            conn.close()
            raise

    def schema(self) -> Schema:
        found: Schema = {}
        for table, column, kind in self.conn.execute(
                "SELECT c.table_name, c.column_name, c.data_type "
                "FROM information_schema.columns c JOIN information_schema.tables t "
                "USING (table_schema, table_name) WHERE c.table_schema = current_schema() "
                "AND t.table_type = 'BASE TABLE' AND NOT c.table_name = ANY(%s) "
                "ORDER BY c.table_name, c.ordinal_position", (list(_OWN),)):
            found.setdefault(str(table), {})[str(column)] = str(kind)
        return found

    def counters(self) -> list[tuple[str, str]]:
        return [(str(table), str(column)) for table, column in self.conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND is_identity = 'YES' "
            "ORDER BY table_name")]

    def begin(self) -> None:
        self.conn.autocommit = False  # the next statement opens the transaction
        self.conn.execute("SELECT 1")

    def count(self, table: str) -> int:
        row = self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(table))).fetchone()
        return int(row[0]) if row else 0

    def rows(self, table: str, columns: list[str]) -> Iterator[Row]:
        with self.conn.cursor(name=f"copy_{table}") as cursor:
            cursor.itersize = 5000
            cursor.execute(sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)))
            yield from cursor

    def high_water(self, table: str, column: str) -> int:
        row = self.conn.execute(
            sql.SQL("SELECT greatest((SELECT coalesce(max({}), 0) FROM {}), "
                    "(SELECT coalesce(last_value, 0) FROM pg_sequences WHERE "
                    "format('%%I.%%I', schemaname, sequencename)::regclass "
                    "= pg_get_serial_sequence(%s, %s)::regclass))").format(
                sql.Identifier(column), sql.Identifier(table)), (table, column)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def clear(self, table: str) -> None:
        self.conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))

    def write(self, table: str, columns: list[str], rows: Iterable[Row]) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
        with self.conn.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def advance(self, table: str, column: str, high_water: int) -> None:
        value = max(high_water, self.high_water(table, column))
        if value > 0:  # a sequence never used stays at its start
            self.conn.execute("SELECT setval(pg_get_serial_sequence(%s, %s), %s)",
                              (table, column, value))

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()  # an open transaction is rolled back


def _connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10,
                               application_name="chat-rescue copy-db")
    except psycopg.Error as failed:
        raise unusable(url, failed) from None

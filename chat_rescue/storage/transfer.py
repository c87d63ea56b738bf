"""`chat-rescue copy-db`: one install's store copied, table by table, into another.

Every table that carries state is copied, whatever the backends (SQLite and PostgreSQL,
either way): the tables and columns are read from both schemas and must agree, so a
column a migration adds is copied without a change here. What is copied is exact:
ids keep their values (the outbox's order, a sweep card's buttons, history's order) and
the destination's id counters are moved past everything the source ever handed out, so
new rows never take an old id. Outbox leases are ended, as for a worker known to be dead
(`end_leases`): the old install's senders are gone, so the new one's workers may take
those items at once, and the holder's name stays as the mark that the item was in flight
(it may have been sent).

The source is read in one read-only transaction: a consistent snapshot, even of an
install that is running (on SQLite, WAL lets the bot write on meanwhile). What the bot
writes after the snapshot is not in the copy, which is why the safe move stops the bot
first (docs/SCALING.md). The destination is migrated first and then written in one
transaction, counts checked before it commits: a copy is all there, or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from chat_rescue.storage.factory import NO_DRIVER, database_file, is_postgres, where_is
from chat_rescue.storage.versions import BACKEND_ONLY, counterpart, refuse_newer

Row = tuple[Any, ...]
Schema = dict[str, dict[str, str]]  # table → column → its declared type
Say = Callable[[str], None]

PROGRESS_EVERY = 10_000  # rows between two progress lines of a table
# Leases ended on the way (their end set to 0, the holder kept): they belong to the old
# install's processes.
ENDED = {"outbox": "locked_until"}
# Declared types by what they hold, to see that both schemas store a column alike.
_FAMILY = {"integer": "integer", "bigint": "integer", "boolean": "integer",
           "real": "real", "double precision": "real", "text": "text"}


class CopyRefused(ValueError):
    """The copy would be wrong or would destroy something: nothing was copied."""


class End(Protocol):
    """One side of a copy: a store's tables, read in one snapshot or written in one
    transaction (`transfer_sqlite.py`, `transfer_postgres.py`)."""

    kind: str
    version: int  # of the schema
    known: int  # the newest version this code has for the backend

    def schema(self) -> Schema: ...
    def counters(self) -> list[tuple[str, str]]:
        """(table, column) of every id the store hands out itself."""
    def begin(self) -> None:
        """The read snapshot (a source) or the write transaction (a destination)."""
    def count(self, table: str) -> int: ...
    def rows(self, table: str, columns: list[str]) -> Iterator[Row]: ...
    def high_water(self, table: str, column: str) -> int:
        """The highest id ever handed out for `column` (0: none)."""
    def clear(self, table: str) -> None: ...
    def write(self, table: str, columns: list[str], rows: Iterable[Row]) -> None: ...
    def advance(self, table: str, column: str, high_water: int) -> None:
        """Hand out ids above `high_water` from now on."""
    def commit(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Copied:
    """What a copy did: rows per table (the same in source and destination) and how long
    it took from the snapshot to the commit."""

    counts: dict[str, int]
    seconds: float


def _backend(url: str) -> Any:
    """The End class for `url`'s backend (not opened)."""
    if is_postgres(url):
        try:
            from chat_rescue.storage.transfer_postgres import PostgresEnd
        except ImportError:
            raise ValueError(NO_DRIVER) from None
        return PostgresEnd
    from chat_rescue.storage.transfer_sqlite import SQLiteEnd

    return SQLiteEnd


def copy_store(source_url: str, destination_url: str, *, replace: bool = False,
               say: Say = print, every: int = PROGRESS_EVERY) -> Copied:
    """Copy everything in the store at `source_url` into the one at `destination_url`,
    migrating the destination to the newest schema first.

    CopyRefused (nothing written) when the two are one, the schemas do not correspond,
    or the destination holds data and `replace` is not set (with it, that data goes).
    SchemaTooNew for a store a newer release wrote; ValueError for one that cannot be
    used.
    """
    if _resolved(source_url) == _resolved(destination_url):
        raise CopyRefused("the source and the destination are the same database")
    into = _backend(destination_url)
    source: End = _backend(source_url).source(source_url)
    try:
        refuse_newer(source.version, source.known)
        # The destination will be at its newest schema: the source must hold the same.
        expected = counterpart(into.kind, into.known, source.kind)
        if source.version != expected:
            raise CopyRefused(
                f"{where_is(source_url)} is at schema {source.version}, but this release "
                f"copies {source.kind} schema {expected} into {into.kind}: bring the source "
                "up to date first (chat-rescue migrate, with this release)")

        def applied(number: int) -> None:
            say(f"{where_is(destination_url)}: migration {number} applied")

        destination: End = into.destination(destination_url, applied)
        try:
            return _copy(source, destination, where_is(source_url),
                         where_is(destination_url), replace=replace, say=say, every=every)
        finally:
            destination.close()
    finally:
        source.close()


def _copy(source: End, destination: End, source_at: str, destination_at: str, *,
          replace: bool, say: Say, every: int) -> Copied:
    theirs, ours = source.schema(), destination.schema()
    columns = _common_columns(theirs, ours)
    started = time.monotonic()
    source.begin()
    destination.begin()
    held = {table: n for table in columns if (n := destination.count(table))}
    if held and not replace:
        listed = ", ".join(f"{table} {n}" for table, n in sorted(held.items()))
        raise CopyRefused(f"{destination_at} is not empty ({listed} rows): copy into a new "
                          "database, or pass --replace to delete what it holds")
    for table in held:
        destination.clear(table)
    say(f"copying {source_at} into {destination_at} (one snapshot of the source)")
    counts: dict[str, int] = {}
    for table, names in columns.items():
        total = source.count(table)
        rows = _converted(source.rows(table, names), names, table, theirs[table],
                          ours[table])
        destination.write(table, names, _progress(rows, table, total, say, every))
        counts[table] = total
    for table, column in destination.counters():
        destination.advance(table, column, source.high_water(table, column))
    wrong = {table: (n, copied) for table, n in counts.items()
             if (copied := destination.count(table)) != n}
    if wrong:
        listed = ", ".join(f"{t} {n} in the source, {m} copied" for t, (n, m) in wrong.items())
        raise ValueError(f"the copy does not match the source ({listed}); nothing was kept")
    destination.commit()
    return Copied(counts, time.monotonic() - started)


def _common_columns(source: Schema, destination: Schema) -> dict[str, list[str]]:
    """Each table's columns, in the source's order, once both schemas are seen to hold
    the same tables and columns, stored alike (CopyRefused otherwise)."""
    if set(source) != set(destination):
        differ = sorted(set(source) ^ set(destination))
        raise CopyRefused(f"the schemas do not hold the same tables ({', '.join(differ)})")
    columns = {}
    for table in sorted(source):
        theirs, ours = ({column: kind for column, kind in schema[table].items()
                         if (table, column) not in BACKEND_ONLY}
                        for schema in (source, destination))
        if set(theirs) != set(ours):
            differ = sorted(set(theirs) ^ set(ours))
            raise CopyRefused(f"{table} has other columns in the two schemas "
                              f"({', '.join(differ)})")
        for column, kind in theirs.items():
            if _FAMILY.get(kind.lower()) != _FAMILY.get(ours[column].lower()):
                raise CopyRefused(f"{table}.{column} is {kind} in the source but "
                                  f"{ours[column]} in the destination")
        columns[table] = list(theirs)
    return columns


def _converted(rows: Iterator[Row], names: list[str], table: str, source: dict[str, str],
               destination: dict[str, str]) -> Iterator[Row]:
    """Rows as the destination stores them: SQLite's 0/1 as PostgreSQL's booleans and
    back, leases ended."""
    ended = [i for i, name in enumerate(names) if name == ENDED.get(table)]
    changes: list[tuple[int, Callable[[Any], Any]]] = []
    for i, name in enumerate(names):
        if destination[name].lower() == "boolean" != source[name].lower():
            changes.append((i, bool))
        elif source[name].lower() == "boolean" != destination[name].lower():
            changes.append((i, int))
    if not ended and not changes:
        yield from rows
        return
    for row in rows:
        values = list(row)
        for i, convert in changes:
            if values[i] is not None:
                values[i] = convert(values[i])
        for i in ended:
            if values[i] is not None:
                values[i] = 0.0
        yield tuple(values)


def _progress(rows: Iterable[Row], table: str, total: int, say: Say,
              every: int) -> Iterator[Row]:
    """The rows, saying every `every` of them how far the table has come."""
    for done, row in enumerate(rows, start=1):
        yield row
        if done % every == 0:
            say(f"  {table}: {done:,} of {total:,} rows")


def _resolved(url: str) -> str:
    """A SQLite URL as its file's real path (PostgreSQL's as it is: the server alone knows
    which names are one database)."""
    if is_postgres(url):
        return url
    try:
        file = database_file(url)
    except ValueError:
        return url
    return str(file.resolve()) if file is not None else url

"""The store a `DATABASE_URL` names: SQLite (`sqlite:///file.db`, the default) or
PostgreSQL (`postgresql://user:password@host:5432/database`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from chat_rescue.bot.ports import Store
from chat_rescue.storage import sqlite

_POSTGRES_SCHEMES = ("postgresql", "postgres")
NO_DRIVER = ("DATABASE_URL names a PostgreSQL database, but its driver is not installed: "
             "pip install 'chat-rescue[postgres]'")


def is_postgres(url: str) -> bool:
    """A `postgresql://` (or `postgres://`) URL, as libpq takes it."""
    return urlsplit(url).scheme in _POSTGRES_SCHEMES


def open_store(url: str) -> Store:
    """Open (and migrate) the store at `url`; ValueError for a URL of neither kind, and
    (`postgres.Unusable`) in plain words for a PostgreSQL server that cannot be used."""
    if is_postgres(url):
        try:
            import psycopg

            from chat_rescue.storage.postgres import PostgresStore, unusable
        except ImportError:
            raise ValueError(NO_DRIVER) from None
        try:
            return PostgresStore(url)
        except psycopg.Error as failed:  # a pool timeout is one too
            raise unusable(url, failed) from None
    return sqlite.SQLiteStore(url)


def may_come(failed: ValueError) -> bool:
    """Whether the store `open_store` could not open may be there if asked again: a
    PostgreSQL server that did not answer or is starting up."""
    return bool(getattr(failed, "passing", False))


def describe(url: str) -> str:
    """What `chat-rescue check` says about the database, without changing it; ValueError,
    in plain words, when the bot could not use it."""
    if is_postgres(url):
        try:
            from chat_rescue.storage import postgres
        except ImportError:
            raise ValueError(NO_DRIVER) from None
        return postgres.describe(url)
    return sqlite.describe(url)


def database_file(url: str) -> Path | None:
    """The SQLite file a URL names (None for an in-memory or a PostgreSQL database)."""
    return None if is_postgres(url) else sqlite.database_file(url)


def server_of(url: str) -> str:
    """host:port/database of a PostgreSQL URL, without its user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: libpq says so in its own words
        port = ":?"
    return f"{host}{port}{parts.path or '/'}"


def where_is(url: str) -> str:
    """Where a URL points, for messages: the SQLite file, or the PostgreSQL server and
    database (never the user or password)."""
    if is_postgres(url):
        return f"PostgreSQL at {server_of(url)}"
    try:
        file = database_file(url)
    except ValueError:
        return "an unknown database"
    return str(file) if file is not None else "the in-memory database"


def migrate(url: str, applied: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Run the store's migrations at `url` (creating the database file or the tables as a
    first start would): (the version before, the version after); `applied` hears each
    migration this call ran. ValueError in plain words for a bad URL or a database that
    cannot be used; SchemaTooNew (nothing written) for one a newer release wrote."""
    if is_postgres(url):
        try:
            from chat_rescue.storage import postgres
        except ImportError:
            raise ValueError(NO_DRIVER) from None
        return postgres.migrate_url(url, applied)
    try:
        conn = sqlite.connect(url)
    except (OSError, sqlite3.Error) as failed:
        raise ValueError(f"cannot use {where_is(url)} ({failed})") from None
    try:
        return sqlite.schema_version(conn), sqlite.migrate(conn, applied=applied)
    except sqlite3.Error as failed:
        raise ValueError(f"cannot use {where_is(url)} ({failed})") from None
    finally:
        conn.close()

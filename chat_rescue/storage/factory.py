"""The store a `DATABASE_URL` names: SQLite (`sqlite:///file.db`, the default) or
PostgreSQL (`postgresql://user:password@host:5432/database`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from chat_rescue.bot.ports import Store
from chat_rescue.storage import sqlite

_POSTGRES_SCHEMES = ("postgresql", "postgres")
_NO_DRIVER = ("DATABASE_URL names a PostgreSQL database, but its driver is not installed: "
              "pip install 'chat-rescue[postgres]'")


def is_postgres(url: str) -> bool:
    """A `postgresql://` (or `postgres://`) URL, as libpq takes it."""
    return urlsplit(url).scheme in _POSTGRES_SCHEMES


def open_store(url: str) -> Store:
    """Open (and migrate) the store at `url`; ValueError for a URL of neither kind."""
    if is_postgres(url):
        try:
            from chat_rescue.storage.postgres import PostgresStore
        except ImportError:
            raise ValueError(_NO_DRIVER) from None
        return PostgresStore(url)
    return sqlite.SQLiteStore(url)


def describe(url: str) -> str:
    """What `chat-rescue check` says about the database, without changing it; ValueError,
    in plain words, when the bot could not use it."""
    if is_postgres(url):
        try:
            from chat_rescue.storage import postgres
        except ImportError:
            raise ValueError(_NO_DRIVER) from None
        return postgres.describe(url)
    return sqlite.describe(url)


def database_file(url: str) -> Path | None:
    """The SQLite file a URL names (None for an in-memory or a PostgreSQL database)."""
    return None if is_postgres(url) else sqlite.database_file(url)

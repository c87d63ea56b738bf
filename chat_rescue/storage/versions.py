"""Schema versions across the backends: the guard against a schema newer than this code
knows, and which SQLite version holds the same tables as which PostgreSQL version.

Each backend numbers its own migrations (`schema.py`, `postgres_schema.py`). A store is
opened, migrated or copied only when its version is one this code knows: a newer one was
written by a newer release, whose rows this release could misread or overwrite.
"""

from __future__ import annotations

SQLITE = "sqlite"
POSTGRES = "postgresql"

# (SQLite version, PostgreSQL version) pairs with the same tables, columns and meaning:
# what `chat-rescue copy-db` may copy between. A migration added to both lists adds a pair;
# one of a backend's own bookkeeping (BACKEND_ONLY) pairs that backend's new version with
# the other's same one. PostgreSQL 2 added `outbox.queued_by`; SQLite 12 and PostgreSQL 3
# added `conversations.returned_at` and `inputs`; SQLite 13 and PostgreSQL 4 an index on
# history for reports.
SAME_SCHEMA: list[tuple[int, int]] = [(11, 1), (11, 2), (12, 3), (13, 4)]

# Columns one backend keeps for its own bookkeeping, filled by their default on a write:
# not copied (outbox.queued_by: the PostgreSQL transaction that queued the item; a copied
# item counts as queued by the copy, committed before any bot reads it).
BACKEND_ONLY: frozenset[tuple[str, str]] = frozenset({("outbox", "queued_by")})


class SchemaTooNew(ValueError):
    """The database's schema is newer than this release knows: refuse it, write nothing."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"schema version {found} was written by a newer chat-rescue; this one knows up "
            f"to {known}. Run that release or a newer one (going back to this one needs a "
            "backup taken before the upgrade)")
        self.found = found
        self.known = known


def refuse_newer(found: int, known: int) -> None:
    """Raise SchemaTooNew when `found` is past the newest version this code knows."""
    if found > known:
        raise SchemaTooNew(found, known)


def counterpart(kind: str, version: int, other: str) -> int | None:
    """The version of backend `other` whose tables are those of `kind` at `version`
    (None: there is none)."""
    if kind == other:
        return version
    for sqlite_version, postgres_version in reversed(SAME_SCHEMA):  # the newest first
        if kind == SQLITE and sqlite_version == version:
            return postgres_version
        if kind == POSTGRES and postgres_version == version:
            return sqlite_version
    return None

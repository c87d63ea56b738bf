"""The PostgreSQL schema as numbered migrations, run in order by `migrate`.

The same tables and meaning as SQLite's schema (`schema.py`) at its version 11, numbered
on their own: PostgreSQL's version 1 is SQLite's 11. Append only; a later change to the
schema is a migration in both lists. Timestamps are `double precision` epoch seconds, as
everywhere in the store's protocol (no time zones to convert, the same values as SQLite's
REAL). Keys and lanes are compared and range-scanned in byte order (`COLLATE "C"`), as
SQLite does, whatever the database's own collation.

The applied versions are rows of `schema_version`; each migration runs in a transaction
of its own under a transaction-scoped advisory lock, re-reading the version inside it, so
several replicas starting on a new database at once migrate it exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from chat_rescue.storage.versions import refuse_newer

# pg_advisory_xact_lock(bigint) keys of chat-rescue's own, named so that another
# application sharing the database is unlikely to pick the same numbers.
MIGRATION_LOCK = int.from_bytes(b"chresc/m", "big") & 0x7FFF_FFFF_FFFF_FFFF

_MIGRATION_1 = """
    CREATE TABLE conversations (
        key text COLLATE "C" PRIMARY KEY,
        team text COLLATE "C" NOT NULL,
        customer text NOT NULL,
        opened_at double precision NOT NULL,
        state text NOT NULL,
        owner text,
        preview text NOT NULL DEFAULT '',
        timer_from double precision NOT NULL,
        waiting_since double precision,
        queued_at double precision,
        first_reply_at double precision,
        last_customer_at double precision,
        last_operator_at double precision,
        nudged_at double precision,
        snoozed boolean NOT NULL DEFAULT false,
        reminded boolean NOT NULL DEFAULT false,
        escalations integer NOT NULL DEFAULT 0,
        card text,
        deadline double precision,
        deadline_timer text,
        version integer NOT NULL DEFAULT 0,
        away_told_until double precision,
        rebased_at double precision,
        timer_used double precision,
        quiet_used double precision,
        kept_open_at double precision
    );
    CREATE INDEX conversations_deadline ON conversations (deadline)
        WHERE deadline IS NOT NULL;
    CREATE INDEX conversations_team_state ON conversations (team, state);
    CREATE INDEX conversations_open ON conversations (team, key) WHERE state <> 'closed';

    CREATE TABLE history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation text COLLATE "C" NOT NULL,
        team text COLLATE "C" NOT NULL,
        kind text NOT NULL,
        at double precision NOT NULL,
        actor text,
        value double precision,
        detail text
    );
    CREATE INDEX history_team_at ON history (team, at);

    CREATE TABLE settings (
        scope text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        value text NOT NULL,
        updated_by text,
        updated_at double precision,
        PRIMARY KEY (scope, key)
    );

    -- Ids come from a sequence: never used again, dead letters' included.
    CREATE TABLE outbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        lane text COLLATE "C" NOT NULL,
        kind text NOT NULL,
        payload text NOT NULL,
        not_before double precision NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        last_error text,
        created_at double precision NOT NULL,
        priority integer NOT NULL DEFAULT 1,
        locked_by text,
        locked_until double precision
    );
    CREATE INDEX outbox_lane ON outbox (lane, priority, id);

    CREATE TABLE dead_letters (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        outbox_id bigint NOT NULL,
        lane text COLLATE "C" NOT NULL,
        kind text NOT NULL,
        payload text NOT NULL,
        attempts integer NOT NULL,
        last_error text,
        failed_at double precision NOT NULL
    );

    CREATE TABLE inbound (
        id text COLLATE "C" PRIMARY KEY,
        seen_at double precision NOT NULL
    );
    CREATE INDEX inbound_seen_at ON inbound (seen_at);

    CREATE TABLE aliases (
        alias text COLLATE "C" PRIMARY KEY,
        conversation text COLLATE "C" NOT NULL
    );

    CREATE TABLE held (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        platform text NOT NULL,
        inbound_id text COLLATE "C" NOT NULL UNIQUE,
        body text NOT NULL,
        at double precision NOT NULL
    );

    CREATE TABLE sweeps (
        id text COLLATE "C" PRIMARY KEY,
        team text COLLATE "C" NOT NULL,
        ends_at double precision NOT NULL,
        sweep_at double precision NOT NULL,
        opens_at double precision,
        shifts text NOT NULL,
        phase text NOT NULL,
        due double precision,
        version integer NOT NULL DEFAULT 0,
        cursor text COLLATE "C" NOT NULL DEFAULT '',
        drawn_at double precision,
        unowned integer NOT NULL DEFAULT 0
    );
    CREATE INDEX sweeps_due ON sweeps (due) WHERE due IS NOT NULL;
    CREATE INDEX sweeps_team ON sweeps (team, phase);

    CREATE TABLE sweep_cards (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sweep text COLLATE "C" NOT NULL,
        operator text NOT NULL,
        UNIQUE (sweep, operator)
    );

    -- `seq` is SQLite's rowid: a conversation recorded again goes last.
    CREATE TABLE sweep_items (
        sweep text COLLATE "C" NOT NULL,
        conversation text COLLATE "C" NOT NULL,
        operator text,
        card bigint,
        grp text NOT NULL,
        choice text,
        fate text,
        customer text NOT NULL DEFAULT '',
        preview text NOT NULL DEFAULT '',
        since double precision NOT NULL DEFAULT 0,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (sweep, conversation)
    );
    CREATE INDEX sweep_items_card ON sweep_items (sweep, card)
"""

# The transaction that queued each outbox item, in commit order's terms: with several
# writers, ids are handed out in the order items are inserted, not committed, so a card
# update's id does not tell whether a card drawn later could show its change
# (`outbox_mark`, `supersede`). Items queued before this migration were committed by then.
_MIGRATION_2 = """
    ALTER TABLE outbox ADD COLUMN queued_by bigint NOT NULL
        DEFAULT (pg_current_xact_id()::text::bigint)
"""

# Outcomes and replays (SQLite's migration 12): when a conversation was last returned to
# the inbox, and the people's events the engine took, without message text.
_MIGRATION_3 = """
    ALTER TABLE conversations ADD COLUMN returned_at double precision;
    CREATE TABLE inputs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation text NOT NULL,
        team text NOT NULL,
        at double precision NOT NULL,
        kind text NOT NULL,
        data text NOT NULL
    );
    CREATE INDEX inputs_team_at ON inputs (team, at)
"""

# Reports count each kind of a team's history between two moments (storage/report_sql.py).
_MIGRATION_4 = """
    CREATE INDEX history_team_kind_at ON history (team, kind, at);
"""

MIGRATIONS: list[str] = [_MIGRATION_1, _MIGRATION_2, _MIGRATION_3, _MIGRATION_4]

_VERSIONS = """
    CREATE TABLE IF NOT EXISTS schema_version (
        version integer PRIMARY KEY,
        applied_at double precision NOT NULL
    )
"""


def migrate(conn: psycopg.Connection[tuple[Any, ...]],
            migrations: list[str] = MIGRATIONS,
            applied: Callable[[int], None] | None = None) -> int:
    """Bring the database `conn` is on to the newest version; returns that version, and
    tells `applied` the number of each migration this call ran.

    `conn` must be in autocommit mode (each migration is a transaction of its own). A
    database a newer release wrote is refused (SchemaTooNew) before anything is written.
    """
    for number, script in enumerate(migrations, start=1):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (MIGRATION_LOCK,))
            found = schema_version(conn)
            refuse_newer(found, len(migrations))
            if found < number:
                conn.execute(_VERSIONS)
                conn.execute(script)
                conn.execute("INSERT INTO schema_version (version, applied_at) "
                             "VALUES (%s, %s)", (number, time.time()))
        if found < number and applied is not None:
            applied(number)
    return len(migrations)


def schema_version(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    """The newest version applied (0: none, or no schema_version table yet)."""
    exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0

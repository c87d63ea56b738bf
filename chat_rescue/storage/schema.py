"""The SQLite schema as numbered migrations, run in order by `SQLiteStore.migrate`.

Each migration is a script run in one transaction with its version number; append only.
"""

from __future__ import annotations

_MIGRATION_1 = """
        CREATE TABLE conversations (
            key TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            customer TEXT NOT NULL,
            opened_at REAL NOT NULL,
            state TEXT NOT NULL,
            owner TEXT,
            preview TEXT NOT NULL DEFAULT '',
            timer_from REAL NOT NULL,
            waiting_since REAL,
            queued_at REAL,
            first_reply_at REAL,
            last_customer_at REAL,
            last_operator_at REAL,
            nudged_at REAL,
            snoozed INTEGER NOT NULL DEFAULT 0,
            reminded INTEGER NOT NULL DEFAULT 0,
            escalations INTEGER NOT NULL DEFAULT 0,
            card TEXT,
            deadline REAL,
            deadline_timer TEXT,
            version INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX conversations_deadline ON conversations(deadline)
            WHERE deadline IS NOT NULL;
        CREATE INDEX conversations_team_state ON conversations(team, state);
        CREATE TABLE history (
            id INTEGER PRIMARY KEY,
            conversation TEXT NOT NULL,
            team TEXT NOT NULL,
            kind TEXT NOT NULL,
            at REAL NOT NULL,
            actor TEXT,
            value REAL
        );
        CREATE INDEX history_team_at ON history(team, at);
        CREATE TABLE settings (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_by TEXT,
            updated_at REAL,
            PRIMARY KEY (scope, key)
        );
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            lane TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            not_before REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at REAL NOT NULL
        );
        CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY,
            lane TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            last_error TEXT,
            failed_at REAL NOT NULL
        );
        CREATE TABLE inbound (id TEXT PRIMARY KEY, seen_at REAL NOT NULL);
        CREATE INDEX inbound_seen_at ON inbound(seen_at);
        CREATE TABLE aliases (alias TEXT PRIMARY KEY, conversation TEXT NOT NULL);
"""

_MIGRATION_2 = """
        CREATE INDEX outbox_lane ON outbox(lane, id);
"""

# Outbox ids were reused once the outbox emptied (until migration 6), so dead letters
# need ids of their own.
_MIGRATION_3 = """
        CREATE TABLE dead_letters_new (
            id INTEGER PRIMARY KEY,
            outbox_id INTEGER NOT NULL,
            lane TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            last_error TEXT,
            failed_at REAL NOT NULL
        );
        INSERT INTO dead_letters_new (outbox_id, lane, kind, payload, attempts, last_error,
                                      failed_at)
            SELECT id, lane, kind, payload, attempts, last_error, failed_at FROM dead_letters;
        DROP TABLE dead_letters;
        ALTER TABLE dead_letters_new RENAME TO dead_letters;
"""

# Requests acknowledged while a platform was unreachable, handled once it is back.
_MIGRATION_4 = """
        CREATE TABLE held (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            inbound_id TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL,
            at REAL NOT NULL
        );
"""

# Lanes per conversation *and audience* (what goes to the customer never waits behind
# the team channel), a priority within a lane (copies of messages first), and a lease
# taken before an item is sent, so two processes never send one item.
_MIGRATION_5 = """
        ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE outbox ADD COLUMN locked_by TEXT;
        ALTER TABLE outbox ADD COLUMN locked_until REAL;
        UPDATE outbox SET priority = 0
            WHERE kind = 'Relay' AND NOT json_extract(payload, '$.to_customer');
        UPDATE outbox SET lane = lane || CASE
            WHEN kind = 'CloseNotice' OR (kind = 'Relay' AND json_extract(payload, '$.to_customer'))
            THEN '>customer' ELSE '>team' END;
        DROP INDEX outbox_lane;
        CREATE INDEX outbox_lane ON outbox(lane, priority, id)
"""

# Outbox ids are never used again (AUTOINCREMENT, counting on from every id used so far,
# dead letters' included). Several processes' workers hold ids they read a moment ago; an
# id that came back for a newer item made one lease, send and settle that item as the old
# one (the old action sent twice, the new one lost), and serve it from a decoding cache.
_MIGRATION_6 = """
        CREATE TABLE outbox_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            lane TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            not_before REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at REAL NOT NULL,
            priority INTEGER NOT NULL DEFAULT 1,
            locked_by TEXT,
            locked_until REAL
        );
        INSERT INTO outbox_new (id, lane, kind, payload, not_before, attempts, last_error,
                                created_at, priority, locked_by, locked_until)
            SELECT id, lane, kind, payload, not_before, attempts, last_error, created_at,
                   priority, locked_by, locked_until FROM outbox;
        DROP TABLE outbox;
        ALTER TABLE outbox_new RENAME TO outbox;
        DELETE FROM sqlite_sequence WHERE name = 'outbox';
        INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', max(
            (SELECT coalesce(max(id), 0) FROM outbox),
            (SELECT coalesce(max(outbox_id), 0) FROM dead_letters));
        CREATE INDEX outbox_lane ON outbox(lane, priority, id)
"""

# Working hours: when the customer, writing while the team was away, was told so and
# until when (the next opening); they are told once per closed period.
_MIGRATION_7 = """
        ALTER TABLE conversations ADD COLUMN away_told_until REAL
"""

# Working hours changed under running timers: when, and the working time each timer had
# used by then under the old hours.
_MIGRATION_8 = """
        ALTER TABLE conversations ADD COLUMN rebased_at REAL;
        ALTER TABLE conversations ADD COLUMN timer_used REAL;
        ALTER TABLE conversations ADD COLUMN quiet_used REAL
"""

# Closing reasons (a `closed` event's `detail`: by the operator, customer silence, at
# shift end, at dialogue end) and when the owner last said *Keep open* (the sweep counts
# such a conversation as finished until its next turn).
_MIGRATION_9 = """
        ALTER TABLE history ADD COLUMN detail TEXT;
        ALTER TABLE conversations ADD COLUMN kept_open_at REAL
"""

# The sweep before a shift ends: one row per team and shift-end instant (its id), whose
# `due` the ticker claims like a conversation's deadline, each step guarded by `version`;
# the cards posted (their ids are what the cards' buttons carry) and each conversation's
# group, the operator's choice and what the shift's end did with it.
_MIGRATION_10 = """
        CREATE TABLE sweeps (
            id TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            ends_at REAL NOT NULL,
            sweep_at REAL NOT NULL,
            opens_at REAL,
            shifts TEXT NOT NULL,
            phase TEXT NOT NULL,
            due REAL,
            version INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX sweeps_due ON sweeps(due) WHERE due IS NOT NULL;
        CREATE INDEX sweeps_team ON sweeps(team, phase);
        CREATE TABLE sweep_cards (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sweep TEXT NOT NULL,
            operator TEXT NOT NULL,
            UNIQUE (sweep, operator)
        );
        CREATE TABLE sweep_items (
            sweep TEXT NOT NULL,
            conversation TEXT NOT NULL,
            operator TEXT,
            card INTEGER,
            grp TEXT NOT NULL,
            choice TEXT,
            fate TEXT,
            PRIMARY KEY (sweep, conversation)
        )
"""

# A sweep's step is taken a slice at a time (one transaction each, so the event loop and
# other replicas are never held up long): where the step under way stands (`cursor`: the
# last conversation key or card taken), when the cards were drawn and how many
# conversations nobody had then, and each conversation's line on its card as drawn; the
# open conversations of a team by key, for those slices, and a card's lines.
_MIGRATION_11 = """
        ALTER TABLE sweeps ADD COLUMN cursor TEXT NOT NULL DEFAULT '';
        ALTER TABLE sweeps ADD COLUMN drawn_at REAL;
        ALTER TABLE sweeps ADD COLUMN unowned INTEGER NOT NULL DEFAULT 0;
        UPDATE sweeps SET drawn_at = sweep_at WHERE phase IN ('carded', 'handed', 'done');
        ALTER TABLE sweep_items ADD COLUMN customer TEXT NOT NULL DEFAULT '';
        ALTER TABLE sweep_items ADD COLUMN preview TEXT NOT NULL DEFAULT '';
        ALTER TABLE sweep_items ADD COLUMN since REAL NOT NULL DEFAULT 0;
        CREATE INDEX conversations_open ON conversations(team, key) WHERE state != 'closed';
        CREATE INDEX sweep_items_card ON sweep_items(sweep, card)
"""

# Outcomes and replays: when a conversation was last returned to the inbox (a reclaim is
# counted from it), and the people's events the engine took, without message text, so
# `chat-rescue whatif` can replay them with other thresholds (bot/inputs.py).
_MIGRATION_12 = """
        ALTER TABLE conversations ADD COLUMN returned_at REAL;
        CREATE TABLE inputs (
            id INTEGER PRIMARY KEY,
            conversation TEXT NOT NULL,
            team TEXT NOT NULL,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE INDEX inputs_team_at ON inputs(team, at)
"""

# Reports count each kind of a team's history between two moments (storage/report_sql.py):
# by kind first, one kind's rows are found without reading the others'.
_MIGRATION_13 = """
        CREATE INDEX history_team_kind_at ON history(team, kind, at)
"""

MIGRATIONS: list[str] = [_MIGRATION_1, _MIGRATION_2, _MIGRATION_3, _MIGRATION_4, _MIGRATION_5,
                         _MIGRATION_6, _MIGRATION_7, _MIGRATION_8, _MIGRATION_9,
                         _MIGRATION_10, _MIGRATION_11, _MIGRATION_12, _MIGRATION_13]

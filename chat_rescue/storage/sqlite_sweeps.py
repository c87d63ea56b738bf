"""The sweep half of SQLiteStore: a team's sweeps, their cards and their conversations.

A sweep's `due` is claimed by the ticker like a conversation's deadline (one indexed
query); each step moves it on conditionally on the version it was read at, inside the
transaction that does the step's work, so a step done is never done again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace

from chat_rescue.bot.sweep import Choice, Fate, Group, Phase, Sweep, SweepItem

_SWEEP_COLUMNS = (
    "id, team, ends_at, sweep_at, opens_at, shifts, phase, version, cursor, drawn_at, "
    "unowned"
)
_ITEM_COLUMNS = "sweep, conversation, operator, card, grp, choice, fate, customer, preview, since"


_UNDER_WAY = ("sorting", "drawing", "carded")  # cards being drawn or out, the end to come


class SweepTables:
    """The sweep ports (`SweepPlans`, `SweepCards`) and `Teams.teams` over `self.conn`
    (mixed into SQLiteStore)."""

    conn: sqlite3.Connection

    def plan_sweeps(self, team: str, sweeps: Sequence[Sweep], now: float) -> None:
        conn = self.conn
        conn.execute("SAVEPOINT plan")
        try:
            kept = [sweep.id for sweep in sweeps]
            others = f"id NOT IN ({', '.join('?' for _ in kept)})"
            # Planned again before its end, a called-off sweep starts afresh; so does one
            # whose cards are out when the shifts ending then changed (new members get
            # cards). An operator's card keeps its id, so a card already posted still works.
            for sweep in sweeps:
                row = conn.execute("SELECT phase, shifts FROM sweeps WHERE id = ? AND "
                                   "ends_at > ?", (sweep.id, now)).fetchone()
                if row is None or not (row[0] == "called_off" or row[0] in _UNDER_WAY
                                       and row[1] != ",".join(sweep.shifts)):
                    continue
                conn.execute("DELETE FROM sweep_items WHERE sweep = ?", (sweep.id,))
                conn.execute("UPDATE sweeps SET phase = 'planned', cursor = '', drawn_at = NULL, "
                             "unowned = 0, version = version + 1 WHERE id = ?", (sweep.id,))
            for sweep in sweeps:
                conn.execute(
                    "INSERT INTO sweeps (id, team, ends_at, sweep_at, opens_at, shifts, phase, "
                    "due) VALUES (?, ?, ?, ?, ?, ?, 'planned', ?) ON CONFLICT (id) DO UPDATE "
                    "SET sweep_at = excluded.sweep_at, opens_at = excluded.opens_at, "
                    "shifts = excluded.shifts, due = excluded.due, version = version + 1 "
                    "WHERE phase = 'planned' AND (sweep_at, opens_at, shifts, due) IS NOT "
                    "(excluded.sweep_at, excluded.opens_at, excluded.shifts, excluded.due)",
                    (sweep.id, team, sweep.ends_at, sweep.sweep_at, sweep.opens_at,
                     ",".join(sweep.shifts), sweep.sweep_at))
            # One whose end passed (the bot was down) is still carried out.
            conn.execute(f"DELETE FROM sweeps WHERE team = ? AND phase = 'planned' "
                         f"AND ends_at > ? AND {others}", (team, now, *kept))
            conn.execute(
                "UPDATE sweeps SET phase = 'called_off', due = NULL, cursor = '', "
                "version = version + 1 WHERE team = ? AND ends_at > ? "
                f"AND phase IN ('sorting', 'drawing', 'carded') AND {others}", (team, now, *kept))
        except BaseException:
            conn.execute("ROLLBACK TO plan")
            conn.execute("RELEASE plan")
            raise
        conn.execute("RELEASE plan")

    def sweep(self, sweep_id: str) -> Sweep | None:
        row = self.conn.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = ?",
                                (sweep_id,)).fetchone()
        return _sweep(row) if row else None

    def sweeps(self, team: str) -> list[Sweep]:
        """A team's sweeps, by the instant their shifts end. Not a port: the running bot
        reads sweeps by id or when due; tests and the demo list them."""
        rows = self.conn.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE team = ? "
                                 "ORDER BY ends_at", (team,)).fetchall()
        return [_sweep(row) for row in rows]

    def due_sweeps(self, now: float, limit: int) -> list[Sweep]:
        rows = self.conn.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE due IS NOT NULL "
                                 "AND due <= ? ORDER BY due LIMIT ?", (now, limit)).fetchall()
        return [_sweep(row) for row in rows]

    def advance_sweep(self, sweep: Sweep, phase: Phase) -> bool:
        moved = replace(sweep, phase=phase)
        updated = self.conn.execute(
            "UPDATE sweeps SET phase = ?, opens_at = ?, due = ?, cursor = ?, drawn_at = ?, "
            "unowned = ?, version = version + 1 WHERE id = ? AND version = ?",
            (phase.value, sweep.opens_at, moved.due, sweep.cursor, sweep.drawn_at,
             sweep.unowned, sweep.id, sweep.version))
        return updated.rowcount == 1

    def postpone_sweep(self, sweep_id: str, until: float) -> None:
        self.conn.execute("UPDATE sweeps SET due = ? WHERE id = ? AND due IS NOT NULL",
                          (until, sweep_id))

    def add_sweep_card(self, sweep_id: str, operator: str) -> int:
        self.conn.execute("INSERT OR IGNORE INTO sweep_cards (sweep, operator) VALUES (?, ?)",
                          (sweep_id, operator))
        row = self.conn.execute("SELECT id FROM sweep_cards WHERE sweep = ? AND operator = ?",
                                (sweep_id, operator)).fetchone()
        return int(row[0])

    def sweep_cards(self, sweep_id: str) -> list[tuple[int, str]]:
        rows = self.conn.execute("SELECT id, operator FROM sweep_cards WHERE sweep = ? "
                                 "ORDER BY id", (sweep_id,)).fetchall()
        return [(int(card), str(operator)) for card, operator in rows]

    def sweep_card(self, card_id: int) -> tuple[str, str] | None:
        row = self.conn.execute("SELECT sweep, operator FROM sweep_cards WHERE id = ?",
                                (card_id,)).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def put_sweep_items(self, items: Sequence[SweepItem]) -> None:
        self.conn.executemany(
            f"INSERT OR REPLACE INTO sweep_items ({_ITEM_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i.sweep, i.conversation, i.operator, i.card, i.group.value,
              i.choice.value if i.choice else None, i.fate.value if i.fate else None,
              i.customer, i.preview, i.since) for i in items])

    def sweep_items(self, sweep_id: str, keys: Sequence[str] | None = None,
                    card: int | None = None) -> list[SweepItem]:
        if keys is None:
            where, args = ("AND card = ?", (card,)) if card is not None else ("", ())
            rows = self.conn.execute(f"SELECT {_ITEM_COLUMNS} FROM sweep_items WHERE sweep = ? "
                                     f"{where} ORDER BY rowid", (sweep_id, *args)).fetchall()
        else:
            rows = []
            for start in range(0, len(keys), 500):  # within SQLite's bound on parameters
                chunk = keys[start:start + 500]
                rows += self.conn.execute(
                    f"SELECT {_ITEM_COLUMNS}, rowid FROM sweep_items WHERE sweep = ? AND "
                    f"conversation IN ({', '.join('?' for _ in chunk)})",
                    (sweep_id, *chunk)).fetchall()
            rows = [row[:-1] for row in sorted(rows, key=lambda row: row[-1])]
        return [_item(row) for row in rows]

    def teams(self) -> list[str]:
        return [str(r[0]) for r in self.conn.execute("SELECT DISTINCT team FROM conversations")]


def _sweep(row: tuple[object, ...]) -> Sweep:
    sweep_id, team, ends_at, sweep_at, opens_at, shifts, phase, version, cursor, drawn, \
        unowned = row
    return Sweep(str(sweep_id), str(team), float(ends_at), float(sweep_at),  # type: ignore[arg-type]
                 None if opens_at is None else float(opens_at),  # type: ignore[arg-type]
                 tuple(str(shifts).split(",")), Phase(str(phase)), int(version),  # type: ignore[call-overload]
                 str(cursor), None if drawn is None else float(drawn),  # type: ignore[arg-type]
                 int(unowned))  # type: ignore[call-overload]


def _item(row: tuple[object, ...]) -> SweepItem:
    sweep, key, operator, card, group, choice, fate, customer, preview, since = row
    return SweepItem(str(sweep), str(key), None if operator is None else str(operator),
                     None if card is None else int(card),  # type: ignore[call-overload]
                     Group(str(group)), Choice(str(choice)) if choice else None,
                     Fate(str(fate)) if fate else None, str(customer or ""),
                     str(preview or ""), float(since or 0.0))  # type: ignore[arg-type]

"""The sweep half of SQLiteStore: a team's sweeps, their cards and their conversations.

A sweep's `due` is claimed by the ticker like a conversation's deadline (one indexed
query); each step moves it on conditionally on the version it was read at, inside the
transaction that does the step's work, so a step done is never done again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from chat_rescue.bot.sweep import Choice, Fate, Group, Phase, Sweep, SweepItem

_SWEEP_COLUMNS = "id, team, ends_at, sweep_at, opens_at, shifts, phase, version"


class SweepTables:
    """SweepStore methods over `self.conn` (mixed into SQLiteStore)."""

    conn: sqlite3.Connection

    def plan_sweeps(self, team: str, sweeps: Sequence[Sweep]) -> None:
        conn = self.conn
        conn.execute("SAVEPOINT plan")
        try:
            for sweep in sweeps:
                conn.execute(
                    "INSERT INTO sweeps (id, team, ends_at, sweep_at, opens_at, shifts, phase, "
                    "due) VALUES (?, ?, ?, ?, ?, ?, 'planned', ?) ON CONFLICT (id) DO UPDATE "
                    "SET sweep_at = excluded.sweep_at, opens_at = excluded.opens_at, "
                    "shifts = excluded.shifts, due = excluded.due, version = version + 1 "
                    "WHERE phase = 'planned' AND (sweep_at, opens_at, shifts) IS NOT "
                    "(excluded.sweep_at, excluded.opens_at, excluded.shifts)",
                    (sweep.id, team, sweep.ends_at, sweep.sweep_at, sweep.opens_at,
                     ",".join(sweep.shifts), sweep.sweep_at))
            kept = [sweep.id for sweep in sweeps]
            conn.execute(
                f"DELETE FROM sweeps WHERE team = ? AND phase = 'planned' "
                f"AND id NOT IN ({', '.join('?' for _ in kept)})", (team, *kept))
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
        rows = self.conn.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE team = ? "
                                 "ORDER BY ends_at", (team,)).fetchall()
        return [_sweep(row) for row in rows]

    def due_sweeps(self, now: float, limit: int) -> list[Sweep]:
        rows = self.conn.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE due IS NOT NULL "
                                 "AND due <= ? ORDER BY due LIMIT ?", (now, limit)).fetchall()
        return [_sweep(row) for row in rows]

    def advance_sweep(self, sweep: Sweep, phase: Phase) -> bool:
        moved = Sweep(sweep.id, sweep.team, sweep.ends_at, sweep.sweep_at, sweep.opens_at,
                      sweep.shifts, phase)
        updated = self.conn.execute(
            "UPDATE sweeps SET phase = ?, opens_at = ?, due = ?, version = version + 1 "
            "WHERE id = ? AND version = ?",
            (phase.value, sweep.opens_at, moved.due, sweep.id, sweep.version))
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

    def sweep_card(self, card_id: int) -> tuple[str, str] | None:
        row = self.conn.execute("SELECT sweep, operator FROM sweep_cards WHERE id = ?",
                                (card_id,)).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def put_sweep_items(self, items: Sequence[SweepItem]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO sweep_items (sweep, conversation, operator, card, grp, "
            "choice, fate) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(i.sweep, i.conversation, i.operator, i.card, i.group.value,
              i.choice.value if i.choice else None, i.fate.value if i.fate else None)
             for i in items])

    def sweep_items(self, sweep_id: str) -> list[SweepItem]:
        rows = self.conn.execute(
            "SELECT sweep, conversation, operator, card, grp, choice, fate FROM sweep_items "
            "WHERE sweep = ? ORDER BY rowid", (sweep_id,)).fetchall()
        return [SweepItem(str(s), str(c), o, card, Group(g), Choice(ch) if ch else None,
                          Fate(f) if f else None) for s, c, o, card, g, ch, f in rows]

    def teams(self) -> list[str]:
        return [str(r[0]) for r in self.conn.execute("SELECT DISTINCT team FROM conversations")]


def _sweep(row: tuple[object, ...]) -> Sweep:
    sweep_id, team, ends_at, sweep_at, opens_at, shifts, phase, version = row
    return Sweep(str(sweep_id), str(team), float(ends_at), float(sweep_at),  # type: ignore[arg-type]
                 None if opens_at is None else float(opens_at),  # type: ignore[arg-type]
                 tuple(str(shifts).split(",")), Phase(str(phase)), int(version))  # type: ignore[call-overload]

"""The sweep half of PostgresStore: a team's sweeps, their cards and their conversations.

As in SQLite (`sqlite_sweeps.py`), each step moves a sweep on conditionally on the
version it was read at, inside the transaction that does the step's work. Due steps are
read `FOR UPDATE SKIP LOCKED`: inside a batch, a step another replica has claimed is
skipped rather than waited for; the version stays the guard either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from chat_rescue.bot.sweep import Phase, Sweep, SweepItem
from chat_rescue.storage.postgres_pool import PooledConnections
from chat_rescue.storage.sqlite_sweeps import _item, _sweep

_SWEEP_COLUMNS = (
    "id, team, ends_at, sweep_at, opens_at, shifts, phase, version, cursor, drawn_at, "
    "unowned"
)
_ITEM_COLUMNS = "sweep, conversation, operator, card, grp, choice, fate, customer, preview, since"
_UNDER_WAY = ["sorting", "drawing", "carded"]  # cards being drawn or out, the end to come


class SweepTables(PooledConnections):
    """The sweep ports (`SweepPlans`, `SweepCards`) over PostgreSQL (a base of PostgresStore)."""

    def plan_sweeps(self, team: str, sweeps: Sequence[Sweep], now: float) -> None:
        kept = [sweep.id for sweep in sweeps]
        with self._transaction() as conn:
            # Planned again before its end, a called-off sweep starts afresh; so does one
            # whose cards are out when the shifts ending then changed (new members get
            # cards). An operator's card keeps its id, so a card already posted still works.
            for sweep in sweeps:
                row = conn.execute("SELECT phase, shifts FROM sweeps WHERE id = %s AND "
                                   "ends_at > %s", (sweep.id, now)).fetchone()
                if row is None or not (row[0] == "called_off" or row[0] in _UNDER_WAY
                                       and row[1] != ",".join(sweep.shifts)):
                    continue
                conn.execute("DELETE FROM sweep_items WHERE sweep = %s", (sweep.id,))
                conn.execute("UPDATE sweeps SET phase = 'planned', cursor = '', "
                             "drawn_at = NULL, unowned = 0, version = version + 1 "
                             "WHERE id = %s", (sweep.id,))
            planned: list[float] = []  # when the steps added or moved are due
            for sweep in sweeps:
                # Not one upsert: ON CONFLICT DO UPDATE locks the row even when its WHERE
                # holds not, and a step under way on another replica would be passed over.
                values = (sweep.sweep_at, sweep.opens_at, ",".join(sweep.shifts),
                          sweep.sweep_at)
                added = conn.execute(
                    "INSERT INTO sweeps (id, team, ends_at, sweep_at, opens_at, shifts, phase, "
                    "due) VALUES (%s, %s, %s, %s, %s, %s, 'planned', %s) "
                    "ON CONFLICT (id) DO NOTHING",
                    (sweep.id, team, sweep.ends_at, *values)).rowcount
                moved = conn.execute(
                    "UPDATE sweeps SET sweep_at = %s, opens_at = %s, shifts = %s, due = %s, "
                    "version = version + 1 WHERE id = %s AND phase = 'planned' "
                    "AND (sweep_at, opens_at, shifts, due) IS DISTINCT FROM (%s, %s, %s, %s)",
                    (*values, sweep.id, *values)).rowcount
                if added or moved:
                    planned.append(sweep.sweep_at)
            # One whose end passed (the bot was down) is still carried out.
            conn.execute("DELETE FROM sweeps WHERE team = %s AND phase = 'planned' "
                         "AND ends_at > %s AND id <> ALL(%s::text[])", (team, now, kept))
            conn.execute(
                "UPDATE sweeps SET phase = 'called_off', due = NULL, cursor = '', "
                "version = version + 1 WHERE team = %s AND ends_at > %s "
                "AND phase = ANY(%s::text[]) AND id <> ALL(%s::text[])",
                (team, now, _UNDER_WAY, kept))
            if planned:
                self._announce(conn, lambda news: news.stored(min(planned)))

    def sweep(self, sweep_id: str) -> Sweep | None:
        row = self._row(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = %s", (sweep_id,))
        return _sweep(row) if row else None

    def sweeps(self, team: str) -> list[Sweep]:
        rows = self._rows(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE team = %s "
                          "ORDER BY ends_at", (team,))
        return [_sweep(row) for row in rows]

    def due_sweeps(self, now: float, limit: int) -> list[Sweep]:
        rows = self._rows(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE due IS NOT NULL "
                          "AND due <= %s ORDER BY due LIMIT %s FOR UPDATE SKIP LOCKED",
                          (now, limit))
        sweeps = [_sweep(row) for row in rows]
        first = sweeps[0].due if sweeps else None
        if first is not None and self._held.news is not None:  # held until the batch ends
            self._held.news.held(first)
        return sweeps

    def advance_sweep(self, sweep: Sweep, phase: Phase) -> bool:
        moved = replace(sweep, phase=phase)
        with self._transaction() as conn:
            done = conn.execute(
                "UPDATE sweeps SET phase = %s, opens_at = %s, due = %s, cursor = %s, "
                "drawn_at = %s, unowned = %s, version = version + 1 "
                "WHERE id = %s AND version = %s",
                (phase.value, sweep.opens_at, moved.due, sweep.cursor, sweep.drawn_at,
                 sweep.unowned, sweep.id, sweep.version)).rowcount == 1
            if done:
                self._announce(conn, lambda news: news.stored(moved.due))
        return done

    def postpone_sweep(self, sweep_id: str, until: float) -> None:
        self._run("UPDATE sweeps SET due = %s WHERE id = %s AND due IS NOT NULL",
                  (until, sweep_id))

    def add_sweep_card(self, sweep_id: str, operator: str) -> int:
        with self._connection() as conn:
            row = conn.execute("INSERT INTO sweep_cards (sweep, operator) VALUES (%s, %s) "
                               "ON CONFLICT (sweep, operator) DO NOTHING RETURNING id",
                               (sweep_id, operator)).fetchone()
            if row is None:
                row = conn.execute("SELECT id FROM sweep_cards WHERE sweep = %s "
                                   "AND operator = %s", (sweep_id, operator)).fetchone()
        assert row is not None
        return int(row[0])

    def sweep_cards(self, sweep_id: str) -> list[tuple[int, str]]:
        rows = self._rows("SELECT id, operator FROM sweep_cards WHERE sweep = %s ORDER BY id",
                          (sweep_id,))
        return [(int(card), str(operator)) for card, operator in rows]

    def sweep_card(self, card_id: int) -> tuple[str, str] | None:
        row = self._row("SELECT sweep, operator FROM sweep_cards WHERE id = %s", (card_id,))
        return (str(row[0]), str(row[1])) if row else None

    def put_sweep_items(self, items: Sequence[SweepItem]) -> None:
        if not items:
            return
        with self._connection() as conn, conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO sweep_items ({_ITEM_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (sweep, conversation) DO UPDATE SET operator = excluded.operator, "
                "card = excluded.card, grp = excluded.grp, choice = excluded.choice, "
                "fate = excluded.fate, customer = excluded.customer, "
                "preview = excluded.preview, since = excluded.since, seq = DEFAULT",
                [(i.sweep, i.conversation, i.operator, i.card, i.group.value,
                  i.choice.value if i.choice else None, i.fate.value if i.fate else None,
                  i.customer, i.preview, i.since) for i in items])

    def sweep_items(self, sweep_id: str, keys: Sequence[str] | None = None,
                    card: int | None = None) -> list[SweepItem]:
        where = ""
        args: tuple[Any, ...] = ()
        if keys is not None:
            where, args = "AND conversation = ANY(%s::text[])", (list(keys),)
        elif card is not None:
            where, args = "AND card = %s", (card,)
        rows = self._rows(f"SELECT {_ITEM_COLUMNS} FROM sweep_items WHERE sweep = %s "
                          f"{where} ORDER BY seq", (sweep_id, *args))
        return [_item(row) for row in rows]

    def teams(self) -> list[str]:
        return [str(row[0]) for row in self._rows("SELECT DISTINCT team FROM conversations")]

"""`Reports.tallies` for both backends: a report's history counted where the rows are.

A 30-day report of a busy team reads hundreds of thousands of history rows; made into
objects on the store's thread they cost seconds (and every other store call waits). Here
each kind is counted by the database off the `history_team_kind_at` index (SQLite
migration 13, PostgreSQL 4), and only first replies come back one by one: a few thousand
grouped rows and one row per first reply, plain tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chat_rescue.bot.report import RESCUES, Tallies

Rows = Callable[[str, tuple[Any, ...]], Sequence[Sequence[Any]]]


def _on(select: str, kinds: str, rest: str = "") -> str:
    """A query on one team's rows of some `kinds` between two moments (both included)."""
    return (f"SELECT {select} FROM history WHERE team = {{p}} AND kind {kinds} "
            f"AND at >= {{p}} AND at <= {{p}}{rest}")


_QUERIES = {
    "openings": _on("{slot}, count(*)", "IN ('opened', 'reopened')", " GROUP BY 1"),
    "first_replies": _on("conversation, at, actor, value", "= 'first_reply'",
                         " AND value IS NOT NULL"),
    "owned": _on("actor, count(DISTINCT conversation)", "IN ('claimed', 'first_reply')",
                 " AND actor IS NOT NULL AND (kind = 'claimed' OR value IS NOT NULL)"
                 " GROUP BY actor"),
    "nudged": _on("actor, count(*)", "= 'nudged'", " AND actor IS NOT NULL GROUP BY actor"),
    "outcomes": _on("detail, actor, {slot}, count(*)", "= 'outcome'",
                    " AND detail IS NOT NULL AND detail != '' GROUP BY 1, 2, 3"),
    # One rescue per answer (conversation and moment), as its latest step: `RESCUES`.
    "rescues": "SELECT slot, step, count(*) FROM ("
               + _on("{slot} AS slot, max(CASE detail "
                     + " ".join(f"WHEN '{d}' THEN {i}" for i, d in enumerate(RESCUES))
                     + " END) AS step", "= 'outcome'",
                     " AND detail IN (" + ", ".join(f"'{d}'" for d in RESCUES) + ")"
                     " GROUP BY conversation, at")
               + ") AS answers GROUP BY slot, step",
    "shift_end": _on("actor, count(*)", "= 'returned'",
                     " AND detail = 'shift_end' AND actor IS NOT NULL GROUP BY actor"),
    "closed": _on("detail, count(*)", "= 'closed'", " GROUP BY detail"),
}


def queries(mark: str, slot: str) -> dict[str, str]:
    """The queries in one backend's dialect: its parameter `mark`, and its expression of
    an event's quarter-hour slot, `at // 900` (floor: SQLite's CAST truncates, which is
    the same for moments after 1970)."""
    return {name: sql.format(p=mark, slot=slot) for name, sql in _QUERIES.items()}


def tallies(rows: Rows, sql: dict[str, str], team: str, since: float,
            until: float) -> Tallies:
    """The tallies of a team's history from `since` to `until`, both included."""
    params = (team, since, until)

    def counted(name: str) -> dict[Any, int]:
        return {key: int(n) for key, n in rows(sql[name], params)}

    return Tallies(
        openings={int(slot): n for slot, n in counted("openings").items()},
        first_replies=[(str(key), float(at), actor, float(value))
                       for key, at, actor, value in rows(sql["first_replies"], params)],
        owned=counted("owned"),
        nudged=counted("nudged"),
        outcomes=[(str(detail), actor, int(slot), int(n))
                  for detail, actor, slot, n in rows(sql["outcomes"], params)],
        rescues={(int(slot), int(step)): int(n)
                 for slot, step, n in rows(sql["rescues"], params)},
        shift_end=counted("shift_end"),
        closed=counted("closed"),
    )

"""The statements PostgresStore writes a commit's rows with.

Each table's rows go as one array per column (`unnest`), so one statement of fixed text
writes any number of rows to all the tables a commit touches: one round trip, planned
and prepared once, where a VALUES list would be a new statement for every count of rows
and an `executemany` a pipeline and a round trip per table. The sub-statements of a
data-modifying WITH each run once, to completion, whatever the last part reads; rows are
inserted in their arrays' order (`WITH ORDINALITY … ORDER BY`), so outbox ids follow the
order the actions were queued in (a lane's order).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

from chat_rescue.bot.model import Conversation
from chat_rescue.storage.rows import COLUMNS

FLOAT, TEXT, INT, BOOL = "float8", "text", "integer", "boolean"

HISTORY = (("conversation", TEXT), ("team", TEXT), ("kind", TEXT), ("at", FLOAT),
           ("actor", TEXT), ("value", FLOAT), ("detail", TEXT))
OUTBOX = (("lane", TEXT), ("priority", INT), ("kind", TEXT), ("payload", TEXT),
          ("not_before", FLOAT), ("created_at", FLOAT))
INPUTS = (("conversation", TEXT), ("team", TEXT), ("at", FLOAT), ("kind", TEXT),
          ("data", TEXT))
ALIASES = (("alias", TEXT), ("conversation", TEXT))
FORGOTTEN = (("id", TEXT),)



def _kind_of(annotation: object) -> str:
    """The column type of a Conversation field (enums are stored as their text)."""
    args = typing.get_args(annotation) or (annotation,)
    kinds = {float: FLOAT, bool: BOOL, int: INT}
    found = {kinds.get(arg, TEXT) for arg in args if arg is not type(None)}
    assert len(found) == 1, annotation
    return found.pop()


_CONVERSATION = {name: _kind_of(hint)
                 for name, hint in typing.get_type_hints(Conversation).items()}
# A conversation's row as an update writes it: its fields but the version (which goes up
# by one), then its key and the version it was read at (`row_of(conv)[:-1]`, key, version).
UPDATED = (*((name, _CONVERSATION[name]) for name in COLUMNS if name != "version"),
           ("key", TEXT), ("expected", INT))


def _arrays(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"%b::{kind}[]" for _, kind in columns)


def _insert(name: str, table: str, columns: Sequence[tuple[str, str]]) -> str:
    names = ", ".join(column for column, _ in columns)
    return (f"{name} AS (INSERT INTO {table} ({names}) SELECT {names} FROM "
            f"unnest({_arrays(columns)}) WITH ORDINALITY AS r({names}, n) ORDER BY n)")


_REST = ", ".join((_insert("h", "history", HISTORY), _insert("o", "outbox", OUTBOX),
                   _insert("i", "inputs", INPUTS)))
_ASSIGNMENTS = ", ".join(f"{name} = v.{name}" for name, _ in UPDATED[:-2])
_UPDATE_NAMES = ", ".join(name for name, _ in UPDATED)

# History rows, outbox rows and recorded inputs: the parameters of `rest(...)`.
REST_SQL = f"WITH {_REST} SELECT 1"
# Those, after the conversations' conditional updates, with aliases and inbound ids a
# group recorded but did not use (forgotten again): the parameters of `changes(...)`; the
# one row read is how many conversations were updated.
UPDATE_SQL = (f"WITH v AS (SELECT * FROM unnest({_arrays(UPDATED)}) AS v({_UPDATE_NAMES})), "
              f"u AS (UPDATE conversations c SET {_ASSIGNMENTS}, version = c.version + 1 "
              "FROM v WHERE c.key = v.key AND c.version = v.expected RETURNING 1), "
              f"{_REST}, a AS (INSERT INTO aliases (alias, conversation) SELECT * FROM "
              f"unnest({_arrays(ALIASES)}) ON CONFLICT (alias) DO UPDATE SET "
              "conversation = excluded.conversation), "
              f"d AS (DELETE FROM inbound WHERE id = ANY({_arrays(FORGOTTEN)})) "
              "SELECT count(*) FROM u")


def columns(rows: Sequence[Sequence[Any]], kinds: Sequence[tuple[str, str]]
            ) -> list[list[Any]]:
    """`rows` as one list per column. A timestamp may be an int (a test's clock, an old
    row): psycopg dumps a list of one Python type only."""
    arrays = []
    for at, (_, kind) in enumerate(kinds):
        values = [row[at] for row in rows]
        if kind == FLOAT:
            values = [None if value is None else float(value) for value in values]
        arrays.append(values)
    return arrays


def rest(history: Sequence[Sequence[Any]], actions: Sequence[Sequence[Any]],
         inputs: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The parameters of REST_SQL."""
    return [*columns(history, HISTORY), *columns(actions, OUTBOX), *columns(inputs, INPUTS)]


def changes(updated: Sequence[Sequence[Any]], history: Sequence[Sequence[Any]],
            actions: Sequence[Sequence[Any]], inputs: Sequence[Sequence[Any]],
            aliases: Sequence[tuple[str, str]] = (), forgotten: Sequence[str] = ()
            ) -> list[list[Any]]:
    """The parameters of UPDATE_SQL. An alias named twice is written once, as named last
    (one statement cannot change a row twice)."""
    named = list(dict(aliases).items())
    return [*columns(updated, UPDATED), *rest(history, actions, inputs),
            *columns(named, ALIASES), list(dict.fromkeys(forgotten))]

"""A conversation as a row of the `conversations` table, the same in every backend: its
key, then its fields in declaration order (enums as their values; SQLite keeps booleans as
integers, which read back through `bool`)."""

from __future__ import annotations

import dataclasses
import logging
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from chat_rescue.bot.model import Conversation, ConversationRef, State, Timer, build

log = logging.getLogger(__name__)

UNREADABLE_RETRY = 300.0  # seconds before a due row that would not read is looked at again
COLUMNS = [f.name for f in dataclasses.fields(Conversation) if f.name != "ref"]
_BOOL_AT = [i for i, name in enumerate(COLUMNS) if name in ("snoozed", "reminded")]
_STATE_AT = COLUMNS.index("state")
_TIMER_AT = COLUMNS.index("deadline_timer")
_get_columns = operator.attrgetter(*COLUMNS)
_STATES = {state.value: state for state in State}  # a lookup, not an Enum call per row
_TIMERS = {timer.value: timer for timer in Timer}


def row_of(conv: Conversation) -> tuple[Any, ...]:
    """The values of COLUMNS (the key not included)."""
    values = list(_get_columns(conv))
    values[_STATE_AT] = values[_STATE_AT].value
    if values[_TIMER_AT] is not None:
        values[_TIMER_AT] = values[_TIMER_AT].value
    return tuple(values)


def conversation_of(row: Sequence[Any]) -> Conversation:
    """A row read as `key, *COLUMNS`."""
    values = list(row)
    values[0] = ConversationRef.parse(str(row[0]))
    for i in _BOOL_AT:
        values[i + 1] = bool(values[i + 1])
    values[_STATE_AT + 1] = _STATES[values[_STATE_AT + 1]]
    if values[_TIMER_AT + 1] is not None:
        values[_TIMER_AT + 1] = _TIMERS[values[_TIMER_AT + 1]]
    return build(values)


def due_of(rows: Iterable[Sequence[Any]], now: float,
           postpone: Callable[[str, float], None]) -> list[Conversation]:
    """Due rows read as conversations. One that does not read (a state a newer release
    wrote, a row edited by hand) is logged and its deadline moved UNREADABLE_RETRY on:
    first in deadline order, it would otherwise stop every other timer on every pass."""
    found = []
    for row in rows:
        try:
            found.append(conversation_of(row))
        except Exception:
            log.error("conversation %s cannot be read; its deadline is looked at again in "
                      "%gs", row[0], UNREADABLE_RETRY, exc_info=True)
            postpone(str(row[0]), now + UNREADABLE_RETRY)
    return found

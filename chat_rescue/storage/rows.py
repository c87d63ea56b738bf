"""A conversation as a row of the `conversations` table, the same in every backend: its
key, then its fields in declaration order (enums as their values; SQLite keeps booleans as
integers, which read back through `bool`)."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from typing import Any

from chat_rescue.bot.model import Conversation, ConversationRef, State, Timer, build

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

"""The people's events the engine took, recorded so that history can be replayed.

`chat-rescue whatif` and `/rescue tune` replay them through the engine with other
thresholds. Only what the engine decides on is kept: who, when, which button and notice;
never message text. Timers firing are not recorded (a replay fires its own), nor are
changes of working hours (a replay counts in the hours in force today), nor presses that
changed nothing (a replay has them change nothing too).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    HandOff,
    InboundEvent,
    KeepOpen,
    OperatorMessage,
    ShiftEnd,
    Snooze,
)

_KINDS: dict[str, type[Any]] = {
    "customer": CustomerMessage,
    "operator": OperatorMessage,
    "claim": Claim,
    "close": Close,
    "snooze": Snooze,
    "hand_off": HandOff,
    "keep_open": KeepOpen,
    "shift_end": ShiftEnd,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}
RECORDED = tuple(_KINDS.values())


@dataclass(frozen=True, slots=True)
class Input:
    """One recorded event: taken at `at` (the service's clock, the engine's `now`);
    `opened`: it opened the conversation."""

    event: InboundEvent
    team: str
    at: float
    opened: bool = False

    @property
    def key(self) -> str:
        return self.event.ref.key


def record_of(event: InboundEvent, team: str, now: float, opened: bool,
              changed: bool) -> tuple[Input, ...]:
    """What to record of `event`, decided at `now` (nothing for a timer, or a press that
    changed nothing); a customer's words are left out."""
    if not isinstance(event, RECORDED) or not changed:
        return ()
    if isinstance(event, CustomerMessage):
        event = dataclasses.replace(event, text="")
    return (Input(event, team, now, opened),)


def encode(item: Input) -> tuple[str, str, float, str, str]:
    """(conversation, team, at, kind, data) for the `inputs` table."""
    fields = {f.name: getattr(item.event, f.name) for f in dataclasses.fields(item.event)
              if f.name not in ("ref", "text")}
    if item.opened:
        fields["opened"] = True
    return (item.key, item.team, item.at, _NAMES[type(item.event)],
            json.dumps(fields, separators=(",", ":")))


def decode(conversation: str, team: str, at: float, kind: str, data: str) -> Input:
    """An `inputs` row read back."""
    fields = json.loads(data)
    opened = bool(fields.pop("opened", False))
    event = _KINDS[kind](ConversationRef.parse(conversation), **fields)
    return Input(event, team, at, opened)

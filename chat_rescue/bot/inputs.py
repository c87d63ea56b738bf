"""The people's events the engine took, recorded so that history can be replayed.

`chat-rescue whatif` and `/rescue tune` replay them through the engine with other
thresholds. Only what the engine decides on is kept: who, when, which button and notice,
whether a press changed anything; never message text. Timers firing are not recorded (a
replay fires its own), nor are changes of working hours (a replay counts in the hours in
force today).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import orjson

from chat_rescue.bot.model import (
    Claim,
    Close,
    Conversation,
    ConversationRef,
    CustomerMessage,
    HandOff,
    InboundEvent,
    KeepOpen,
    OperatorMessage,
    ShiftEnd,
    Snooze,
    State,
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
    """One recorded event: taken at `at` (the service's clock, the engine's `now`).

    `opened`: a customer's message that began an exchange, a replay may start at: the
    conversation's first, or one that reopened it (`reopened`; `owner`: whom it kept).
    `refused`: a press that changed nothing then (stale, or not the presser's to make).
    """

    event: InboundEvent
    team: str
    at: float
    opened: bool = False
    reopened: bool = False
    owner: str | None = None
    refused: bool = False

    @property
    def key(self) -> str:
        return self.event.ref.key


def record_of(event: InboundEvent, team: str, now: float, before: Conversation | None,
              refused: bool) -> tuple[Input, ...]:
    """What to record of `event`, decided at `now` on `before` (nothing for a timer);
    a customer's words are left out."""
    if not isinstance(event, RECORDED):
        return ()
    if isinstance(event, CustomerMessage):
        event = dataclasses.replace(event, text="")
        if before is None:
            return (Input(event, team, now, opened=True),)
        if before.state is State.CLOSED:
            return (Input(event, team, now, opened=True, reopened=True, owner=before.owner),)
    return (Input(event, team, now, refused=refused),)


def encode(item: Input) -> tuple[str, str, float, str, str]:
    """(conversation, team, at, kind, data) for the `inputs` table."""
    event = item.event
    fields = {name: getattr(event, name) for name in _fields_of(type(event))}
    for flag in ("opened", "reopened", "refused"):  # "_": never an event's own field
        if getattr(item, flag):
            fields[f"_{flag}"] = True
    if item.owner is not None:
        fields["_owner"] = item.owner
    return (item.key, item.team, item.at, _NAMES[type(event)], _JSON.encode(fields))


# Every event's write records its input: the field names are looked up once per type, and
# one encoder serves them all (json.dumps with separators builds a new one per call).
_JSON = json.JSONEncoder(separators=(",", ":"))


_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields_of(kind: type) -> tuple[str, ...]:
    found = _FIELDS.get(kind)
    if found is None:
        found = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind)
                                      if f.name not in ("ref", "text"))
    return found


OPENED = '"_opened":true'  # in an opening's data, as `encode` writes it


def decode(conversation: str, team: str, at: float, kind: str, data: str,
           ref: ConversationRef | None = None) -> Input:
    """An `inputs` row read back (`ref`: the conversation's, parsed already)."""
    try:
        fields = orjson.loads(data)  # a 30-day what-if reads millions: json.loads is 5x slower
    except orjson.JSONDecodeError:
        # What orjson refuses and `json` wrote: a lone surrogate's escape (a name taken
        # before names were cleaned, `service.storable`), NaN
        fields = json.loads(data)
    pop = fields.pop  # the flags `encode` adds ("_": never an event's own field)
    opened, reopened, refused = (bool(pop("_opened", False)), bool(pop("_reopened", False)),
                                 bool(pop("_refused", False)))
    owner = pop("_owner", None)
    event = _KINDS[kind](ref or ConversationRef.parse(conversation), **fields)
    return Input(event, team, at, opened, reopened, owner, refused)

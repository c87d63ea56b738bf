"""Actions to and from JSON, for the outbox (the store keeps them as text)."""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable
from typing import Any

from chat_rescue.bot.model import (
    Action,
    CloseNotice,
    CloseReminder,
    Conversation,
    ConversationRef,
    Escalate,
    HandoverDigest,
    HandoverLine,
    Nudge,
    OffHoursNotice,
    PostCard,
    Refusal,
    Refused,
    Relay,
    ReturnToInbox,
    State,
    SweepCard,
    SweepLine,
    Timer,
    UpdateCard,
)

_KINDS: dict[str, type] = {
    cls.__name__: cls
    for cls in (PostCard, UpdateCard, Nudge, ReturnToInbox, Escalate, CloseReminder,
                CloseNotice, OffHoursNotice, Refused, Relay, SweepCard, HandoverDigest)
}
_LINES: dict[str, type] = {"SweepCard": SweepLine, "HandoverDigest": HandoverLine}


_NAMES: dict[type, tuple[str, ...]] = {  # what is stored: the fields a value is made from
    cls: tuple(f.name for f in dataclasses.fields(cls) if f.init)
    for cls in (*_KINDS.values(), *_LINES.values(), Conversation, ConversationRef)
}


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """All fields' values as a tuple (attrgetter of one name returns the bare value)."""
    get = operator.attrgetter(*names)
    return (lambda value: (get(value),)) if len(names) == 1 else get


_VALUES = {cls: _getter(names) for cls, names in _NAMES.items()}
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _plain(value: Any) -> dict[str, Any]:
    """A dataclass as a dict, nested dataclasses too (asdict deep-copies every field).

    Leaves (str, float, None, bool; StrEnums encode as their string) are not visited:
    this runs for every queued action, on the ingest hot path.
    """
    cls = type(value)
    return {name: _plain(field) if type(field) in _NAMES else
            [_plain(line) for line in field] if name == "lines" else field
            for name, field in zip(_NAMES[cls], _VALUES[cls](value), strict=True)}


def encode_action(action: Action) -> tuple[str, str]:
    """(kind, json) for an action; Digests are made at delivery time and never stored.

    A card action stores only its conversation's key: the outbox renders the card from
    the conversation as it is at delivery (`Outbox._fresh`), so a snapshot would be
    dead weight on every write.
    """
    kind = type(action).__name__
    if kind not in _KINDS:
        raise TypeError(f"cannot store action {kind}")
    if isinstance(action, PostCard | UpdateCard):
        return kind, _dumps({"key": action.conversation.ref.key})
    return kind, _dumps(_plain(action))


def decode_action(kind: str, payload: str) -> Action:
    """The action that `encode_action` stored (a card action with `unloaded` standing in
    for its conversation, which the outbox loads)."""
    fields = json.loads(payload)
    if "key" in fields:
        card: Action = _KINDS[kind](unloaded(ConversationRef.parse(fields["key"])))
        return card
    if "ref" in fields:
        fields["ref"] = _ref_of(fields["ref"])
    if "conversation" in fields:  # card actions queued by earlier versions, stored whole
        fields["conversation"] = conversation_from_dict(fields["conversation"])
    if kind == "ClaimRefused":  # queued by earlier versions: what a refused claim was
        # Delivered as one not answered on its press (then it was always queued to tell).
        return Refused(fields["ref"], fields["operator"], Refusal.CLAIMED, fields["owner"],
                       via="queued")
    if kind == "Refused":
        fields["reason"] = Refusal(fields["reason"])
    if kind in _LINES:
        fields["lines"] = tuple(_LINES[kind](**line) for line in fields["lines"])
    action: Action = _KINDS[kind](**fields)
    return action


def _ref_of(fields: dict[str, str]) -> ConversationRef:
    """A ConversationRef stored as a dict (by `asdict`, its key too, made again here)."""
    return ConversationRef(fields["platform"], fields["channel"], fields.get("thread", ""))


def unloaded(ref: ConversationRef) -> Conversation:
    """A stand-in for a conversation known only by its key (version -1: never stored)."""
    return Conversation(ref, team="", customer="", opened_at=0.0, version=-1)


def conversation_from_dict(fields: dict[str, Any]) -> Conversation:
    """A Conversation from `dataclasses.asdict` output."""
    fields = dict(fields)
    fields["ref"] = _ref_of(fields["ref"])
    fields["state"] = State(fields["state"])
    if fields.get("deadline_timer") is not None:
        fields["deadline_timer"] = Timer(fields["deadline_timer"])
    return Conversation(**fields)

"""Slack payloads in, model events out: one translator per payload type, nothing else.

Pure functions of the payload, what we know about the workspace and the time; the
only question they may ask is `resolve` (which conversation an inbox card belongs to).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chat_rescue.adapters.slack import blocks
from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    HandOff,
    InboundEvent,
    KeepOpen,
    OperatorMessage,
    Press,
    Snooze,
)

PLATFORM = "slack"
Payload = Mapping[str, Any]
Resolve = Callable[[str], str | None]

# Message subtypes that are somebody writing; edits, deletions, joins and the like are not.
WRITTEN = frozenset({None, "thread_broadcast", "file_share", "me_message"})
CLAIM_REACTION = "eyes"
CLOSE_REACTION = "white_check_mark"


@dataclass(frozen=True, slots=True)
class Workspace:
    """What translation needs to know: the channels, who the operators are, who we are."""

    team_channel: str
    intake: frozenset[str]
    operators: frozenset[str] = frozenset()
    bot_user: str = ""
    bot_id: str = ""

    @property
    def team(self) -> str:
        return f"{PLATFORM}:{self.team_channel}"

    def ref(self, channel: str, thread: str) -> ConversationRef:
        return ConversationRef(PLATFORM, channel, thread)


@dataclass(frozen=True, slots=True)
class Inbound:
    """An event for the service, with the id that makes Slack's retries harmless and the
    aliases (`message_alias`) under which its message will lead to its conversation."""

    event: InboundEvent
    inbound_id: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Skipped:
    """A claim or close reaction that leads to no conversation, and why (worth a log line:
    the operator meant something by it)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Membership:
    """Somebody joined or left the team channel: the operator list changes."""

    user: str
    joined: bool


Translated = Inbound | Membership | Skipped | None


def card_alias(ts: str) -> str:
    """The alias under which the store finds a conversation by its inbox card's ts."""
    return f"{PLATFORM}:card:{ts}"


def message_alias(channel: str, ts: str) -> str:
    """The alias under which the store finds a conversation by a message in its thread
    (reactions name only the message; a thread's first message is the conversation's key)."""
    return f"{PLATFORM}:message:{channel}:{ts}"


def translate_event(body: Payload, ws: Workspace, now: float, resolve: Resolve) -> Translated:
    """An Events API envelope (`event_callback`) as a model event, if it is one."""
    event = body.get("event")
    if not isinstance(event, dict):
        return None
    translator = _EVENTS.get(str(event.get("type")))
    if translator is None:
        return None
    return translator(event, str(body.get("event_id", "")), ws, now, resolve)


def _message(event: Payload, event_id: str, ws: Workspace, now: float,
             resolve: Resolve) -> Translated:
    channel, author = _word(event.get("channel")), _word(event.get("user"))
    ts, thread = _word(event.get("ts")), event.get("thread_ts")
    if channel not in ws.intake or event.get("subtype") not in WRITTEN:
        return None
    if not author or not ts or event.get("bot_id") or author == ws.bot_user:
        return None
    if thread is not None and not _word(thread):
        return None  # a thread_ts Slack would never send
    inbound_id = f"{PLATFORM}:{event_id or ts}"
    aliases = (message_alias(channel, ts),) if thread and thread != ts else ()
    if author in ws.operators:
        if not thread:
            return None  # an operator's own post in the channel is nobody's conversation
        return Inbound(OperatorMessage(ws.ref(channel, thread), now, author), inbound_id,
                       aliases)
    ref = ws.ref(channel, str(thread or ts))
    text = str(event.get("text") or "")
    return Inbound(CustomerMessage(ref, now, author, text, ws.team), inbound_id, aliases)


def _reaction(event: Payload, event_id: str, ws: Workspace, now: float,
              resolve: Resolve) -> Translated:
    who, name, item = _word(event.get("user")), event.get("reaction"), event.get("item")
    if name not in (CLAIM_REACTION, CLOSE_REACTION) or who not in ws.operators:
        return None  # any other reaction, or anybody else's, is just a reaction
    if not isinstance(item, dict) or item.get("type") != "message":
        return None
    channel, ts = _word(item.get("channel")), _word(item.get("ts"))
    if not channel or not ts:
        return None
    if channel in ws.intake:
        # A message in a thread we saw, else the thread's first message (which may be
        # nobody's: then the adapter finds no conversation under that key and logs it).
        key = resolve(message_alias(channel, ts))
        ref = ConversationRef.parse(key) if key else ws.ref(channel, ts)
    elif channel == ws.team_channel:
        key = resolve(card_alias(ts))
        if not key:
            return Skipped(f"{name} reaction by {who} on {channel}/{ts}: a team-channel "
                           "message that is no inbox card")
        ref = ConversationRef.parse(key)
    else:
        return Skipped(f"{name} reaction by {who} in {channel}: neither the team channel "
                       "nor an intake channel")
    inbound_id = f"{PLATFORM}:{event_id}"
    if name == CLAIM_REACTION:
        return Inbound(Claim(ref, now, who, via="reaction"), inbound_id)
    if name == CLOSE_REACTION:
        return Inbound(Close(ref, now, who, via="reaction"), inbound_id)
    return None


def _membership(event: Payload, event_id: str, ws: Workspace, now: float,
                resolve: Resolve) -> Translated:
    who = _word(event.get("user"))
    if event.get("channel") != ws.team_channel or not who or who == ws.bot_user:
        return None
    return Membership(str(who), joined=event.get("type") == "member_joined_channel")


def _word(value: object) -> str | None:
    """A non-empty string field, or None for anything else (payloads are not trusted)."""
    return value if isinstance(value, str) and value else None


_EVENTS = {
    "message": _message,
    "reaction_added": _reaction,
    "member_joined_channel": _membership,
    "member_left_channel": _membership,
}


@dataclass(frozen=True, slots=True)
class SweepPressed:
    """A press on a sweep card: the card (its id in the store), what was pressed
    (`sweeper.VERBS`), for which conversation ("" for the card's one-tap buttons)."""

    card: int
    verb: str
    key: str
    who: str
    inbound_id: str


def translate_action(body: Payload, ws: Workspace, now: float) -> Inbound | SweepPressed | None:
    """A `block_actions` click on one of our buttons as a model event, if it is one.

    The event carries what the engine decides by: the nudge or reminder the button came
    with, and whether the presser is one of the operators (whether they are an admin is
    asked of Slack only when it matters, in the adapter). A sweep card's buttons are for
    the sweeper."""
    actions, user = body.get("actions"), body.get("user")
    if body.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        return None
    action = actions[0]
    if not isinstance(action, dict) or not isinstance(user, dict):
        return None
    action_id = str(action.get("action_id"))
    who = _word(user.get("id")) or ""
    click = action.get("action_ts") or body.get("trigger_id") or ""
    if action_id in blocks.SWEEP_VERBS:
        sweep = blocks.parse_sweep_value(str(action.get("value") or ""))
        if sweep is None or not who:
            return None
        card, key = sweep
        return SweepPressed(card, blocks.SWEEP_VERBS[action_id], key, who,
                            f"{PLATFORM}:action:{click}")
    make = _BUTTONS.get(action_id)
    key, notice_id = blocks.parse_value(str(action.get("value") or ""))
    ref = _button_ref(key)
    if make is None or ref is None or not who:
        return None
    press = make(Pressed(ref, now, who, notice_id, who in ws.operators))
    return Inbound(press, f"{PLATFORM}:action:{click}")


def _button_ref(value: str) -> ConversationRef | None:
    """The conversation a button's value names; None for anything not ours."""
    try:
        ref = ConversationRef.parse(value)
    except ValueError:
        return None
    return ref if ref.platform == PLATFORM and ref.channel and ref.thread else None


@dataclass(frozen=True, slots=True)
class Pressed:
    """What a click says, whichever button it was."""

    ref: ConversationRef
    at: float
    who: str
    notice_id: str
    on_team: bool


_BUTTONS: dict[str, Callable[[Pressed], Press]] = {
    blocks.CLAIM: lambda p: Claim(p.ref, p.at, p.who, via="button", on_team=p.on_team),
    blocks.CLOSE: lambda p: Close(p.ref, p.at, p.who, via="button", notice_id=p.notice_id,
                                  on_team=p.on_team),
    blocks.SNOOZE: lambda p: Snooze(p.ref, p.at, p.who, notice_id=p.notice_id),
    blocks.HAND_OFF: lambda p: HandOff(p.ref, p.at, p.who, notice_id=p.notice_id),
    blocks.KEEP_OPEN: lambda p: KeepOpen(p.ref, p.at, p.who, notice_id=p.notice_id),
}

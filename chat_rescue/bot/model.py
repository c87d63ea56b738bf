"""The one chat model: conversations, inbound events and outbound actions.

Everything here is frozen and platform-neutral. Ids are strings on every platform;
times are epoch seconds (floats, UTC).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chat_rescue.bot.hours import Schedule


class Role(StrEnum):
    """Who wrote a message."""

    CUSTOMER = "customer"
    OPERATOR = "operator"


class State(StrEnum):
    """Where a conversation stands (DESIGN §1)."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    WAITING_ON_OPERATOR = "waiting_on_operator"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    CLOSED = "closed"


class Refusal(StrEnum):
    """Why a press changed nothing (DESIGN §1 rule 8); `bot.texts` has the words."""

    CLAIMED = "claimed"  # somebody else owns the conversation
    NOT_YOURS = "not_yours"  # only its owner or an admin may
    NOT_ON_TEAM = "not_on_team"  # only the team's operators may
    STALE = "stale"  # the nudge or reminder the button came with is no longer the current one
    SNOOZED = "snoozed"  # the nudge was snoozed once already


# The `notice_id` of a button on the inbox card, which is kept current (Telegram's Hand off).
CARD_BUTTON = "card"


class CloseReason(StrEnum):
    """Why a conversation was closed, recorded with its `closed` event (`detail`)."""

    BY_OPERATOR = "closed_by_operator"  # by hand, long after the dialogue's last message
    BY_CUSTOMER_SILENCE = "closed_by_customer_silence"  # auto-close
    AT_SHIFT_END = "closed_at_shift_end"  # by the sweep: its card, or its rule at the end
    AT_DIALOGUE_END = "closed_at_dialogue_end"  # by hand, within close_reminder of the last


class Timer(StrEnum):
    """The rescue timers; each is a setting and each can be `off`."""

    ACCEPT = "accept"
    FIRST_RESPONSE = "first_response"
    IDLE = "idle"
    ESCALATE = "escalate"
    CLOSE_REMINDER = "close_reminder"
    AUTO_CLOSE = "auto_close"


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Identifies a customer conversation: platform, customer-side channel and thread."""

    platform: str
    channel: str
    thread: str = ""
    # "platform:channel:thread", made once: the store, the replays and the reports look
    # conversations up by it (a million times in a 30-day what-if).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.platform}:{self.channel}:{self.thread}")

    @classmethod
    def parse(cls, key: str) -> ConversationRef:
        platform, channel, thread = key.split(":", 2)
        return cls(platform, channel, thread)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation's state; every change is a new value.

    `timer_from` is when the running timer's period started (queued or last
    escalated, claimed, the customer's unanswered message or a snooze, the
    operator's last word); the deadline is derived from it by
    `deadlines.with_deadline`, never set by hand (it counts working time, and one that
    came due while the team was closed waits for the opening). `waiting_since` is when
    the customer's oldest unanswered message arrived (None when nobody waits on us).
    `away_told_until`: the customer was told the team is away, and this is when it
    opens again; they are not told again before then.

    `rebased_at`: when the working hours last changed under the running timers. Each
    timer keeps the working time it had used by then under the old hours, and counts
    only the rest in the new hours from `rebased_at`: `timer_used` for the state's timer
    (counted from `timer_from`, or from `nudged_at` for `escalate`), `quiet_used` for
    `auto_close` (counted from `deadlines.quiet_since`). None: the timer started after
    the change (the engine clears it when the timer's start moves) and counts from its
    start. The starts themselves stay put: they are also the ids of nudges and reminders.
    `kept_open_at`: when the owner answered a close reminder with *Keep open*, cleared by
    the next turn of the conversation (the sweep counts such a conversation as finished).
    `returned_at`: when it was last returned to the inbox (by a timer, a hand-off or the
    sweep), until someone takes it or it is closed: what a reclaim is counted from.
    """

    ref: ConversationRef
    team: str
    customer: str
    opened_at: float
    state: State = State.QUEUED
    owner: str | None = None
    preview: str = ""
    timer_from: float = 0.0
    waiting_since: float | None = None
    queued_at: float | None = None
    first_reply_at: float | None = None
    last_customer_at: float | None = None
    last_operator_at: float | None = None
    nudged_at: float | None = None
    snoozed: bool = False
    reminded: bool = False
    escalations: int = 0
    card: str | None = None
    deadline: float | None = None
    deadline_timer: Timer | None = None
    away_told_until: float | None = None
    rebased_at: float | None = None
    timer_used: float | None = None
    quiet_used: float | None = None
    kept_open_at: float | None = None
    returned_at: float | None = None
    version: int = 0  # last: the store's conditional update counts on it

    @property
    def answered(self) -> bool:
        return self.first_reply_at is not None


_FIELDS = tuple(f.name for f in dataclasses.fields(Conversation))
_AT = {name: i for i, name in enumerate(_FIELDS)}
_values = operator.attrgetter(*_FIELDS)
# A frozen dataclass sets each field through `object.__setattr__` (27 calls, 3 us a
# Conversation); its twin, the same slots unfrozen, sets them as plain attributes, and a
# value built as the twin then becomes a Conversation (the layouts are the same, so
# CPython allows the class to be changed): frozen from then on, made 5 times as fast.
_Twin = dataclasses.make_dataclass("_Twin", _FIELDS, slots=True, eq=False, repr=False)
# What the twin relies on: the same slots, and nothing a Conversation's own __init__ adds.
assert _Twin.__slots__ == Conversation.__slots__  # type: ignore[attr-defined]
assert not hasattr(Conversation, "__post_init__")


def build(values: Sequence[Any]) -> Conversation:
    """A Conversation of all its field values in order, as `Conversation(*values)` makes
    it, faster (the engine, every replay and every store read make one per step)."""
    conv = _Twin(*values)
    conv.__class__ = Conversation
    return conv


def evolve(conv: Conversation, /, **changes: Any) -> Conversation:
    """`dataclasses.replace` for a Conversation, about fifteen times as fast (the engine
    and every replay make a new one per step). An unknown field name raises KeyError;
    unlike `replace`, mypy does not check the names and types, so the engine's tests do."""
    values = list(_values(conv))
    for name, value in changes.items():
        values[_AT[name]] = value
    return build(values)


# --- inbound events ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    """The customer wrote (a new conversation, a follow-up, or a reopen)."""

    ref: ConversationRef
    at: float
    customer: str
    text: str = ""
    team: str = "default"


@dataclass(frozen=True, slots=True)
class OperatorMessage:
    """An operator replied to the customer: a claim and a first response at once."""

    ref: ConversationRef
    at: float
    operator: str


# Presses carry what the engine needs to decide who may (rule 8), as facts the adapter
# knows: whether the presser is one of the team's operators (`on_team`) or an admin, and
# `notice_id`, the nudge or reminder the button came with ("" for none: a reaction, a
# command, a card's Close, or a button from before notices had ids).


@dataclass(frozen=True, slots=True)
class Claim:
    """An operator claims by button or reaction."""

    ref: ConversationRef
    at: float
    operator: str
    via: str = "button"
    on_team: bool = True


@dataclass(frozen=True, slots=True)
class Close:
    """Close by button, reaction or command."""

    ref: ConversationRef
    at: float
    by: str
    via: str = "button"
    notice_id: str = ""
    admin: bool = False
    on_team: bool = True


@dataclass(frozen=True, slots=True)
class Snooze:
    """The owner (or an admin) asks for the idle timer once more, from the nudge."""

    ref: ConversationRef
    at: float
    by: str
    notice_id: str = ""
    admin: bool = False


@dataclass(frozen=True, slots=True)
class HandOff:
    """The owner (or an admin) returns the conversation to the inbox."""

    ref: ConversationRef
    at: float
    by: str
    notice_id: str = ""
    admin: bool = False


@dataclass(frozen=True, slots=True)
class KeepOpen:
    """The owner (or an admin) answers a close reminder with *Keep open*."""

    ref: ConversationRef
    at: float
    by: str
    notice_id: str = ""
    admin: bool = False


@dataclass(frozen=True, slots=True)
class HoursChanged:
    """The working hours in force changed (`/rescue hours`, a holiday): `old` is the
    schedule the conversation's timers counted in until now."""

    ref: ConversationRef
    at: float
    old: Schedule


@dataclass(frozen=True, slots=True)
class DeadlineDue:
    """The ticker says the conversation's deadline has come."""

    ref: ConversationRef
    at: float


@dataclass(frozen=True, slots=True)
class ShiftEnd:
    """The owner's shift has ended (the sweep): close the conversation (`close`, a finished
    one) or hand it over to the next shift, back in the inbox. Nothing happens if `owner`
    no longer has it: it moved on since the sweep looked."""

    ref: ConversationRef
    at: float
    owner: str
    close: bool = False


Press = Claim | Close | Snooze | HandOff | KeepOpen
InboundEvent = (CustomerMessage | OperatorMessage | Press | DeadlineDue | HoursChanged
                | ShiftEnd)


# --- outbound actions -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostCard:
    """Post the inbox card for a new conversation in the team channel."""

    conversation: Conversation


@dataclass(frozen=True, slots=True)
class UpdateCard:
    """Bring the inbox card up to date with the conversation's state."""

    conversation: Conversation


@dataclass(frozen=True, slots=True)
class Nudge:
    """Ask the owner in the operator thread whether they are still with the customer.

    Its buttons carry `notice_id`, so a press is known to come from this nudge."""

    ref: ConversationRef
    owner: str
    waited: float
    card: str | None = None
    customer: str = ""
    notice_id: str = ""


@dataclass(frozen=True, slots=True)
class ReturnToInbox:
    """The conversation is unassigned: tell the previous owner, announce it to the team.

    `waiting` is False when the operator spoke last (nobody waits on us: `waited` is 0)."""

    ref: ConversationRef
    previous_owner: str | None
    waited: float
    reason: str
    customer: str = ""
    preview: str = ""
    card: str | None = None
    waiting: bool = True


@dataclass(frozen=True, slots=True)
class Escalate:
    """Call more operators in: mention the escalation target in the team channel."""

    ref: ConversationRef
    target: str
    waited: float
    count: int
    customer: str = ""
    preview: str = ""
    card: str | None = None


@dataclass(frozen=True, slots=True)
class CloseReminder:
    """Ask the owner to close the conversation if it is over (buttons carry `notice_id`)."""

    ref: ConversationRef
    owner: str | None
    silent_for: float
    card: str | None = None
    customer: str = ""
    notice_id: str = ""


@dataclass(frozen=True, slots=True)
class CloseNotice:
    """Tell the customer the conversation was closed (auto-close closing message)."""

    ref: ConversationRef
    text: str


@dataclass(frozen=True, slots=True)
class OffHoursNotice:
    """Tell the customer the team is away and when it is back (once per closed period).

    `until`: when the team opens; delivered after that, it would no longer be true."""

    ref: ConversationRef
    text: str
    until: float | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A press changed nothing: tell the presser (only them) why.

    A button press is answered on the press itself (Slack ephemeral, Telegram callback
    answer), so platforms deliver only the others (`via` a reaction or a command)."""

    ref: ConversationRef
    who: str
    reason: Refusal
    owner: str | None = None
    via: str = "button"


@dataclass(frozen=True, slots=True)
class Relay:
    """Copy a message between the customer side and the operator side (Telegram).

    `edited`: the message was edited after it was copied; its current content is copied
    again, marked as an edit.
    """

    ref: ConversationRef
    to_customer: bool
    from_chat: str
    message_id: str
    edited: bool = False


@dataclass(frozen=True, slots=True)
class Digest:
    """Several notices for one channel, delivered as one message instead of a flood."""

    destination: str
    notices: tuple[Action, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class SweepLine:
    """One conversation on a sweep card: its `group` (`sweep.Group`) and the moment its
    wait or silence began."""

    key: str
    customer: str
    preview: str
    group: str
    since: float


@dataclass(frozen=True, slots=True)
class SweepCard:
    """One operator's sweep card before their shift ends at `ends_at` (`ends_text`: that
    time in the team's zone), in the team channel: their open conversations by group as at
    `drawn_at` (and how many nobody has), with one-tap decisions. Its buttons carry `card`,
    the card's id in the store; after `ends_at` it is dropped unsent. `rule`: what the
    shift's end does with what is not decided."""

    team: str
    sweep: str
    card: int
    operator: str
    ends_at: float
    drawn_at: float
    ends_text: str = ""
    lines: tuple[SweepLine, ...] = ()
    unowned: int = 0
    rule: str = "handover"


@dataclass(frozen=True, slots=True)
class HandoverLine:
    """A conversation handed over to the next shift: since when it has waited, and who
    had it (None: nobody did)."""

    key: str
    customer: str
    preview: str
    since: float
    previous_owner: str | None = None


@dataclass(frozen=True, slots=True)
class HandoverDigest:
    """What the last shift (ended at `ends_at`) handed over, for the next one as it opens:
    the conversations still in the inbox at `drawn_at`, oldest waiting first, each with
    Claim."""

    team: str
    sweep: str
    ends_at: float
    drawn_at: float
    lines: tuple[HandoverLine, ...] = ()


Action = (
    PostCard
    | UpdateCard
    | Nudge
    | ReturnToInbox
    | Escalate
    | CloseReminder
    | CloseNotice
    | OffHoursNotice
    | Refused
    | Relay
    | Digest
    | SweepCard
    | HandoverDigest
)

# What goes to the customer's own chat or thread, besides copies of operators' replies.
TO_CUSTOMER = (CloseNotice, OffHoursNotice)

# Notices that may be folded into a Digest when many are due at once.
NOTICES = (Nudge, ReturnToInbox, Escalate, CloseReminder)

# What goes to the team about no one conversation: each on a lane of its own.
TEAM_ACTIONS = (SweepCard, HandoverDigest)


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One recorded transition, for reports. `value` is a duration where one applies;
    `detail` says more where a kind has variants (a `closed` event's CloseReason)."""

    ref: ConversationRef
    team: str
    kind: str
    at: float
    actor: str | None = None
    value: float | None = None
    detail: str | None = None


def audience_of(action: Action) -> str:
    """Who an action is for: "customer" (their own chat or thread) or "team" (the
    operators' channel). The two never wait for each other: a reply to a customer does
    not queue behind the team channel's pacing."""
    if isinstance(action, TO_CUSTOMER) or (isinstance(action, Relay) and action.to_customer):
        return "customer"
    return "team"


def lane_of(action: Action) -> str:
    """The outbox lane an action is queued on: its conversation and audience
    (`<key>>customer` or `<key>>team`). A lane delivers in order; lanes run side by side."""
    if isinstance(action, Digest):
        raise TypeError("a Digest is made at delivery time and never queued")
    if isinstance(action, SweepCard):  # beside the conversations' lanes, never in one
        return f"{action.team}:sweep:{action.card}>team"
    if isinstance(action, HandoverDigest):
        return f"{action.team}:handover:{round(action.ends_at)}>team"
    ref = action.conversation.ref if isinstance(action, PostCard | UpdateCard) else action.ref
    return f"{ref.key}>{audience_of(action)}"


def key_of_lane(lane: str) -> str:
    """The conversation key of a lane."""
    return lane.rpartition(">")[0]


def priority_of(action: Action) -> int:
    """Within a lane and a destination, lower goes first: copies of the customer's
    messages into the operators' side (0), then new cards and notices (1), then updates
    of cards already posted (2: drawn as the conversation is at delivery, one is as good
    as many, and in an end-of-shift storm the notices must not wait behind them). What
    goes to the customer keeps the order it was queued in (a reply, then the closing
    message)."""
    if isinstance(action, Relay) and not action.to_customer:
        return 0
    return 2 if isinstance(action, UpdateCard) else 1

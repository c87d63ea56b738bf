"""The rescue policy as a pure function: (conversation, event, policy, now) -> decision.

No I/O and no clock: `now` is an argument. Every state change yields the new
conversation (with its next deadline derived from its state), the platform actions
to deliver, and the history events to record.

Timers count the working time of the policy's schedule only (`deadlines`), and nothing
reaches the operators while the team is closed. The "waited" and "silent for" figures
in notices are wall time: how long the customer really waited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chat_rescue.bot import authority, outcomes
from chat_rescue.bot.deadlines import (
    next_deadline,
    passed,
    quiet_since,
    rebased,
    restarted,
    with_deadline,
)
from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.hours import HORIZON, add_working, is_open, next_open, working_between
from chat_rescue.bot.hours_text import back_at
from chat_rescue.bot.model import (
    Action,
    Claim,
    Close,
    CloseNotice,
    CloseReason,
    CloseReminder,
    Conversation,
    CustomerMessage,
    DeadlineDue,
    Escalate,
    HandOff,
    HistoryEvent,
    HoursChanged,
    InboundEvent,
    KeepOpen,
    Nudge,
    OffHoursNotice,
    OperatorMessage,
    PostCard,
    Refusal,
    Refused,
    ReturnToInbox,
    ShiftEnd,
    Snooze,
    State,
    Timer,
    UpdateCard,
    evolve,
)
from chat_rescue.bot.policy import Policy

__all__ = ["Decision", "card_status", "decide", "next_deadline", "quiet_since", "with_deadline"]

OPEN_STATES = frozenset(State) - {State.CLOSED}


@dataclass(frozen=True, slots=True)
class Decision:
    """What one event did: the conversation after it (None = unknown, untouched)."""

    conversation: Conversation | None
    actions: tuple[Action, ...] = ()
    history: tuple[HistoryEvent, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.actions or self.history)

    @property
    def refusal(self) -> Refused | None:
        """The answer to a press that changed nothing, if this was one."""
        return next((a for a in self.actions if isinstance(a, Refused)), None)


NOTHING = Decision(None)


def card_status(conv: Conversation, name: Callable[[str], str] = str) -> str:
    """The status line an inbox card shows (owners shown through `name`); the card is
    updated when it changes.
    """
    if conv.state is State.CLOSED:
        return "closed"
    if conv.owner is None:
        return "waiting for an operator" if conv.escalations == 0 else "overdue: operators called"
    owner = name(conv.owner)
    if conv.state is State.CLAIMED:
        return f"claimed by {owner}"
    if conv.state is State.WAITING_ON_OPERATOR and conv.nudged_at is not None:
        return f"with {owner}: customer waiting"
    return f"with {owner}"


def _card_view(conv: Conversation) -> tuple[str, bool]:
    """What an inbox card shows: its status and, while nobody owns the conversation,
    whether the customer waits. An owned card shows who has it (and a nudge once the
    customer waited too long), not every turn of the exchange: a card update per message
    would crowd the paced team channel for nothing."""
    return card_status(conv), conv.owner is None and conv.waiting_since is not None


def decide(
    conv: Conversation | None, event: InboundEvent, policy: Policy, now: float
) -> Decision:
    """Apply one inbound event to a conversation under `policy` at time `now`."""
    if conv is None:
        if isinstance(event, CustomerMessage):
            opened, actions, history = _away(_open(event, policy, now), policy, now)
            return _finish(None, opened, actions, history, policy, now)
        return NOTHING
    if isinstance(event, authority.PRESSES):
        refused = authority.refusal(conv, event)
        if refused is not None:  # changes nothing; the presser is told why
            return _unchanged(conv, policy, now, (refused,))
    step = _STEPS[type(event)]
    outcome = step(conv, event, policy, now)  # type: ignore[operator]
    if isinstance(outcome, Refused):
        return _unchanged(conv, policy, now, (outcome,))
    if outcome is None:
        # Nothing happened, but a changed policy may have moved the deadline.
        return _unchanged(conv, policy, now, ())
    after, actions, history = outcome
    history = history + outcomes.resolved(conv, after, event, now)
    return _finish(conv, after, actions, history, policy, now)


Outcome = tuple[Conversation, list[Action], list[HistoryEvent]]


def _unchanged(conv: Conversation, policy: Policy, now: float,
               actions: tuple[Action, ...]) -> Decision:
    refreshed = with_deadline(conv, policy, now)  # a changed policy may have moved it
    return Decision(refreshed if refreshed is not conv else None, actions)


def _finish(
    before: Conversation | None,
    after: Conversation,
    actions: list[Action],
    history: list[HistoryEvent],
    policy: Policy,
    now: float,
) -> Decision:
    if before is not None:
        after = restarted(before, after)
    after = with_deadline(after, policy, now)
    if before is not None and _card_view(before) != _card_view(after):
        actions.append(UpdateCard(after))
    return Decision(after, tuple(actions), tuple(history))


def _event(conv: Conversation, kind: str, at: float, actor: str | None = None,
           value: float | None = None, detail: str | None = None) -> HistoryEvent:
    return HistoryEvent(conv.ref, conv.team, kind, at, actor, value, detail)


DIALOGUE_END = 1800.0  # the built-in close_reminder: what "just ended" means when it is off


def closing_reason(conv: Conversation, event: Close, policy: Policy, now: float) -> CloseReason:
    """Why a press closes `conv`: through the sweep, at the shift's end; within
    `close_reminder` (working time) of the last message, at the dialogue's end; else long
    after it, by the operator."""
    if event.via == "sweep":
        return CloseReason.AT_SHIFT_END
    moments = (conv.last_customer_at, conv.last_operator_at)
    last = max((at for at in moments if at is not None), default=conv.opened_at)
    length = policy.close_reminder if policy.close_reminder is not None else DIALOGUE_END
    ended = add_working(policy.schedule, last, length)
    return CloseReason.AT_DIALOGUE_END if ended is None or now < ended \
        else CloseReason.BY_OPERATOR


def _open(event: CustomerMessage, policy: Policy, now: float) -> Outcome:
    conv = Conversation(
        ref=event.ref,
        team=event.team,
        customer=event.customer,
        opened_at=event.at,
        preview=event.text,
        timer_from=now,
        waiting_since=event.at,
        queued_at=now,
        last_customer_at=event.at,
    )
    conv = with_deadline(conv, policy, now)
    return conv, [PostCard(conv)], [_event(conv, "opened", event.at, event.customer)]


def _away(outcome: Outcome, policy: Policy, now: float) -> Outcome:
    """After a customer's message: while the team is closed, tell them when it is back,
    once per closed period (the card still goes to the team, which sees it on opening).
    Not while an operator is with them after hours: one wrote in this closed period (no
    working time since their last word)."""
    conv, actions, history = outcome
    told = conv.away_told_until
    if (told is not None and now < told) or not policy.off_hours_message \
            or is_open(policy.schedule, now):
        return outcome
    spoke = conv.last_operator_at
    if spoke is not None and working_between(policy.schedule, spoke, now) == 0:
        return outcome
    opening = next_open(policy.schedule, now)
    until = opening if opening is not None else now + HORIZON
    back = back_at(policy.schedule, now) or "later"
    notice = OffHoursNotice(conv.ref, policy.off_hours_message.replace("{back}", back), until)
    return evolve(conv, away_told_until=until), [*actions, notice], history


def _customer_message(
    conv: Conversation, event: CustomerMessage, policy: Policy, now: float
) -> Outcome:
    return _away(_customer_turn(conv, event, policy, now), policy, now)


def _customer_turn(conv: Conversation, event: CustomerMessage, policy: Policy,
                   now: float) -> Outcome:
    seen = evolve(conv, last_customer_at=event.at, kept_open_at=None)
    if conv.state is State.CLOSED:
        return _reopen(seen, event, policy, now)
    if conv.state is State.WAITING_ON_CUSTOMER:
        waiting = evolve(
            seen, state=State.WAITING_ON_OPERATOR, timer_from=now, waiting_since=event.at,
            nudged_at=None, snoozed=False, reminded=False,
        )
        return waiting, [], []
    if conv.waiting_since is None:  # in the inbox with nobody waiting: `accept` starts now
        return evolve(seen, waiting_since=event.at, timer_from=now), [], []
    return seen, [], []


def _reopen(conv: Conversation, event: CustomerMessage, policy: Policy,
            now: float) -> Outcome:
    """A new exchange (rule 9): its first operator reply is a first response again.

    Back in the inbox, it is announced to the team while open; while closed the updated
    card shows it waiting, and `accept`, counting from the opening, calls people in then."""
    history = [_event(conv, "reopened", event.at, event.customer)]
    base = evolve(conv, timer_from=now, waiting_since=event.at, nudged_at=None,
                   snoozed=False, reminded=False, escalations=0, first_reply_at=None)
    if conv.owner is not None:
        return evolve(base, state=State.WAITING_ON_OPERATOR), [], history
    queued = evolve(base, state=State.QUEUED, queued_at=now)
    if not is_open(policy.schedule, now):
        return queued, [], history
    notice = ReturnToInbox(conv.ref, None, 0.0, "reopened by the customer", conv.customer,
                           conv.preview, conv.card)
    return queued, [notice], history


def _operator_message(
    conv: Conversation, event: OperatorMessage, policy: Policy, now: float
) -> Outcome | None:
    if conv.state is State.CLOSED:
        return None
    history: list[HistoryEvent] = []
    owner = conv.owner
    if owner is None:
        owner = event.operator
        history.append(_event(conv, "claimed", event.at, owner, _since(conv.queued_at, now)))
    first_reply_at = conv.first_reply_at
    if first_reply_at is None:  # the first reply of the conversation, or of a reopening
        first_reply_at = event.at
        waited_from = conv.waiting_since if conv.waiting_since is not None else conv.opened_at
        history.append(_event(conv, "first_reply", event.at, event.operator,
                              max(0.0, event.at - waited_from)))
    elif conv.waiting_since is not None:
        history.append(_event(conv, "reply", event.at, event.operator,
                              max(0.0, event.at - conv.waiting_since)))
    answered = evolve(
        conv, state=State.WAITING_ON_CUSTOMER, owner=owner, timer_from=now,
        waiting_since=None, queued_at=None, first_reply_at=first_reply_at,
        last_operator_at=event.at, nudged_at=None, snoozed=False, reminded=False,
        escalations=0, kept_open_at=None, returned_at=None,
    )
    return answered, [], history


# Press steps run once `authority.refusal` let the press through.


def _claim(conv: Conversation, event: Claim, policy: Policy, now: float) -> Outcome | None:
    if conv.state is State.CLOSED or conv.owner == event.operator:
        return None
    waiting = conv.waiting_since is not None
    claimed = evolve(
        conv, owner=event.operator, timer_from=now, queued_at=None, escalations=0,
        state=State.CLAIMED if waiting else State.WAITING_ON_CUSTOMER, kept_open_at=None,
        returned_at=None,
    )
    history = [_event(conv, "claimed", event.at, event.operator, _since(conv.queued_at, now))]
    return claimed, [], history


def _close(conv: Conversation, event: Close, policy: Policy, now: float) -> Outcome | None:
    if conv.state is State.CLOSED:
        return None
    closed = evolve(conv, state=State.CLOSED, waiting_since=None, queued_at=None,
                     nudged_at=None, kept_open_at=None, returned_at=None)
    reason = closing_reason(conv, event, policy, now)
    # Closed from a sweep card, in bulk at the shift's end: the customer gets the same
    # goodbye as when the end's rule closes it (an operator closing one by hand said theirs).
    goodbye: list[Action] = []
    if event.via == "sweep" and policy.closing_message:
        goodbye.append(CloseNotice(conv.ref, policy.closing_message))
    return closed, goodbye, [_event(conv, "closed", event.at, event.by, detail=reason)]


def _snooze(conv: Conversation, event: Snooze, policy: Policy,
            now: float) -> Outcome | Refused | None:
    if conv.snoozed:  # once per customer wait: the next nudge's Snooze says so
        return Refused(conv.ref, event.by, Refusal.SNOOZED, conv.owner)
    snoozed = evolve(conv, timer_from=now, nudged_at=None, snoozed=True)
    return snoozed, [], [_event(conv, "snoozed", event.at, event.by)]


def _hand_off(conv: Conversation, event: HandOff, policy: Policy, now: float) -> Outcome | None:
    if conv.state is State.CLOSED or conv.owner is None:
        return None
    return _return_to_inbox(conv, now, f"handed off by {event.by}", event.by, "handed_off")


def _keep_open(conv: Conversation, event: KeepOpen, policy: Policy, now: float) -> Outcome | None:
    kept = evolve(conv, timer_from=now, reminded=False, kept_open_at=now)
    return kept, [], [_event(conv, "kept_open", event.at, event.by)]


def _shift_end(conv: Conversation, event: ShiftEnd, policy: Policy,
               now: float) -> Outcome | None:
    """The sweep at the end of the owner's shift: closed (with the closing message, if
    any), or handed over to the next shift. The owner is not told: they have left; the next
    shift finds it in the handover digest."""
    if conv.state is State.CLOSED or conv.owner != event.owner:
        return None  # moved on since the sweep looked
    if event.close:
        goodbye: list[Action] = []
        if policy.closing_message:
            goodbye.append(CloseNotice(conv.ref, policy.closing_message))
        closed = evolve(conv, state=State.CLOSED, waiting_since=None, queued_at=None,
                         nudged_at=None, kept_open_at=None, returned_at=None)
        return closed, goodbye, [_event(conv, "closed", now, None, None,
                                        CloseReason.AT_SHIFT_END)]
    waited = _since(conv.waiting_since, now)
    queued = evolve(conv, state=State.QUEUED, owner=None, timer_from=now, queued_at=now,
                     nudged_at=None, snoozed=False, reminded=False, escalations=0,
                     kept_open_at=None, returned_at=now)
    return queued, [], [_event(conv, "returned", now, conv.owner, waited, "shift_end")]


def _return_to_inbox(conv: Conversation, now: float, reason: str,
                     actor: str | None = None, detail: str | None = None) -> Outcome:
    waited = _since(conv.waiting_since, now)
    queued = evolve(conv, state=State.QUEUED, owner=None, timer_from=now, queued_at=now,
                     nudged_at=None, snoozed=False, reminded=False, escalations=0,
                     kept_open_at=None, returned_at=now)
    notice = ReturnToInbox(conv.ref, conv.owner, waited, reason, conv.customer, conv.preview,
                           conv.card, waiting=conv.waiting_since is not None)
    return queued, [notice], [_event(conv, "returned", now, actor or conv.owner, waited,
                                     detail)]


def _deadline(conv: Conversation, event: DeadlineDue, policy: Policy,
              now: float) -> Outcome | None:
    due = next_deadline(conv, policy)
    if due is None or due[0] > now:
        return None  # stale: the conversation moved on, or the policy changed
    if not is_open(policy.schedule, now):
        return None  # came due while the team is closed: `with_deadline` holds it
    timer = due[1]
    if conv.waiting_since is None and passed(conv, policy, quiet_since(conv),
                                                Timer.AUTO_CLOSE, now):
        timer = Timer.AUTO_CLOSE  # it came due too while we were down: no pointless notice
    if timer is Timer.ACCEPT:
        return _escalate(conv, policy, now)
    if timer is Timer.FIRST_RESPONSE:
        length = format_duration(policy.first_response)
        return _return_to_inbox(conv, now, f"no first response within {length}")
    if timer is Timer.IDLE:
        waited = _since(conv.waiting_since, now)
        nudged = evolve(conv, nudged_at=now)
        nudge = Nudge(conv.ref, conv.owner or "", waited, conv.card, conv.customer,
                      authority.nudge_id(nudged))
        return nudged, [nudge], [_event(conv, "nudged", now, conv.owner, waited)]
    if timer is Timer.ESCALATE:
        length = format_duration(policy.escalate)
        queued, actions, history = _return_to_inbox(
            conv, now, f"no answer within {length} of the nudge")
        escalated, more, logged = _escalate(queued, policy, now)
        return escalated, actions + more, history + logged
    if timer is Timer.CLOSE_REMINDER:
        silent = now - conv.timer_from
        reminded = evolve(conv, reminded=True)
        reminder = CloseReminder(conv.ref, conv.owner, silent, conv.card, conv.customer,
                                 authority.reminder_id(reminded))
        return reminded, [reminder], [_event(conv, "reminded", now, conv.owner)]
    goodbye: list[Action] = []
    if policy.closing_message:
        goodbye.append(CloseNotice(conv.ref, policy.closing_message))
    closed = evolve(conv, state=State.CLOSED, waiting_since=None, queued_at=None,
                     nudged_at=None, kept_open_at=None, returned_at=None)
    return closed, goodbye, [_event(conv, "closed", now, None, now - quiet_since(conv),
                                    CloseReason.BY_CUSTOMER_SILENCE)]


def _hours_changed(conv: Conversation, event: HoursChanged, policy: Policy,
                   now: float) -> Outcome | None:
    """The hours changed: the timers keep the working time they used under the old
    hours, and one that the new hours put in the past fires now (if open)."""
    if conv.state is State.CLOSED or event.old == policy.schedule:
        return _deadline(conv, DeadlineDue(event.ref, event.at), policy, now)
    moved = rebased(conv, event.old, now)
    fired = _deadline(moved, DeadlineDue(event.ref, event.at), policy, now)
    return fired if fired is not None else (moved, [], [])


def _escalate(conv: Conversation, policy: Policy, now: float) -> Outcome:
    count = conv.escalations + 1
    waited = _since(conv.waiting_since if conv.waiting_since is not None else conv.queued_at, now)
    escalated = evolve(conv, escalations=count, timer_from=now)
    notice = Escalate(conv.ref, policy.escalate_to, waited, count, conv.customer, conv.preview,
                      conv.card)
    return escalated, [notice], [_event(conv, "escalated", now, None, waited)]


def _since(start: float | None, now: float) -> float:
    return max(0.0, now - start) if start is not None else 0.0


_STEPS = {
    CustomerMessage: _customer_message,
    OperatorMessage: _operator_message,
    Claim: _claim,
    Close: _close,
    Snooze: _snooze,
    HandOff: _hand_off,
    KeepOpen: _keep_open,
    DeadlineDue: _deadline,
    HoursChanged: _hours_changed,
    ShiftEnd: _shift_end,
}

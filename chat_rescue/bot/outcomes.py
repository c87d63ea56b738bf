"""What became of each notice: recorded in history as `outcome` events, for `/rescue tune`.

A nudge, a close reminder, a return to the inbox and a call for more operators each end
somehow: answered, snoozed, handed off, closed, kept open, returned after all, reclaimed.
The engine records that end as `HistoryEvent(kind="outcome", detail="<notice>:<result>")`
with who did it (`actor`) and how long after the notice (`value`, seconds; None where the
notice's own time is not kept, as for a reminder). Pure, like the engine that asks it.
"""

from __future__ import annotations

from chat_rescue.bot.model import (
    Claim,
    Conversation,
    CustomerMessage,
    HandOff,
    HistoryEvent,
    InboundEvent,
    KeepOpen,
    OperatorMessage,
    ShiftEnd,
    Snooze,
    State,
)

OUTCOME = "outcome"
NOTICES = ("nudge", "reminder", "return", "escalation")
RESULTS = ("answered", "snoozed", "handed_off", "closed", "kept_open", "returned",
           "reclaimed", "customer_wrote")


def _actor(event: InboundEvent) -> str | None:
    if isinstance(event, OperatorMessage | Claim):
        return event.operator
    return getattr(event, "by", None)


def _result(event: InboundEvent, after: Conversation, answered: str) -> str | None:
    """How `event` ended a notice that `after` no longer has (None: it did not)."""
    if isinstance(event, OperatorMessage | Claim):
        return answered
    if after.state is State.CLOSED:
        return "closed"
    if isinstance(event, Snooze):
        return "snoozed"
    if isinstance(event, KeepOpen):
        return "kept_open"
    if isinstance(event, HandOff | ShiftEnd):
        return "handed_off"
    if isinstance(event, CustomerMessage):
        return "customer_wrote"
    if after.state is State.QUEUED:  # a timer (DeadlineDue, HoursChanged) returned it
        return "returned"
    return None


def resolved(before: Conversation, after: Conversation, event: InboundEvent,
             now: float) -> list[HistoryEvent]:
    """The outcome events of the notices `before` had standing that `after` has not."""
    found: list[HistoryEvent] = []

    def record(notice: str, result: str | None, since: float | None) -> None:
        if result is not None:
            value = max(0.0, now - since) if since is not None else None
            found.append(HistoryEvent(before.ref, before.team, OUTCOME, now, _actor(event),
                                      value, f"{notice}:{result}"))

    nudge = before.nudged_at
    if nudge is not None and before.state is State.WAITING_ON_OPERATOR \
            and (after.nudged_at != nudge or after.state is not State.WAITING_ON_OPERATOR):
        record("nudge", _result(event, after, "answered"), nudge)
    if before.reminded and before.state is State.WAITING_ON_CUSTOMER \
            and (not after.reminded or after.state is not State.WAITING_ON_CUSTOMER):
        record("reminder", _result(event, after, "answered"), None)
    if before.owner is None and before.state is not State.CLOSED:
        taken = after.owner is not None or after.state is State.CLOSED
        if taken and before.returned_at is not None:
            record("return", _result(event, after, "reclaimed"), before.returned_at)
        if taken and before.escalations > 0:
            # `timer_from` is the last call's time: `accept` repeats from it.
            record("escalation", _result(event, after, "answered"), before.timer_from)
    return found

"""Whether a queued notice still has its reason when its turn comes to be delivered.

Pure: a notice and the conversation as it is now. A nudge queued before an outage must
not reach an owner who has answered since; a repeat escalation that a later one
replaced, or a return to the inbox that someone claimed in the meantime, is dropped; and
a sweep card whose shift has ended.
"""

from __future__ import annotations

from chat_rescue.bot.authority import nudge_id, reminder_id
from chat_rescue.bot.model import (
    Action,
    CloseNotice,
    CloseReminder,
    Conversation,
    Escalate,
    Nudge,
    OffHoursNotice,
    ReturnToInbox,
    State,
    SweepCard,
)


def stale_because(action: Action, conv: Conversation | None,
                  now: float | None = None) -> str | None:
    """Why `action` would say something no longer true of `conv` (at `now`, for what says
    when); None while it holds (and for anything that is not a notice: cards, copies of
    messages)."""
    if isinstance(action, SweepCard):  # its buttons would all be stale on arrival
        return "the shift has ended" if now is not None and now >= action.ends_at else None
    if conv is None:
        return None  # nothing to judge it by (never so in the bot: it stores both at once)
    if isinstance(action, CloseNotice):  # "we closed this chat", to the customer
        return None if conv.state is State.CLOSED else "reopened since"
    if isinstance(action, OffHoursNotice):  # "we're away, back Monday 09:00"
        if conv.state is State.CLOSED:
            return "closed since"
        if conv.state is State.WAITING_ON_CUSTOMER:
            return "answered since"
        if now is not None and action.until is not None and now >= action.until:
            return "the team is back since"
        return None
    if not isinstance(action, Nudge | CloseReminder | ReturnToInbox | Escalate):
        return None
    if conv.state is State.CLOSED:
        return "closed since"
    if isinstance(action, Nudge):
        if not nudge_id(conv):
            return "answered or snoozed since"
        if conv.owner != action.owner:
            return "has another owner now"
        if action.notice_id and action.notice_id != nudge_id(conv):
            return "a later nudge replaced it"  # its buttons would be stale on arrival
        return None
    if isinstance(action, CloseReminder):
        if not reminder_id(conv):
            return "someone wrote since"
        if conv.owner != action.owner:
            return "has another owner now"
        if action.notice_id and action.notice_id != reminder_id(conv):
            return "a later reminder replaced it"
        return None
    if conv.owner is not None:
        return f"claimed since by {conv.owner}"
    if isinstance(action, Escalate) and conv.escalations > action.count:
        return "a later call for help replaced it"
    return None

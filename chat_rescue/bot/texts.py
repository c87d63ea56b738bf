"""The words the bot says, shared by every platform (which adds its own mentions and markup)."""

from __future__ import annotations

from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.model import (
    Action,
    CloseNotice,
    CloseReminder,
    Conversation,
    Escalate,
    Nudge,
    OffHoursNotice,
    Refusal,
    Refused,
    ReturnToInbox,
)


def waited(seconds: float) -> str:
    return format_duration(max(1.0, round(seconds)))


def nudge(action: Nudge, owner: str) -> str:
    who = action.customer or "this customer"
    return f"{owner}, are you still with {who}? They have waited {waited(action.waited)}."


def returned(action: ReturnToInbox) -> str:
    who = action.customer or "a customer"
    if not action.waiting:  # the operator spoke last: nobody to say "has waited" about
        return (f"Back in the inbox ({action.reason}): {who} is not waiting on us; "
                "who follows it up?")
    return f"Back in the inbox ({action.reason}): {who} has waited {waited(action.waited)}. " \
        "Who takes it?"


def returned_to_owner(action: ReturnToInbox, owner: str) -> str:
    return f"{owner}, this conversation went back to the inbox: {action.reason}."


def escalated(action: Escalate, target: str) -> str:
    again = "" if action.count == 1 else f" (call {action.count})"
    return (f"{target} nobody has taken {action.customer or 'a customer'}'s conversation "
            f"for {waited(action.waited)}{again}: \"{action.preview}\"")


def close_reminder(action: CloseReminder, owner: str) -> str:
    who = action.customer or "the customer"
    return (f"{owner}, {who} has been silent for {waited(action.silent_for)}. "
            "If the conversation is over, please close it.")


def refused(action: Refused, owner: str) -> str:
    """Why a press changed nothing, for the presser alone; `owner` is the owner's name."""
    if action.reason is Refusal.CLAIMED:
        return f"Already claimed by {owner}."
    if action.reason is Refusal.NOT_YOURS:
        return f"Only {owner}, who has this conversation, or an admin can do that."
    if action.reason is Refusal.NOT_ON_TEAM:
        return "Only the team's operators can do that."
    if action.reason is Refusal.SNOOZED:
        return "Snoozed once already: reply, close it or hand it off."
    now = f" {owner} has the conversation now." if action.owner not in (None, action.who) else ""
    return f"That button belongs to an earlier nudge or reminder: nothing changed.{now}"


def close_notice(action: CloseNotice) -> str:
    return action.text


def off_hours_notice(action: OffHoursNotice) -> str:
    return action.text


def card_title(conv: Conversation) -> str:
    return f"{conv.customer} in {conv.ref.channel}"


def digest_title(count: int) -> str:
    return f"{count} conversations need attention:"


def describe(action: Action) -> str:
    """One line for an action, for digests and logs (platform mentions not applied)."""
    if isinstance(action, Nudge):
        return nudge(action, action.owner)
    if isinstance(action, ReturnToInbox):
        return returned(action)
    if isinstance(action, Escalate):
        return escalated(action, action.target)
    if isinstance(action, CloseReminder):
        return close_reminder(action, action.owner or "owner")
    return type(action).__name__

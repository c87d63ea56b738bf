"""The words the bot says, shared by every platform (which adds its own mentions and markup)."""

from __future__ import annotations

from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.model import (
    Action,
    ClaimRefused,
    CloseNotice,
    CloseReminder,
    Conversation,
    Escalate,
    Nudge,
    ReturnToInbox,
)


def waited(seconds: float) -> str:
    return format_duration(max(1.0, round(seconds)))


def nudge(action: Nudge, owner: str) -> str:
    who = action.customer or "this customer"
    return f"{owner}, are you still with {who}? They have waited {waited(action.waited)}."


def returned(action: ReturnToInbox) -> str:
    return (f"Back in the inbox ({action.reason}): {action.customer or 'a customer'} "
            f"has waited {waited(action.waited)}. Who takes it?")


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


def claim_refused(action: ClaimRefused, owner: str) -> str:
    return f"Already claimed by {owner}."


def close_notice(action: CloseNotice) -> str:
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

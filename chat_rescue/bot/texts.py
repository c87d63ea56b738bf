"""The words the bot says, shared by every platform (which adds its own mentions and markup)."""

from __future__ import annotations

from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.model import (
    Action,
    CloseNotice,
    CloseReminder,
    Conversation,
    Escalate,
    HandoverDigest,
    HandoverLine,
    Nudge,
    OffHoursNotice,
    Refusal,
    Refused,
    ReturnToInbox,
    SweepCard,
    SweepLine,
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


# --- the sweep before a shift ends ---------------------------------------------------------

GROUP_TITLES = {
    "finished": "Finished but not closed",
    "with_customer": "Waiting on the customer",
    "customer_waiting": "Customer waiting on us",
    "unowned": "Nobody has it",
}
CLOSE_ALL, HAND_REST = "Close all finished", "Hand the rest to the next shift"
SWEEP_OVER = "That shift has ended: its sweep is over, and nothing changed."
SWEEP_CALLED_OFF = ("That sweep was called off (the working hours or the sweep setting "
                    "changed since the card was drawn): nothing changed.")
SWEEP_UNKNOWN = "That sweep card is not known here: nothing changed."
MOVED_ON = "That conversation has moved on since the card was drawn: nothing changed."
NOT_ON_CARD = "That conversation is not on this card: nothing changed."
WROTE_SINCE = ("The customer wrote since the card was drawn: not closed. Answer them, or "
               "close it from the conversation.")


def not_your_card(operator: str) -> str:
    return f"Only {operator}, whose sweep card it is, or an admin can decide here: nothing changed."


def sweep_title(action: SweepCard, operator: str) -> str:
    count = len(action.lines)
    things = "conversation" if count == 1 else "conversations"
    when = f" {action.ends_text}" if action.ends_text else ""
    return f"{operator}, your shift ends{when}. You have {count} open {things}:"


def sweep_counts(action: SweepCard) -> str:
    """`Finished but not closed 2 · Waiting on the customer 1 · …`, the groups with any."""
    counts = {group: sum(line.group == group for line in action.lines) for group in GROUP_TITLES}
    counts["unowned"] = action.unowned
    return " · ".join(f"{GROUP_TITLES[group]} {n}" for group, n in counts.items() if n)


def sweep_line(line: SweepLine, drawn_at: float, customer: str, preview: str) -> str:
    """`alice: “where is my order” · silent 45m` (the customer's name and the preview as
    the platform shows them)."""
    how = "waiting" if line.group == "customer_waiting" else "silent"
    said = f": “{preview}”" if preview else ""
    return f"{customer}{said} · {how} {waited(drawn_at - line.since)}"


def sweep_rule(action: SweepCard) -> str:
    """What the end of the shift does with what the operator does not decide."""
    if action.rule == "keep":
        return "What you don't decide stays with you after the shift."
    return ("What you don't decide by then: finished ones are closed, the others go to the "
            "next shift.")


def sweep_unowned(action: SweepCard) -> str:
    if not action.unowned:
        return ""
    things = "conversation" if action.unowned == 1 else "conversations"
    return f"{action.unowned} {things} in the inbox nobody has: they go to the next shift."


def close_all_label(action: SweepCard) -> str:
    return f"{CLOSE_ALL} ({sum(line.group == 'finished' for line in action.lines)})"


def handover_title(action: HandoverDigest) -> str:
    count = len(action.lines)
    things = "conversation" if count == 1 else "conversations"
    return f"Handed over from the last shift: {count} {things}, oldest waiting first."


def handover_line(line: HandoverLine, drawn_at: float, customer: str, preview: str,
                  owner: str) -> str:
    said = f": “{preview}”" if preview else ""
    had = f" (had: {owner})" if owner else " (nobody had it)"
    return f"{customer}{said} · since {waited(drawn_at - line.since)} ago{had}"

"""What the bot writes in Telegram: topic names, the card, notices, in HTML with mentions.

The wording comes from `bot.texts`; this module adds HTML escaping, mentions by user
id and the topic's status label.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from typing import Any, TypeVar

from chat_rescue.adapters.telegram.memory import Memory
from chat_rescue.bot import texts
from chat_rescue.bot.engine import card_status
from chat_rescue.bot.model import (
    Action,
    CloseReminder,
    Conversation,
    Escalate,
    HandoverDigest,
    HandoverLine,
    Nudge,
    Refused,
    ReturnToInbox,
    State,
    SweepCard,
    SweepLine,
)

MAX_TOPIC_NAME = 128
_BY_ID = re.compile(r"\bby (\d+)$")
LABEL_MARK = {"waiting": "⏳", "overdue": "🔥", "with operator": "💬", "closed": "🔒"}

A = TypeVar("A", Nudge, ReturnToInbox, Escalate, CloseReminder)


def topic_label(conv: Conversation) -> str:
    """waiting / overdue / with operator / closed: what the topic's name shows.

    It changes only where the card's status does (so with a card update), not with each
    turn of the exchange: every rename leaves a service message in the topic and counts
    against the group's 20 messages a minute. Who wrote last the topic list shows anyway.
    """
    if conv.state is State.CLOSED:
        return "closed"
    if conv.owner is None:
        return "waiting" if conv.escalations == 0 else "overdue"
    if conv.state is State.WAITING_ON_OPERATOR and conv.nudged_at is not None:
        return "overdue"
    return "with operator"


def topic_name(conv: Conversation) -> str:
    """The forum topic's name: a status mark, the customer, the status word."""
    label = topic_label(conv)
    tail = f" · {label}"
    head = f"{LABEL_MARK[label]} {conv.customer or 'Customer'}"
    return head[: MAX_TOPIC_NAME - len(tail)] + tail


def card_id(topic_id: int, message_id: int) -> str:
    """The card id stored with a conversation: `<topic id>:<card message id>`."""
    return f"{topic_id}:{message_id}"


def parse_card(card: str | None) -> tuple[int, int] | None:
    """(topic id, card message id) from a stored card id."""
    topic, _, message = (card or "").partition(":")
    if not (topic.isdigit() and message.isdigit()):
        return None
    return int(topic), int(message)


def topic_link(chat_id: int, topic_id: int) -> str | None:
    """A t.me link to a topic of a supergroup (ids -100…), or None."""
    text = str(chat_id)
    return f"https://t.me/c/{text[4:]}/{topic_id}" if text.startswith("-100") else None


def mention(user_id: str | None, memory: Memory) -> str:
    """An HTML mention that notifies the user (by id), with the name we know."""
    if not user_id:
        return "the owner"
    name = html.escape(memory.name(user_id))
    if user_id.isdigit():
        return f'<a href="tg://user?id={user_id}">{name}</a>'
    return name


def escaped(action: A, memory: Memory | None = None) -> A:
    """The action with its free-text fields HTML-escaped, for the shared wording; a user id
    at the end of a reason ("handed off by 8") becomes the name we know."""
    changes: dict[str, Any] = {
        name: html.escape(getattr(action, name))
        for name in ("customer", "preview", "reason", "target")
        if isinstance(getattr(action, name, None), str)
    }
    if memory is not None and "reason" in changes:
        changes["reason"] = _BY_ID.sub(
            lambda found: f"by {html.escape(memory.name(found[1]))}", changes["reason"])
    return replace(action, **changes)


def status_line(conv: Conversation, memory: Memory) -> str:
    """engine.card_status with names instead of user ids."""
    return card_status(conv, lambda owner: html.escape(memory.name(owner)))


def card(conv: Conversation, memory: Memory) -> str:
    """The card: the topic's first message, edited as the conversation moves."""
    preview = html.escape(conv.preview) or "…"
    return (
        f"<b>{html.escape(conv.customer or 'Customer')}</b> wrote to the bot\n"
        f"“{preview}”\n"
        f"Status: {status_line(conv, memory)}"
    )


def announcement(conv: Conversation) -> str:
    """The General-topic message for a new conversation."""
    preview = html.escape(conv.preview) or "…"
    return f"🆕 <b>{html.escape(conv.customer or 'A customer')}</b> is waiting: “{preview}”"


def nudge(action: Nudge, memory: Memory) -> str:
    return texts.nudge(escaped(action), mention(action.owner, memory))


def returned_to_owner(action: ReturnToInbox, memory: Memory) -> str:
    return texts.returned_to_owner(escaped(action, memory),
                                   mention(action.previous_owner, memory))


def returned(action: ReturnToInbox, memory: Memory) -> str:
    return "↩️ " + texts.returned(escaped(action, memory))


EVERYONE = re.compile(r"(?<!\w)@(here|channel|everyone|all)\b", re.IGNORECASE)


def calls_everyone(target: str) -> bool:
    """Whether an escalation target asks for everybody (`@here` and its Slack cousins),
    which Telegram has no mention for."""
    return EVERYONE.search(target) is not None


def escalated(action: Escalate, everyone: str | None = None) -> str:
    """The escalation; `everyone` (mentions of the people on duty) stands in for `@here`."""
    safe = escaped(action)
    target = safe.target if everyone is None else EVERYONE.sub(lambda _: everyone, safe.target)
    return "🚨 " + texts.escalated(safe, target)


def close_reminder(action: CloseReminder, memory: Memory) -> str:
    return texts.close_reminder(escaped(action), mention(action.owner, memory))


def refusal(action: Refused, memory: Memory) -> str:
    """Why a press changed nothing, in plain text (a callback answer has no HTML)."""
    return texts.refused(action, memory.name(action.owner or ""))


def refused(action: Refused, memory: Memory) -> str:
    """The same, as a message in the topic to whoever typed `/close`."""
    owner = html.escape(memory.name(action.owner or ""))
    return f"{mention(action.who, memory)}: {texts.refused(action, owner)}"


def digest_line(action: Action, memory: Memory, everyone: str | None = None) -> str:
    """One notice as a line of a digest."""
    if isinstance(action, Nudge):
        return nudge(action, memory)
    if isinstance(action, ReturnToInbox):
        return texts.returned(escaped(action, memory))
    if isinstance(action, Escalate):
        return escalated(action, everyone).removeprefix("🚨 ").strip()
    if isinstance(action, CloseReminder):
        return close_reminder(action, memory)
    return html.escape(texts.describe(action))


MESSAGE_LIMIT = 4096  # characters Telegram takes in one message


def digests(notices: tuple[Action, ...], memory: Memory, everyone: str | None = None,
            limit: int = MESSAGE_LIMIT) -> list[tuple[str, tuple[Action, ...]]]:
    """Several notices for the support group as General-topic messages, each within
    Telegram's length limit: (text, the notices it lists) per message. The people `@here`
    stands for (`everyone`) are mentioned once, at the top of each message, not per line."""
    calls = everyone if everyone and any(
        isinstance(n, Escalate) and calls_everyone(n.target) for n in notices) else None
    lines = [(f"• {digest_line(n, memory, '' if calls else None)}", n) for n in notices]
    parts: list[list[tuple[str, Action]]] = [[]]
    for line in lines:
        trial = parts[-1] + [line]
        if parts[-1] and len(_digest_text(trial, calls)) > limit:
            parts.append([line])
        else:
            parts[-1] = trial
    return [(_digest_text(part, calls)[:limit], tuple(n for _, n in part)) for part in parts]


def _digest_text(lines: list[tuple[str, Action]], calls: str | None) -> str:
    title = texts.digest_title(len(lines))
    head = f"{calls}: {title}" if calls else title
    return "\n".join([head, *(line for line, _ in lines)])



SWEEP_LINES = 25  # conversations per sweep-card message: 3 buttons each, within 100
HANDOVER_LINES = 50  # conversations per handover message: one Claim button each
LINE_PREVIEW = 150  # characters of a preview on a sweep card's or handover's line


def sweep_cards(action: SweepCard, memory: Memory, limit: int = MESSAGE_LIMIT
                ) -> list[tuple[str, list[tuple[int, SweepLine]]]]:
    """An operator's sweep card as General-topic messages within Telegram's length limit
    and keyboard size: (text, the numbered conversations it lists) per message."""
    title = texts.sweep_title(action, mention(action.operator, memory))
    counts = html.escape(texts.sweep_counts(action))
    footer = " ".join(filter(None, [texts.sweep_rule(action), texts.sweep_unowned(action)]))
    numbered = list(enumerate(action.lines, start=1))
    parts: list[list[tuple[int, SweepLine]]] = [[]]
    for item in numbered:
        trial = parts[-1] + [item]
        too_long = len(_sweep_text(action, memory, title, counts, footer, trial, not parts[:-1],
                                   True)) > limit
        if parts[-1] and (len(trial) > SWEEP_LINES or too_long):
            parts.append([item])
        else:
            parts[-1] = trial
    last = len(parts) - 1
    return [(_sweep_text(action, memory, title, counts, footer, part, index == 0,
                         index == last)[:limit], part) for index, part in enumerate(parts)]


def _sweep_text(action: SweepCard, memory: Memory, title: str, counts: str, footer: str,
                part: list[tuple[int, SweepLine]], first: bool, last: bool) -> str:
    lines = [f"🧹 <b>{title}</b>" if first else f"🧹 <b>{title}</b> (continued)"]
    if first:
        lines.append(counts)
    group = None
    for number, line in part:
        if line.group != group:
            group = line.group
            lines.append(f"\n<b>{html.escape(texts.GROUP_TITLES.get(group, group))}</b>")
        lines.append(f"{number}. " + texts.sweep_line(
            line, action.drawn_at, html.escape(line.customer or "Customer"),
            html.escape(line.preview[:LINE_PREVIEW])))
    if last and footer:
        lines.append(f"\n<i>{html.escape(footer)}</i>")
    return "\n".join(lines)


def sweep_names(part: list[tuple[int, SweepLine]]) -> list[str]:
    """The customers' names for a part's buttons (plain text: labels have no HTML)."""
    return [line.customer or "Customer" for _, line in part]


def handovers(action: HandoverDigest, memory: Memory, limit: int = MESSAGE_LIMIT
              ) -> list[tuple[str, tuple[HandoverLine, ...]]]:
    """What the last shift handed over as General-topic messages within the length limit:
    (text, the conversations it lists) per message, oldest waiting first."""
    title = html.escape(texts.handover_title(action))
    parts: list[list[HandoverLine]] = [[]]
    for line in action.lines:
        trial = parts[-1] + [line]
        if parts[-1] and (len(trial) > HANDOVER_LINES
                          or len(_handover_text(action, memory, title, trial)) > limit):
            parts.append([line])
        else:
            parts[-1] = trial
    return [(_handover_text(action, memory, title, part)[:limit], tuple(part))
            for part in parts if part]


def _handover_text(action: HandoverDigest, memory: Memory, title: str,
                   part: list[HandoverLine]) -> str:
    rows = [f"📋 <b>{title}</b>"]
    for line in part:
        owner = html.escape(memory.name(line.previous_owner)) if line.previous_owner else ""
        rows.append("• " + texts.handover_line(line, action.drawn_at,
                                               html.escape(line.customer or "Customer"),
                                               html.escape(line.preview[:LINE_PREVIEW]), owner))
    return "\n".join(rows)

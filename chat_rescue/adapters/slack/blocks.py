"""Block Kit messages: inbox cards, nudges, inbox notices and digests, with their buttons.

Every message has a plain `text` too (Slack shows it in notifications). Buttons carry
the conversation key as their value, and a nudge's or reminder's buttons its notice id
after a `|` (`button_value`); `translate.py` maps them back to events.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from chat_rescue.adapters.slack.mentions import (
    channel,
    clock_time,
    escalation_target,
    escape,
    shown_preview,
    user,
)
from chat_rescue.bot import texts
from chat_rescue.bot.engine import card_status
from chat_rescue.bot.model import (
    Action,
    CloseReminder,
    Conversation,
    Escalate,
    HandoverDigest,
    Nudge,
    ReturnToInbox,
    State,
    SweepCard,
    SweepLine,
)

Block = dict[str, Any]

CLAIM, SNOOZE, CLOSE, HAND_OFF, KEEP_OPEN, REPLY_NOW = (
    "claim", "snooze", "close", "hand_off", "keep_open", "reply_now",
)
CARD_ACTIONS = "card_actions"
# A sweep card's buttons: their value is the card's id, then `|` and the conversation key.
SWEEP_CLOSE_ALL, SWEEP_HAND_REST = "sweep_close_all", "sweep_hand_rest"
SWEEP_CLOSE, SWEEP_KEEP, SWEEP_HAND_OFF = "sweep_close", "sweep_keep", "sweep_hand_off"
SWEEP_VERBS = {SWEEP_CLOSE_ALL: "close_all", SWEEP_HAND_REST: "hand_rest",
               SWEEP_CLOSE: "close", SWEEP_KEEP: "keep", SWEEP_HAND_OFF: "hand_off"}
MAX_BLOCKS = 50  # Slack's limit per message
SWEEP_LINES = 20  # conversations per sweep-card message: two blocks each, and the headings
HANDOVER_LINES = 45  # conversations per handover-digest message: one block each
LINE_PREVIEW = 150  # characters of a preview on a sweep card's or digest's line
NOTICE_MARK = "|"  # between the conversation key and the notice id in a button's value
_ACTOR = re.compile(r"(?<=\bby )([UW][A-Z0-9]{2,})\b")


@dataclass(frozen=True, slots=True)
class Message:
    """What chat.postMessage / chat.update get: fallback text and blocks."""

    text: str
    blocks: list[Block]


def button_value(key: str, notice_id: str = "") -> str:
    """What a button carries: the conversation key, and the nudge or reminder it belongs to."""
    return f"{key}{NOTICE_MARK}{notice_id}" if notice_id else key


def parse_value(value: str) -> tuple[str, str]:
    """(conversation key, notice id) from a button's value; "" for buttons without one."""
    key, _, notice_id = value.partition(NOTICE_MARK)
    return key, notice_id


def button(label: str, action_id: str, value: str = "", *, url: str = "",
           style: str = "") -> Block:
    """One button; `url` makes it a link button (Slack still sends a click, which we ack)."""
    element: Block = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
    }
    if value:
        element["value"] = value
    if url:
        element["url"] = url
    if style:
        element["style"] = style
    return element


def section(text: str, accessory: Block | None = None, block_id: str = "") -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    if accessory is not None:
        block["accessory"] = accessory
    return block


def actions(block_id: str, *buttons: Block) -> Block:
    return {"type": "actions", "block_id": block_id, "elements": list(buttons)}


def card(conv: Conversation) -> Message:
    """The inbox card: customer, channel, first words, waiting time, status, Claim."""
    status = card_status(conv)
    if conv.owner:
        status = status.replace(conv.owner, user(conv.owner))
    if conv.state in (State.QUEUED, State.CLAIMED) and conv.waiting_since is not None:
        # A time, not a duration: the card is updated when its status changes, not every
        # minute, and "waiting 0s" would stay on it until then.
        line = f"{status} · customer waiting since {clock_time(conv.waiting_since)}"
    else:
        line = status  # "with X" (and ": customer waiting" once nudged), or "closed"
    head = f"*{user(conv.customer)}* in {channel(conv.ref.channel)}"
    quote = f"\n>{shown_preview(conv.preview)}" if conv.preview else ""
    blocks = [
        section(head + quote),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": line}]},
    ]
    if conv.owner is None and conv.state is not State.CLOSED:
        blocks.append(actions(CARD_ACTIONS, button("Claim", CLAIM, conv.ref.key,
                                                     style="primary")))
    text = f"{user(conv.customer)} in {channel(conv.ref.channel)}: {line}"
    return Message(text, blocks)


def nudge(action: Nudge, permalink: str | None) -> Message:
    """Are you still with this customer? Reply now / Snooze / Close / Hand off."""
    text = nudge_text(action)
    buttons = [button("Reply now", REPLY_NOW, action.ref.key, url=permalink, style="primary")] \
        if permalink else []
    buttons += _nudge_buttons(action)
    return Message(text, [section(text), actions("nudge_actions", *buttons)])


def _nudge_buttons(action: Nudge) -> list[Block]:
    value = button_value(action.ref.key, action.notice_id)
    return [button("Snooze", SNOOZE, value), button("Close", CLOSE, value),
            button("Hand off", HAND_OFF, value)]


def _reminder_buttons(action: CloseReminder) -> list[Block]:
    value = button_value(action.ref.key, action.notice_id)
    return [button("Close", CLOSE, value), button("Keep open", KEEP_OPEN, value)]


def returned(action: ReturnToInbox) -> Message:
    """Back in the inbox, visible to the whole team, with Claim."""
    text = returned_text(action)
    claim = button("Claim", CLAIM, action.ref.key, style="primary")
    return Message(text, [section(text), actions("inbox_actions", claim)])


def told_owner(action: ReturnToInbox) -> str:
    """The previous owner's line in the operator thread."""
    return texts.returned_to_owner(_slack(action), user(action.previous_owner or ""))


def escalated(action: Escalate) -> Message:
    """More operators called in, mentioning the escalation target, with Claim."""
    text = escalated_text(action)
    claim = button("Claim", CLAIM, action.ref.key, style="primary")
    return Message(text, [section(text), actions("inbox_actions", claim)])


def close_reminder(action: CloseReminder) -> Message:
    """If the conversation is over, please close it: Close / Keep open."""
    text = reminder_text(action)
    return Message(text, [section(text), actions("reminder_actions", *_reminder_buttons(action))])


def digest(notices: tuple[Action, ...]) -> Message:
    """Several notices for the team channel in one message, each with the buttons it has
    on its own: Claim beside an unowned one, the owner's one-tap actions under a nudge or
    a close reminder (Reply now needs a permalink call per nudge, so it is left out)."""
    # Who an escalation calls in is named once, in the title, not on every line.
    calls = list(dict.fromkeys(escalation_target(n.target) for n in notices
                               if isinstance(n, Escalate)))
    lines = [notice_text(notice, calls_named=bool(calls)) for notice in notices]
    title = texts.digest_title(len(notices))
    if calls:
        title = f"{' '.join(calls)} {title}"
    blocks = [section(f"*{title}*")]
    for number, (notice, line) in enumerate(zip(notices, lines, strict=True)):
        where = f"notice_{number}"
        if isinstance(notice, ReturnToInbox | Escalate):
            blocks.append(section("• " + line, button("Claim", CLAIM, notice.ref.key), where))
            continue
        blocks.append(section("• " + line, block_id=where))
        if isinstance(notice, Nudge):
            blocks.append(actions(f"{where}_actions", *_nudge_buttons(notice)))
        elif isinstance(notice, CloseReminder):
            blocks.append(actions(f"{where}_actions", *_reminder_buttons(notice)))
    return Message("\n".join([title, *("• " + line for line in lines)]), blocks)


def sweep_card(action: SweepCard) -> list[Message]:
    """An operator's sweep card: their conversations by group with Close / Keep / Hand off
    each, Close all finished and Hand the rest at the top; in as many messages as Slack's
    50 blocks need (the one-tap buttons on the first)."""
    title = texts.sweep_title(action, user(action.operator))
    counts = texts.sweep_counts(action)
    footer = " ".join(filter(None, [texts.sweep_rule(action), texts.sweep_unowned(action)]))
    parts = [action.lines[i:i + SWEEP_LINES]
             for i in range(0, len(action.lines), SWEEP_LINES)] or [()]
    messages = []
    number = 0
    for index, lines in enumerate(parts):
        head = title if index == 0 else f"{title} (continued, {index + 1} of {len(parts)})"
        blocks = [section(f"*{head}*")]
        if index == 0:
            blocks.append(_context(counts))
            finished = sum(line.group == "finished" for line in action.lines)
            if finished:
                blocks.append(actions(SWEEP_CLOSE_ALL, button(
                    texts.close_all_label(action), SWEEP_CLOSE_ALL, str(action.card),
                    style="primary")))
            if len(action.lines) > finished:
                blocks.append(actions(SWEEP_HAND_REST, button(
                    texts.HAND_REST, SWEEP_HAND_REST, str(action.card))))
        group = None
        for line in lines:
            if line.group != group:
                group = line.group
                blocks.append(section(f"*{texts.GROUP_TITLES.get(group, group)}*"))
            where = f"sweep_{number}"
            number += 1
            blocks.append(section("• " + _sweep_line(line, action.drawn_at), block_id=where))
            value = f"{action.card}{NOTICE_MARK}{line.key}"
            blocks.append(actions(f"{where}_actions", button("Close", SWEEP_CLOSE, value),
                                  button("Keep", SWEEP_KEEP, value),
                                  button("Hand off", SWEEP_HAND_OFF, value)))
        if index == len(parts) - 1 and footer:
            blocks.append(_context(footer))
        text = f"{head} {counts}" if index == 0 else head
        messages.append(Message(text, blocks[:MAX_BLOCKS]))
    return messages


def _sweep_line(line: SweepLine, drawn_at: float) -> str:
    preview = shown_preview(line.preview[:LINE_PREVIEW]) if line.preview else ""
    return texts.sweep_line(line, drawn_at, user(line.customer), preview)


def parse_sweep_value(value: str) -> tuple[int, str] | None:
    """(card id, conversation key or "") from a sweep button's value; None if not one."""
    card, _, key = value.partition(NOTICE_MARK)
    return (int(card), key) if card.isdigit() else None


def handover(action: HandoverDigest) -> list[Message]:
    """What the last shift handed over, oldest waiting first, each with Claim; split at
    Slack's 50 blocks."""
    title = texts.handover_title(action)
    parts = [action.lines[i:i + HANDOVER_LINES]
             for i in range(0, len(action.lines), HANDOVER_LINES)]
    messages = []
    for index, lines in enumerate(parts):
        head = title if index == 0 else f"{title} (continued, {index + 1} of {len(parts)})"
        blocks = [section(f"*{head}*")]
        rows = []
        for number, line in enumerate(lines):
            preview = shown_preview(line.preview[:LINE_PREVIEW]) if line.preview else ""
            owner = user(line.previous_owner) if line.previous_owner else ""
            row = texts.handover_line(line, action.drawn_at, user(line.customer), preview, owner)
            rows.append("• " + row)
            blocks.append(section("• " + row, button("Claim", CLAIM, line.key),
                                  f"handover_{index}_{number}"))
        messages.append(Message("\n".join([head, *rows]), blocks))
    return messages


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def pressed(message_blocks: list[Block], click: Mapping[str, Any]) -> list[Block] | None:
    """The clicked message with its buttons replaced by who pressed what (not for cards,
    which the outbox keeps current); None when there is nothing to replace."""
    action = (click.get("actions") or [{}])[0]
    where = action.get("block_id")
    if not where or where == CARD_ACTIONS:
        return None
    label = (action.get("text") or {}).get("text") or action.get("action_id", "")
    who = user(str((click.get("user") or {}).get("id", "")))
    note: Block = {"type": "context",
                   "elements": [{"type": "mrkdwn", "text": f"✓ {who} pressed *{label}*"}]}
    changed: list[Block] = []
    for block in message_blocks:
        if block.get("block_id") != where:
            changed.append(block)
        elif block.get("type") == "actions":
            changed.append(note)
        else:
            changed += [{k: v for k, v in block.items() if k != "accessory"}, note]
    return changed if note in changed else None


# --- the shared wording with Slack mentions --------------------------------


def nudge_text(action: Nudge) -> str:
    return texts.nudge(_slack(action), user(action.owner))


def returned_text(action: ReturnToInbox) -> str:
    return texts.returned(_slack(action))


def escalated_text(action: Escalate) -> str:
    return texts.escalated(_slack(action), escalation_target(action.target))


def reminder_text(action: CloseReminder) -> str:
    return texts.close_reminder(_slack(action), user(action.owner) if action.owner else "Hi")


def notice_text(action: Action, *, calls_named: bool = False) -> str:
    """One notice as a digest line (an escalation without its target when the digest's
    title names who is called in)."""
    if isinstance(action, Nudge):
        return nudge_text(action)
    if isinstance(action, ReturnToInbox):
        line = returned_text(action)
        return f"{line} ({user(action.previous_owner)})" if action.previous_owner else line
    if isinstance(action, Escalate):
        return texts.escalated(_slack(action), "").strip() if calls_named \
            else escalated_text(action)
    if isinstance(action, CloseReminder):
        return reminder_text(action)
    raise TypeError(f"a digest cannot list {type(action).__name__}")


def _slack(action: Any) -> Any:
    """The action with its customer as a mention, the preview as Slack sent it (calling
    nobody) and other free text escaped."""
    changes: dict[str, str] = {}
    if getattr(action, "customer", ""):
        changes["customer"] = user(action.customer)
    if getattr(action, "preview", ""):
        changes["preview"] = shown_preview(action.preview)
    if getattr(action, "reason", ""):
        changes["reason"] = _ACTOR.sub(r"<@\1>", escape(action.reason))
    return replace(action, **changes) if changes else action

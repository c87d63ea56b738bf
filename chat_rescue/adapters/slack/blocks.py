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
    Nudge,
    ReturnToInbox,
    State,
)

Block = dict[str, Any]

CLAIM, SNOOZE, CLOSE, HAND_OFF, KEEP_OPEN, REPLY_NOW = (
    "claim", "snooze", "close", "hand_off", "keep_open", "reply_now",
)
CARD_ACTIONS = "card_actions"
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

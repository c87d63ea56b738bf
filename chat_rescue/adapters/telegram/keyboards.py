"""Inline keyboards and their callback data: `<verb>:<conversation key>`, at most 64 bytes."""

from __future__ import annotations

from collections.abc import Iterable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from chat_rescue.bot.model import Conversation, State

VERBS = ("claim", "close", "snooze", "handoff", "keep")
MAX_DATA = 64  # Telegram's limit for callback_data, in bytes


def callback_data(verb: str, key: str) -> str:
    """The data a button carries; refuses verbs we do not know and data Telegram would reject."""
    if verb not in VERBS:
        raise ValueError(f"unknown button verb {verb!r}")
    data = f"{verb}:{key}"
    if len(data.encode()) > MAX_DATA:
        raise ValueError(f"callback data longer than {MAX_DATA} bytes: {data!r}")
    return data


def parse_callback(data: str | None) -> tuple[str, str] | None:
    """(verb, conversation key) from a button's data, or None when it is not ours."""
    verb, _, key = (data or "").partition(":")
    if verb not in VERBS or key.count(":") < 2 or not key.startswith("telegram:"):
        return None
    return verb, key


def _button(label: str, verb: str, key: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=callback_data(verb, key))


def card(conv: Conversation) -> InlineKeyboardMarkup | None:
    """The topic card's buttons: Claim while nobody owns it (Hand off once somebody does),
    Close while it is open."""
    key = conv.ref.key
    if conv.state is State.CLOSED:
        return None
    first = _button("Claim", "claim", key) if conv.owner is None else \
        _button("Hand off", "handoff", key)
    return InlineKeyboardMarkup([[first, _button("Close", "close", key)]])


def claim(key: str, topic_link: str | None = None) -> InlineKeyboardMarkup:
    """Claim (and a link to the topic) under a General-topic announcement."""
    row = [_button("Claim", "claim", key)]
    if topic_link:
        row.append(InlineKeyboardButton("Open topic", url=topic_link))
    return InlineKeyboardMarkup([row])


def nudge(key: str) -> InlineKeyboardMarkup:
    """Snooze / Close / Hand off under a nudge."""
    return InlineKeyboardMarkup(
        [[_button("Snooze", "snooze", key), _button("Close", "close", key),
          _button("Hand off", "handoff", key)]]
    )


def close_reminder(key: str) -> InlineKeyboardMarkup:
    """Close / Keep open under a close reminder."""
    return InlineKeyboardMarkup(
        [[_button("Close", "close", key), _button("Keep open", "keep", key)]])


DIGEST_VERBS = {  # what each kind of notice offers, as on its own message
    "claim": (("Claim", "claim"),),
    "nudge": (("Snooze", "snooze"), ("Close", "close"), ("Hand off", "handoff")),
    "reminder": (("Close", "close"), ("Keep open", "keep")),
}


def digest(choices: Iterable[tuple[str, str, str]]) -> InlineKeyboardMarkup | None:
    """One row per (kind, key, customer) of a digest, its buttons named after the customer
    ("Claim Alice"; "Snooze Bob", "Close", "Hand off"); None when there are none."""
    rows, seen = [], set()
    for kind, key, customer in choices:
        if (kind, key) in seen:
            continue
        seen.add((kind, key))
        verbs = DIGEST_VERBS[kind]
        first_label, first_verb = verbs[0]
        row = [_button(f"{first_label} {customer}"[:60], first_verb, key)]
        row += [_button(label, verb, key) for label, verb in verbs[1:]]
        rows.append(row)
    return InlineKeyboardMarkup(rows) if rows else None

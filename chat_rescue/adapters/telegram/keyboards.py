"""Inline keyboards and their callback data, at most 64 bytes:
`<verb>:<conversation key>`, then `|<notice id>` on the buttons of a nudge or a reminder
(and `|card` on the card's Hand off) so a press is known to come from it. A sweep card's
buttons carry `sw<verb>:<card id>`, then `|<conversation key>` on a conversation's row.
"""

from __future__ import annotations

from collections.abc import Iterable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from chat_rescue.bot import texts
from chat_rescue.bot.model import CARD_BUTTON, Conversation, State, SweepCard, SweepLine

VERBS = ("claim", "close", "snooze", "handoff", "keep")
MAX_DATA = 64  # Telegram's limit for callback_data, in bytes
NOTICE_MARK = "|"


def callback_data(verb: str, key: str, notice_id: str = "") -> str:
    """The data a button carries; refuses verbs we do not know and data Telegram would reject."""
    if verb not in VERBS:
        raise ValueError(f"unknown button verb {verb!r}")
    data = f"{verb}:{key}" + (f"{NOTICE_MARK}{notice_id}" if notice_id else "")
    if len(data.encode()) > MAX_DATA:
        raise ValueError(f"callback data longer than {MAX_DATA} bytes: {data!r}")
    return data


def parse_callback(data: str | None) -> tuple[str, str, str] | None:
    """(verb, conversation key, notice id) from a button's data, or None when it is not ours;
    the notice id is "" on buttons without one (Claim, the card's Close, older buttons)."""
    verb, _, rest = (data or "").partition(":")
    key, _, notice_id = rest.partition(NOTICE_MARK)
    if verb not in VERBS or key.count(":") < 2 or not key.startswith("telegram:"):
        return None
    return verb, key, notice_id


def _button(label: str, verb: str, key: str, notice_id: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=callback_data(verb, key, notice_id))


def card(conv: Conversation) -> InlineKeyboardMarkup | None:
    """The topic card's buttons: Claim while nobody owns it (Hand off once somebody does),
    Close while it is open."""
    key = conv.ref.key
    if conv.state is State.CLOSED:
        return None
    first = _button("Claim", "claim", key) if conv.owner is None else \
        _button("Hand off", "handoff", key, CARD_BUTTON)
    return InlineKeyboardMarkup([[first, _button("Close", "close", key)]])


def claim(key: str, topic_link: str | None = None) -> InlineKeyboardMarkup:
    """Claim (and a link to the topic) under a General-topic announcement."""
    row = [_button("Claim", "claim", key)]
    if topic_link:
        row.append(InlineKeyboardButton("Open topic", url=topic_link))
    return InlineKeyboardMarkup([row])


def nudge(key: str, notice_id: str) -> InlineKeyboardMarkup:
    """Snooze / Close / Hand off under a nudge."""
    return InlineKeyboardMarkup([[_button(label, verb, key, notice_id)
                                  for label, verb in DIGEST_VERBS["nudge"]]])


def close_reminder(key: str, notice_id: str) -> InlineKeyboardMarkup:
    """Close / Keep open under a close reminder."""
    return InlineKeyboardMarkup([[_button(label, verb, key, notice_id)
                                  for label, verb in DIGEST_VERBS["reminder"]]])


DIGEST_VERBS = {  # what each kind of notice offers, as on its own message
    "claim": (("Claim", "claim"),),
    "nudge": (("Snooze", "snooze"), ("Close", "close"), ("Hand off", "handoff")),
    "reminder": (("Close", "close"), ("Keep open", "keep")),
}


def digest(choices: Iterable[tuple[str, str, str, str]]) -> InlineKeyboardMarkup | None:
    """One row per (kind, key, customer, notice id) of a digest, its buttons named after the
    customer ("Claim Alice"; "Snooze Bob", "Close", "Hand off"); None when there are none."""
    rows, seen = [], set()
    for kind, key, customer, notice_id in choices:
        if (kind, key) in seen:
            continue
        seen.add((kind, key))
        verbs = DIGEST_VERBS[kind]
        first_label, first_verb = verbs[0]
        row = [_button(f"{first_label} {customer}"[:60], first_verb, key, notice_id)]
        row += [_button(label, verb, key, notice_id) for label, verb in verbs[1:]]
        rows.append(row)
    return InlineKeyboardMarkup(rows) if rows else None


SWEEP_VERBS = {"swa": "close_all", "swr": "hand_rest", "swc": "close", "swk": "keep",
               "swh": "hand_off"}
_SWEEP_CODES = {verb: code for code, verb in SWEEP_VERBS.items()}
MAX_LABEL = 40


def sweep_data(verb: str, card: int, key: str = "") -> str:
    """The data a sweep card's button carries."""
    data = f"{_SWEEP_CODES[verb]}:{card}" + (f"{NOTICE_MARK}{key}" if key else "")
    if len(data.encode()) > MAX_DATA:
        raise ValueError(f"callback data longer than {MAX_DATA} bytes: {data!r}")
    return data


def parse_sweep(data: str | None) -> tuple[int, str, str] | None:
    """(card id, verb, conversation key or "") from a sweep button's data, or None."""
    code, _, rest = (data or "").partition(":")
    card, _, key = rest.partition(NOTICE_MARK)
    if code not in SWEEP_VERBS or not card.isdigit():
        return None
    if key and (key.count(":") < 2 or not key.startswith("telegram:")):
        return None
    return int(card), SWEEP_VERBS[code], key


def sweep_card(action: SweepCard, lines: list[tuple[int, SweepLine]], first: bool,
               names: list[str]) -> InlineKeyboardMarkup | None:
    """The buttons of one message of a sweep card: the one-tap ones on the first, then a
    row per conversation (numbered as in the text): Close, Keep, Hand off."""
    rows: list[list[InlineKeyboardButton]] = []
    if first:
        finished = sum(line.group == "finished" for line in action.lines)
        if finished:
            rows.append([InlineKeyboardButton(texts.close_all_label(action),
                                              callback_data=sweep_data("close_all", action.card))])
        if len(action.lines) > finished:
            rows.append([InlineKeyboardButton(texts.HAND_REST,
                                              callback_data=sweep_data("hand_rest", action.card))])
    for (number, line), name in zip(lines, names, strict=True):
        rows.append([
            InlineKeyboardButton(f"Close {number}. {name}"[:MAX_LABEL],
                                 callback_data=sweep_data("close", action.card, line.key)),
            InlineKeyboardButton(f"Keep {number}",
                                 callback_data=sweep_data("keep", action.card, line.key)),
            InlineKeyboardButton(f"Hand off {number}",
                                 callback_data=sweep_data("hand_off", action.card, line.key)),
        ])
    return InlineKeyboardMarkup(rows) if rows else None

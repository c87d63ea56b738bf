"""Slack's mention and escaping syntax: who gets notified, and text that renders as typed."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_USER = re.compile(r"^@?([UW][A-Z0-9]{2,})$")
_GROUP = re.compile(r"^@?(S[A-Z0-9]{2,})$")
_ESCAPED_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_ESCAPED_GROUP = re.compile(r"^<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>$")
_SPECIAL = {"here": "<!here>", "channel": "<!channel>", "everyone": "<!everyone>"}
_ESCAPED_SPECIAL = re.compile(r"^<!(here|channel|everyone)(?:\|[^>]*)?>$")
_MARKED = re.compile("\x00([UW][A-Z0-9]{2,})\x00")


def user(user_id: str) -> str:
    """A mention of one user (notifies them if they are in the channel)."""
    return f"<@{user_id}>"


def person(written: str) -> str | None:
    """The user id a command names: `<@U…|name>` (as Slack sends mentions in a command
    with escaping on), `<@U…>`, `@U…` or `U…`; None for a plain name."""
    found = _ESCAPED_USER.match(written) or _USER.match(written)
    return found[1] if found else None


MENTION_MARK = "\x00"  # around a user id in text that is escaped before it is shown


def marked(user_id: str) -> str:
    """A user id to become a mention after the text is escaped (`unmark`)."""
    return f"{MENTION_MARK}{user_id}{MENTION_MARK}"


def unmark(escaped: str) -> str:
    """Escaped text with its `marked` user ids as mentions."""
    return _MARKED.sub(lambda found: user(found[1]), escaped)


def channel(channel_id: str) -> str:
    """A link to a channel."""
    return f"<#{channel_id}>"


def clock_time(epoch: float) -> str:
    """A time of day that Slack shows in each reader's own time zone (UTC where it cannot)."""
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")
    return f"<!date^{int(epoch)}^{{time}}|{fallback}>"


def escalation_target(target: str) -> str:
    """`/rescue escalate-to` words as Slack mentions.

    `@here` / `@channel` become `<!here>` / `<!channel>`, user-group ids `S…` become
    `<!subteam^S…>`, user ids `U…` become `<@U…>`; the escaped forms Slack sends for a
    slash command with "escape channels, users and links" pass through. Anything else
    (a plain `@name`) is shown as written, escaped.
    """
    return " ".join(_one_target(word) for word in target.split())


def _one_target(word: str) -> str:
    lowered = word.lower().lstrip("@")
    if lowered in _SPECIAL and not word.startswith("<"):
        return _SPECIAL[lowered]
    if match := _ESCAPED_SPECIAL.match(word):
        return f"<!{match[1]}>"
    if match := _USER.match(word) or _ESCAPED_USER.match(word):
        return user(match[1])
    if match := _GROUP.match(word) or _ESCAPED_GROUP.match(word):
        return f"<!subteam^{match[1]}>"
    return escape(word)


def escape(text: str) -> str:
    """Text shown literally: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Slack's control sequences in message text: an entity <…>, one of the three escapes, a
# control character that Slack itself would have escaped, or a typed @here / @channel.
_PIECE = re.compile(r"<([^<>]*)>|&(?:lt|gt|amp);|([&<>])|@((?i:here|channel|everyone))\b")
# What clipping to the preview length can leave of an entity just before the "…".
_CUT = re.compile(r"(?:<[^<>]*|&[a-z]{0,3})(?=…$)")
_KEPT = re.compile(r"^(?:@[UW][A-Z0-9]{2,}|#[CG][A-Z0-9]{2,}|(?i:https?://|mailto:|tel:)[^|\s]+)"
                   r"(?:\|[^|]*)?$")
# Between "@" and a word, a word joiner shows "@here" but keeps it from being a mention.
_QUIET = "@\u2060"


def shown_preview(sent: str) -> str:
    """Message text as Slack sent it (escaped once, entities as `<…>`), ready for a card.

    Shown as the customer wrote it: the escapes are kept, not escaped again. User
    mentions, channels and web links stay as Slack formats them (a mentioned user sees
    the card as a mention); `<!here>`, `<!channel>`, `<!everyone>`, user groups and a
    typed "@here" are shown as words that notify nobody. An entity cut in half by the
    preview length is left out.
    """
    return _PIECE.sub(_shown_piece, _CUT.sub("", sent))


def _shown_piece(found: re.Match[str]) -> str:
    entity, stray, special = found[1], found[2], found[3]
    if special is not None:
        return _QUIET + special
    if stray is not None:
        return escape(stray)
    if entity is None:
        return found[0]  # &lt; &gt; &amp;: unescaped once and escaped again, as they are
    if _KEPT.match(entity):
        return f"<{entity}>"
    if entity.startswith("!"):
        return _quiet(entity[1:])
    return escape(f"<{entity}>")


def _quiet(special: str) -> str:
    """`<!here>`, `<!subteam^S…|@ops>`, `<!date^…|text>` and the like, notifying nobody."""
    name, _, label = special.partition("|")
    command = name.partition("^")[0].lower()
    if command in _SPECIAL:
        return _QUIET + command
    if command == "subteam":
        return _QUIET + (label.lstrip("@") or "group")
    if label:
        return _PIECE.sub(_shown_piece, label)  # a date's fallback text, say
    return _QUIET + command

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


def user(user_id: str) -> str:
    """A mention of one user (notifies them if they are in the channel)."""
    return f"<@{user_id}>"


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

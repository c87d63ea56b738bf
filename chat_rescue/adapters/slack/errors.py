"""Slack's API errors in the outbox's vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.errors import SlackApiError

from chat_rescue.bot.outbox import RetryLater, Undeliverable

# Errors that no retry will fix: the channel is gone, archived, or closed to the app.
PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "user_not_in_channel",
    "cannot_dm_bot", "restricted_action",
})


def api_error(failed: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`, `ratelimited`, …), or "" if none was sent."""
    data = failed.response.data
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def outbox_verdict(failed: SlackApiError) -> RetryLater | Undeliverable | None:
    """What the outbox should make of an API error; None: back off and retry."""
    response = failed.response
    if response.status_code == 429:
        return RetryLater(retry_after(response.headers), "Slack rate limit")
    code = api_error(failed)
    if code in PERMANENT:
        return Undeliverable(f"Slack says {code}")
    return None


def retry_after(headers: Mapping[str, Any]) -> float:
    """Seconds from a Retry-After header (any case); 1 s if absent or unreadable."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            written = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return max(0.0, float(written))
            except (TypeError, ValueError):
                break
    return 1.0

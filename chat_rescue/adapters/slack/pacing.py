"""Slack's posting limits, and every call the app makes counted against them.

chat.postMessage: about one a second per channel, short bursts allowed; card updates
(about 50 a minute) and ephemeral answers go on destinations of their own. The app's Web
API client notes each call that went through (`NotingClient`), so the outbox paces by what
was really sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from chat_rescue.bot.pacing import Pace

log = logging.getLogger(__name__)

# At most three in any 3 s: one a second on average, three at once when they come at once
# (a backlog goes in threes, 3 s apart).
POST_PACE = Pace(gap=0.0, count=3, period=3.0)
# chat.update is Tier 3 (about 50 a minute); chat.postEphemeral Tier 4 (about 100).
UPDATE_PACE = Pace(gap=0.5, count=50, period=60.0)
EPHEMERAL_PACE = Pace(gap=0.5)
# The destination each paced method counts against, by the channel it names.
PLACES = {"chat.postMessage": "{}", "chat.update": "update:{}",
          "chat.postEphemeral": "ephemeral:{}"}


class NotingClient(AsyncWebClient):
    """slack_sdk's client that reports each paced call that went through to `noted`."""

    def __init__(self, noted: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.noted = noted

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        answer: AsyncSlackResponse = await super().api_call(api_method, **kwargs)
        place = PLACES.get(api_method)
        if place is not None:
            sent = {**(kwargs.get("params") or {}), **(kwargs.get("json") or {})}
            data = kwargs.get("data")
            if isinstance(data, dict):
                sent.update(data)
            channel = sent.get("channel")
            try:  # the call went through: nothing here may make it look failed (and resent)
                if isinstance(channel, str):
                    self.noted(place.format(channel))
            except Exception:
                log.exception("could not note a call to %s for pacing", api_method)
        return answer

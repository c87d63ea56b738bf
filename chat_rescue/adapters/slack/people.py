"""Who is who in the workspace: the operators (team-channel members) and the admins."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from chat_rescue.adapters.slack.errors import api_error

log = logging.getLogger(__name__)

# Seconds a users.info answer about one user's admin rights is trusted: a burst of
# `/rescue set` costs one call, and a revoked admin keeps the rights at most this long.
ADMIN_TTL = 60.0
ADMIN_LOOKUP = 2.0  # seconds: `/rescue` must be answered within Slack's 3


async def channel_members(client: AsyncWebClient, channel: str) -> frozenset[str]:
    """Every member of a channel, following conversations.members' pagination."""
    members: set[str] = set()
    cursor = ""
    while True:
        response = await client.conversations_members(channel=channel, limit=1000,
                                                       cursor=cursor or None)
        members.update(str(m) for m in response.get("members") or [])
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or ""
        if not cursor:
            return frozenset(members)


class Admins:
    """Answers "may this user change settings?": a configured list, else users.info."""

    def __init__(self, client: AsyncWebClient, configured: frozenset[str],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.configured = configured
        self._monotonic = monotonic
        self._known: dict[str, tuple[bool, float]] = {}

    async def is_admin(self, user_id: str) -> bool:
        """True for listed ids and workspace admins/owners; False if Slack cannot say."""
        if user_id in self.configured:
            return True
        now = self._monotonic()
        known = self._known.get(user_id)
        if known is not None and now - known[1] < ADMIN_TTL:
            return known[0]
        try:
            response = await asyncio.wait_for(self.client.users_info(user=user_id),
                                              ADMIN_LOOKUP)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as failed:
            log.warning("users.info for %s failed (%s); treating as no admin", user_id,
                        api_error(failed) if isinstance(failed, SlackApiError) else failed)
            return False
        info = response.get("user") or {}
        answer = any(bool(info.get(flag)) for flag in ("is_admin", "is_owner",
                                                        "is_primary_owner"))
        self._known[user_id] = (answer, now)
        return answer

"""Who is who in the workspace: the operators (team-channel members) and the admins."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

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


NAME_TTL = 3600.0  # seconds a looked-up name is kept (a rename shows within the hour)
NAME_LOOKUPS = 10  # users.info calls one `names` may make; the rest are looked up next time


class Names:
    """People's display names for the queue page, by users.info, kept for NAME_TTL."""

    def __init__(self, client: AsyncWebClient,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._monotonic = monotonic
        self._known: dict[str, tuple[str, float]] = {}

    async def names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """A name for each id: the display name, else the real name, else the id (not
        known yet, or Slack could not say)."""
        now = self._monotonic()
        wanted = set(user_ids)
        fresh = {u for u in wanted if u in self._known and now - self._known[u][1] < NAME_TTL}
        asked = sorted(wanted - fresh)[:NAME_LOOKUPS]
        for user_id, name in zip(asked, await asyncio.gather(*map(self._look_up, asked)),
                                 strict=True):
            # One Slack could not name is asked again in a minute, not at every poll.
            self._known[user_id] = (name, now) if name else ("", now - NAME_TTL + 60.0)
        return {u: self._known[u][0] if u in self._known and self._known[u][0] else u
                for u in wanted}

    async def _look_up(self, user_id: str) -> str:
        try:
            response = await asyncio.wait_for(self.client.users_info(user=user_id),
                                              ADMIN_LOOKUP)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as failed:
            log.info("users.info for %s failed (%s)", user_id,
                     api_error(failed) if isinstance(failed, SlackApiError) else failed)
            return ""
        info = response.get("user") or {}
        profile = info.get("profile") or {}
        return str(profile.get("display_name") or profile.get("real_name")
                   or info.get("real_name") or info.get("name") or "")

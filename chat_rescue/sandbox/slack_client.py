"""The Slack side of a bot's HTTP endpoint: signed events, button clicks, slash commands.

``SlackEventsClient`` posts to the bot's events URL exactly as Slack does — same bodies,
same headers, same ``v0`` signature — so the real slack-bolt request verification runs.
Given a ``SlackSandbox`` it keeps the sandbox consistent with what the bot is told
(messages, members, reactions) and hands out ``response_url``s served by the sandbox.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import aiohttp

from chat_rescue.sandbox.slack import (
    APP_ID,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    Json,
    SlackSandbox,
)

VERIFICATION_TOKEN = "sandbox-verification-token"  # deprecated by Slack, still sent
_NO_SANDBOX_URL = "http://127.0.0.1:9/response/"  # discard port: never leaves the machine


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    """The ``X-Slack-Signature`` value Slack computes for a request body."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackEventsClient:
    """Sends signed Events API, interactivity and slash-command requests to a bot."""

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        *,
        sandbox: SlackSandbox | None = None,
        team_id: str = TEAM_ID,
        api_app_id: str = APP_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.sandbox = sandbox
        self.team_id = team_id
        self.api_app_id = api_app_id
        self._clock = clock
        self._ids = itertools.count(1)
        self._last_micros = 0
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SlackEventsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- requests

    async def send_event(
        self,
        event: Json,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        team_id: str | None = None,
        api_app_id: str | None = None,
        timestamp: int | str | None = None,
        secret: str | None = None,
    ) -> tuple[int, str]:
        """Deliver one ``event_callback``; ``retry_num`` marks it as Slack's n-th retry."""
        team = team_id or self.team_id
        bot_user = self.sandbox.bot_user_id if self.sandbox else BOT_USER_ID
        envelope = {
            "token": VERIFICATION_TOKEN,
            "team_id": team,
            "context_team_id": team,
            "api_app_id": api_app_id or self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):08d}SBX",
            "event_time": int(self._clock()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team,
                    "user_id": bot_user,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        if self.sandbox is not None:
            self.sandbox.record_event(event)
        return await self._post_json(envelope, headers, timestamp, secret)

    async def url_verification(
        self, challenge: str, *, timestamp: int | str | None = None, secret: str | None = None
    ) -> tuple[int, str]:
        """Send the handshake Slack makes when the events URL is configured."""
        body = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
        return await self._post_json(body, {}, timestamp, secret)

    async def send_action(
        self, payload: Json, *, timestamp: int | str | None = None, secret: str | None = None
    ) -> tuple[int, str]:
        """Deliver an interactivity payload as the form field ``payload=<json>``."""
        body = urlencode({"payload": json.dumps(payload)})
        return await self._post(body, "application/x-www-form-urlencoded", {}, timestamp, secret)

    async def click_button(
        self,
        user_id: str,
        action_id: str,
        value: str,
        channel: str,
        message_ts: str,
        *,
        trigger_id: str | None = None,
        block_id: str | None = None,
    ) -> tuple[int, str]:
        """Press a button on a message, as a ``block_actions`` payload."""
        stored = self.sandbox.message(channel, message_ts) if self.sandbox else None
        stored = stored or {"type": "message", "ts": message_ts}
        message = {k: v for k, v in stored.items() if v is not None}
        found_block, label = _find_button(message.get("blocks") or [], action_id)
        container: Json = {"type": "message", "message_ts": message_ts, "channel_id": channel}
        container["is_ephemeral"] = False
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        name = self._user_name(user_id)
        payload: Json = {
            "type": "block_actions",
            "user": {"id": user_id, "username": name, "name": name, "team_id": self.team_id},
            "api_app_id": self.api_app_id,
            "token": VERIFICATION_TOKEN,
            "container": container,
            "trigger_id": trigger_id or self._trigger_id(),
            "team": {"id": self.team_id, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self._channel_name(channel)},
            "message": message,
            "state": {"values": {}},
            "response_url": self._response_url(channel, message_ts, user_id),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id or found_block,
                    "text": {"type": "plain_text", "text": label, "emoji": True},
                    "value": value,
                    "type": "button",
                    "action_ts": self._next_ts(),
                }
            ],
        }
        return await self.send_action(payload)

    async def slash_command(
        self,
        command: str,
        text: str,
        user_id: str,
        channel_id: str,
        *,
        team_id: str | None = None,
        timestamp: int | str | None = None,
        secret: str | None = None,
    ) -> tuple[int, str]:
        """Invoke a slash command, form-encoded as Slack sends it."""
        form = {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id or self.team_id,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": self._channel_name(channel_id),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self._response_url(channel_id, None, user_id),
            "trigger_id": self._trigger_id(),
        }
        content_type = "application/x-www-form-urlencoded"
        return await self._post(urlencode(form), content_type, {}, timestamp, secret)

    # ---- event builders

    def message_event(
        self,
        channel: str,
        user: str | None,
        text: str,
        ts: str | None = None,
        thread_ts: str | None = None,
        subtype: str | None = None,
        bot_id: str | None = None,
    ) -> Json:
        """A ``message`` event as Slack delivers it; ``ts`` defaults to a fresh one."""
        ts = ts or self._next_ts()
        event: Json = {"type": "message"}
        if subtype:
            event["subtype"] = subtype
        if user:
            event["user"] = user
        if bot_id:
            event["bot_id"] = bot_id
        else:
            event["client_msg_id"] = str(uuid.uuid4())
        event |= {"text": text, "ts": ts, "team": self.team_id, "blocks": _rich_text(text)}
        if thread_ts:
            event["thread_ts"] = thread_ts
        event |= {"channel": channel, "event_ts": ts, "channel_type": _channel_type(channel)}
        return event

    def reaction_event(
        self, user: str, reaction: str, channel: str, ts: str, item_user: str | None = None
    ) -> Json:
        """A ``reaction_added`` event on the message ``ts``."""
        event: Json = {"type": "reaction_added", "user": user, "reaction": reaction}
        if item_user:
            event["item_user"] = item_user
        event["item"] = {"type": "message", "channel": channel, "ts": ts}
        event["event_ts"] = self._next_ts()
        return event

    def member_joined(self, channel: str, user: str, inviter: str | None = None) -> Json:
        """A ``member_joined_channel`` event."""
        event = self._membership("member_joined_channel", channel, user)
        if inviter:
            event["inviter"] = inviter
        return event

    def member_left(self, channel: str, user: str) -> Json:
        """A ``member_left_channel`` event."""
        return self._membership("member_left_channel", channel, user)

    # ---- internals

    def _membership(self, kind: str, channel: str, user: str) -> Json:
        return {
            "type": kind,
            "user": user,
            "channel": channel,
            "channel_type": "G" if channel.startswith("G") else "C",
            "team": self.team_id,
            "event_ts": self._next_ts(),
        }

    async def _post_json(
        self, body: Json, headers: dict[str, str], timestamp: int | str | None, secret: str | None
    ) -> tuple[int, str]:
        return await self._post(json.dumps(body), "application/json", headers, timestamp, secret)

    async def _post(
        self,
        body: str,
        content_type: str,
        headers: dict[str, str],
        timestamp: int | str | None,
        secret: str | None,
    ) -> tuple[int, str]:
        # The signature is over the exact bytes sent, so the body is sent pre-encoded.
        stamp = str(int(self._clock()) if timestamp is None else timestamp)
        signature = slack_signature(secret or self.signing_secret, stamp, body)
        headers = {
            **headers,
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        }
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(self.events_url, data=body.encode(), headers=headers) as r:
            return r.status, await r.text()

    def _next_ts(self) -> str:
        if self.sandbox is not None:
            return self.sandbox.next_ts()
        micros = max(int(self._clock() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _trigger_id(self) -> str:
        return f"{next(self._ids)}.{int(self._clock())}.{uuid.uuid4().hex}"

    def _response_url(self, channel: str | None, message_ts: str | None,
                      user: str | None = None) -> str:
        if self.sandbox is None:
            return f"{_NO_SANDBOX_URL}{next(self._ids)}"
        return self.sandbox.response_url(channel, message_ts, user)

    def _user_name(self, user_id: str) -> str:
        user = self.sandbox.user(user_id) if self.sandbox else None
        return str(user["name"]) if user else user_id.lower()

    def _channel_name(self, channel_id: str) -> str:
        channel = self.sandbox.channel(channel_id) if self.sandbox else None
        return channel.name if channel else channel_id.lower()


def _find_button(blocks: list[Any], action_id: str) -> tuple[str, str]:
    """The block_id and label of the button with this action_id, if the message has one."""
    for block in blocks:
        elements = list(block.get("elements", [])) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if element.get("action_id") == action_id:
                label = element.get("text", {}).get("text", action_id)
                return str(block.get("block_id", "sandbox_block")), str(label)
    return "sandbox_block", action_id


def _rich_text(text: str) -> list[Json]:
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return [{"type": "rich_text", "block_id": "sbx", "elements": [section]}]


def _channel_type(channel: str) -> str:
    return {"D": "im", "G": "group"}.get(channel[:1], "channel")

"""`chat-rescue check` for Slack: is the configuration complete, and does Slack agree?"""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from chat_rescue.adapters.slack.errors import api_error
from chat_rescue.bot.settings import Settings


async def problems(settings: Settings, client: AsyncWebClient) -> list[str]:
    """Problems in plain words (never a token); empty when all is well."""
    found = _missing(settings)
    try:
        me = await client.auth_test()
    except SlackApiError as failed:
        return [*found, f"Slack refused SLACK_BOT_TOKEN ({api_error(failed) or 'no answer'}); "
                        "copy the Bot User OAuth Token from the app's OAuth & Permissions page."]
    except (aiohttp.ClientError, TimeoutError) as failed:
        return [*found, f"Could not reach Slack at {settings.slack_api_url} "
                        f"({type(failed).__name__}); check SLACK_API_URL and the network."]
    bot = str(me.get("user") or "chat-rescue")
    channels = [("SLACK_TEAM_CHANNEL", settings.slack_team_channel)]
    channels += [("SLACK_INTAKE_CHANNELS", c) for c in settings.intake_channels]
    for variable, channel in channels:
        if channel:
            found += await _channel(client, variable, channel, bot)
    return found


def _missing(settings: Settings) -> list[str]:
    found = []
    if not settings.slack_team_channel:
        found.append("SLACK_TEAM_CHANNEL is not set: give the id (C…) of the operators' channel.")
    if not settings.intake_channels:
        found.append("SLACK_INTAKE_CHANNELS is not set: give the ids (C…, comma-separated) of "
                     "the channels customers write in.")
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        found.append("SLACK_SIGNING_SECRET is not set: copy it from the app's Basic Information "
                     "page (or set SLACK_APP_TOKEN for Socket Mode).")
    return found


async def _channel(client: AsyncWebClient, variable: str, channel: str, bot: str) -> list[str]:
    try:
        response = await client.conversations_info(channel=channel)
    except SlackApiError as failed:
        return [f"{variable}: Slack cannot show channel {channel} to the app "
                f"({api_error(failed) or 'no answer'}); check the id, and for a private "
                f"channel invite the app with /invite @{bot}."]
    info = response.get("channel") or {}
    name = f"#{info.get('name', channel)} ({channel})"
    if info.get("is_archived"):
        return [f"{variable}: {name} is archived."]
    if not info.get("is_member"):
        return [f"{variable}: the app is not a member of {name}; invite it with /invite @{bot}."]
    return []

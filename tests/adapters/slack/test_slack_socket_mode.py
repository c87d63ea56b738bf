"""Socket Mode: with SLACK_APP_TOKEN the app connects out and needs no public URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from chat_rescue.bot.model import State
from chat_rescue.bot.settings import Settings
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_socket import DEFAULT_APP_TOKEN, SocketModeStandIn
from chat_rescue.sandbox.slack_world import ANNA, CUSTOMER, HELP, SlackWorld


@pytest.fixture
async def socket_world(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> AsyncIterator[tuple[SlackWorld, SocketModeStandIn]]:
    slack = SocketModeStandIn(sandbox)
    await slack.start()
    settings = settings_for(slack_app_token=DEFAULT_APP_TOKEN, slack_signing_secret=None,
                            slack_api_url=slack.api_url)
    world = SlackWorld(sandbox, settings)
    try:
        await world.start()
        yield world, slack
    finally:
        await world.stop()
        await slack.stop()


async def test_events_and_commands_arrive_over_the_socket(
    socket_world: tuple[SlackWorld, SocketModeStandIn],
) -> None:
    world, slack = socket_world
    event = world.slack.message_event(HELP, CUSTOMER, "Hello over the socket")
    ack = await slack.event(event)
    assert set(ack) == {"envelope_id"}  # acknowledged at once, work after
    ts = str(event["ts"])
    await world.card_of(ts)
    assert world.conv(ts).state is State.QUEUED

    reply = await slack.slash_command("/rescue", "set idle 2m", ANNA, HELP)
    assert reply["payload"]["text"] == "idle is now 2m for this channel."
    assert reply["payload"]["response_type"] == "ephemeral"


async def test_no_http_endpoint_is_served_in_socket_mode(
    socket_world: tuple[SlackWorld, SocketModeStandIn],
) -> None:
    world, _ = socket_world
    async with aiohttp.ClientSession() as http, http.post(world.events_url, data=b"{}") as r:
        assert r.status == 404

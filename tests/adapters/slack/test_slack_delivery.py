"""Delivery through the outbox: rate limits, outages, dead channels, digests, pacing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from chat_rescue.adapters.slack import SlackAdapter
from chat_rescue.adapters.slack.deliver import SlackDelivery
from chat_rescue.adapters.slack.pacing import POST_PACE, UPDATE_PACE
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import (
    CloseNotice,
    Conversation,
    ConversationRef,
    Digest,
    Escalate,
    Nudge,
    PostCard,
    Refusal,
    Refused,
    Relay,
    State,
    UpdateCard,
)
from chat_rescue.bot.outbox import Posted, RetryLater, Undeliverable
from chat_rescue.bot.pacing import Pace
from chat_rescue.bot.settings import Settings
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_world import (
    ANNA,
    BOB,
    HELP,
    TEAM,
    SlackWorld,
    buttons,
    eventually,
)

World = Callable[..., Awaitable[SlackWorld]]
REF = ConversationRef("slack", HELP, "1700000000.000100")


async def test_a_429_is_retried_after_retry_after_and_posted_once(world: SlackWorld) -> None:
    world.sandbox.fail_next("chat.postMessage", status=429, retry_after=1)
    ts = await world.says("Tracking link broken")
    await eventually(lambda: world.sandbox.calls_to("chat.postMessage"))
    limited_at = time.monotonic()
    await world.card_of(ts)
    waited = time.monotonic() - limited_at
    calls = world.sandbox.calls_to("chat.postMessage")
    assert [call.status for call in calls] == [429, 200]
    assert 0.9 <= waited < 2.5
    assert len(world.team_posts()) == 1


async def test_a_server_error_is_retried_with_backoff(world: SlackWorld) -> None:
    world.sandbox.fail_next("chat.postMessage", status=500)
    ts = await world.says("Change my email")
    await world.card_of(ts)
    assert [call.status for call in world.sandbox.calls_to("chat.postMessage")] == [500, 200]
    assert len(world.team_posts()) == 1


async def test_a_burst_of_overdue_conversations_arrives_as_one_digest(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(rescue_first_response="400ms")
    world = SlackWorld(sandbox, settings)
    await world.start()
    started = []
    for n in range(4):
        ts = await world.says(f"Quick question {n}")
        await world.click(ANNA, "claim", await world.card_of(ts))
        started.append(ts)
    await eventually(lambda: all(world.conv(ts).owner == ANNA for ts in started))
    await world.bot.runtime.drained()
    await world.stop()  # the end of Anna's shift: the bot is down while the timers run out
    await asyncio.sleep(0.5)

    restarted = SlackWorld(sandbox, settings)
    await restarted.start()
    try:
        await eventually(lambda: all(restarted.conv(ts).state is State.QUEUED
                                     for ts in started))
        await restarted.bot.runtime.drained()
        notices = [m for m in restarted.team_posts()[4:]]
        assert len(notices) == 1, [m["text"] for m in notices]
        digest = notices[0]
        assert digest["text"].startswith("4 conversations need attention:")
        assert digest["text"].count("Back in the inbox") == 4
        assert digest["text"].count(f"<@{ANNA}>") == 4
        assert buttons(digest) == ["claim"] * 4
        # a Claim in the digest takes that one conversation
        await restarted.click(BOB, "claim", digest)
        await eventually(lambda: restarted.conv(started[0]).owner == BOB)
    finally:
        await restarted.stop()


async def test_nudges_in_a_digest_keep_their_one_tap_actions(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(rescue_idle="300ms", rescue_escalate="10m")
    world = SlackWorld(sandbox, settings)
    await world.start()
    started = []
    for n in range(3):
        ts = await world.says(f"Question {n}")
        await world.says("Here to help", thread=ts, user=ANNA)
        started.append(ts)
    await eventually(lambda: all(world.conv(ts).owner == ANNA for ts in started))
    for ts in started:
        await world.says("And one more thing", thread=ts)
    await eventually(lambda: all(world.conv(ts).state is State.WAITING_ON_OPERATOR
                                 for ts in started))
    await world.bot.runtime.drained()
    await world.stop()  # down while the idle timers run out
    await asyncio.sleep(0.5)

    restarted = SlackWorld(sandbox, settings)
    await restarted.start()
    try:
        await eventually(lambda: all(restarted.conv(ts).nudged_at for ts in started))
        await restarted.bot.runtime.drained()
        [digest] = [m for m in restarted.team_posts() if "need attention" in m["text"]]
        assert digest["text"].count("are you still with") == 3
        assert buttons(digest) == ["snooze", "close", "hand_off"] * 3
        await restarted.click(ANNA, "snooze", digest)
        await eventually(lambda: restarted.conv(started[0]).snoozed)
        assert restarted.conv(started[0]).nudged_at is None
    finally:
        await restarted.stop()


async def test_posts_are_paced_per_channel_and_updates_have_their_own_lane(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    world = SlackWorld(sandbox, settings_for())
    bot = await world.start()
    try:
        adapter = world.adapter
        conv = Conversation(REF, f"slack:{TEAM}", "U0C", 0.0, card="1.0")
        assert adapter.destination(PostCard(conv)) == TEAM
        assert adapter.destination(Nudge(REF, ANNA, 1.0)) == TEAM
        assert adapter.destination(UpdateCard(conv)) == f"update:{TEAM}"
        assert adapter.destination(CloseNotice(REF, "bye")) == HELP
        # In production: a burst of three posts per channel, then one a second.
        assert (POST_PACE.count, POST_PACE.period) == (3, 3.0)
        assert (UPDATE_PACE.count, UPDATE_PACE.period) == (50, 60.0)  # chat.update: Tier 3
        adapter.paces = {"post": Pace(count=2, period=1.5), "update": Pace(gap=0.01),
                         "ephemeral": Pace(gap=0.01)}
        first, second = await world.says("one"), await world.says("two")
        await world.card_of(first)
        await world.card_of(second)  # the burst
        shown = time.monotonic()
        third = await world.says("three")
        await asyncio.sleep(0.5)
        assert bot.store.load(f"slack:{HELP}:{third}").card is None  # held back by pacing
        await world.card_of(third)
        assert time.monotonic() - shown >= 0.9  # the first post left the window
    finally:
        await world.stop()


@pytest.fixture
async def delivery(sandbox: SlackSandbox) -> SlackDelivery:
    client = AsyncWebClient(token=sandbox.bot_token, base_url=sandbox.api_url, retry_handlers=[])
    return SlackDelivery(client, TEAM)


async def test_a_missing_channel_is_undeliverable(sandbox: SlackSandbox,
                                                  delivery: SlackDelivery) -> None:
    with pytest.raises(Undeliverable, match="channel_not_found"):
        await delivery.deliver(CloseNotice(ConversationRef("slack", "C0GONE", "1.0"), "bye"))


async def test_rate_limits_become_retry_later(sandbox: SlackSandbox,
                                              delivery: SlackDelivery) -> None:
    sandbox.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(RetryLater) as wait:
        await delivery.deliver(Escalate(REF, "@here", 130.0, 1, "U0C", "help"))
    assert wait.value.after == 7.0


async def test_outages_are_raised_for_the_outbox_to_back_off(sandbox: SlackSandbox,
                                                             delivery: SlackDelivery) -> None:
    sandbox.fail_next("chat.postEphemeral", status=503)
    with pytest.raises(SlackApiError):
        await delivery.deliver(Refused(REF, BOB, Refusal.CLAIMED, ANNA, via="reaction"))


async def test_unknown_actions_are_refused(delivery: SlackDelivery) -> None:
    with pytest.raises(TypeError, match="Relay"):
        await delivery.deliver(Relay(REF, True, "chat", "1"))
    with pytest.raises(TypeError, match="Refused"):
        await delivery.deliver(Digest(TEAM, (Refused(REF, BOB, Refusal.CLAIMED, ANNA),)))


async def test_an_update_without_a_card_posts_and_records_one(
    sandbox: SlackSandbox, delivery: SlackDelivery
) -> None:
    conv = Conversation(REF, f"slack:{TEAM}", "U0C", 0.0, preview="hello")
    posted = await delivery.deliver(UpdateCard(conv))  # the outbox records what it returns
    card = sandbox.messages(TEAM)[0]
    assert posted == Posted(card["ts"], (f"slack:card:{card['ts']}",))
    # and a card that was deleted in Slack is replaced rather than lost
    again = await delivery.deliver(UpdateCard(Conversation(REF, "t", "U0C", 0.0,
                                                           card="9.000001")))
    assert isinstance(again, Posted) and len(sandbox.messages(TEAM)) == 2
    assert again.card == sandbox.messages(TEAM)[1]["ts"]


def test_the_adapter_serves_http_unless_socket_mode_is_configured(
    settings_for: Callable[..., Settings],
) -> None:
    from aiohttp import web

    from chat_rescue.bot.service import Service
    from chat_rescue.storage.sqlite import SQLiteStore

    for app_token, routes in ((None, ["/slack/events"]), ("xapp-1-sandbox", [])):
        settings = settings_for(slack_app_token=app_token)
        store = SQLiteStore(settings.database_url)
        try:
            service = Service(store, settings.base_policy(), FakeClock())
            app = web.Application()
            SlackAdapter(settings, service, FakeClock()).routes(app)
            paths = [r.resource.canonical for r in app.router.routes() if r.resource]
            assert paths == routes
        finally:
            store.close()

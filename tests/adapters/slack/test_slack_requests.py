"""What arrives on POST /slack/events: signatures, retries, noise, membership, `/rescue`."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

import pytest

from chat_rescue.adapters.slack import people
from chat_rescue.bot.model import State
from chat_rescue.sandbox.slack import BOT_ID
from chat_rescue.sandbox.slack_world import (
    ANNA,
    BOB,
    CARL,
    CUSTOMER,
    HELP,
    TEAM,
    SlackWorld,
    eventually,
)

World = Callable[..., Awaitable[SlackWorld]]
TEAM_KEY = f"slack:{TEAM}"


def opened(world: SlackWorld) -> int:
    return sum(h.kind == "opened" for h in world.bot.store.history(TEAM_KEY, 0))


async def test_slack_retries_of_one_event_are_processed_once(world: SlackWorld) -> None:
    event = world.slack.message_event(HELP, CUSTOMER, "Cancel my subscription")
    answers = [
        await world.slack.send_event(event, event_id="Ev0RETRY", retry_num=retry)
        for retry in (None, 1, 2)
    ]
    assert [status for status, _ in answers] == [200, 200, 200]
    await world.card_of(str(event["ts"]))
    await world.bot.runtime.drained()
    assert opened(world) == 1
    assert len(world.team_posts()) == 1
    assert len(world.sandbox.calls_to("chat.postMessage")) == 1


@pytest.mark.parametrize("forgery", ["bad signature", "stale timestamp"])
async def test_unverified_requests_are_refused_and_leave_no_trace(
    world: SlackWorld, forgery: str
) -> None:
    event = world.slack.message_event(HELP, CUSTOMER, "I am not Slack")
    if forgery == "bad signature":
        status, _ = await world.slack.send_event(event, event_id="Ev0FORGED", secret="guess")
    else:
        stale = int(time.time()) - 6 * 60  # Slack's window is five minutes
        status, _ = await world.slack.send_event(event, event_id="Ev0FORGED", timestamp=stale)
    assert status == 401
    status, _ = await world.slack.slash_command("/rescue", "set idle off", ANNA, HELP,
                                                secret="guess")
    assert status == 401
    assert world.conv(str(event["ts"])) is None
    assert world.bot.store.settings(f"channel:slack:{HELP}") == {}
    assert world.sandbox.calls_to("chat.postMessage") == []
    # the forged event_id was not remembered: the genuine delivery is processed
    status, _ = await world.slack.send_event(event, event_id="Ev0FORGED")
    assert status == 200
    await world.card_of(str(event["ts"]))


async def test_url_verification_echoes_the_challenge(world: SlackWorld) -> None:
    status, body = await world.slack.url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY")
    assert status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY" in body


async def test_bots_edits_deletions_and_joins_are_not_conversations(world: SlackWorld) -> None:
    slack = world.slack
    noise = [
        slack.message_event(HELP, world.sandbox.bot_user_id, "our own post", bot_id=BOT_ID),
        slack.message_event(HELP, None, "another bot", subtype="bot_message", bot_id="B0OTHER"),
        slack.message_event(HELP, "U0HELPER", "a bot user", bot_id="B0HELPER"),
        slack.message_event(HELP, CUSTOMER, "", subtype="message_changed"),
        slack.message_event(HELP, CUSTOMER, "", subtype="message_deleted"),
        slack.message_event(HELP, CUSTOMER, "<@U0CUSTOMER> has joined", subtype="channel_join"),
        slack.message_event(HELP, ANNA, "Announcement: we close at 6"),  # operator, top level
        slack.message_event("C0RANDOM", CUSTOMER, "not an intake channel"),
        slack.message_event(TEAM, ANNA, "chatting in the team channel"),
    ]
    for event in noise:
        status, _ = await slack.send_event(event)
        assert status == 200
    ts = await world.says("A real question")
    await world.card_of(ts)
    await world.bot.runtime.drained()
    assert opened(world) == 1
    assert all(world.conv(str(e["ts"]), str(e["channel"])) is None for e in noise)


async def test_operators_follow_team_channel_membership(world: SlackWorld) -> None:
    dora = "U0DORA"
    world.sandbox.add_user(dora, "dora")
    await world.slack.send_event(world.slack.member_joined(TEAM, dora))
    ts = await world.says("Gift wrapping available?")
    await world.card_of(ts)
    await world.says("Yes!", thread=ts, user=dora)
    await eventually(lambda: world.conv(ts).owner == dora)

    await world.slack.send_event(world.slack.member_left(TEAM, CARL))
    await world.says("I left the support team", user=CARL)  # now a customer
    await eventually(lambda: opened(world) == 2)
    assert dora in world.adapter.workspace.operators
    assert CARL not in world.adapter.workspace.operators


async def test_rescue_status_and_help_are_ephemeral(world: SlackWorld) -> None:
    reply = json.loads(await world.rescue("", user=BOB))
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("Timers here:") and "idle 300ms" in reply["text"]
    help_text = json.loads(await world.rescue("help", user=BOB))["text"]
    assert "/rescue set &lt;timer&gt; &lt;dur&gt;" in help_text  # shown literally in Slack


async def test_only_the_support_team_may_use_rescue(world_for: World) -> None:
    world = await world_for(slack_admins="U0LISTED")
    for typed in ("", "stats", "help", "stats 30d"):
        reply = json.loads(await world.rescue(typed, user=CUSTOMER, channel=HELP))
        assert reply == {"response_type": "ephemeral",
                         "text": "Only the support team can use /rescue."}
    assert json.loads(await world.rescue("help", user=BOB))["text"].startswith("chat-rescue")
    listed = json.loads(await world.rescue("", user="U0LISTED"))["text"]  # not an operator
    assert listed.startswith("Timers here:")
    refused = json.loads(await world.rescue("set idle 1m", user=CUSTOMER))["text"]
    assert refused.startswith("Sorry, only admins")
    assert world.bot.store.settings(f"channel:slack:{HELP}") == {}


async def test_users_info_is_asked_only_for_changes_and_briefly_remembered(
    world: SlackWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def asked() -> list[str]:
        return [str(call.params.get("user")) for call in world.sandbox.calls_to("users.info")]

    for typed in ("", "stats", "help"):
        await world.rescue(typed, user=BOB)
        await world.rescue(typed, user=ANNA)
        await world.rescue(typed, user=CUSTOMER)
    assert asked() == []
    await world.rescue("set idle 1m", user=ANNA)
    await world.rescue("set idle 2m", user=ANNA)
    await world.rescue("escalate-to @here", user=BOB)
    assert asked() == [ANNA, BOB]  # each answer is trusted for people.ADMIN_TTL
    monkeypatch.setattr(people, "ADMIN_TTL", 0.0)
    await world.rescue("set idle 3m", user=ANNA)
    assert asked() == [ANNA, BOB, ANNA]
    assert world.bot.store.settings(f"channel:slack:{HELP}") == {"idle": "3m"}


async def test_non_admins_cannot_change_settings(world: SlackWorld) -> None:
    reply = json.loads(await world.rescue("set idle 1m", user=BOB))["text"]
    assert reply == "Sorry, only admins can change rescue settings. Nothing was changed."
    reply = json.loads(await world.rescue("escalate-to @channel", user=BOB, channel=TEAM))
    assert reply["text"].startswith("Sorry, only admins")
    assert world.bot.store.settings(f"channel:slack:{HELP}") == {}
    assert world.bot.store.settings(f"team:{TEAM_KEY}") == {}


async def test_admin_set_in_an_intake_channel_overrides_that_channel(world: SlackWorld) -> None:
    reply = json.loads(await world.rescue("set idle 2m", user=ANNA, channel=HELP))["text"]
    assert reply == "idle is now 2m for this channel."
    assert world.bot.store.settings(f"channel:slack:{HELP}") == {"idle": "2m"}
    assert world.bot.store.settings(f"team:{TEAM_KEY}") == {}
    status = json.loads(await world.rescue("", user=BOB, channel=HELP))["text"]
    assert "idle 2m (channel)" in status


async def test_admin_set_in_the_team_channel_sets_the_team_default(world: SlackWorld) -> None:
    reply = json.loads(await world.rescue("set accept 1m", user=ANNA, channel=TEAM))["text"]
    assert reply == "accept is now 1m for the team."
    assert world.bot.store.settings(f"team:{TEAM_KEY}") == {"accept": "1m"}


async def test_admin_set_elsewhere_changes_nothing(world: SlackWorld) -> None:
    reply = json.loads(await world.rescue("set accept 1m", user=ANNA, channel="C0RANDOM"))
    assert reply["text"].endswith("Nothing was changed.")
    assert world.bot.store.settings(f"team:{TEAM_KEY}") == {}
    assert world.bot.store.settings("channel:slack:C0RANDOM") == {}


async def test_configured_admins_may_change_settings(world_for: World) -> None:
    world = await world_for(slack_admins=f"{BOB}, U0SOMEONE")
    reply = json.loads(await world.rescue("set first_response 1m", user=BOB))["text"]
    assert reply == "first_response is now 1m for this channel."


@pytest.mark.parametrize(
    ("typed", "explained"),
    [
        ("set idle 5x", "'5x' is not a duration like 30s, 5m, 1h30m, 2h, or off"),
        ("set idle", "Usage: /rescue set &lt;timer&gt; &lt;duration&gt;"),
        ("set coffee 5m", "Unknown timer 'coffee'"),
        ("frobnicate", "Unknown command 'frobnicate'. Try /rescue help."),
        ("stats forever", "'forever' is not a period like 7d or 24h"),
    ],
)
async def test_malformed_rescue_commands_are_explained(
    world: SlackWorld, typed: str, explained: str
) -> None:
    reply = json.loads(await world.rescue(typed, user=ANNA))["text"]
    assert explained in reply
    assert world.bot.store.settings(f"channel:slack:{HELP}") == {}


async def test_escalate_to_accepts_what_slack_sends_for_mentions(world: SlackWorld) -> None:
    # with "escape channels, users and links" Slack rewrites @mentions like this
    typed = "<!subteam^S0OPS|@ops> <@U0CARL|carl>"
    reply = json.loads(await world.rescue(f"escalate-to {typed}", user=ANNA, channel=TEAM))
    assert reply["text"].startswith("escalate_to is now")
    await world.rescue("set accept 300ms", user=ANNA, channel=TEAM)
    ts = await world.says("Anyone?")
    await world.card_of(ts)
    call = (await eventually(lambda: world.team_posts()[1:]))[0]
    assert call["text"].startswith("<!subteam^S0OPS> <@U0CARL> nobody has taken")
    assert world.conv(ts).state is State.QUEUED


async def test_a_slow_users_info_is_a_refusal_not_a_missed_ack(
    world: SlackWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(people, "ADMIN_LOOKUP", 0.2)  # 2 s in production, within Slack's 3
    world.sandbox.hang("users.info", 5.0)
    started = time.monotonic()
    reply = json.loads(await world.rescue("set idle 1m", user=ANNA))["text"]
    assert time.monotonic() - started < 1.0
    assert reply.startswith("Sorry, only admins")
    world.sandbox.hang("users.info", 0)


async def test_a_clean_start_logs_no_warning(world_for: World, caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-as-chat-rescue-run-has-it")  # bolt reads it
    caplog.set_level("INFO")
    world = await world_for()
    ts = await world.says("Hello")
    await world.card_of(ts)
    warnings = [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert warnings == []

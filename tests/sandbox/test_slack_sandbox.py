"""The Slack sandbox speaks the wire format that slack_sdk and slack-bolt really use."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from chat_rescue.sandbox.flood import SlackFlood
from chat_rescue.sandbox.slack import DEFAULT_BOT_TOKEN, SlackSandbox
from chat_rescue.sandbox.slack_client import SlackEventsClient, slack_signature

TEAM_CHANNEL = "C0TEAM"
INTAKE = "C0HELP"
CUSTOMER = "U0CUSTOMER"
OPERATORS = ["U0ANNA", "U0BOB", "U0CARL", "U0DORA", "U0EVE"]
SECRET = "sandbox-signing-secret"
SHORT_TIMEOUT: Any = 0.1  # slack_sdk annotates timeout as int; aiohttp takes float seconds
CARD_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*New conversation*"}},
    {
        "type": "actions",
        "block_id": "card_actions",
        "elements": [
            {
                "type": "button",
                "action_id": "claim",
                "value": "conv-1",
                "text": {"type": "plain_text", "text": "Claim"},
            }
        ],
    },
]


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox() as sandbox:
        sandbox.add_channel(TEAM_CHANNEL, "support-team", [sandbox.bot_user_id, *OPERATORS])
        sandbox.add_channel(INTAKE, "help", [sandbox.bot_user_id, CUSTOMER])
        sandbox.add_user("U0ANNA", "anna", real_name="Anna Admin", is_admin=True)
        sandbox.add_user(CUSTOMER, "customer")
        yield sandbox


@pytest.fixture
def slack(sandbox: SlackSandbox) -> AsyncWebClient:
    # retry_handlers=[]: no silent reconnect-and-retry hiding what the sandbox answered.
    return AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=sandbox.api_url, retry_handlers=[])


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait (briefly polling) until a background handler has done its work."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# ---- Web API


async def test_auth_test_names_the_bot(slack: AsyncWebClient, sandbox: SlackSandbox) -> None:
    response = await slack.auth_test()
    assert response["user_id"] == sandbox.bot_user_id
    assert response["bot_id"] == sandbox.bot_id
    assert response["team_id"] == "T0SANDBOX"
    assert all(key in response for key in ("url", "team", "user"))


async def test_post_then_update_keeps_the_card_current(
    slack: AsyncWebClient, sandbox: SlackSandbox
) -> None:
    posted = await slack.chat_postMessage(channel=TEAM_CHANNEL, text="new", blocks=CARD_BLOCKS)
    second = await slack.chat_postMessage(channel=TEAM_CHANNEL, text="another")

    assert posted["channel"] == TEAM_CHANNEL
    assert posted["message"]["blocks"] == CARD_BLOCKS
    assert posted["message"]["bot_id"] == sandbox.bot_id
    assert float(second["ts"]) > float(posted["ts"])
    assert len(posted["ts"].split(".")[1]) == 6

    updated = await slack.chat_update(channel=TEAM_CHANNEL, ts=posted["ts"], text="claimed")
    assert updated["ts"] == posted["ts"]
    assert updated["text"] == "claimed"
    card = sandbox.messages(TEAM_CHANNEL)[0]
    assert (card["ts"], card["text"], card["blocks"]) == (posted["ts"], "claimed", None)
    assert [m["text"] for m in sandbox.messages(TEAM_CHANNEL)] == ["claimed", "another"]
    # slack_sdk sends chat.* with blocks as a JSON body; the sandbox read it as such.
    assert sandbox.calls_to("chat.postMessage")[0].params["blocks"] == CARD_BLOCKS


async def test_update_of_a_missing_message_fails(slack: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await slack.chat_update(channel=TEAM_CHANNEL, ts="1.000001", text="x")
    assert raised.value.response["error"] == "message_not_found"


async def test_post_message_checks_channel_and_content(slack: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await slack.chat_postMessage(channel="C0NOPE", text="x")
    assert raised.value.response["error"] == "channel_not_found"

    with pytest.warns(UserWarning, match="text"), pytest.raises(SlackApiError) as raised:
        await slack.chat_postMessage(channel=INTAKE)
    assert raised.value.response["error"] == "no_text"


async def test_a_post_to_a_user_id_goes_to_their_direct_messages_with_the_app(
    slack: AsyncWebClient, sandbox: SlackSandbox
) -> None:
    posted = await slack.chat_postMessage(channel="U0ANNA", text="your sweep card")
    assert posted["channel"] == sandbox.dm_channel("U0ANNA") == "D0ANNA"
    assert [m["text"] for m in sandbox.messages("D0ANNA")] == ["your sweep card"]
    with pytest.raises(SlackApiError):
        await slack.chat_postMessage(channel="U0NOBODY", text="x")


async def test_thread_replies_stay_in_their_thread(
    slack: AsyncWebClient, sandbox: SlackSandbox
) -> None:
    card = await slack.chat_postMessage(channel=TEAM_CHANNEL, text="card")
    nudge = await slack.chat_postMessage(
        channel=TEAM_CHANNEL, text="<@U0BOB> still there?", thread_ts=card["ts"]
    )

    assert nudge["message"]["thread_ts"] == card["ts"]
    assert [m["text"] for m in sandbox.messages(TEAM_CHANNEL)] == ["card"]
    replies = sandbox.messages(TEAM_CHANNEL, thread_ts=card["ts"])
    assert [(m["text"], m["thread_ts"]) for m in replies] == [("<@U0BOB> still there?", card["ts"])]

    link = await slack.chat_getPermalink(channel=TEAM_CHANNEL, message_ts=nudge["ts"])
    assert link["permalink"].endswith(f"?thread_ts={card['ts']}&cid={TEAM_CHANNEL}")
    assert f"/archives/{TEAM_CHANNEL}/p{nudge['ts'].replace('.', '')}" in link["permalink"]


async def test_members_are_paginated_by_cursor(slack: AsyncWebClient) -> None:
    first = await slack.conversations_members(channel=TEAM_CHANNEL, limit=2)
    assert first["members"] == ["U0SANDBOXBOT", "U0ANNA"]
    assert first["response_metadata"]["next_cursor"]

    pages = [
        page["members"]
        async for page in await slack.conversations_members(channel=TEAM_CHANNEL, limit=4)
    ]
    assert pages == [["U0SANDBOXBOT", *OPERATORS[:3]], OPERATORS[3:]]

    with pytest.raises(SlackApiError) as raised:
        await slack.conversations_members(channel=TEAM_CHANNEL, cursor="not-a-cursor")
    assert raised.value.response["error"] == "invalid_cursor"


async def test_users_info_describes_registered_users(slack: AsyncWebClient) -> None:
    user = (await slack.users_info(user="U0ANNA"))["user"]
    assert user["id"] == "U0ANNA"
    assert (user["name"], user["real_name"]) == ("anna", "Anna Admin")
    assert (user["is_admin"], user["is_owner"], user["is_bot"]) == (True, False, False)
    assert user["profile"]["display_name"] == "anna"

    with pytest.raises(SlackApiError) as raised:
        await slack.users_info(user="U0GHOST")
    assert raised.value.response["error"] == "user_not_found"


async def test_a_wrong_token_is_invalid_auth(sandbox: SlackSandbox) -> None:
    stranger = AsyncWebClient(token="xoxb-wrong", base_url=sandbox.api_url)
    with pytest.raises(SlackApiError) as raised:
        await stranger.chat_postMessage(channel=INTAKE, text="hi")
    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == "invalid_auth"
    assert sandbox.messages(INTAKE) == []
    call = sandbox.calls[-1]
    assert call.failed and call.error == "invalid_auth"

    anonymous = AsyncWebClient(base_url=sandbox.api_url)
    with pytest.raises(SlackApiError) as raised:
        await anonymous.auth_test()
    assert raised.value.response["error"] == "not_authed"


async def test_form_bodies_and_token_fields_are_accepted(sandbox: SlackSandbox) -> None:
    no_token_client = AsyncWebClient(base_url=sandbox.api_url)
    form = {"token": DEFAULT_BOT_TOKEN, "channel": INTAKE, "text": "hi"}
    response = await no_token_client.api_call(
        "chat.postMessage", data={**form, "blocks": json.dumps(CARD_BLOCKS)}
    )
    assert sandbox.messages(INTAKE)[0]["ts"] == response["ts"]
    assert sandbox.messages(INTAKE)[0]["blocks"] == CARD_BLOCKS
    assert "token" not in sandbox.calls[-1].params  # secrets stay out of the record


async def test_rate_limit_surfaces_as_a_429_without_a_silent_retry(
    sandbox: SlackSandbox,
) -> None:
    # Default client: its only default retry handler covers connection errors, not 429s.
    default_client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=sandbox.api_url)
    sandbox.fail_next("chat.postMessage", status=429, retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        await default_client.chat_postMessage(channel=INTAKE, text="hi")

    response = raised.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response["error"] == "ratelimited"
    assert [(c.method, c.status) for c in sandbox.calls] == [("chat.postMessage", 429)]
    assert sandbox.calls[0].failed
    assert sandbox.messages(INTAKE) == []

    await default_client.chat_postMessage(channel=INTAKE, text="hi")  # only the next one failed
    assert [m["text"] for m in sandbox.messages(INTAKE)] == ["hi"]


async def test_flood_control_allows_a_burst_then_one_post_a_second_per_channel(
    slack: AsyncWebClient, sandbox: SlackSandbox
) -> None:
    now = [1000.0]
    sandbox.flood = SlackFlood(burst=3, clock=lambda: now[0])
    for n in range(3):
        await slack.chat_postMessage(channel=TEAM_CHANNEL, text=f"card {n}")
    with pytest.raises(SlackApiError) as raised:
        await slack.chat_postMessage(channel=TEAM_CHANNEL, text="one too many")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "1"
    assert raised.value.response["error"] == "ratelimited"
    await slack.chat_postMessage(channel=INTAKE, text="another channel has its own")
    await slack.chat_update(channel=TEAM_CHANNEL, ts=sandbox.messages(TEAM_CHANNEL)[0]["ts"],
                            text="updates are not limited")
    now[0] += 1.0
    await slack.chat_postMessage(channel=TEAM_CHANNEL, text="a second later")
    assert sandbox.flood.refused == {TEAM_CHANNEL: 1}
    assert len(sandbox.messages(TEAM_CHANNEL)) == 4


async def test_server_errors_for_any_method_count_down(
    slack: AsyncWebClient, sandbox: SlackSandbox
) -> None:
    sandbox.fail_next("*", status=500, count=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            await slack.users_info(user="U0ANNA")
        assert raised.value.response.status_code == 500
        assert "Retry-After" not in raised.value.response.headers
    assert (await slack.auth_test())["ok"] is True
    assert [c.status for c in sandbox.calls] == [500, 500, 200]


async def test_injected_api_errors_answer_http_200(
    slack: AsyncWebClient, sandbox: SlackSandbox
) -> None:
    sandbox.fail_next("chat.update", status=200, error="cant_update_message")
    with pytest.raises(SlackApiError) as raised:
        await slack.chat_update(channel=INTAKE, ts="1.1", text="x")
    assert (raised.value.response.status_code, raised.value.response["error"]) == (
        200,
        "cant_update_message",
    )


async def test_a_hung_method_times_the_client_out(
    slack: AsyncWebClient, sandbox: SlackSandbox
) -> None:
    sandbox.hang("chat.postMessage", 30)
    impatient = AsyncWebClient(
        token=DEFAULT_BOT_TOKEN, base_url=sandbox.api_url, timeout=SHORT_TIMEOUT
    )
    with pytest.raises(TimeoutError):
        await impatient.chat_postMessage(channel=INTAKE, text="hi")
    assert (await slack.auth_test())["ok"]  # other methods still answer
    assert [c.method for c in sandbox.calls] == ["chat.postMessage", "auth.test"]
    assert sandbox.calls[0].status is None  # still held back when the client gave up

    sandbox.hang("chat.postMessage", 0)
    assert (await slack.chat_postMessage(channel=INTAKE, text="hi"))["ok"]


async def test_stop_releases_held_back_requests() -> None:
    sandbox = SlackSandbox()
    await sandbox.start()
    sandbox.hang("*", 30)
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=sandbox.api_url, retry_handlers=[])
    pending = asyncio.create_task(client.auth_test())
    await eventually(lambda: bool(sandbox.calls))
    started = time.monotonic()
    await sandbox.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises((SlackApiError, aiohttp.ClientError)):
        await pending


async def test_unknown_methods_are_refused(slack: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await slack.api_call("chat.fly")
    assert raised.value.response["error"] == "unknown_method"


async def test_ephemeral_reactions_info_and_usergroups(
    slack: AsyncWebClient, sandbox: SlackSandbox
) -> None:
    ephemeral = await slack.chat_postEphemeral(channel=TEAM_CHANNEL, user="U0ANNA", text="ok")
    assert sandbox.ephemerals[0]["ts"] == ephemeral["message_ts"]
    assert sandbox.ephemerals[0]["user"] == "U0ANNA"
    with pytest.raises(SlackApiError) as raised:
        await slack.chat_postEphemeral(channel=TEAM_CHANNEL, user=CUSTOMER, text="ok")
    assert raised.value.response["error"] == "user_not_in_channel"

    posted = await slack.chat_postMessage(channel=INTAKE, text="help!")
    await slack.reactions_add(channel=INTAKE, name="eyes", timestamp=posted["ts"])
    with pytest.raises(SlackApiError) as raised:
        await slack.reactions_add(channel=INTAKE, name="eyes", timestamp=posted["ts"])
    assert raised.value.response["error"] == "already_reacted"
    got = await slack.reactions_get(channel=INTAKE, timestamp=posted["ts"])
    assert got["message"]["reactions"] == [
        {"name": "eyes", "users": [sandbox.bot_user_id], "count": 1}
    ]

    info = (await slack.conversations_info(channel=INTAKE, include_num_members=True))["channel"]
    assert (info["id"], info["name"], info["is_member"], info["num_members"]) == (
        INTAKE,
        "help",
        True,
        2,
    )

    sandbox.add_usergroup("S0OPS", "support-oncall", ["U0ANNA", "U0BOB"])
    groups = (await slack.usergroups_list(include_users=True))["usergroups"]
    assert [(g["id"], g["handle"], g["users"]) for g in groups] == [
        ("S0OPS", "support-oncall", ["U0ANNA", "U0BOB"])
    ]


# ---- Slack -> bot requests


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A bot endpoint that checks signatures with slack_sdk's own verifier."""
    verifier = SignatureVerifier(SECRET)
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        valid = verifier.is_valid(
            body,
            request.headers.get("X-Slack-Request-Timestamp", ""),
            request.headers.get("X-Slack-Signature", ""),
        )
        received.append({"body": body, "headers": dict(request.headers), "valid": valid})
        return web.Response(status=200 if valid else 401, text="ok" if valid else "bad")

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/slack/events", received
    await runner.cleanup()


@pytest.fixture
async def events(
    receiver: tuple[str, list[dict[str, Any]]], sandbox: SlackSandbox
) -> AsyncIterator[SlackEventsClient]:
    async with SlackEventsClient(receiver[0], SECRET, sandbox=sandbox) as client:
        yield client


def test_signature_matches_slacks_documented_example() -> None:
    # The worked example from Slack's "Verifying requests from Slack" guide.
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        "command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        "commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        "trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert slack_signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


async def test_signed_event_passes_and_mirrors_into_the_sandbox(
    events: SlackEventsClient,
    receiver: tuple[str, list[dict[str, Any]]],
    sandbox: SlackSandbox,
) -> None:
    event = events.message_event(INTAKE, CUSTOMER, "my order is late")
    status, _ = await events.send_event(event, event_id="Ev0001")

    assert status == 200
    envelope = json.loads(receiver[1][0]["body"])
    assert envelope["type"] == "event_callback"
    assert envelope["event_id"] == "Ev0001"
    assert envelope["event"] == event
    assert envelope["authorizations"][0]["user_id"] == sandbox.bot_user_id
    assert "X-Slack-Retry-Num" not in receiver[1][0]["headers"]
    assert [m["text"] for m in sandbox.messages(INTAKE)] == ["my order is late"]

    reply = events.message_event(INTAKE, CUSTOMER, "hello?", thread_ts=event["ts"])
    await events.send_event(reply)
    await events.send_event(events.reaction_event("U0BOB", "eyes", INTAKE, event["ts"], CUSTOMER))
    assert [m["text"] for m in sandbox.messages(INTAKE, thread_ts=event["ts"])] == ["hello?"]
    assert sandbox.messages(INTAKE)[0]["reactions"] == [
        {"name": "eyes", "users": ["U0BOB"], "count": 1}
    ]

    await events.send_event(events.member_left(TEAM_CHANNEL, "U0EVE"))
    await events.send_event(events.member_joined(TEAM_CHANNEL, "U0NEW"))
    team = sandbox.channel(TEAM_CHANNEL)
    assert team is not None
    assert team.members[-2:] == ["U0DORA", "U0NEW"]


@pytest.mark.parametrize(
    "tamper", [{"secret": "not-the-secret"}, {"timestamp": int(time.time()) - 600}]
)
async def test_wrong_secret_or_stale_timestamp_is_rejected(
    events: SlackEventsClient,
    receiver: tuple[str, list[dict[str, Any]]],
    tamper: dict[str, Any],
) -> None:
    status, _ = await events.send_event(events.message_event(INTAKE, CUSTOMER, "hi"), **tamper)
    assert status == 401
    assert receiver[1][0]["valid"] is False


async def test_retries_carry_slacks_retry_headers(
    events: SlackEventsClient,
    receiver: tuple[str, list[dict[str, Any]]],
    sandbox: SlackSandbox,
) -> None:
    event = events.message_event(INTAKE, CUSTOMER, "hello?")
    await events.send_event(event, event_id="Ev0002")
    await events.send_event(event, event_id="Ev0002", retry_num=1)

    first, retry = (json.loads(r["body"]) for r in receiver[1])
    assert first == retry
    assert receiver[1][1]["headers"]["X-Slack-Retry-Num"] == "1"
    assert receiver[1][1]["headers"]["X-Slack-Retry-Reason"] == "http_timeout"
    assert len(sandbox.messages(INTAKE)) == 1  # a redelivery is not a second message


async def test_url_verification_and_slash_command(
    events: SlackEventsClient, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    assert (await events.url_verification("c-123"))[0] == 200
    assert json.loads(receiver[1][0]["body"])["challenge"] == "c-123"

    assert (await events.slash_command("/rescue", "set idle 5m", "U0ANNA", TEAM_CHANNEL))[0] == 200
    request = receiver[1][1]
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(parse_qsl(request["body"]))
    assert form["command"] == "/rescue"
    assert form["text"] == "set idle 5m"
    assert (form["user_id"], form["user_name"]) == ("U0ANNA", "anna")
    assert (form["channel_id"], form["channel_name"]) == (TEAM_CHANNEL, "support-team")
    assert form["response_url"].startswith("http://127.0.0.1:")


async def test_button_click_payload_points_back_at_the_sandbox(
    events: SlackEventsClient,
    receiver: tuple[str, list[dict[str, Any]]],
    sandbox: SlackSandbox,
    slack: AsyncWebClient,
) -> None:
    card = await slack.chat_postMessage(channel=TEAM_CHANNEL, text="new", blocks=CARD_BLOCKS)
    status, _ = await events.click_button("U0BOB", "claim", "conv-1", TEAM_CHANNEL, card["ts"])

    assert status == 200
    form = dict(parse_qsl(receiver[1][0]["body"]))
    payload = json.loads(form["payload"])
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0BOB"
    assert payload["container"]["message_ts"] == card["ts"]
    assert payload["message"]["blocks"] == CARD_BLOCKS
    action = payload["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"]) == (
        "claim",
        "card_actions",
        "conv-1",
    )
    assert action["text"]["text"] == "Claim"

    async with aiohttp.ClientSession() as session:
        reply = {"replace_original": True, "text": "Claimed by <@U0BOB>"}
        async with session.post(payload["response_url"], json=reply) as response:
            assert response.status == 200
    assert sandbox.responses == [reply]
    assert sandbox.messages(TEAM_CHANNEL)[0]["text"] == "Claimed by <@U0BOB>"


# ---- the real slack-bolt stack against both halves


@pytest.fixture
async def bolt_events(sandbox: SlackSandbox) -> AsyncIterator[SlackEventsClient]:
    """A slack-bolt app served over HTTP, its Web API pointed at the sandbox."""
    client = AsyncWebClient(token=DEFAULT_BOT_TOKEN, base_url=sandbox.api_url)
    app = AsyncApp(client=client, signing_secret=SECRET)

    @app.event("message")
    async def on_message(event: dict[str, Any], say: Any) -> None:
        await say(text=f"echo: {event['text']}", thread_ts=event["ts"])

    @app.action("claim")
    async def on_claim(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        await respond(replace_original=True, text=f"Claimed by <@{body['user']['id']}>")

    @app.command("/rescue")
    async def on_rescue(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"rescue: {command['text'] or 'status'}")

    runner = web.AppRunner(app.web_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/slack/events"
    async with SlackEventsClient(url, SECRET, sandbox=sandbox) as events:
        yield events
    await runner.cleanup()


async def test_bolt_verifies_and_answers_events(
    bolt_events: SlackEventsClient, sandbox: SlackSandbox
) -> None:
    status, body = await bolt_events.url_verification("xyz")
    assert (status, json.loads(body)) == (200, {"challenge": "xyz"})

    own = bolt_events.message_event(INTAKE, sandbox.bot_user_id, "me", bot_id=sandbox.bot_id)
    assert (await bolt_events.send_event(own))[0] == 200
    question = bolt_events.message_event(INTAKE, CUSTOMER, "help")
    assert (await bolt_events.send_event(question))[0] == 200

    await eventually(lambda: bool(sandbox.messages(INTAKE, thread_ts=question["ts"])))
    replies = sandbox.messages(INTAKE, thread_ts=question["ts"])
    assert [m["text"] for m in replies] == ["echo: help"]
    assert sandbox.messages(INTAKE, thread_ts=own["ts"]) == []  # bolt ignores its own messages
    assert (await bolt_events.send_event(question, secret="forged"))[0] == 401


async def test_bolt_handles_commands_and_buttons(
    bolt_events: SlackEventsClient, sandbox: SlackSandbox, slack: AsyncWebClient
) -> None:
    status, body = await bolt_events.slash_command("/rescue", "", "U0ANNA", TEAM_CHANNEL)
    assert (status, body) == (200, "rescue: status")

    card = await slack.chat_postMessage(channel=TEAM_CHANNEL, text="new", blocks=CARD_BLOCKS)
    clicked = await bolt_events.click_button("U0BOB", "claim", "conv-1", TEAM_CHANNEL, card["ts"])
    assert clicked[0] == 200
    await eventually(lambda: bool(sandbox.responses))
    assert sandbox.responses[0]["replace_original"] is True
    assert sandbox.messages(TEAM_CHANNEL)[0]["text"] == "Claimed by <@U0BOB>"

"""Slack payloads to model events, one table row per case (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from chat_rescue.adapters.slack.translate import (
    Inbound,
    Membership,
    Skipped,
    SweepPressed,
    Workspace,
    message_alias,
    translate_action,
    translate_event,
)
from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    HandOff,
    KeepOpen,
    OperatorMessage,
    Snooze,
)

WS = Workspace("C0TEAM", frozenset({"C0HELP"}), frozenset({"U0OP"}), "U0BOT", "B0BOT")
NOW = 1_700_000_100.0
TOP = "1700000000.000100"
REF = ConversationRef("slack", "C0HELP", TOP)
CARD_TS = "1700000001.000200"
FOLLOW_UP, REPLY = "1700000020.000100", "1700000030.000100"  # messages in TOP's thread
SKIPPED = object()  # a claim or close reaction that leads nowhere (logged with its reason)


def resolve(alias: str) -> str | None:
    known = {f"slack:card:{CARD_TS}", message_alias("C0HELP", FOLLOW_UP),
             message_alias("C0HELP", REPLY)}
    return REF.key if alias in known else None


def envelope(**event: Any) -> dict[str, Any]:
    return {"type": "event_callback", "event_id": "Ev01", "event": event}


def message(**fields: Any) -> dict[str, Any]:
    base = {"type": "message", "channel": "C0HELP", "user": "U0CUST", "text": "Hi there",
            "ts": "1700000050.000300"}
    return envelope(**{**base, **fields})


def reaction(name: str, user: str = "U0OP", channel: str = "C0HELP",
             ts: str = TOP) -> dict[str, Any]:
    item = {"type": "message", "channel": channel, "ts": ts}
    return envelope(type="reaction_added", user=user, reaction=name, item=item)


LATER = ConversationRef("slack", "C0HELP", "1700000050.000300")

EVENTS = [
    ("top-level customer message", message(),
     CustomerMessage(LATER, NOW, "U0CUST", "Hi there", "slack:C0TEAM")),
    ("customer reply in a thread", message(thread_ts=TOP),
     CustomerMessage(REF, NOW, "U0CUST", "Hi there", "slack:C0TEAM")),
    ("thread broadcast", message(thread_ts=TOP, subtype="thread_broadcast"),
     CustomerMessage(REF, NOW, "U0CUST", "Hi there", "slack:C0TEAM")),
    ("file share", message(subtype="file_share", text=""),
     CustomerMessage(LATER, NOW, "U0CUST", "", "slack:C0TEAM")),
    ("operator reply", message(user="U0OP", thread_ts=TOP), OperatorMessage(REF, NOW, "U0OP")),
    ("operator top-level post", message(user="U0OP"), None),
    ("edit", message(subtype="message_changed"), None),
    ("deletion", message(subtype="message_deleted"), None),
    ("join", message(subtype="channel_join"), None),
    ("another bot", message(subtype="bot_message", bot_id="B0X"), None),
    ("a bot user", message(bot_id="B0X"), None),
    ("our own message", message(user="U0BOT"), None),
    ("no author", message(user=None), None),
    ("not an intake channel", message(channel="C0ELSE"), None),
    ("the team channel", message(channel="C0TEAM", user="U0OP"), None),
    ("eyes on the customer message", reaction("eyes"), Claim(REF, NOW, "U0OP", via="reaction")),
    ("check mark", reaction("white_check_mark"), Close(REF, NOW, "U0OP", via="reaction")),
    ("eyes on the inbox card", reaction("eyes", channel="C0TEAM", ts=CARD_TS),
     Claim(REF, NOW, "U0OP", via="reaction")),
    ("eyes on a customer's follow-up", reaction("eyes", ts=FOLLOW_UP),
     Claim(REF, NOW, "U0OP", via="reaction")),
    ("check mark on an operator's reply", reaction("white_check_mark", ts=REPLY),
     Close(REF, NOW, "U0OP", via="reaction")),
    ("eyes on an intake message no thread knows", reaction("eyes", ts="9.9"),
     Claim(ConversationRef("slack", "C0HELP", "9.9"), NOW, "U0OP", via="reaction")),
    ("eyes on another team message", reaction("eyes", channel="C0TEAM", ts="9.9"), SKIPPED),
    ("eyes in a channel we do not watch", reaction("eyes", channel="C0ELSE"), SKIPPED),
    ("eyes by a customer", reaction("eyes", user="U0CUST"), None),
    ("tada on another team message", reaction("tada", channel="C0TEAM", ts="9.9"), None),
    ("another reaction", reaction("tada"), None),
    ("unknown event type", envelope(type="app_mention", user="U0CUST"), None),
    ("empty envelope", {}, None),
]


@pytest.mark.parametrize(("payload", "expected"), [case[1:] for case in EVENTS],
                         ids=[case[0] for case in EVENTS])
def test_events(payload: dict[str, Any], expected: object) -> None:
    found = translate_event(payload, WS, NOW, resolve)
    if expected is None:
        assert found is None
    elif expected is SKIPPED:
        assert isinstance(found, Skipped) and found.reason
    else:
        assert isinstance(found, Inbound)
        assert (found.event, found.inbound_id) == (expected, "slack:Ev01")


def test_messages_in_a_thread_are_recorded_as_leading_to_it() -> None:
    follow_up = translate_event(message(thread_ts=TOP, ts=FOLLOW_UP), WS, NOW, resolve)
    reply = translate_event(message(user="U0OP", thread_ts=TOP, ts=REPLY), WS, NOW, resolve)
    broadcast = translate_event(message(thread_ts=TOP, ts="1700000040.000100",
                                        subtype="thread_broadcast"), WS, NOW, resolve)
    top = translate_event(message(ts=TOP), WS, NOW, resolve)
    assert isinstance(follow_up, Inbound) and isinstance(reply, Inbound)
    assert isinstance(broadcast, Inbound) and isinstance(top, Inbound)
    assert follow_up.aliases == (message_alias("C0HELP", FOLLOW_UP),)
    assert reply.aliases == (message_alias("C0HELP", REPLY),)
    assert broadcast.aliases == (message_alias("C0HELP", "1700000040.000100"),)
    assert top.aliases == ()  # a thread's first message is found by its ts already


@pytest.mark.parametrize(
    ("kind", "channel", "user", "expected"),
    [
        ("member_joined_channel", "C0TEAM", "U0NEW", Membership("U0NEW", joined=True)),
        ("member_left_channel", "C0TEAM", "U0OP", Membership("U0OP", joined=False)),
        ("member_joined_channel", "C0HELP", "U0NEW", None),
        ("member_joined_channel", "C0TEAM", "U0BOT", None),
    ],
)
def test_team_channel_membership(kind: str, channel: str, user: str, expected: object) -> None:
    assert translate_event(envelope(type=kind, channel=channel, user=user), WS, NOW,
                           resolve) == expected


def click(action_id: str, value: str = REF.key, **extra: Any) -> dict[str, Any]:
    action = {"action_id": action_id, "value": value, "action_ts": "1700000099.1", **extra}
    return {"type": "block_actions", "user": {"id": "U0OP"}, "trigger_id": "T1",
            "actions": [action]}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (click("claim"), Claim(REF, NOW, "U0OP", via="button")),
        (click("close"), Close(REF, NOW, "U0OP", via="button")),
        (click("snooze"), Snooze(REF, NOW, "U0OP")),
        (click("hand_off"), HandOff(REF, NOW, "U0OP")),
        (click("keep_open"), KeepOpen(REF, NOW, "U0OP")),
        (click("reply_now"), None),
        (click("claim", value="garbage"), None),
        (click("claim", value="telegram:1:2"), None),
        (click("claim", value="slack:C0HELP:"), None),
        ({"type": "view_submission"}, None),
        ({"type": "block_actions", "actions": []}, None),
    ],
)
def test_clicks(payload: dict[str, Any], expected: object) -> None:
    found = translate_action(payload, WS, NOW)
    if expected is None:
        assert found is None
    else:
        assert found == Inbound(expected, "slack:action:1700000099.1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (click("sweep_close_all", value="7"), SweepPressed(7, "close_all", "", "U0OP",
                                                           "slack:action:1700000099.1")),
        (click("sweep_hand_rest", value="7"), SweepPressed(7, "hand_rest", "", "U0OP",
                                                           "slack:action:1700000099.1")),
        (click("sweep_keep", value=f"12|{REF.key}"),
         SweepPressed(12, "keep", REF.key, "U0OP", "slack:action:1700000099.1")),
        (click("sweep_close", value=f"12|{REF.key}"),
         SweepPressed(12, "close", REF.key, "U0OP", "slack:action:1700000099.1")),
        (click("sweep_hand_off", value=f"12|{REF.key}"),
         SweepPressed(12, "hand_off", REF.key, "U0OP", "slack:action:1700000099.1")),
        (click("sweep_close", value="garbage"), None),
        (click("sweep_close", value=""), None),
        (click("sweep_close", value="-1|x"), None),
    ],
)
def test_sweep_card_clicks_are_for_the_sweeper(payload: dict[str, Any], expected: object) -> None:
    assert translate_action(payload, WS, NOW) == expected


def test_each_event_delivery_has_the_id_slack_retries_with() -> None:
    first = translate_event(message(), WS, NOW, resolve)
    retry = translate_event(message(), WS, NOW + 5, resolve)
    assert isinstance(first, Inbound) and isinstance(retry, Inbound)
    assert first.inbound_id == retry.inbound_id == "slack:Ev01"

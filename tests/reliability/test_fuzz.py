"""Hypothesis against the edges that read what strangers send: the Slack and Telegram payload
translators and the `/rescue` command.

What the translators promise (their docstrings): Slack's `translate_event` /
`translate_action` turn a payload into a model event "if it is one" and return None
otherwise; Telegram's `translate` turns any update into an Intent, unknown kinds into
`Ignored`. So for any payload they return one of those, never raise, and every event
they return names a conversation whose key reads back as the same reference.
`commands.run` never raises, answers in one line (or with the help, status or stats
text), and changes nothing unless an admin gave a well-formed command.
Known bugs are strict xfails whose reason says what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from telegram import Update

from chat_rescue.adapters.slack import blocks
from chat_rescue.adapters.slack.translate import (
    Inbound,
    Membership,
    Skipped,
    Workspace,
    translate_action,
    translate_event,
)
from chat_rescue.adapters.telegram import translate as tr
from chat_rescue.bot import commands
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import ConversationRef
from chat_rescue.bot.policy import TIMERS
from chat_rescue.bot.service import Service
from chat_rescue.bot.settings import Settings
from chat_rescue.storage.sqlite import SQLiteStore

Json = dict[str, Any]

NOW = 1_700_000_000.0
FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Strict xfails must fail every run: the explicit examples do; no time spent shrinking.
FUZZ_BUG = settings(FUZZ, phases=[Phase.explicit, Phase.generate])

json_scalars = (st.none() | st.booleans() | st.integers(-2**40, 2**40)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6,
)


def bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"BUG: {reason}")


def mutations(payload: Json) -> st.SearchStrategy[Json]:
    """`payload` with one field (at any depth) replaced by any JSON value, or removed."""
    paths = list(_paths(payload))

    @st.composite
    def mutate(draw: st.DrawFn) -> Json:
        path = draw(st.sampled_from(paths))
        copy = _deep_copy(payload)
        parent = copy
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(json_values)
        return copy

    return mutate()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, inner in items:
        yield (*prefix, key)
        yield from _paths(inner, (*prefix, key))


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def reads_back(ref: ConversationRef) -> bool:
    return (all(isinstance(part, str) for part in (ref.platform, ref.channel, ref.thread))
            and ConversationRef.parse(ref.key) == ref)


# --- Slack -----------------------------------------------------------------------------------

WS = Workspace("C0TEAM", frozenset({"C0HELP", "C0VIP"}), frozenset({"U0OP", "U0OP2"}),
               "U0BOT", "B0BOT")
CARD_TS = "1700000001.000200"
KNOWN = ConversationRef("slack", "C0HELP", "1700000000.000100")


def resolve(alias: str) -> str | None:
    return KNOWN.key if alias == f"slack:card:{CARD_TS}" else None


def slack_result_is_sound(found: object) -> None:
    assert found is None or isinstance(found, Inbound | Membership | Skipped)
    if isinstance(found, Inbound):
        ref = found.event.ref
        assert ref.platform == "slack" and ref.channel and ref.thread
        assert reads_back(ref)
        assert isinstance(found.inbound_id, str) and found.inbound_id.startswith("slack:")
        assert all(alias.startswith(f"slack:message:{ref.channel}:") for alias in found.aliases)
    if isinstance(found, Skipped):
        assert isinstance(found.reason, str) and found.reason
    if isinstance(found, Membership):
        assert isinstance(found.user, str) and found.user


def mostly(good: list[Any], other: st.SearchStrategy[Any] | None = None
           ) -> st.SearchStrategy[Any]:
    """One of the `good` values most of the time, else None (left out) or `other`."""
    choices = st.sampled_from([*good, *good, *good, None])
    return choices if other is None else st.one_of(choices, choices, choices, other)


def without_nones(fields: Json) -> Json:
    return {k: v for k, v in fields.items() if v is not None}


# Weighted towards what Slack sends, so that translation gets past its first checks.
stamps = mostly(["1700000000.000100", CARD_TS, "1700000002.000300"],
                st.text(min_size=1, max_size=20))
real_stamps = st.sampled_from(["1700000000.000100", CARD_TS, "1700000002.000300"]) | \
    st.text(min_size=1, max_size=20)
message_events = st.fixed_dictionaries({
    "type": st.just("message"),
    "ts": real_stamps,  # always there: a message without ts is a known bug, fuzzed below
    "channel": mostly(["C0HELP", "C0VIP"], st.sampled_from(["C0TEAM", "C0ELSE", ""])),
    "user": mostly(["U0CUSTOMER", "U0OP"], st.sampled_from(["U0BOT", ""]) | st.text(max_size=9)),
    "text": st.text(max_size=200),
    "thread_ts": st.one_of(st.none(), stamps),
    "subtype": st.sampled_from([None] * 8 + ["thread_broadcast", "file_share", "me_message",
                                             "message_changed", "bot_message"]),
    "bot_id": st.sampled_from([None] * 8 + ["B0BOT", "B0OTHER"]),
}).map(without_nones)
reaction_events = st.fixed_dictionaries({
    "type": st.just("reaction_added"),
    "user": mostly(["U0OP", "U0OP2"], st.sampled_from(["U0CUSTOMER", ""])),
    "reaction": mostly(["eyes", "white_check_mark"], st.text(max_size=10)),
    "item": st.fixed_dictionaries({
        "type": mostly(["message"], st.just("file")),
        "channel": mostly(["C0HELP", "C0TEAM"], st.just("C0ELSE")),
        "ts": stamps}).map(without_nones),
}).map(without_nones)
other_events = st.fixed_dictionaries({
    "type": st.sampled_from(["member_joined_channel", "member_left_channel", "app_mention",
                             "mystery", ""]),
    "channel": mostly(["C0TEAM"], st.just("C0HELP")),
    "user": mostly(["U0NEW", "U0OP"], st.just("U0BOT")),
}).map(without_nones)
slack_events = message_events | reaction_events | other_events


@FUZZ
@given(event=slack_events, event_id=st.text(max_size=20))
def test_slack_events_of_the_right_shape_translate_or_skip(event: Json, event_id: str) -> None:
    found = translate_event({"type": "event_callback", "event_id": event_id, "event": event},
                            WS, NOW, resolve)
    slack_result_is_sound(found)


slack_clicks = st.fixed_dictionaries({
    "type": mostly(["block_actions"], st.just("view_submission")),
    "actions": st.lists(st.fixed_dictionaries({
        "action_id": mostly([blocks.CLAIM, blocks.CLOSE, blocks.SNOOZE, blocks.HAND_OFF,
                             blocks.KEEP_OPEN], st.just(blocks.REPLY_NOW) | st.text(max_size=9)),
        "value": mostly([KNOWN.key], st.sampled_from([
            "telegram:42:", "slack:C0HELP:", "slack::1.2", "nonsense", ""]) | st.text()),
        "action_ts": stamps}).map(without_nones), min_size=1, max_size=2) | st.just([]),
    "user": mostly([{"id": "U0OP"}], st.sampled_from([{}, {"id": ""}])),
    "trigger_id": st.one_of(st.none(), st.text(max_size=20)),
}).map(without_nones)


@FUZZ
@given(body=slack_clicks)
def test_slack_clicks_of_the_right_shape_translate_or_skip(body: Json) -> None:
    found = translate_action(body, WS, NOW)
    assert found is None or isinstance(found, Inbound)
    slack_result_is_sound(found)


VALID_MESSAGE = {"type": "event_callback", "event_id": "Ev0FUZZ", "event": {
    "type": "message", "channel": "C0HELP", "user": "U0CUSTOMER", "text": "hello",
    "ts": "1700000000.000100", "thread_ts": "1700000000.000100"}}
VALID_REACTION = {"type": "event_callback", "event_id": "Ev0FUZZ2", "event": {
    "type": "reaction_added", "user": "U0OP", "reaction": "eyes",
    "item": {"type": "message", "channel": "C0TEAM", "ts": CARD_TS}}}
VALID_CLICK = {"type": "block_actions", "user": {"id": "U0OP"}, "trigger_id": "t",
               "actions": [{"action_id": blocks.CLAIM, "value": KNOWN.key,
                            "action_ts": "1700000003.000100"}]}


@FUZZ_BUG
@example(payload={**VALID_MESSAGE, "event": {**VALID_MESSAGE["event"], "channel": ["C0HELP"]}})
@example(payload={**VALID_REACTION, "event": {**VALID_REACTION["event"], "item": "x"}})
@example(payload={**VALID_MESSAGE, "event": {**VALID_MESSAGE["event"], "thread_ts": {"a": 1}}})
@example(payload={**VALID_CLICK, "user": "U0OP"})
@example(payload={**VALID_CLICK, "actions": ["claim"]})
@given(payload=mutations(VALID_MESSAGE) | mutations(VALID_REACTION) | mutations(VALID_CLICK)
       | st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_any_slack_payload_translates_or_skips(payload: Json) -> None:
    found = translate_event(payload, WS, NOW, resolve)
    slack_result_is_sound(found)
    if isinstance(found, Inbound) and found.event.ref != KNOWN:
        event = payload["event"]
        named = [event.get("thread_ts"), event.get("ts"), (event.get("item") or {}).get("ts")]
        assert found.event.ref.thread in [t for t in named if isinstance(t, str)]
    slack_result_is_sound(translate_action(payload, WS, NOW))


# --- Telegram --------------------------------------------------------------------------------

GROUP, OTHER_GROUP, TOPIC = -1001234567890, -1009999999999, 11
ALICE, ANA = 42, 7
ALIASES = {tr.topic_alias(TOPIC): f"telegram:{ALICE}:"}
CTX = tr.Context(GROUP, NOW, ALIASES.get, "rescue_sandbox_bot")
INTENTS = (tr.Relayed, tr.Edited, tr.Act, tr.Command, tr.MembershipChanged, tr.Ignored)


def telegram_result_is_sound(intent: object) -> None:
    assert isinstance(intent, INTENTS)
    if isinstance(intent, tr.Relayed | tr.Act):
        ref = intent.event.ref
        assert ref.platform == "telegram" and reads_back(ref)
    if isinstance(intent, tr.Edited):
        assert intent.relay.edited and reads_back(intent.relay.ref)
    if isinstance(intent, tr.Ignored):
        assert intent.reason  # every skip says why


tg_users = st.fixed_dictionaries(
    {"id": st.sampled_from([ALICE, ANA, 8, 777]),
     "is_bot": st.sampled_from([False, False, False, True]),
     "first_name": st.text(min_size=1, max_size=20)},
    optional={"username": st.sampled_from(["alice_k", "rescue_sandbox_bot"])})
tg_chats = st.sampled_from([
    {"id": ALICE, "type": "private", "first_name": "Alice"},
    {"id": GROUP, "type": "supergroup", "title": "Support", "is_forum": True},
    {"id": GROUP, "type": "supergroup", "title": "Support", "is_forum": True},
    {"id": OTHER_GROUP, "type": "supergroup", "title": "Elsewhere", "is_forum": True},
])
tg_texts = st.text(max_size=60) | st.sampled_from([
    "/rescue set idle 5m", "/rescue@rescue_sandbox_bot", "/rescue@other_bot help", "/close",
    "/start", "// a note", "/", "hello"])


@st.composite
def tg_messages(draw: st.DrawFn) -> Json:
    text = draw(st.none() | tg_texts)
    message: Json = {"message_id": draw(st.integers(1, 10**6)), "date": 1_700_000_000,
                     "chat": draw(tg_chats)}
    message["from"] = draw(tg_users)
    if text is not None:
        message["text"] = text
        if draw(st.booleans()):
            message["entities"] = draw(st.lists(st.fixed_dictionaries({
                "type": st.sampled_from(["bot_command", "mention", "bold"]),
                "offset": st.integers(0, len(text) + 2),
                "length": st.integers(0, len(text) + 2)}), max_size=2))
    elif draw(st.booleans()):
        message["caption"] = draw(tg_texts)
        message["photo"] = [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]
    if draw(st.booleans()):
        message["message_thread_id"] = draw(st.sampled_from([TOPIC, TOPIC, 12, 1]))
        message["is_topic_message"] = draw(st.sampled_from([True, True, False]))
    return message


@st.composite
def tg_updates(draw: st.DrawFn) -> Json:
    kind = draw(st.sampled_from(["message", "callback_query", "my_chat_member",
                                 "edited_message"]))
    update: Json = {"update_id": draw(st.integers(1, 2**31))}
    if kind in ("message", "edited_message"):
        update[kind] = draw(tg_messages())
    elif kind == "callback_query":
        query: Json = {"id": "q", "chat_instance": "1", "from": draw(tg_users),
                       "data": draw(st.sampled_from([
                           f"claim:telegram:{ALICE}:", f"close:telegram:{ALICE}:", "snooze:x",
                           "keep:telegram::", "handoff:telegram:a:b:c"]) | st.text(max_size=64))}
        if draw(st.sampled_from([True, True, False])):
            query["message"] = draw(tg_messages())
        update[kind] = query
    else:
        status = draw(st.sampled_from(["member", "administrator", "left", "kicked",
                                       "creator"]))
        bot = {"id": 123456, "is_bot": True, "first_name": "Rescue"}
        member: Json = {"user": bot, "status": status}
        if status == "administrator":
            member.update(can_be_edited=False, is_anonymous=False, can_manage_chat=True,
                          can_delete_messages=True, can_manage_video_chats=True,
                          can_restrict_members=True, can_promote_members=False,
                          can_change_info=True, can_invite_users=True,
                          can_post_stories=False, can_edit_stories=False,
                          can_delete_stories=False,
                          can_manage_topics=draw(st.booleans()))
        if status == "kicked":
            member["until_date"] = 0
        update[kind] = {"chat": draw(tg_chats), "from": draw(tg_users), "date": 1_700_000_000,
                        "old_chat_member": {"user": bot, "status": "member"},
                        "new_chat_member": member}
    return update


def de_json(data: Json) -> Update | None:
    """The webhook's parse: what fails here is answered 400 and never translated."""
    try:
        return Update.de_json(data, None)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):  # a date past 9999
        return None


@FUZZ
@given(data=tg_updates())
def test_telegram_updates_of_the_right_shape_translate(data: Json) -> None:
    update = de_json(data)
    if update is not None:
        telegram_result_is_sound(tr.translate(update, CTX))


VALID_UPDATE = {"update_id": 1, "message": {
    "message_id": 5, "date": 1_700_000_000, "text": "/rescue help",
    "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
    "chat": {"id": GROUP, "type": "supergroup", "title": "Support", "is_forum": True},
    "from": {"id": ANA, "is_bot": False, "first_name": "Ana"},
    "message_thread_id": TOPIC, "is_topic_message": True}}
VALID_PRESS = {"update_id": 2, "callback_query": {
    "id": "q", "chat_instance": "1", "data": f"claim:telegram:{ALICE}:",
    "from": {"id": ANA, "is_bot": False, "first_name": "Ana"},
    "message": {"message_id": 20, "date": 1_700_000_000, "text": "card",
                "chat": {"id": GROUP, "type": "supergroup", "title": "Support"}}}}


@FUZZ_BUG
@example(data={**VALID_UPDATE, "message": {**VALID_UPDATE["message"], "text": 5}})
@example(data={**VALID_PRESS, "callback_query": {
    k: v for k, v in VALID_PRESS["callback_query"].items() if k != "from"}})
@given(data=mutations(VALID_UPDATE) | mutations(VALID_PRESS))
def test_any_telegram_update_that_parses_translates(data: Json) -> None:
    update = de_json(data)
    if update is not None:
        telegram_result_is_sound(tr.translate(update, CTX))


# --- the /rescue command ---------------------------------------------------------------------

DURATIONS = ["30s", "5m", "1h30m", "off", "0s", "5x", "-1m", "999999999d", "1.5h", "500ms",
             "1e3s", "٣m", "5m;", "'5m'", ""]
words = st.sampled_from(["set", "SET", "escalate-to", "stats", "help", "status", "Set",
                         *TIMERS, *DURATIONS, "@here", "<!subteam^S1|@ops>", "'", ";",
                         "--", "DROP", "TABLE", "\u202e", "\x00", "\n"]) | st.text(max_size=12)
separators = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u2003"])
commands_typed = st.text(max_size=300) | st.lists(
    st.tuples(words, separators), max_size=6
).map(lambda parts: "".join(w + s for w, s in parts))
CHANGED = re.compile(r"^(\w+) is now (.+) for (this channel|the team)\.$")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    store = SQLiteStore("sqlite://")
    try:
        yield Service(store, Settings(_env_file=None).base_policy(), FakeClock(NOW))
    finally:
        store.close()


def stored(service: Service) -> list[tuple[Any, ...]]:
    return sorted(service.store.conn.execute(  # type: ignore[attr-defined]
        "SELECT scope, key, value FROM settings").fetchall())


@FUZZ
@example(typed="set idle 5m; DROP TABLE settings;--", admin=True, intake=True)
@example(typed="escalate-to '); DELETE FROM settings;--", admin=False, intake=False)
@example(typed="escalate-to \x00\x1b[31m@here", admin=True, intake=False)
@example(typed="set idle " + "9" * 5000, admin=True, intake=True)
@example(typed="\u202eset idle 1s", admin=True, intake=True)
@given(typed=commands_typed, admin=st.booleans(), intake=st.booleans())
def test_rescue_never_raises_answers_in_one_line_and_only_admins_change_things(
    service: Service, typed: str, admin: bool, intake: bool
) -> None:
    ctx = commands.CommandContext(
        team="slack:C0TEAM", here=ConversationRef("slack", "C0HELP" if intake else "C0TEAM"),
        user="U0FUZZ", is_admin=admin, intake=intake)
    before = stored(service)
    reply = commands.run(typed, ctx, service)
    after = stored(service)
    assert isinstance(reply, str) and reply
    assert not CONTROL.search(reply)
    multi_line = reply == commands.HELP or reply.startswith(("Timers here:", "Last "))
    assert multi_line or "\n" not in reply
    changed = CHANGED.fullmatch(reply)
    if not admin or changed is None:
        assert after == before
        return
    key, value, where = changed.groups()
    scope = "channel:slack:C0HELP" if where == "this channel" else "team:slack:C0TEAM"
    assert set(after) - set(before) <= {(scope, key, value)}
    assert {(s, k) for s, k, _ in after} - {(s, k) for s, k, _ in before} <= {(scope, key)}
    assert (scope, key, value) in after
    assert key in (*TIMERS, "escalate_to")

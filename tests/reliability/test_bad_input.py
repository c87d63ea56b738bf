"""Bad input through the real HTTP endpoints of a running bot, on both platforms.

Every malformed, oversized, mistyped, unknown, hostile, duplicated or out-of-order request
gets a clear 4xx or an explained skip (a 2xx that changes nothing), and nothing stored is
corrupted: the conversations, history, settings and aliases are unchanged, or changed
exactly as the input means, and SQLite's integrity check passes.
Known bugs are strict xfails whose reason says what is wrong.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from chat_rescue.bot.model import State
from chat_rescue.sandbox.hostile import integrity, slack_post, snapshot, telegram_post
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_world import (
    ANNA,
    BOB,
    CUSTOMER,
    HELP,
    SECRET,
    TEAM,
    VIP,
    SlackWorld,
    eventually,
)
from chat_rescue.sandbox.slack_world import furnish as furnish_slack
from chat_rescue.sandbox.slack_world import sandbox_settings as slack_settings
from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_support import ALICE, ANA, BRUNO, GROUP, SupportGroup
from chat_rescue.sandbox.telegram_support import SECRET as WEBHOOK_SECRET
from chat_rescue.sandbox.telegram_support import furnish as furnish_telegram
from chat_rescue.sandbox.telegram_support import sandbox_settings as telegram_settings

Json = dict[str, Any]
Rows = dict[str, list[tuple[Any, ...]]]

# No timer fires during a test unless the test asks for it.
QUIET = {
    "rescue_accept": "10m",
    "rescue_first_response": "10m",
    "rescue_idle": "10m",
    "rescue_escalate": "10m",
    "rescue_close_reminder": "10m",
}
ONE_MIB = 1024 * 1024
TOO_BIG = b'{"type": "event_callback", "pad": "' + b"x" * (ONE_MIB + 16) + b'"}'


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB warns (= error here) on int retry_after


@pytest.fixture
async def slack(tmp_path: Path) -> AsyncIterator[SlackWorld]:
    async with SlackSandbox() as sandbox:
        furnish_slack(sandbox)
        world = SlackWorld(sandbox, slack_settings(sandbox, f"sqlite:///{tmp_path}/s.db",
                                                   **QUIET))
        await world.start()
        try:
            yield world
        finally:
            await world.stop()


@pytest.fixture
async def telegram(tmp_path: Path) -> AsyncIterator[SupportGroup]:
    # The sandbox does not push updates: the tests POST them, to see each answer.
    async with TelegramSandbox() as sandbox:
        furnish_telegram(sandbox)
        settings = telegram_settings(sandbox, f"sqlite:///{tmp_path}/t.db", webhook=True,
                                     **QUIET)
        group = SupportGroup(sandbox, settings)
        await group.start()
        try:
            yield group
        finally:
            await group.stop()


# --- helpers -------------------------------------------------------------------------------


def envelope(event: Any, event_id: str = "Ev0BAD", **extra: Any) -> bytes:
    return json.dumps({"type": "event_callback", "team_id": "T0SANDBOX",
                       "api_app_id": "A0SANDBOX", "event": event, "event_id": event_id,
                       "event_time": 1_700_000_000, **extra}).encode()


def form_payload(payload: Any) -> bytes:
    return f"payload={quote(json.dumps(payload))}".encode()


def without(rows: Rows, key: str) -> Rows:
    """The rows that do not mention conversation `key` (a barrier conversation's)."""
    return {table: [r for r in found if key not in r] for table, found in rows.items()}


async def slack_barrier(world: SlackWorld) -> str:
    """A genuine message after the bad one; once it is stored, the bad one was handled too
    (bolt works on events after the ack, in arrival order). Returns its conversation key."""
    ts = await world.says("barrier", channel=VIP)
    await eventually(lambda: world.conv(ts, VIP))
    return f"slack:{VIP}:{ts}"


async def deliver(group: SupportGroup, update: Json) -> int:
    """POST a sandbox-made update to the webhook (the sandbox's own queue is emptied)."""
    group.sandbox.updates.clear()
    status, _ = await telegram_post(group.settings.telegram_webhook_url,
                                    json.dumps(update).encode(), WEBHOOK_SECRET)
    await group.adapter.inbound.settled()  # replies are sent beside the next updates
    return status


def opened(store: Any) -> list[str]:
    return [h.ref.key for h in store.history(None, 0) if h.kind == "opened"]


def preview(text: str, limit: int) -> str:
    """What the card keeps of a message: whitespace folded, clipped with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


def bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"BUG: {reason}")


# --- Slack: requests bolt must refuse ---------------------------------------------------------



@pytest.mark.parametrize(
    ("body", "content_type", "answers"),
    [
        pytest.param(b'{"type": "event_callback", "event": ', "application/json", {400},
                     id="truncated JSON"),
        pytest.param(b"[1, 2, 3]", "application/json", {400}, id="JSON array"),
        pytest.param(b'"event_callback"', "application/json", {400}, id="JSON string"),
        pytest.param(b'{"type": "event_callback", "event": {"text": "\xff\xfe"}}',
                     "application/json", {400}, id="not UTF-8"),
        pytest.param(envelope({"type": "message", "channel": HELP, "user": 5, "ts": "1.2"}),
                     "application/json", {400}, id="user is a number"),
        pytest.param(envelope("message"), "application/json", {400}, id="event is a string"),
        pytest.param(envelope([{"type": "message"}]), "application/json", {400},
                     id="event is a list"),
        pytest.param(b"payload=%7Bnot+json", "application/x-www-form-urlencoded", {400},
                     id="form payload not JSON"),
        pytest.param(b"payload=%5B1%5D", "application/x-www-form-urlencoded", {400},
                     id="form payload a list"),
        pytest.param(form_payload({"type": "block_actions", "actions": "claim",
                                   "user": {"id": ANNA}}),
                     "application/x-www-form-urlencoded", {400}, id="actions a string"),
        pytest.param(b"", "application/json", {400, 404}, id="empty body"),
        pytest.param(b"hello", "text/plain", {400, 404, 415}, id="plain text"),
        pytest.param(b'{"type": "mystery"}', "application/json", {400, 404},
                     id="unknown envelope type"),
        pytest.param(b"{}", "application/json", {400, 404}, id="envelope without type"),
        pytest.param(envelope({}), "application/json", {400, 404}, id="event without type"),
        pytest.param(b"a=b&c=d", "application/x-www-form-urlencoded", {400, 404},
                     id="form without payload or command"),
        pytest.param(TOO_BIG, "application/json", {413}, id="body over 1 MiB"),
    ],
)
async def test_malformed_slack_requests_get_a_4xx_and_change_nothing(
    slack: SlackWorld, body: bytes, content_type: str, answers: set[int]
) -> None:
    store = slack.bot.store
    before = snapshot(store)
    status, _ = await slack_post(slack.events_url, body, SECRET, content_type=content_type)
    assert status in answers
    barrier = await slack_barrier(slack)
    assert without(snapshot(store), barrier) == before
    assert integrity(store) == "ok"


# --- Slack: acknowledged, then skipped ----------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"type": "app_mention", "channel": HELP, "user": CUSTOMER,
                      "text": "<@U0SANDBOXBOT> hi", "ts": "1700000000.000100"},
                     id="unknown event type"),
        pytest.param({"type": "message", "channel": HELP, "ts": "1700000000.000200",
                      "text": "no author"}, id="message without user"),
        pytest.param({"type": "message", "channel": HELP, "user": CUSTOMER, "text": "hi"},
                     id="message without ts"),
        pytest.param({"type": "reaction_added", "user": ANNA, "reaction": "eyes"},
                     id="reaction without item"),
        pytest.param({"type": "message", "channel": [HELP], "user": CUSTOMER,
                      "ts": "1700000000.000300"}, id="channel is a list"),
        pytest.param({"type": "reaction_added", "user": ANNA, "reaction": "eyes",
                      "item": "C0HELP/1700000000.000400"}, id="item is a string"),
        pytest.param({"type": "message", "channel": HELP, "user": CUSTOMER,
                      "ts": "1700000000.000500", "thread_ts": {"a": 1}, "text": "hi"},
                     id="thread_ts is an object"),
    ],
)
async def test_unusable_slack_events_are_acknowledged_and_skipped(
    slack: SlackWorld, event: Json, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = slack.bot.store
    before = snapshot(store)
    status, _ = await slack_post(slack.events_url, envelope(event), SECRET)
    assert status == 200  # acknowledged: Slack must not retry what can never be handled
    barrier = await slack_barrier(slack)
    assert without(snapshot(store), barrier) == before
    assert integrity(store) == "ok"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_skipped_slack_event_is_logged_with_its_reason(
    slack: SlackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chat_rescue")
    event = {"type": "app_mention", "channel": HELP, "user": CUSTOMER, "text": "hi",
             "ts": "1700000000.000600"}
    status, _ = await slack_post(slack.events_url, envelope(event, "Ev0SKIPPED"), SECRET)
    assert status == 200
    await slack_barrier(slack)
    skipped = [r.getMessage() for r in caplog.records if r.name.startswith("chat_rescue")
               and ("Ev0SKIPPED" in r.getMessage() or "app_mention" in r.getMessage())]
    assert skipped


async def test_a_slash_command_without_user_changes_nothing(slack: SlackWorld) -> None:
    body = b"command=%2Frescue&text=set+idle+1s&channel_id=" + HELP.encode()
    status, answer = await slack_post(slack.events_url, body, SECRET,
                                      content_type="application/x-www-form-urlencoded")
    assert status == 200 and "only admins" in answer
    assert slack.bot.store.settings(f"channel:slack:{HELP}") == {}


# --- Slack: what people write -----------------------------------------------------------------

# Arabic, waving hand with skin tone, a right-to-left override, Hebrew, a family (joined
# emoji), an accent, a zero-width space and mathematical letters outside the BMP.
UNICODE = ("\u0645\u0631\u062d\u0628\u0627 \U0001f44b\U0001f3fd \u202etxet desrever\u202c "
           "\u05e9\u05dc\u05d5\u05dd \U0001f468\u200d\U0001f469\u200d\U0001f467 caf\u00e9 "
           "\u200b zero-width "
           "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522")
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"


async def test_slack_unicode_rtl_and_emoji_are_stored_as_written(slack: SlackWorld) -> None:
    customer = "U0RTL"
    ts = await slack.says(UNICODE, user=customer)
    card = await slack.card_of(ts)
    conv = slack.conv(ts)
    assert conv is not None and conv.customer == customer
    assert conv.preview == preview(UNICODE, slack.settings.rescue_preview_chars)
    assert FAMILY in card["text"] + json.dumps(card.get("blocks"), ensure_ascii=False)
    assert integrity(slack.bot.store) == "ok"


async def test_a_very_long_slack_message_keeps_only_a_clipped_preview(slack: SlackWorld) -> None:
    text = "Order 4711 is late. " + "Details follow. " * 12_000  # ~190 kB (twice in the body)
    ts = await slack.says(text)
    conv = await eventually(lambda: slack.conv(ts))
    assert len(conv.preview) <= slack.settings.rescue_preview_chars
    assert conv.preview.startswith("Order 4711 is late.") and conv.preview.endswith("…")
    await slack.card_of(ts)


INJECTIONS = [
    "set idle 5m; DROP TABLE settings;--",
    "set idle 5m' OR '1'='1",
    "set idle' 5m",
    "set idle ${jndi:ldap://127.0.0.1/a}",
    "set idle 1m\nset accept off",
    "set idle " + "9" * 10_000,
    "set ../../etc/passwd 5m",
    "escalate-to " + "x" * 500,
    "stats 1d' UNION SELECT value FROM settings--",
    "'; DELETE FROM conversations; --",
]


@pytest.mark.parametrize("typed", INJECTIONS)
async def test_injection_looking_rescue_commands_are_refused_in_one_line(
    slack: SlackWorld, typed: str
) -> None:
    ts = await slack.says("Is anybody there?")
    await slack.card_of(ts)
    before = snapshot(slack.bot.store)
    reply = json.loads(await slack.rescue(typed, user=ANNA))["text"]
    assert "\n" not in reply and len(reply) < 300
    assert "is now" not in reply
    assert snapshot(slack.bot.store) == before
    assert integrity(slack.bot.store) == "ok"


@pytest.mark.parametrize(
    "target",
    ["'); DROP TABLE conversations;--", "<!everyone> <script>alert(1)</script>",
     "@ops\u202e nimda", "@here \\\" OR 1=1"],
)
async def test_injection_looking_escalation_targets_are_stored_literally(
    slack: SlackWorld, target: str
) -> None:
    ts = await slack.says("Help")
    await slack.card_of(ts)
    reply = json.loads(await slack.rescue(f"escalate-to {target}", user=ANNA, channel=TEAM))
    assert reply["text"].startswith("escalate_to is now")
    assert "<script>" not in reply["text"]  # Slack would render it; it is escaped
    store = slack.bot.store
    assert store.settings(f"team:slack:{TEAM}") == {"escalate_to": target}
    assert slack.conv(ts) is not None and integrity(store) == "ok"
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
    assert {"conversations", "history", "settings", "outbox", "inbound"} <= tables


# --- Slack: duplicated and out-of-order deliveries -------------------------------------------


async def test_duplicated_slack_deliveries_are_applied_once(slack: SlackWorld) -> None:
    event = slack.slack.message_event(HELP, CUSTOMER, "Where is my parcel?")
    for retry in (None, 1, 2, 3):
        status, _ = await slack.slack.send_event(event, event_id="Ev0DUP", retry_num=retry)
        assert status == 200
    # the same message under another event id (Slack sends one per subscription)
    status, _ = await slack.slack.send_event(event, event_id="Ev0DUPOTHER")
    assert status == 200
    ts = str(event["ts"])
    card = await slack.card_of(ts)
    for _ in range(3):  # one click, delivered three times (same action_ts)
        status, _ = await slack.slack.send_action(click(slack, card, ts, "1700000001.000001"))
        assert status == 200
    await eventually(lambda: slack.conv(ts).owner == BOB)
    await slack_barrier(slack)
    assert await slack.bot.runtime.drained()
    kinds = [h.kind for h in slack.bot.store.history(None, 0)
             if h.ref.key == f"slack:{HELP}:{ts}"]
    assert kinds == ["opened", "claimed"]
    assert len(slack.sandbox.calls_to("chat.postMessage")) == 2  # the card and the barrier's


def click(world: SlackWorld, card: Json, ts: str, action_ts: str) -> Json:
    return {
        "type": "block_actions", "user": {"id": BOB, "name": "bob"},
        "team": {"id": "T0SANDBOX"}, "channel": {"id": TEAM}, "message": card,
        "response_url": world.sandbox.response_url(TEAM, str(card["ts"])),
        "actions": [{"action_id": "claim", "value": f"slack:{HELP}:{ts}", "type": "button",
                     "block_id": "card_actions", "action_ts": action_ts}],
    }


async def test_a_thread_reply_that_overtakes_its_parent_opens_one_conversation(
    slack: SlackWorld
) -> None:
    parent = slack.slack.message_event(HELP, CUSTOMER, "My order is late")
    reply = slack.slack.message_event(HELP, CUSTOMER, "Order 4711",
                                      thread_ts=str(parent["ts"]))
    for event in (reply, parent):
        status, _ = await slack.slack.send_event(event)
        assert status == 200
    key = f"slack:{HELP}:{parent['ts']}"
    await slack.card_of(str(parent["ts"]))
    await slack_barrier(slack)
    assert opened(slack.bot.store).count(key) == 1
    conv = slack.conv(str(parent["ts"]))
    assert conv is not None and conv.state is State.QUEUED
    assert [k for k in opened(slack.bot.store) if k.startswith(f"slack:{HELP}:")] == [key]


# --- Telegram: requests the webhook must refuse ---------------------------------------------

USER = {"id": ALICE, "is_bot": False, "first_name": "Alice"}
PRIVATE = {"id": ALICE, "type": "private", "first_name": "Alice"}


def tg_message(**fields: Any) -> Json:
    return {"message_id": 9001, "date": 1_700_000_000, "chat": PRIVATE, "from": USER, **fields}


@pytest.mark.parametrize(
    ("body", "answers"),
    [
        pytest.param(b'{"update_id": ', {400}, id="truncated JSON"),
        pytest.param(b"[1]", {400}, id="JSON array"),
        pytest.param(b"{}", {400}, id="empty object"),
        pytest.param(b'{"update_id": 1, "message": {"text": "\xff"}}', {400},
                     id="not UTF-8"),
        pytest.param(json.dumps({"message": tg_message(text="hi")}).encode(), {400},
                     id="without update_id"),
        pytest.param(json.dumps({"update_id": 2, "message": [1]}).encode(), {400},
                     id="message is a list"),
        pytest.param(json.dumps({"update_id": 3, "message": {**tg_message(text="x"),
                                                              "chat": "x"}}).encode(),
                     {400}, id="chat is a string"),
        pytest.param(json.dumps({"update_id": 4, "message": {**tg_message(text="x"),
                                                              "date": "today"}}).encode(),
                     {400}, id="date is a string"),
        pytest.param(json.dumps({"update_id": 5, "message": "hello"}).encode(), {400},
                     id="message is a string"),
        pytest.param(json.dumps({"update_id": 6, "message": tg_message(
            text="/rescue", entities="bot_command")}).encode(), {400},
                     id="entities is a string"),
        pytest.param(TOO_BIG, {413}, id="body over 1 MiB"),
    ],
)
async def test_malformed_telegram_updates_get_a_4xx_and_change_nothing(
    telegram: SupportGroup, body: bytes, answers: set[int]
) -> None:
    store = telegram.bot.store
    before = snapshot(store)
    status, _ = await telegram_post(telegram.settings.telegram_webhook_url, body,
                                    WEBHOOK_SECRET)
    assert status in answers
    assert snapshot(store) == before
    assert integrity(store) == "ok"


@pytest.mark.parametrize(
    "update",
    [
        pytest.param({"update_id": 7, "edited_message": tg_message(text="edited",
                                                                   edit_date=1_700_000_100)},
                     id="edited message"),
        pytest.param({"update_id": 8, "channel_post": {
            "message_id": 1, "date": 1_700_000_000, "text": "news",
            "chat": {"id": -100777, "type": "channel", "title": "News"}}}, id="channel post"),
        pytest.param({"update_id": 9, "future_kind_of_update": {"x": 1}},
                     id="unknown kind"),
        pytest.param({"update_id": 10, "callback_query": {
            "id": "q1", "from": USER, "chat_instance": "1", "data": "claim:telegram:x:y"}},
            id="button outside the support group"),
        pytest.param({"update_id": 11, "callback_query": {
            "id": "q2", "from": USER, "chat_instance": "1", "data": "rm -rf /"}},
            id="button that is not ours"),
        pytest.param({"update_id": 12, "message": {
            "message_id": 5, "date": 1_700_000_000, "text": "hi", "from": USER,
            "chat": {"id": -100999, "type": "supergroup", "title": "Elsewhere"}}},
            id="another group"),
        pytest.param({"update_id": 13, "message": {
            "message_id": 6, "date": 1_700_000_000, "chat": PRIVATE, "from": USER,
            "new_chat_title": "x"}}, id="service message"),
    ],
)
async def test_telegram_updates_that_are_not_ours_are_skipped_with_a_reason(
    telegram: SupportGroup, update: Json, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chat_rescue")
    store = telegram.bot.store
    before = snapshot(store)
    assert await deliver(telegram, update) == 200
    assert snapshot(store) == before
    assert integrity(store) == "ok"
    assert any(f"update {update['update_id']} ignored:" in r.getMessage()
               for r in caplog.records)


async def test_a_telegram_message_with_a_numeric_text_is_refused_or_skipped(
    telegram: SupportGroup,
) -> None:
    before = snapshot(telegram.bot.store)
    status = await deliver(telegram, {"update_id": 14, "message": tg_message(text=5)})
    assert status in (200, 400)
    assert snapshot(telegram.bot.store) == before


# --- Telegram: what people write ------------------------------------------------------------


async def test_telegram_rtl_emoji_and_markup_in_names_are_shown_as_written(
    telegram: SupportGroup,
) -> None:
    name = "\u202e\u0645\u0631\u064a\u0645 \U0001f469\U0001f3fd\u200d\U0001f4bb"
    last = "<b>Admin</b> & Co"
    customer = 4242
    telegram.sandbox.add_user(customer, name)
    telegram.sandbox.users[customer]["last_name"] = last
    assert await deliver(telegram, telegram.sandbox.private_message(customer, UNICODE)) == 200
    thread = await telegram.topic()
    conv = telegram.bot.store.load(f"telegram:{customer}:")
    assert conv is not None and conv.customer == f"{name} {last}"
    assert name in telegram.topic_name(thread)
    card = telegram.card(thread)["text"]  # as the operators see it (markup removed)
    assert f"{name} {last}" in card and FAMILY in card
    assert integrity(telegram.bot.store) == "ok"


async def test_a_telegram_name_longer_than_a_topic_name_is_clipped(
    telegram: SupportGroup,
) -> None:
    customer = 4343
    telegram.sandbox.add_user(customer, "\U0001f984" * 64)
    telegram.sandbox.users[customer]["last_name"] = "Ω" * 64
    assert await deliver(telegram, telegram.sandbox.private_message(customer, "hi")) == 200
    thread = await telegram.topic()
    assert len(telegram.topic_name(thread)) <= 128


async def test_a_very_long_telegram_message_keeps_only_a_clipped_preview(
    telegram: SupportGroup,
) -> None:
    text = "Refund please. " + "Long story. " * 50_000  # far past Telegram's 4096
    update = telegram.sandbox.private_message(ALICE, "x")
    update["message"]["text"] = text
    assert await deliver(telegram, update) == 200
    conv = telegram.conversation()
    assert conv is not None and conv.preview.startswith("Refund please.")
    assert len(conv.preview) <= telegram.settings.rescue_preview_chars


async def test_injection_looking_rescue_in_telegram_is_refused_or_stored_literally(
    telegram: SupportGroup,
) -> None:
    store = telegram.bot.store
    for typed in INJECTIONS:
        update = telegram.sandbox.group_message(GROUP, ANA, f"/rescue {typed}")
        assert await deliver(telegram, update) == 200
    assert store.settings(f"team:telegram:{GROUP}") == {}
    target = "<b>ops</b> & '); DROP TABLE settings;--"
    update = telegram.sandbox.group_message(GROUP, ANA, f"/rescue escalate-to {target}")
    assert await deliver(telegram, update) == 200
    assert store.settings(f"team:telegram:{GROUP}") == {"escalate_to": target}
    replies = [m["text"] for m in telegram.general() if "reply_to_message" in m]
    assert len(replies) == len(INJECTIONS) + 1
    assert all("\n" not in r for r in replies)
    assert replies[-1] == f"escalate_to is now {target} for the team."
    assert integrity(store) == "ok"


async def test_an_html_looking_escalation_target_reaches_telegram_literally(
    telegram: SupportGroup,
) -> None:
    target = "<b>ops</b> & <i>co"
    for typed in (f"escalate-to {target}", "set accept 300ms"):
        assert await deliver(telegram, telegram.sandbox.group_message(
            GROUP, ANA, f"/rescue {typed}")) == 200
    assert await deliver(telegram, telegram.sandbox.private_message(ALICE, "Hello?")) == 200
    called = await eventually(
        lambda: [m["text"] for m in telegram.general() if target in m.get("text", "")], 5.0)
    assert called  # escaped for parse_mode=HTML, so shown as typed, not as markup


# --- Telegram: duplicated and out-of-order deliveries ---------------------------------------


async def test_a_redelivered_telegram_update_is_applied_once(telegram: SupportGroup) -> None:
    update = telegram.sandbox.private_message(ALICE, "Where is my refund?")
    for _ in range(3):
        assert await deliver(telegram, update) == 200
    await telegram.topic()
    await telegram.drained()
    assert opened(telegram.bot.store) == [f"telegram:{ALICE}:"]
    copies = telegram.sandbox.calls_to("copyMessage")
    assert len(copies) == 1


async def test_telegram_updates_out_of_order_are_all_applied(telegram: SupportGroup) -> None:
    sandbox = telegram.sandbox
    later = sandbox.private_message(ALICE, "second", update_id=900)
    earlier = sandbox.private_message(BRUNO, "first", update_id=800)
    between = sandbox.private_message(ALICE, "third", update_id=850)
    for update in (later, earlier, between):  # update_ids are deduplicated, never compared
        assert await deliver(telegram, update) == 200
    store = telegram.bot.store
    seen = {row[0] for row in store.conn.execute("SELECT id FROM inbound")}
    assert {"telegram:900", "telegram:800", "telegram:850"} <= seen
    assert sorted(opened(store)) == sorted([f"telegram:{ALICE}:", f"telegram:{BRUNO}:"])


async def test_an_update_id_reused_after_a_week_of_silence_is_a_new_update(
    telegram: SupportGroup,
) -> None:
    store = telegram.bot.store
    assert await deliver(telegram, telegram.sandbox.private_message(
        ALICE, "old", update_id=555)) == 200
    store.conn.execute("UPDATE inbound SET seen_at = seen_at - 8 * 86400")
    await telegram.stop()  # a restart gives any start-up clean-up its chance
    restarted = SupportGroup(telegram.sandbox, telegram.settings)
    telegram.bot = restarted.bot  # the fixture stops this one
    await restarted.start()
    new = restarted.sandbox.private_message(BRUNO, "new customer", update_id=555)
    assert await deliver(restarted, new) == 200
    assert restarted.bot.store.load(f"telegram:{BRUNO}:") is not None


async def test_updates_whose_messages_cannot_be_copied_do_not_stop_delivery(
    telegram: SupportGroup,
) -> None:
    # Forged updates naming messages that do not exist: each copy is refused for good.
    try:
        for update_id, customer, wait in ((700, ALICE, 1.5), (701, BRUNO, 0.5)):
            forged = {"update_id": update_id, "message": {
                "message_id": 99_000 + update_id, "date": 1_700_000_000, "text": "forged",
                "chat": {"id": customer, "type": "private", "first_name": "X"},
                "from": {"id": customer, "is_bot": False, "first_name": "X"}}}
            assert await deliver(telegram, forged) == 200
            await telegram.bot.runtime.drained(timeout=wait)
        assert await deliver(telegram, telegram.sandbox.private_message(ALICE, "real")) == 200
        assert await telegram.bot.runtime.drained(timeout=1.5)
    finally:
        # Runtime.stop awaits its tasks and re-raises the dead outbox task's IntegrityError,
        # so Bot.stop would end there and leave the server and the clients open. Forget the
        # dead task so that the fixture can stop the bot (Runtime.stop should do this itself).
        runtime = telegram.bot.runtime
        for task in [t for t in runtime._tasks if t.done() and not t.cancelled()]:
            task.exception()
            runtime._tasks.remove(task)

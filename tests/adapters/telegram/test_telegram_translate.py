"""translate.py: what each kind of Telegram update means, as a table of cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from telegram import Update

from chat_rescue.adapters.telegram import translate as tr
from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    HandOff,
    KeepOpen,
    OperatorMessage,
    Relay,
    Snooze,
)
from chat_rescue.sandbox.telegram_world import BOT_USERNAME, TelegramWorld, TopicState

GROUP, OTHER_GROUP = -1001234567890, -1009999999999
ANA, BEN, ALICE = 7, 8, 42
TOPIC = 11
NOW = 1_700_000_000.0
REF = ConversationRef("telegram", str(ALICE), "")
TEAM = f"telegram:{GROUP}"


def world() -> TelegramWorld:
    w = TelegramWorld()
    group = w.add_forum_group(GROUP, "Support", admins={ANA: "creator"})
    group.last_message_id = 10
    w.add_group(OTHER_GROUP, "Elsewhere", is_forum=True)
    w.add_user(ANA, "Ana")
    w.add_user(BEN, "Ben", "ben")
    w.add_user(ALICE, "Alice", "alice_k", started=True)
    group.topics[TOPIC] = TopicState(TOPIC, "Alice · waiting")
    group.topics[12] = TopicState(12, "Staff chat")
    group.last_message_id = 12
    w.chats[OTHER_GROUP].topics[TOPIC] = TopicState(TOPIC, "Elsewhere")
    return w


def meaning(make: Callable[[TelegramWorld], dict[str, Any]]) -> tr.Intent:
    w = world()
    update = Update.de_json(make(w), None)
    aliases = {tr.topic_alias(TOPIC): REF.key}
    return tr.translate(update, tr.Context(GROUP, NOW, aliases.get, BOT_USERNAME))


def card(w: TelegramWorld) -> dict[str, Any]:
    """A bot message in the customer's topic carrying buttons."""
    group = w.chats[GROUP]
    return w.new_message(group, w.bot_user, {"text": "card"}, thread_id=TOPIC)


def channel_post(w: TelegramWorld) -> dict[str, Any]:
    """Somebody writes "as" a channel: Channel_Bot with the channel as sender_chat."""
    update = w.anonymous_admin_message(GROUP, "Sale!", TOPIC)
    channel = {"id": -1001111111111, "type": "channel", "title": "Deals"}
    sender = {"id": 136817688, "is_bot": True, "first_name": "Channel",
              "username": "Channel_Bot"}
    return {**update, "message": {**update["message"], "from": sender, "sender_chat": channel}}


def edit(w: TelegramWorld, update: dict[str, Any], text: str) -> dict[str, Any]:
    message = update["message"]
    return w.edit_message(message["chat"]["id"], message["message_id"], text)


CASES: list[tuple[str, Callable[[TelegramWorld], dict[str, Any]], tr.Intent]] = [
    ("customer text", lambda w: w.private_message(ALICE, "Hi there"),
     tr.Relayed(CustomerMessage(REF, NOW, "Alice", "Hi there", TEAM),
                Relay(REF, False, str(ALICE), "1"))),
    ("customer photo without caption", lambda w: w.private_message(ALICE, photo=True),
     tr.Relayed(CustomerMessage(REF, NOW, "Alice", "[photo]", TEAM),
                Relay(REF, False, str(ALICE), "1"))),
    ("customer voice", lambda w: w.private_message(ALICE, voice=True),
     tr.Relayed(CustomerMessage(REF, NOW, "Alice", "[voice]", TEAM),
                Relay(REF, False, str(ALICE), "1"))),
    ("customer /start", lambda w: w.private_message(ALICE, "/start"),
     tr.Command("start", "", ALICE, 1, str(ALICE), private=True)),
    ("customer /help@this_bot", lambda w: w.private_message(ALICE, f"/help@{BOT_USERNAME}"),
     tr.Command("help", "", ALICE, 1, str(ALICE), private=True)),
    ("customer writing a command", lambda w: w.private_message(ALICE, "/refund it never came"),
     tr.Relayed(CustomerMessage(REF, NOW, "Alice", "/refund it never came", TEAM),
                Relay(REF, False, str(ALICE), "1"))),
    ("customer /start with words", lambda w: w.private_message(ALICE, "/start where is it"),
     tr.Relayed(CustomerMessage(REF, NOW, "Alice", "/start where is it", TEAM),
                Relay(REF, False, str(ALICE), "1"))),
    ("customer /help@other_bot", lambda w: w.private_message(ALICE, "/help@other_bot"),
     tr.Relayed(CustomerMessage(REF, NOW, "Alice", "/help@other_bot", TEAM),
                Relay(REF, False, str(ALICE), "1"))),
    ("operator reply in the topic", lambda w: w.group_message(GROUP, BEN, "On it", TOPIC),
     tr.Relayed(OperatorMessage(REF, NOW, str(BEN)), Relay(REF, True, str(GROUP), "13"))),
    ("internal note", lambda w: w.group_message(GROUP, BEN, "//call her back", TOPIC),
     tr.Ignored("internal note")),
    ("anonymous admin in the topic",
     lambda w: w.anonymous_admin_message(GROUP, "On it", TOPIC, signature="Boss"),
     tr.Relayed(OperatorMessage(REF, NOW, str(GROUP)), Relay(REF, True, str(GROUP), "13"))),
    ("anonymous admin's note",
     lambda w: w.anonymous_admin_message(GROUP, "// her again", TOPIC),
     tr.Ignored("internal note")),
    ("anonymous admin's /close",
     lambda w: w.anonymous_admin_message(GROUP, "/close", TOPIC),
     tr.Act(Close(REF, NOW, str(GROUP), via="command"))),
    ("a channel posting in the topic", lambda w: channel_post(w),
     tr.Ignored("sent by a bot or anonymously")),
    ("topic of no customer", lambda w: w.group_message(GROUP, BEN, "lunch?", 12),
     tr.Ignored("not in a customer's topic", notable=True)),
    ("General", lambda w: w.group_message(GROUP, BEN, "morning all"),
     tr.Ignored("not in a customer's topic")),
    ("another group", lambda w: w.group_message(OTHER_GROUP, BEN, "hi", TOPIC),
     tr.Ignored("not the support group")),
    ("/close in the topic", lambda w: w.group_message(GROUP, BEN, "/close", TOPIC),
     tr.Act(Close(REF, NOW, str(BEN), via="command"))),
    ("/close in General", lambda w: w.group_message(GROUP, BEN, "/close"),
     tr.Command("close", "", GROUP, 13, str(BEN))),
    ("/rescue in a topic", lambda w: w.group_message(GROUP, ANA, "/rescue set idle 5m", TOPIC),
     tr.Command("rescue", "set idle 5m", GROUP, 13, str(ANA), TOPIC)),
    ("/rescue@this_bot",
     lambda w: w.group_message(GROUP, ANA, f"/rescue@{BOT_USERNAME} help"),
     tr.Command("rescue", "help", GROUP, 13, str(ANA))),
    ("/rescue@other_bot", lambda w: w.group_message(GROUP, ANA, "/rescue@other_bot", TOPIC),
     tr.Ignored("a command for another bot")),
    ("other command in a topic", lambda w: w.group_message(GROUP, BEN, "/weather", TOPIC),
     tr.Command("weather", "", GROUP, 13, str(BEN), TOPIC)),
]

BUTTONS = [
    ("claim", Claim(REF, NOW, str(BEN), via="button")),
    ("close", Close(REF, NOW, str(BEN), via="button")),
    ("snooze", Snooze(REF, NOW, str(BEN))),
    ("handoff", HandOff(REF, NOW, str(BEN))),
    ("keep", KeepOpen(REF, NOW, str(BEN))),
]


@pytest.mark.parametrize(("case", "make", "expected"), CASES, ids=[c[0] for c in CASES])
def test_messages(case: str, make: Callable[[TelegramWorld], dict[str, Any]],
                  expected: tr.Intent) -> None:
    assert meaning(make) == expected


@pytest.mark.parametrize(("verb", "event"), BUTTONS, ids=[b[0] for b in BUTTONS])
def test_buttons(verb: str, event: object) -> None:
    intent = meaning(lambda w: w.callback_query(BEN, card(w), f"{verb}:{REF.key}"))
    assert isinstance(intent, tr.Act) and intent.event == event and intent.query_id


def test_a_button_that_is_not_ours_is_only_answered() -> None:
    intent = meaning(lambda w: w.callback_query(BEN, card(w), "vote:yes"))
    assert isinstance(intent, tr.Ignored) and intent.query_id


@pytest.mark.parametrize(
    ("data", "card_id", "verb", "key"),
    [("swa:7", 7, "close_all", ""), ("swr:7", 7, "hand_rest", ""),
     (f"swc:12|{REF.key}", 12, "close", REF.key), (f"swk:12|{REF.key}", 12, "keep", REF.key),
     (f"swh:12|{REF.key}", 12, "hand_off", REF.key)],
)
def test_sweep_card_buttons_are_for_the_sweeper(data: str, card_id: int, verb: str,
                                               key: str) -> None:
    intent = meaning(lambda w: w.callback_query(BEN, card(w), data))
    assert isinstance(intent, tr.SweepAct) and intent.query_id
    assert (intent.card, intent.verb, intent.key, intent.who) == (card_id, verb, key, str(BEN))


@pytest.mark.parametrize("data", ["swa:x", "swq:1", "swc:1|slack:C1:2", "swc:|x"])
def test_a_sweep_button_that_is_not_ours_is_only_answered(data: str) -> None:
    intent = meaning(lambda w: w.callback_query(BEN, card(w), data))
    assert isinstance(intent, tr.Ignored) and intent.query_id


def test_a_sweep_button_outside_the_support_group_is_only_answered() -> None:
    def elsewhere(w: TelegramWorld) -> dict[str, Any]:
        message = w.new_message(w.chats[OTHER_GROUP], w.bot_user, {"text": "x"})
        return w.callback_query(BEN, message, "swa:1")

    intent = meaning(elsewhere)
    assert isinstance(intent, tr.Ignored) and intent.query_id


def test_a_button_outside_the_support_group_is_only_answered() -> None:
    def elsewhere(w: TelegramWorld) -> dict[str, Any]:
        message = w.new_message(w.chats[OTHER_GROUP], w.bot_user, {"text": "x"})
        return w.callback_query(BEN, message, f"claim:{REF.key}")

    intent = meaning(elsewhere)
    assert isinstance(intent, tr.Ignored) and intent.query_id


@pytest.mark.parametrize(
    ("old", "new", "usable"),
    [("administrator", "member", False), ("administrator", "left", False),
     ("member", "administrator", True)],
)
def test_the_bots_rights_in_the_support_group(old: str, new: str, usable: bool) -> None:
    intent = meaning(lambda w: w.my_chat_member(GROUP, old, new, by_user_id=ANA))
    assert isinstance(intent, tr.MembershipChanged)
    assert not intent.private and intent.status == new and intent.usable is usable


def test_a_customer_blocking_the_bot() -> None:
    intent = meaning(lambda w: w.my_chat_member(ALICE, "member", "kicked"))
    assert intent == tr.MembershipChanged(ALICE, True, "kicked")


def test_service_messages_and_bots_are_not_relayed() -> None:
    def renamed(w: TelegramWorld) -> dict[str, Any]:
        user = w.users[ANA]
        message = w.new_message(w.chats[GROUP], user, {"forum_topic_edited": {"name": "x"}},
                                thread_id=TOPIC)
        return {"update_id": 1, "message": message}

    def from_bot(w: TelegramWorld) -> dict[str, Any]:
        return {"update_id": 2, "message": card(w)}

    assert meaning(renamed) == tr.Ignored("nothing to copy")
    assert meaning(from_bot) == tr.Ignored("sent by a bot or anonymously")


EDITS: list[tuple[str, Callable[[TelegramWorld], dict[str, Any]], tr.Intent]] = [
    ("customer's edit", lambda w: edit(w, w.private_message(ALICE, "typo"), "fixed"),
     tr.Edited(Relay(REF, False, str(ALICE), "1", edited=True))),
    ("customer's edited caption",
     lambda w: edit(w, w.private_message(ALICE, photo=True, caption="box"), "the box"),
     tr.Edited(Relay(REF, False, str(ALICE), "1", edited=True))),
    ("operator's edit in the topic",
     lambda w: edit(w, w.group_message(GROUP, BEN, "On it", TOPIC), "On it, Alice"),
     tr.Edited(Relay(REF, True, str(GROUP), "13", edited=True))),
    ("anonymous admin's edit",
     lambda w: edit(w, w.anonymous_admin_message(GROUP, "On it", TOPIC), "On it!"),
     tr.Edited(Relay(REF, True, str(GROUP), "13", edited=True))),
    ("an edited note", lambda w: edit(w, w.group_message(GROUP, BEN, "// a", TOPIC), "// b"),
     tr.Ignored("internal note")),
    ("an edited command", lambda w: edit(w, w.private_message(ALICE, "/start"), "/help"),
     tr.Ignored("an edited command")),
    ("an edit elsewhere", lambda w: edit(w, w.group_message(GROUP, BEN, "hi", 12), "hey"),
     tr.Ignored("not in a customer's topic", notable=True)),
    ("a live location moving", lambda w: live_location(w),
     tr.Ignored("a live location moved")),
]


def live_location(w: TelegramWorld) -> dict[str, Any]:
    message = w.private_message(ALICE, "here")["message"]
    moved = {k: v for k, v in message.items() if k not in ("text", "entities")}
    spot = {"latitude": 48.85, "longitude": 2.35, "live_period": 900}
    return {"update_id": 5, "edited_message": {**moved, "location": spot, "edit_date": 1}}


@pytest.mark.parametrize(("case", "make", "expected"), EDITS, ids=[c[0] for c in EDITS])
def test_edits(case: str, make: Callable[[TelegramWorld], dict[str, Any]],
               expected: tr.Intent) -> None:
    assert meaning(make) == expected


def test_other_update_kinds_are_ignored() -> None:
    def reaction(w: TelegramWorld) -> dict[str, Any]:
        return {"update_id": 5, "message_reaction": {
            "chat": w.chat_json(w.chats[ALICE]), "message_id": 1, "date": 1,
            "user": w.users[ALICE], "old_reaction": [],
            "new_reaction": [{"type": "emoji", "emoji": "👍"}]}}

    assert meaning(reaction) == tr.Ignored("update kind not used")

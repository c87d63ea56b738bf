"""deliver.py and friends, one action at a time against the sandbox through the real PTB Bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from telegram.error import RetryAfter

from chat_rescue.adapters.telegram import TelegramAdapter, keyboards, render
from chat_rescue.adapters.telegram.deliver import retry_seconds
from chat_rescue.adapters.telegram.memory import Memory
from chat_rescue.adapters.telegram.pacing import (
    BOT_PACE,
    CHAT_PACE,
    GROUP_PACE,
    RECHECK,
    RENAME_PATIENCE,
    RENAME_SPARE,
)
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import (
    CloseNotice,
    Conversation,
    ConversationRef,
    CustomerMessage,
    Digest,
    Escalate,
    Nudge,
    PostCard,
    Refusal,
    Refused,
    Relay,
    ReturnToInbox,
    State,
    UpdateCard,
)
from chat_rescue.bot.outbox import Posted, Postpone, RetryLater, Undeliverable
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    BEN,
    BRUNO,
    CHLOE,
    GROUP,
    buttons,
    furnish,
    sandbox_settings,
)
from chat_rescue.sandbox.telegram_world import replace_topic
from chat_rescue.storage.sqlite import SQLiteStore

REF = ConversationRef("telegram", str(ALICE), "")
OTHER = ConversationRef("telegram", str(BRUNO), "")


@dataclass
class Rig:
    sandbox: TelegramSandbox
    adapter: TelegramAdapter
    service: Service

    def open(self, ref: ConversationRef = REF, name: str = "Alice") -> Conversation:
        self.service.handle(CustomerMessage(ref, 0.0, name, "Hello", f"telegram:{GROUP}"))
        conv = self.service.store.load(ref.key)
        assert conv is not None
        return conv

    async def post(self, ref: ConversationRef = REF, name: str = "Alice") -> Conversation:
        posted = await self.adapter.deliver(PostCard(self.open(ref, name)))
        assert isinstance(posted, Posted)
        self.service.store.attach(ref.key, posted.card, posted.aliases)
        conv = self.service.store.load(ref.key)
        assert conv is not None
        return conv


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with TelegramSandbox() as sandbox:
        furnish(sandbox)
        settings = sandbox_settings(sandbox, "sqlite://")
        clock = FakeClock()
        service = Service(SQLiteStore("sqlite://"), Policy(), clock)
        adapter = TelegramAdapter(settings, service, clock)
        await adapter.app.bot.initialize()
        try:
            yield Rig(sandbox, adapter, service)
        finally:
            await adapter.app.bot.shutdown()
            service.store.close()


async def test_unknown_actions_are_refused(rig: Rig) -> None:
    with pytest.raises(TypeError, match="cannot deliver"):
        await rig.adapter.deliver("hello")  # type: ignore[arg-type]


async def test_a_card_is_not_posted_twice_when_a_later_step_hits_flood_control(rig: Rig) -> None:
    rig.sandbox.fail_next("sendMessage", 429, retry_after=7)
    action = PostCard(rig.open())
    with pytest.raises(RetryLater) as wait:
        await rig.adapter.deliver(action)
    assert wait.value.after == 7
    posted = await rig.adapter.deliver(action)
    assert isinstance(posted, Posted)
    [topic] = rig.sandbox.topics(GROUP)
    assert posted.card.startswith(f"{topic.thread_id}:")
    assert posted.aliases == (f"telegram:topic:{topic.thread_id}",)
    assert len(rig.sandbox.messages(GROUP, topic.thread_id)) == 1
    assert len(rig.sandbox.messages(GROUP, None)) == 1


async def test_a_digest_is_one_general_message_with_each_notices_buttons(rig: Rig) -> None:
    alice, bruno = await rig.post(), await rig.post(OTHER, "Bruno")
    before = len(rig.sandbox.messages(GROUP, None))
    notices = (
        ReturnToInbox(REF, str(BEN), 60, "no first response within 30s", "Alice", "Hello",
                      alice.card),
        Escalate(OTHER, "@oncall", 130, 1, "Bruno", "Hello", bruno.card),
        Nudge(REF, str(CHLOE), 300, alice.card, "Alice"),
    )
    await rig.adapter.deliver(Digest(f"group:{GROUP}", notices))
    general = rig.sandbox.messages(GROUP, None)
    assert len(general) == before + 1
    digest = general[-1]
    assert digest["text"].startswith("3 conversations need attention:")
    assert "@oncall" in digest["text"] and "are you still with Alice" in digest["text"]
    assert buttons(digest) == ["Claim Alice", "Claim Bruno", "Snooze Alice", "Close",
                               "Hand off"]
    rows = digest["reply_markup"]["inline_keyboard"]
    assert [len(row) for row in rows] == [1, 1, 3]  # one row per notice


async def test_a_refused_close_command_is_said_in_the_topic(rig: Rig) -> None:
    conv = await rig.post()
    rig.adapter.memory.names.update({str(BEN): "Ben", str(CHLOE): "Chloe"})
    await rig.adapter.deliver(Refused(REF, str(CHLOE), Refusal.NOT_YOURS, str(BEN),
                                      via="command"))
    thread = render.parse_card(conv.card)
    assert thread is not None
    last = rig.sandbox.messages(GROUP, thread[0])[-1]
    assert last["text"] == "Chloe: Only Ben, who has this conversation, or an admin can do that."

    # A refused button press was answered on the press itself: nothing more to say.
    await rig.adapter.deliver(Refused(REF, str(CHLOE), Refusal.CLAIMED, str(BEN)))
    assert rig.sandbox.messages(GROUP, thread[0])[-1] == last


async def test_close_notice_goes_to_the_customer_unless_they_blocked_the_bot(rig: Rig) -> None:
    await rig.post()
    rig.sandbox.chats[ALICE].started = True
    await rig.adapter.deliver(CloseNotice(REF, "We are closing this chat for now."))
    assert [m["text"] for m in rig.sandbox.messages(ALICE)] == ["We are closing this chat for now."]
    rig.sandbox.block_user(ALICE)
    with pytest.raises(Undeliverable):
        await rig.adapter.deliver(CloseNotice(REF, "Bye"))
    with pytest.raises(Undeliverable):
        await rig.adapter.deliver(Relay(REF, True, str(GROUP), "1"))
    kinds = [event.kind for event in rig.service.store.history(None, 0)]
    assert kinds.count("customer_blocked") == 1


async def test_an_edit_is_marked_once_even_when_its_copy_hits_flood_control(rig: Rig) -> None:
    conv = await rig.post()
    ids = render.parse_card(conv.card)
    assert ids is not None
    topic = ids[0]
    asked = rig.sandbox.private_message(ALICE, "typo")["message"]["message_id"]
    rig.sandbox.edit_message(ALICE, asked, "fixed")
    rig.sandbox.fail_next("copyMessage", 429, retry_after=3)
    edit = Relay(REF, False, str(ALICE), str(asked), edited=True)
    with pytest.raises(RetryLater):
        await rig.adapter.deliver(edit)
    await rig.adapter.deliver(edit)
    mark, copy = rig.sandbox.messages(GROUP, topic)[1:]  # after the card
    assert mark["text"] == "✏️ edited:" and copy["text"] == "fixed"

    replace_topic(rig.sandbox.chats[GROUP], topic, closed=True)  # an edit opens nothing
    with pytest.raises(Undeliverable):
        await rig.adapter.deliver(edit)
    assert rig.sandbox.topics(GROUP)[0].closed


async def test_permanent_refusals_are_undeliverable_and_outages_propagate(rig: Rig) -> None:
    conv = await rig.post()
    rig.sandbox.fail_next("sendMessage", 400, description="Bad Request: message is too long")
    with pytest.raises(Undeliverable):
        await rig.adapter.deliver(Nudge(REF, str(BEN), 300, conv.card, "Alice"))
    rig.sandbox.fail_next("sendMessage", 500)
    with pytest.raises(Exception) as outage:
        await rig.adapter.deliver(Nudge(REF, str(BEN), 300, conv.card, "Alice"))
    assert not isinstance(outage.value, RetryLater | Undeliverable)


def test_destinations_and_pacing(rig: Rig) -> None:
    adapter = rig.adapter
    assert adapter.destination(Relay(REF, True, str(GROUP), "5")) == f"chat:{ALICE}"
    assert adapter.destination(Relay(REF, False, str(ALICE), "5")) == f"group:{GROUP}"
    assert adapter.destination(CloseNotice(REF, "bye")) == f"chat:{ALICE}"
    assert adapter.destination(Nudge(REF, "8", 1)) == f"group:{GROUP}"
    assert adapter.destination(Digest(f"group:{GROUP}")) == f"group:{GROUP}"
    assert adapter.paces == {"group": GROUP_PACE, "chat": CHAT_PACE, "bot": BOT_PACE}
    assert (BOT_PACE.count, BOT_PACE.period) == (25, 1.0)  # about 30 a second in all
    assert (GROUP_PACE.count, GROUP_PACE.period) == (19, 60.0)  # 20 a minute, less one
    assert CHAT_PACE.gap == 1.0  # 1 a second per chat


async def test_every_call_counts_against_the_group_and_renames_leave_room_for_messages(
    rig: Rig,
) -> None:
    clock = rig.adapter.clock
    assert isinstance(clock, FakeClock)
    conv = await rig.post()  # a topic, its card, the announcement in General: 3 messages
    to_group = Relay(REF, False, str(ALICE), "5")
    now = clock.monotonic
    start = now()
    assert rig.adapter.free_at(to_group, now()) == start + 1.0  # a second after the last
    assert rig.adapter.free_at(PostCard(conv), now()) == start + 1.0
    assert rig.adapter.free_at(Relay(REF, True, str(GROUP), "5"), now()) == start  # Alice's chat
    bot = rig.adapter.app.bot
    room = GROUP_PACE.count - RENAME_SPARE  # what renames may fill of the minute's window
    for _ in range(room - 3):  # any call counts
        clock.advance(1.0)
        await bot.send_message(GROUP, "an answer to /rescue")
    clock.advance(1.0)
    assert rig.adapter.free_at(to_group, now()) == now()  # messages still fit
    [topic] = rig.sandbox.topics(GROUP)
    named = topic.name
    owned = replace(conv, owner="8", state=State.CLAIMED)
    with pytest.raises(Postpone) as later:  # a rename now would leave too little free
        await rig.adapter.deliver(UpdateCard(owned))
    # the card itself was edited (an edit is no message); the name waits for the window
    assert "claimed by" in rig.sandbox.messages(GROUP, topic.thread_id)[0]["text"]
    assert rig.sandbox.topics(GROUP)[0].name == named
    assert later.value.after == RECHECK  # it looks again soon (the card may move on)
    for _ in range(RENAME_SPARE - 1):
        clock.advance(1.0)
        await bot.send_message(GROUP, "an answer to /rescue")
    clock.advance(1.0)  # room for one message more: a copy goes, a card and announcement not
    assert rig.adapter.free_at(to_group, now()) == now()
    assert rig.adapter.free_at(PostCard(conv), now()) == pytest.approx(start + 60.0)
    await bot.send_message(GROUP, "an answer to /rescue")
    clock.advance(1.0)  # the window is full: the next message waits for the first to leave
    assert rig.adapter.free_at(to_group, now()) == pytest.approx(start + 60.0)
    assert rig.adapter.free_at(UpdateCard(owned), now()) == now()  # an edit needs no room


async def test_a_rename_waits_for_room_but_not_for_ever_and_closing_takes_no_spare(
    rig: Rig,
) -> None:
    clock = rig.adapter.clock
    assert isinstance(clock, FakeClock)
    conv = await rig.post()  # 3 messages
    [topic] = rig.sandbox.topics(GROUP)
    clock.advance(30.0)
    owned = replace(conv, owner="8", state=State.CLAIMED)
    await rig.adapter.deliver(UpdateCard(owned))  # an idle group: renamed at once
    assert "with operator" in rig.sandbox.topics(GROUP)[0].name
    bot = rig.adapter.app.bot

    async def keep_busy(seconds: float) -> None:  # a message every 4 s: 15 a minute
        for _ in range(int(seconds // 4)):
            clock.advance(4.0)
            await bot.send_message(GROUP, "copy")

    await keep_busy(60.0)
    nudged = replace(owned, state=State.WAITING_ON_OPERATOR, nudged_at=1.0)
    with pytest.raises(Postpone):  # 15 in the minute: a rename would leave less than 6
        await rig.adapter.deliver(UpdateCard(nudged))
    await keep_busy(RENAME_PATIENCE)
    await rig.adapter.deliver(UpdateCard(nudged))  # waited long enough: room like a message
    assert "overdue" in rig.sandbox.topics(GROUP)[0].name
    await keep_busy(8.0)
    closed = replace(nudged, state=State.CLOSED)
    await rig.adapter.deliver(UpdateCard(closed))  # closing leaves no spare: it goes now
    assert rig.sandbox.topics(GROUP)[0].closed
    assert topic.thread_id == rig.sandbox.topics(GROUP)[0].thread_id


@pytest.mark.parametrize("value", [3, timedelta(seconds=3)])
def test_retry_after_in_seconds_either_way(value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if isinstance(value, int):
        monkeypatch.setenv("PTB_TIMEDELTA", "false")
        with pytest.warns(DeprecationWarning):
            error = RetryAfter(value)
    else:
        error = RetryAfter(value)
    assert retry_seconds(error) == 3.0


# --- keyboards and render -----------------------------------------------------------------


def test_callback_data_fits_telegrams_64_bytes() -> None:
    key = ConversationRef("telegram", "-1001234567890123", "").key
    assert keyboards.parse_callback(keyboards.callback_data("handoff", key)) == (
        "handoff", key, "")
    # A nudge's buttons carry its id too: the longest verb, a 52-bit user id, a nudge in 2286.
    key = ConversationRef("telegram", str(2**52), "").key
    notice = "n" + str(round(9_999_999_999.999 * 1000))
    data = keyboards.callback_data("handoff", key, notice)
    assert len(data.encode()) <= 64
    assert keyboards.parse_callback(data) == ("handoff", key, notice)
    with pytest.raises(ValueError, match="64 bytes"):
        keyboards.callback_data("handoff", "telegram:" + "9" * 60 + ":")
    assert keyboards.parse_callback("handoff:slack:C1:1.2") is None
    assert keyboards.parse_callback("launch:telegram:1:") is None


@pytest.mark.parametrize(
    ("changes", "label"),
    [({}, "waiting"), ({"escalations": 1}, "overdue"),
     ({"state": State.WAITING_ON_OPERATOR, "owner": "8", "nudged_at": 5.0}, "overdue"),
     ({"state": State.WAITING_ON_CUSTOMER, "owner": "8"}, "with operator"),
     ({"state": State.WAITING_ON_OPERATOR, "owner": "8"}, "with operator"),
     ({"state": State.CLAIMED, "owner": "8"}, "with operator"),
     ({"state": State.CLOSED}, "closed")],
)
def test_topic_names_show_the_status(changes: dict[str, Any], label: str) -> None:
    conv = replace(Conversation(REF, "t", "Alice", 0.0), **changes)
    assert render.topic_name(conv).endswith(f"Alice · {label}")


def test_topic_names_fit_and_customer_names_are_escaped() -> None:
    conv = Conversation(REF, "t", "<b>" + "x" * 300, 0.0, preview="a < b")
    assert len(render.topic_name(conv)) <= 128 and render.topic_name(conv).endswith("waiting")
    text = render.card(conv, Memory())
    assert "&lt;b&gt;" in text and "a &lt; b" in text


def test_mentions_notify_by_user_id_with_the_known_name() -> None:
    memory = Memory()
    memory.names["8"] = "Ben <3"
    assert render.mention("8", memory) == '<a href="tg://user?id=8">Ben &lt;3</a>'
    assert render.mention("99", memory) == '<a href="tg://user?id=99">99</a>'


# --- check ----------------------------------------------------------------------------------


async def test_check_reports_a_bad_token_without_showing_it(rig: Rig) -> None:
    settings = sandbox_settings(rig.sandbox, "sqlite://", telegram_bot_token="999:NOT-OURS")
    adapter = TelegramAdapter(settings, rig.service, FakeClock())
    [problem] = await adapter.check()
    assert "rejected TELEGRAM_BOT_TOKEN" in problem and "NOT-OURS" not in problem


async def test_check_reports_a_group_where_the_bot_cannot_manage_topics(rig: Rig) -> None:
    assert await rig.adapter.check() == []
    rig.sandbox.set_member(GROUP, rig.sandbox.bot_id, "member")
    [problem] = await rig.adapter.check()
    assert "no longer an administrator" in problem
    settings = sandbox_settings(rig.sandbox, "sqlite://", telegram_support_chat_id="-100555")
    elsewhere = TelegramAdapter(settings, rig.service, FakeClock())
    [problem] = await elsewhere.check()
    assert "cannot see the support group -100555" in problem

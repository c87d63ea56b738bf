"""Outage, Telegram: the Bot API answers every sending method with 5xx, then 429 with
retry_after, then holds the calls, each for a period; getUpdates keeps working, so
customers' and operators' messages keep arriving.

Meanwhile the timers keep firing (nudges, returns and escalations are recorded during the
outage) and the outbox queues what cannot be sent: new conversations' topics and cards,
the customers' messages to copy into them, the notices. Once Telegram is back the outbox
drains per conversation in the order things were queued (a topic before the messages
copied into it), with nothing lost and nothing made twice (the sandbox's calls against
the store's history and inbound updates).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from chat_rescue.bot.model import NOTICES
from chat_rescue.sandbox.journal import OutboxJournal
from chat_rescue.sandbox.ledger import announced, compare, expected_notices, telegram_posts
from chat_rescue.sandbox.telegram_support import (
    ANA,
    BEN,
    GROUP,
    SupportGroup,
    button_data,
    eventually,
    furnish,
    sandbox_settings,
)
from chat_rescue.sandbox.testbeds import Kind, TelegramTestbed

PHASE = 2.5
PHASES: tuple[Kind, ...] = ("5xx", "429", "hang")
SENDING = {"sendMessage", "copyMessage", "createForumTopic", "editMessageText",
           "editForumTopic", "closeForumTopic", "reopenForumTopic", "answerCallbackQuery",
           "getChatMember"}
TIMERS = {
    "rescue_first_response": "400ms",
    "rescue_idle": "400ms",
    "rescue_accept": "600ms",
    "rescue_escalate": "800ms",
    "rescue_escalate_repeats": 12,
    "rescue_close_reminder": "10m",
}
TIMER_EVENTS = ("nudged", "returned", "escalated", "reminded")


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB warns about int retry_after unless opted in (warnings are errors here).
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


class People:
    """Customers with names the ledger can find in what the bot writes."""

    def __init__(self, sandbox: TelegramTestbed) -> None:
        self.sandbox = sandbox
        self.names: dict[str, str] = {}
        self.sources: dict[str, list[str]] = {}  # customer id -> relay sources

    def customer(self, number: int) -> int:
        user_id = 3000 + number
        name = f"Cust{number:03d}"
        self.sandbox.add_user(user_id, name)
        self.names[name] = str(user_id)
        return user_id

    def writes(self, user_id: int, text: str) -> None:
        update = self.sandbox.private_message(user_id, text)
        self.sources.setdefault(str(user_id), []).append(
            f"{user_id}:{update['message']['message_id']}")

    def operator_replies(self, group: SupportGroup, operator: int, thread: int,
                         customer: int) -> None:
        update = group.say_in_topic(operator, thread, "Looking into it")
        self.sources.setdefault(f"out:{customer}", []).append(
            f"{GROUP}:{update['message']['message_id']}")


async def test_outage_telegram_keeps_timers_queues_and_drains_in_order(
        tmp_path: Path) -> None:
    async with TelegramTestbed() as sandbox:
        furnish(sandbox)
        settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db", **TIMERS)
        group = await SupportGroup(sandbox, settings).start()
        try:
            figures = await outage_day(group, sandbox)
        finally:
            await group.stop()
    print(figures["report"])
    during = figures["fired_during"]
    assert during["nudged"] >= 3 and during["returned"] >= 3 and during["escalated"] >= 3
    assert figures["queued_max"] >= figures["queued_before"] + 10
    assert figures["failed_calls"] > 0
    assert figures["drained_after"] is not None, "the outbox did not drain"
    assert figures["outbox_left"] == 0 and figures["dead_letters"] == 0
    assert not figures["out_of_order"], "\n".join(figures["out_of_order"])
    assert not figures["missing"], "\n".join(figures["missing"])
    assert not figures["twice"], "\n".join(figures["twice"])


async def outage_day(group: SupportGroup, sandbox: TelegramTestbed) -> dict[str, Any]:
    journal = OutboxJournal().attach(group.bot)
    store = group.bot.store
    people = People(sandbox)
    answered = [people.customer(n) for n in range(1, 4)]
    claimed = [people.customer(n) for n in range(4, 7)]
    for user_id in answered + claimed:
        people.writes(user_id, "Where is my order?")
    await eventually(lambda: all((c := group.conversation(u)) and c.card
                                 for u in answered + claimed), timeout=5)
    topics = {u: int(str(group.conversation(u).card).split(":")[0])  # type: ignore[union-attr]
              for u in answered + claimed}
    for user_id in answered:
        people.operator_replies(group, ANA, topics[user_id], user_id)
    await eventually(lambda: all(c.state == "waiting_on_customer" for c in
                                 (group.conversation(u) for u in answered) if c), timeout=5)
    await group.drained()

    queued_before = store.outbox_size()
    for user_id in claimed:  # claimed just before: first response is due mid-outage
        card = group.card(topics[user_id])
        sandbox.callback_query(BEN, card, button_data(card, "Claim"))
    await eventually(lambda: all(group.conversation(u).owner for u in claimed))  # type: ignore[union-attr]
    began, began_epoch = time.monotonic(), time.time()
    sizes: list[int] = []
    newcomer = 100
    for number, kind in enumerate(PHASES):
        sandbox.outage(kind, PHASE, methods=SENDING)
        phase_end = began + PHASE * (number + 1)
        step = 0
        while time.monotonic() < phase_end:
            step += 1
            if number == 0 and step == 1:
                for user_id in answered:  # they write again: idle timers run
                    people.writes(user_id, "Any news?")
            if step % 4 == 1 and step < 12:  # new conversations while Telegram is down
                newcomer += 1
                people.writes(people.customer(newcomer), "Hello?")
            if step % 3 == 0:
                people.writes(claimed[step % 3], "Still waiting")
            sizes.append(store.outbox_size())
            await asyncio.sleep(0.1)
    ended, ended_epoch = time.monotonic(), time.time()
    fired_during = Counter(h.kind for h in store.history(None, began_epoch)
                           if h.kind in TIMER_EVENTS and h.at < ended_epoch)

    drained_at = None
    try:
        await eventually(lambda: journal.drained_at(ended) is not None, timeout=30, poll=0.05)
        drained_at = journal.drained_at(ended)
        await eventually(lambda: store.outbox_size() == 0, timeout=30, poll=0.05)
    except TimeoutError:
        pass
    dead = store.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    history = store.history(None, 0)
    expected = expected_notices(history, lambda h: h.ref.channel)
    for (key,) in store.conn.execute("SELECT key FROM conversations"):
        customer = key.split(":")[1]
        for kind in ("topic", "card"):
            expected[(customer, kind)] = 1
    posts = telegram_posts(sandbox, GROUP, people.names)
    for customer in {who for who, _ in expected}:
        expected[(customer, "announce")] = announced(posts, customer)
    for who, sources in people.sources.items():
        kind = "relay_out" if who.startswith("out:") else "relay_in"
        expected[(who.removeprefix("out:"), kind)] = len(sources)
    kinds = (*TIMER_EVENTS, "topic", "card", "announce", "relay_in", "relay_out")
    found = compare(posts, expected, {}, kinds)
    failed_calls = len(sandbox.refused)
    notices = sum(1 for lane in journal.queued.values() for _, a in lane
                  if isinstance(a, NOTICES))
    report = (
        f"Telegram outage: {' / '.join(PHASES)} for {PHASE:g}s each ({ended - began:.1f}s)\n"
        f"  timers fired during the outage: {dict(fired_during)}\n"
        f"  outbox: {queued_before} queued before, up to {max(sizes)} during; "
        f"{failed_calls} Bot API calls refused; {notices} notices queued in all\n"
        f"  drained {(drained_at - ended) if drained_at else float('nan'):.1f}s after Telegram "
        f"was back; in order: {not journal.out_of_order()}; missing {len(found.missing)}, "
        f"made twice {len(found.unexplained)}, dead letters {dead}")
    return {
        "report": report, "fired_during": fired_during,
        "queued_before": queued_before, "queued_max": max(sizes),
        "failed_calls": failed_calls,
        "drained_after": None if drained_at is None else drained_at - ended,
        "outbox_left": store.outbox_size(), "dead_letters": dead,
        "out_of_order": journal.out_of_order(), "missing": found.missing,
        "twice": found.unexplained,
    }


@pytest.mark.parametrize("mode", ["polling", "webhook"])
@pytest.mark.parametrize("kind", ["5xx", "429"])
async def test_outage_telegram_the_bot_starts_while_telegram_is_down(
        tmp_path: Path, mode: str, kind: Kind) -> None:
    """getMe fails at start: the bot runs on, keeps trying, and is whole once Telegram is back."""
    async with TelegramTestbed(push_updates_to_webhook=mode == "webhook") as sandbox:
        furnish(sandbox)
        settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db",
                                    webhook=mode == "webhook")
        sandbox.outage(kind, 1.5)
        group = await SupportGroup(sandbox, settings).start()  # does not raise
        try:
            assert not sandbox.calls_to("createForumTopic")
            customer = People(sandbox).customer(1)
            sandbox.private_message(customer, "Hello, anyone?")  # kept by Telegram meanwhile
            thread = await group.topic(timeout=8.0)
            await eventually(lambda: len(group.in_topic(thread)) >= 2)  # card + the copy
            opened = [h for h in group.bot.store.history(None, 0) if h.kind == "opened"]
        finally:
            await group.stop()
    assert len(sandbox.calls_to("getMe")) >= 2  # it failed, then it was tried again
    assert len(sandbox.calls_to("createForumTopic")) == 1
    assert len(opened) == 1


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_outage_telegram_a_hanging_button_answer_holds_no_update(
        tmp_path: Path, mode: str) -> None:
    """answerCallbackQuery hangs: the click is applied, and the updates behind it are too."""
    async with TelegramTestbed(push_updates_to_webhook=mode == "webhook") as sandbox:
        furnish(sandbox)
        settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db",
                                    webhook=mode == "webhook")
        group = await SupportGroup(sandbox, settings).start()
        try:
            people = People(sandbox)
            first, second = people.customer(1), people.customer(2)
            sandbox.private_message(first, "Hello")
            thread = await group.topic()
            await group.drained()
            sandbox.outage("hang", 3.0, methods={"answerCallbackQuery"})
            group.press(BEN, group.card(thread), "Claim")
            sandbox.private_message(second, "Me too")
            sandbox.group_message(GROUP, ANA, "/rescue status", thread_id=thread)
            began = time.monotonic()
            await eventually(lambda: group.conversation(first)
                             and group.conversation(first).owner == str(BEN))
            await group.topic(1)  # the second customer's topic, made meanwhile
            await eventually(lambda: any("Timers here" in m.get("text", "")
                                         for m in group.in_topic(thread)))
            took = time.monotonic() - began
            answered = len(sandbox.calls_to("answerCallbackQuery"))
        finally:
            await group.stop()
    print(f"updates behind a hanging answerCallbackQuery handled in {took * 1000:.0f} ms")
    assert took < 1.5  # the answer itself hangs for 3 s
    assert answered == 1

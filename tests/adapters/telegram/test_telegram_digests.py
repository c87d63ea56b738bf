"""The end-of-shift burst on Telegram: many notices at once become digests that fit
Telegram's 4,096 characters, with the administrators `@here` stands for named once per
message, and every notice in one of them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from telegram.error import RetryAfter

from chat_rescue.adapters.telegram import render
from chat_rescue.adapters.telegram.deliver import Deliverer
from chat_rescue.adapters.telegram.memory import Memory
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import ConversationRef, Digest, ReturnToInbox
from chat_rescue.bot.outbox import RetryLater
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.sandbox.telegram_support import GROUP, SupportGroup, eventually
from chat_rescue.storage.sqlite import SQLiteStore

World = Callable[..., Awaitable[SupportGroup]]
ADMINS = range(101, 107)  # six administrators, with long names
CUSTOMERS = range(2001, 2041)  # forty customers


async def test_forty_escalations_with_six_admins_all_arrive_in_messages_that_fit(
        world: World) -> None:
    group = await world(rescue_accept="1s", rescue_escalate_repeats=0)
    for admin in ADMINS:
        group.sandbox.add_user(admin, f"Administrator Number {admin} Of The Support Team")
        group.sandbox.set_member(GROUP, admin, "administrator")
    for customer in CUSTOMERS:
        group.sandbox.add_user(customer, f"Customer {customer}")
        group.sandbox.private_message(customer, f"Order #{customer} has not arrived yet")
    await eventually(lambda: len(group.history("escalated")) == len(CUSTOMERS), timeout=15)
    await group.drained(timeout=15)

    sent = [params for params in group.sandbox.calls_to("sendMessage")
            if params.get("message_thread_id") is None]
    digests = [str(p["text"]) for p in sent if "conversations need attention" in str(p["text"])]
    assert digests, "the burst came as digests"
    called = [int(n) for text in digests for n in re.findall(r"Customer (\d+)", text)]
    singles = [int(n) for p in sent if "nobody has taken" in str(p["text"])
               and "conversations need attention" not in str(p["text"])
               for n in re.findall(r"Customer (\d+)", str(p["text"]))]
    assert sorted(called + singles) == list(CUSTOMERS)  # every call for help, once
    for text in digests:
        assert len(re.sub(r"<[^>]*>", "", text)) <= 4096
        mentions = text.count("tg://user?id=")
        assert mentions == len(ADMINS) + 1, "each administrator once (Ana is the creator)"
    dead = group.bot.store.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    assert dead == 0


class CountingBot:
    """Stands in for the Bot API's sendMessage; refuses the n-th message with a 429."""

    def __init__(self, refuse_at: int) -> None:
        self.sent: list[str] = []
        self.refuse_at: int | None = refuse_at

    async def send_message(self, chat: int, text: str, **_: object) -> SimpleNamespace:
        if self.refuse_at is not None and len(self.sent) == self.refuse_at:
            self.refuse_at = None
            raise RetryAfter(timedelta(seconds=3))
        self.sent.append(text)
        return SimpleNamespace(message_id=len(self.sent))


async def test_a_long_digest_retried_with_fewer_notices_repeats_none(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/d.db")
    clock = FakeClock()
    bot = CountingBot(refuse_at=1)  # the second message of the digest: flood control
    deliverer = Deliverer(bot, Service(store, Policy(), clock), clock, Memory(),  # type: ignore[arg-type]
                          -100)
    notices = tuple(ReturnToInbox(ConversationRef("telegram", str(100 + n), ""), None, 300.0,
                                  "no first response within 30s", f"Customer {n} " + "x" * 110,
                                  "p" * 79) for n in range(20))
    assert len(render.digests(notices, deliverer.memory)) >= 2
    with pytest.raises(RetryLater):
        await deliverer.deliver(Digest("group:-100", notices))
    # Someone claimed the first from the message they saw: the retry lists the 19 others.
    await deliverer.deliver(Digest("group:-100", notices[1:]))
    for n in range(20):
        assert sum(text.count(f"Customer {n} ") for text in bot.sent) == 1
    store.close()

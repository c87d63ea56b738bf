"""The end-of-shift burst on Telegram: many notices at once become digests that fit
Telegram's 4,096 characters, with the administrators `@here` stands for named once per
message, and every notice in one of them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from chat_rescue.sandbox.telegram_support import GROUP, SupportGroup, eventually

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

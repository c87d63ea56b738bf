"""`/rescue queue` in the support group answers with a link that opens the group's queue,
naming its people as the bot learned them."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import aiohttp

from chat_rescue.bot.model import State
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    ANA,
    BEN,
    GROUP,
    SupportGroup,
    eventually,
)

World = Callable[..., Awaitable[SupportGroup]]
PUBLIC = "https://rescue.example.com"


def replies(group: SupportGroup, thread: int | None = None) -> list[str]:
    messages = group.general() if thread is None else group.in_topic(thread)
    return [m["text"] for m in messages if "reply_to_message" in m and "text" in m]


async def test_rescue_queue_replies_with_a_link_to_the_groups_queue(world: World) -> None:
    group = await world(public_url=PUBLIC)
    group.sandbox.private_message(ALICE, "Hello, my parcel is lost")
    thread = await group.topic()
    group.say_in_topic(ANA, thread, "On it")
    key = f"telegram:{ALICE}:"
    await eventually(lambda: (c := group.bot.store.load(key)) is not None
                     and c.state is State.WAITING_ON_CUSTOMER)
    group.sandbox.group_message(GROUP, BEN, "/rescue queue")
    [reply] = await eventually(lambda: [t for t in replies(group) if "/queue?" in t])
    found = re.search(r"https://rescue\.example\.com/queue\?(\S+)", reply)
    assert found is not None and "12h" in reply
    query = {k: v[0] for k, v in parse_qs(found[1]).items()}
    assert query["team"] == f"telegram:{GROUP}"
    url = f"http://127.0.0.1:{group.bot.port}/queue/data"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params=query) as answer:
            assert answer.status == 200
            shown = json.loads(await answer.text())
        async with session.get(url, params={**query, "team": "telegram:-100999"}) as answer:
            assert answer.status == 403
    [team] = shown["teams"]
    [row] = team["rows"]
    assert row["shown"] == "waiting_on_customer"
    assert row["owner"] not in (None, str(ANA))  # a name, as the group showed it
    assert row["preview"].startswith("Hello, my parcel")

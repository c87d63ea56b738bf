"""The queue page through a running bot on the Slack sandbox: `/rescue queue` gives an
operator a working link (ephemeral), and GET /queue and /queue/data let in a valid link or
QUEUE_TOKEN only (401 with neither, 403 for a wrong one), and change nothing."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

import aiohttp
import pytest

from chat_rescue.bot.model import State
from chat_rescue.bot.queue_links import QueueLinks
from chat_rescue.bot.settings import queue_links
from chat_rescue.sandbox.hostile import raw_get
from chat_rescue.sandbox.slack_world import ANNA, BOB, OTHER, SlackWorld, eventually

World = Callable[..., Awaitable[SlackWorld]]
TOKEN = "wall-screen-token-0123"
PUBLIC = "https://rescue.example.com"


async def link_of(world: SlackWorld, user: str = BOB) -> dict[str, str]:
    """`/rescue queue` by `user`: the reply must be ephemeral and hold the link's query."""
    reply = await world.rescue("queue", user=user)
    assert '"response_type": "ephemeral"' in reply
    found = re.search(r"https://rescue\.example\.com/queue\?(\S+?)\"", reply)
    assert found is not None, reply
    return {k: v[0] for k, v in parse_qs(html.unescape(found[1])).items()}


async def get(world: SlackWorld, path: str, query: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, method: str = "GET"
              ) -> tuple[int, str]:
    url = f"http://127.0.0.1:{world.bot.port}{path}"
    if query:
        url += "?" + urlencode(query)
    async with aiohttp.ClientSession() as session, \
            session.request(method, url, headers=headers) as answer:
        return answer.status, await answer.text()


async def data(world: SlackWorld, query: dict[str, str]) -> dict[str, Any]:
    status, body = await get(world, "/queue/data", query)
    assert status == 200, body
    parsed: dict[str, Any] = json.loads(body)
    return parsed


async def test_rescue_queue_gives_an_operator_a_link_that_shows_the_team(
        world_for: World) -> None:
    world = await world_for(public_url=PUBLIC)
    ts = await world.says("Hi, my order #1042 hasn't arrived")
    await world.card_of(ts)
    await world.says("and here is my card number 4111", thread=ts)  # not for the page
    query = await link_of(world)
    assert query["team"] == world.adapter.workspace.team
    for path in ("/queue", "/queue/data"):
        status, _ = await get(world, path, query)
        assert status == 200
    shown = await data(world, query)
    [team] = shown["teams"]
    [row] = team["rows"]
    assert (row["customer"], row["owner"], row["shown"]) == ("customer", None, "waiting")
    assert row["preview"].startswith("Hi, my order #1042")
    assert "4111" not in str(shown)  # no message text beyond the card preview
    assert [e["kind"] for e in team["events"]] == ["opened"]


async def test_the_page_names_the_owner_and_follows_the_state(world_for: World) -> None:
    world = await world_for(public_url=PUBLIC)
    ts = await world.says("Hi")
    await world.card_of(ts)
    await world.says("Hello, Anna here", thread=ts, user=ANNA)
    await eventually(lambda: world.conv(ts).state is State.WAITING_ON_CUSTOMER)
    query = await link_of(world)
    [row] = (await data(world, query))["teams"][0]["rows"]
    assert (row["owner"], row["shown"]) == ("anna", "waiting_on_customer")


async def test_somebody_outside_the_team_gets_no_link(world_for: World) -> None:
    world = await world_for(public_url=PUBLIC)
    reply = await world.rescue("queue", user=OTHER)
    assert "Only the support team" in reply and "queue?" not in reply


async def test_without_a_public_url_rescue_queue_says_what_to_set(world: SlackWorld) -> None:
    reply = await world.rescue("queue", user=BOB)
    assert "PUBLIC_URL" in reply and "queue?" not in reply


async def test_no_token_and_no_link_is_401_and_a_bad_one_is_403(world_for: World) -> None:
    world = await world_for(public_url=PUBLIC, queue_token=TOKEN)
    query = await link_of(world)
    links = queue_links(world.settings)
    assert isinstance(links, QueueLinks)
    now = world.bot.clock.now()
    stale = links.params(query["team"], now - links.ttl - 1)
    other = {**query, "team": "slack:C0OTHER"}
    longer = {**query, "exp": str(int(query["exp"]) + 3600)}
    for path in ("/queue", "/queue/data"):
        assert (await get(world, path))[0] == 401
        assert (await get(world, path, {"team": query["team"]}))[0] == 401
        status, body = await get(world, path, stale)
        assert status == 403 and "expired" in body
        for bad in (other, longer, {**query, "sig": "0" * 64}, {"exp": query["exp"]},
                    {"token": "wrong"}, {**query, "exp": "²"}, {**query, "exp": "١٢"}):
            assert (await get(world, path, bad))[0] == 403, bad
        assert (await get(world, path, headers={"Authorization": "Bearer wrong"}))[0] == 403
        # Bytes that are not UTF-8, in the header and in the query: refused, not an error.
        port = world.bot.port
        assert await raw_get(port, path.encode(), b"Authorization: Bearer \xff\r\n") == 403
        assert await raw_get(port, path.encode() + b"?token=%FF%FE") == 403
        assert await raw_get(port, path.encode() + b"?team=%FF&exp=1&sig=%FF") == 403
        assert (await get(world, path, {"token": TOKEN}))[0] == 200
        assert (await get(world, path, headers={"Authorization": f"Bearer {TOKEN}"}))[0] \
            == 200


async def test_the_token_opens_every_team_and_a_link_only_its_own(world_for: World) -> None:
    world = await world_for(public_url=PUBLIC, queue_token=TOKEN)
    ts = await world.says("Hi")
    await world.card_of(ts)
    links = queue_links(world.settings)
    assert links is not None
    other = links.params("slack:C0ELSEWHERE", world.bot.clock.now())
    assert [t["team"] for t in (await data(world, other))["teams"]] == ["slack:C0ELSEWHERE"]
    assert (await data(world, other))["teams"][0]["rows"] == []
    every = await data(world, {"token": TOKEN})
    assert [t["team"] for t in every["teams"]] == [world.adapter.workspace.team]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_nothing_on_the_page_changes_state(world_for: World, method: str) -> None:
    world = await world_for(public_url=PUBLIC, queue_token=TOKEN)
    ts = await world.says("Hi")
    await world.card_of(ts)
    before = world.conv(ts)
    for path in ("/queue", "/queue/data"):
        assert (await get(world, path, {"token": TOKEN}, method=method))[0] == 405
    status, page = await get(world, "/queue", {"token": TOKEN})
    assert status == 200
    assert "<form" not in page and "<button" not in page and "<input" not in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    assert world.conv(ts) == before

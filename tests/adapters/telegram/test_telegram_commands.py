"""`/rescue` in the support group, command registration, and the bot's rights."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest

from chat_rescue.sandbox.telegram_support import (
    ALICE,
    ANA,
    BEN,
    GROUP,
    SupportGroup,
    eventually,
)

World = Callable[..., Awaitable[SupportGroup]]


def replies(group: SupportGroup, thread: int | None = None) -> list[str]:
    messages = group.general() if thread is None else group.in_topic(thread)
    return [m["text"] for m in messages if "reply_to_message" in m and "text" in m]


async def test_only_admins_change_settings_and_replies_land_where_asked(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    thread = await group.topic()

    group.say_in_topic(BEN, thread, "/rescue set idle 1m")
    await eventually(lambda: any("only admins" in t for t in replies(group, thread)))
    assert group.bot.store.settings(f"team:telegram:{GROUP}") == {}

    group.sandbox.group_message(GROUP, ANA, "/rescue set idle 1m")  # in General
    await eventually(lambda: "idle is now 1m for the team." in replies(group))
    assert group.bot.store.settings(f"team:telegram:{GROUP}") == {"idle": "1m"}
    group.sandbox.group_message(GROUP, BEN, "/rescue")
    await eventually(lambda: any("idle 1m (team)" in t for t in replies(group)))


async def test_malformed_rescue_commands_are_explained(world: World) -> None:
    group = await world()
    group.sandbox.group_message(GROUP, ANA, "/rescue set idle 5x")
    group.sandbox.group_message(GROUP, ANA, "/rescue set naps 5m")
    group.sandbox.group_message(GROUP, ANA, "/rescue@rescue_sandbox_bot frobnicate")
    answers = await eventually(lambda: len(replies(group)) == 3 and replies(group))
    assert "'5x' is not a duration" in answers[0] and "Usage: /rescue set" in answers[0]
    assert "Unknown timer 'naps'" in answers[1]
    assert "Unknown command 'frobnicate'" in answers[2]
    assert group.bot.store.settings(f"team:telegram:{GROUP}") == {}


async def test_commands_are_registered_for_private_chats_and_the_group(world: World) -> None:
    group = await world()
    private = group.sandbox.my_commands({"type": "all_private_chats"})
    in_group = group.sandbox.my_commands({"type": "chat", "chat_id": GROUP})
    assert [c["command"] for c in private] == ["start"]
    assert [c["command"] for c in in_group] == ["rescue", "close"]


async def test_losing_admin_rights_is_logged_and_reported_by_check(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    group = await world()
    assert await group.adapter.check() == []
    caplog.set_level(logging.ERROR)
    group.sandbox.my_chat_member(GROUP, "administrator", "member", by_user_id=ANA)
    await eventually(lambda: group.adapter.admin_problem)
    assert any("no longer an administrator of the support group" in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)
    [problem] = await group.adapter.check()
    assert "no longer an administrator" in problem
    assert "SANDBOX" not in problem and "123456:" not in problem  # no token


async def test_updates_arrive_the_configured_way(world: World, mode: str) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello")
    await group.topic()
    if mode == "webhook":
        assert group.sandbox.webhook_url == group.settings.telegram_webhook_url
        assert group.sandbox.webhook_secret is not None
        assert all(d.status == 200 for d in group.sandbox.webhook_deliveries)
        assert group.sandbox.webhook_deliveries
        assert group.sandbox.calls_to("getUpdates") == []
    else:
        assert group.sandbox.webhook_url is None and group.sandbox.calls_to("getUpdates")


async def test_reading_verbs_ask_telegram_nothing_and_changes_ask_every_time(
        world: World) -> None:
    group = await world()
    for text in ("/rescue", "/rescue stats", "/rescue help"):
        group.sandbox.group_message(GROUP, BEN, text)
    await eventually(lambda: len(replies(group)) == 3)
    assert group.sandbox.calls_to("getChatMember") == []  # anyone in the group may read
    group.sandbox.group_message(GROUP, ANA, "/rescue set idle 2m")
    group.sandbox.group_message(GROUP, ANA, "/rescue set idle 3m")
    await eventually(lambda: "idle is now 3m for the team." in replies(group))
    assert len(group.sandbox.calls_to("getChatMember")) == 2  # rights change: asked each time

"""`/rescue report` in the support group: the reply at once, then a photo (a multipart
sendPhoto) in the topic where it was asked, or in General without a thread id; a caption
within 1,024 characters; retried on flood control; a short message when it cannot go."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from PIL import Image

from chat_rescue.reports import making, posting
from chat_rescue.sandbox.telegram_support import ALICE, ANA, BEN, GROUP, SupportGroup, eventually

World = Callable[..., Awaitable[SupportGroup]]


def photos(group: SupportGroup, thread: int | None = None) -> list[dict[str, Any]]:
    messages = group.general() if thread is None else group.in_topic(thread)
    return [m for m in messages if "photo" in m]


def opened(group: SupportGroup, message: dict[str, Any]) -> Image.Image:
    biggest = message["photo"][-1]
    content = group.sandbox.files[biggest["file_id"]].content
    assert len(content) <= 200_000
    image = Image.open(io.BytesIO(content))
    assert image.format == "PNG" and image.size[0] >= 600
    return image


async def test_a_report_asked_in_general_is_posted_there(world: World) -> None:
    group = await world()
    group.sandbox.group_message(GROUP, BEN, "/rescue report 30d")
    (photo,) = await eventually(lambda: photos(group), timeout=30)
    opened(group, photo)
    assert photo["caption"].startswith("Report for the last 30 days")
    assert "No conversations in this period." in photo["caption"]
    (sent,) = group.sandbox.calls_to("sendPhoto")
    assert "message_thread_id" not in sent  # General: no thread id
    texts = [m.get("text") for m in group.general()]
    assert "Building the report of the last 30 days…" in texts


async def test_a_report_asked_in_a_topic_goes_into_that_topic(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello, my order?")
    thread = await group.topic()
    group.say_in_topic(ANA, thread, "Looking into it")
    await eventually(lambda: group.history("first_reply"))
    group.say_in_topic(BEN, thread, "/rescue report")
    (photo,) = await eventually(lambda: photos(group, thread), timeout=30)
    opened(group, photo)
    assert "Conversations: 1" in photo["caption"] and len(photo["caption"]) <= 1024
    assert photos(group) == []


async def test_a_report_for_a_topic_deleted_meanwhile_goes_to_general(world: World) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello, my order?")
    thread = await group.topic()
    group.sandbox.fail_next("sendPhoto", status=400,
                            description="Bad Request: message thread not found")
    group.say_in_topic(BEN, thread, "/rescue report")
    (photo,) = await eventually(lambda: photos(group), timeout=30)
    opened(group, photo)
    first, second = group.sandbox.calls_to("sendPhoto")
    assert int(first["message_thread_id"]) == thread and "message_thread_id" not in second
    assert not any("could not be posted" in str(m.get("text")) for m in group.general())


async def test_a_report_that_cannot_be_made_for_a_deleted_topic_says_so_in_general(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    group = await world()
    group.sandbox.private_message(ALICE, "Hello, my order?")
    thread = await group.topic()

    async def broken(*args: object, **kwargs: object) -> None:
        group.sandbox.delete_topic(GROUP, thread)  # deleted while the report was made
        raise MemoryError("drawing failed")

    monkeypatch.setattr(making, "make", broken)
    group.say_in_topic(BEN, thread, "/rescue report")
    await eventually(lambda: any("could not be made" in str(m.get("text"))
                                 for m in group.general()), timeout=30)
    assert photos(group) == []


async def test_a_bad_period_gets_the_usage_and_no_photo(world: World) -> None:
    group = await world()
    group.sandbox.group_message(GROUP, BEN, "/rescue report 7x")
    await eventually(lambda: any("/rescue report [7d|30d]" in str(m.get("text"))
                                 for m in group.general()))
    await group.drained()
    assert group.sandbox.calls_to("sendPhoto") == []


async def test_flood_control_is_waited_out(world: World) -> None:
    group = await world()
    group.sandbox.fail_next("sendPhoto", status=429, retry_after=1)
    group.sandbox.group_message(GROUP, BEN, "/rescue report")
    (photo,) = await eventually(lambda: photos(group), timeout=30)
    opened(group, photo)
    assert len(group.sandbox.calls_to("sendPhoto")) == 2


async def test_a_report_that_cannot_be_sent_says_so(world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(posting, "BACKOFF", (0.01, 0.01, 0.01))
    group = await world()
    group.sandbox.fail_next("sendPhoto", status=500, count=posting.ATTEMPTS)
    group.sandbox.group_message(GROUP, BEN, "/rescue report")
    await eventually(lambda: any("could not be posted" in str(m.get("text"))
                                 for m in group.general()), timeout=30)
    assert photos(group) == []
    assert len(group.sandbox.calls_to("sendPhoto")) == posting.ATTEMPTS


async def test_the_weekly_report_goes_to_general(world: World) -> None:
    group = await world()
    await group.adapter.post_team_report(7)
    (photo,) = photos(group)
    opened(group, photo)
    assert "message_thread_id" not in group.sandbox.calls_to("sendPhoto")[0]
    assert "reply_parameters" not in group.sandbox.calls_to("sendPhoto")[0]

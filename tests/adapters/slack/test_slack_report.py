"""`/rescue report` on Slack: answered at once, then the PNG shared into the channel where it
was asked through files_upload_v2 (the sandbox's upload URL and completeUploadExternal),
retried when Slack is busy, and a short message when it cannot be posted."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image

from chat_rescue.adapters.slack.report import post_report
from chat_rescue.reports import posting
from chat_rescue.sandbox.slack import SharedFile
from chat_rescue.sandbox.slack_world import ANNA, BOB, CUSTOMER, HELP, TEAM, SlackWorld, eventually

TEAM_KEY = f"slack:{TEAM}"


def png_of(shared: SharedFile) -> Image.Image:
    assert shared.content is not None and len(shared.content) == shared.length <= 200_000
    image = Image.open(io.BytesIO(shared.content))
    assert image.format == "PNG"
    return image


async def test_a_report_is_shared_into_the_channel_it_was_asked_in(world: SlackWorld) -> None:
    ts = await world.says("My order is late")
    await world.card_of(ts)
    reply = json.loads(await world.rescue("report 30d", user=BOB, channel=TEAM))
    assert reply == {"text": "Building the report of the last 30 days…",
                     "response_type": "ephemeral"}
    shared = await eventually(lambda: world.sandbox.shared_files(TEAM), timeout=30)
    (picture,) = shared
    assert png_of(picture).size[0] >= 600
    assert picture.thread_ts is None and picture.name == "rescue-report-30d.png"
    assert picture.initial_comment.startswith("Report for the last 30 days")
    assert "Conversations: 1" in picture.initial_comment
    assert world.sandbox.calls_to("files.upload") == []  # retired: never used
    assert [c.method for c in world.sandbox.calls if c.method.startswith("files.")] == [
        "files.getUploadURLExternal", "files.completeUploadExternal"]
    posts = [m for m in world.sandbox.messages(TEAM) if m.get("subtype") == "file_share"]
    assert len(posts) == 1 and posts[0]["files"][0]["id"] == picture.id


async def test_asked_in_an_intake_channel_it_goes_to_the_team_channel(
        world: SlackWorld) -> None:
    said = json.loads(await world.rescue("report", user=ANNA, channel=HELP))["text"]
    assert said.endswith("It goes to the team channel: customers read this one.")
    (picture,) = await eventually(lambda: world.sandbox.shared_files(TEAM), timeout=30)
    png_of(picture)
    assert "No conversations in this period." in picture.initial_comment  # empty history
    assert world.sandbox.shared_files(HELP) == []


async def test_bad_period_or_a_stranger_gets_one_line_and_nothing_posted(
        world: SlackWorld) -> None:
    assert world.sandbox.calls  # connected
    said = json.loads(await world.rescue("report 7x", user=BOB, channel=TEAM))["text"]
    assert said.count("\n") == 0 and "/rescue report [7d|30d]" in said
    refused = json.loads(await world.rescue("report", user=CUSTOMER, channel=HELP))["text"]
    assert "Only the support team" in refused
    await world.bot.runtime.drained()
    assert world.sandbox.files == {}
    assert [c for c in world.sandbox.calls if c.method.startswith("files.")] == []


async def test_the_report_goes_into_the_thread_it_is_asked_for(world: SlackWorld) -> None:
    ts = await world.says("Where is my parcel?")
    card = await world.card_of(ts)
    await post_report(world.adapter.client, world.bot.service, TEAM_KEY, 7, TEAM,
                      str(card["ts"]))
    (picture,) = world.sandbox.shared_files(TEAM)
    assert picture.thread_ts == card["ts"]
    assert any(m.get("subtype") == "file_share" for m in world.thread(str(card["ts"])))


async def test_a_busy_slack_is_waited_for_then_the_report_goes(world: SlackWorld) -> None:
    world.sandbox.fail_next("files.getUploadURLExternal", status=429, retry_after=1)
    await world.rescue("report", user=BOB, channel=TEAM)
    (picture,) = await eventually(lambda: world.sandbox.shared_files(TEAM), timeout=30)
    png_of(picture)
    asked = world.sandbox.calls_to("files.getUploadURLExternal")
    assert [c.status for c in asked] == [429, 200]


async def test_a_report_that_cannot_be_posted_says_so(world: SlackWorld,
                                                     monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(posting, "BACKOFF", (0.01, 0.01, 0.01))
    world.sandbox.fail_next("files.completeUploadExternal", status=500, count=posting.ATTEMPTS)
    await world.rescue("report", user=BOB, channel=TEAM)

    def told() -> list[dict[str, object]]:
        return [m for m in world.sandbox.messages(TEAM)
                if "could not be posted" in str(m.get("text"))]

    (notice,) = await eventually(told, timeout=30)
    assert world.sandbox.shared_files() == []
    assert len(world.sandbox.calls_to("files.completeUploadExternal")) == posting.ATTEMPTS


async def test_the_weekly_report_goes_to_the_team_channel(world_for: Any) -> None:
    world = await world_for(rescue_report_weekly="mon 09:00")
    weekly = world.bot.runtime.weekly
    assert weekly is not None and weekly.channels == [world.adapter]
    assert "weekly-report" in [t.get_name() for t in world.bot.runtime._tasks]
    await world.adapter.post_team_report(7)
    (picture,) = world.sandbox.shared_files(TEAM)
    assert picture.thread_ts is None and png_of(picture)

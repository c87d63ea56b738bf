"""`chat-rescue check` and start-up against the sandbox: plain words, never a token."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chat_rescue.bot.settings import Settings
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_world import HELP, SlackWorld


async def problems(sandbox: SlackSandbox, settings: Settings) -> list[str]:
    world = SlackWorld(sandbox, settings)
    await world.start()
    try:
        return await world.adapter.check()
    finally:
        await world.stop()


async def test_a_good_configuration_has_no_problems(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    assert await problems(sandbox, settings_for()) == []


async def test_channels_the_app_is_not_in_are_named(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    sandbox.add_channel("C0LOBBY", "lobby", ["U0CUSTOMER"])
    found = await problems(sandbox, settings_for(slack_intake_channels=f"{HELP},C0LOBBY,C0NOPE"))
    assert found == [
        "SLACK_INTAKE_CHANNELS: the app is not a member of #lobby (C0LOBBY); "
        "invite it with /invite @chat-rescue.",
        "SLACK_INTAKE_CHANNELS: Slack cannot show channel C0NOPE to the app "
        "(channel_not_found); check the id, and for a private channel invite the app "
        "with /invite @chat-rescue.",
    ]


async def test_a_refused_token_is_reported_without_the_token(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(slack_bot_token="xoxb-wrong-secret", slack_signing_secret=None,
                            slack_intake_channels="")
    world = SlackWorld(sandbox, settings)
    found = await world_check_without_start(world)
    assert any("SLACK_INTAKE_CHANNELS is not set" in p for p in found)
    assert any("SLACK_SIGNING_SECRET is not set" in p for p in found)
    assert any("Slack refused SLACK_BOT_TOKEN (invalid_auth)" in p for p in found)
    assert "xoxb-wrong-secret" not in " ".join(found)


async def world_check_without_start(world: SlackWorld) -> list[str]:
    from chat_rescue.server import Bot

    bot = Bot(world.settings)
    try:
        return await bot.adapters[0].check()
    finally:
        bot.store.close()


async def test_start_fails_plainly_when_the_team_channel_is_unknown(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    world = SlackWorld(sandbox, settings_for(slack_team_channel="C0GONE"))
    with pytest.raises(RuntimeError, match="channel_not_found.*chat-rescue check"):
        await world.start()
    await world.stop()


async def test_without_a_signing_secret_the_bot_refuses_to_serve_slack(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    world = SlackWorld(sandbox, settings_for(slack_signing_secret=None))
    with pytest.raises(RuntimeError, match="SLACK_SIGNING_SECRET is not set"):
        await world.start()
    await world.stop()


def test_the_manifest_asks_for_what_the_adapter_uses() -> None:
    from pathlib import Path

    manifest = (Path(__file__).parents[3] / "slack-app-manifest.yaml").read_text()
    listed = {line.strip()[2:].split(" #")[0] for line in manifest.splitlines()
              if line.strip().startswith("- ")}
    scopes = {"chat:write", "channels:history", "groups:history", "channels:read",
              "groups:read", "reactions:read", "users:read", "commands"}
    events = {"message.channels", "message.groups", "reaction_added",
              "member_joined_channel", "member_left_channel"}
    assert scopes | events <= listed
    assert "command: /rescue" in manifest and "should_escape: true" in manifest
    assert manifest.count("https://YOUR-HOST/slack/events") == 3
    assert "is_enabled: true" in manifest and "socket_mode_enabled: false" in manifest

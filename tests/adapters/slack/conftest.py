"""Fixtures for end-to-end Slack tests: the sandbox workspace and a started world."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chat_rescue.bot.settings import Settings
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_world import SlackWorld, furnish, sandbox_settings

# Sub-second timers where a test waits for them; the others long enough never to fire.
FAST = {
    "rescue_accept": "10m",
    "rescue_first_response": "300ms",
    "rescue_idle": "300ms",
    "rescue_escalate": "10m",
    "rescue_close_reminder": "10m",
}


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox() as sandbox:
        furnish(sandbox)
        yield sandbox


@pytest.fixture
def settings_for(tmp_path: Path, sandbox: SlackSandbox) -> Callable[..., Settings]:
    """Settings for the sandbox workspace with the FAST timers; keywords override."""

    def make(**overrides: Any) -> Settings:
        return sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db", **{**FAST, **overrides})

    return make


@pytest.fixture
async def world_for(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Awaitable[SlackWorld]]]:
    """`await world_for(**settings)`: a started world, stopped after the test."""
    worlds: list[SlackWorld] = []

    async def make(**overrides: Any) -> SlackWorld:
        world = SlackWorld(sandbox, settings_for(**overrides))
        worlds.append(world)
        await world.start()
        return world

    yield make
    for world in worlds:
        await world.stop()


@pytest.fixture
async def world(world_for: Callable[..., Awaitable[SlackWorld]]) -> SlackWorld:
    """The default world: first response and idle 300 ms, the other timers long."""
    return await world_for()

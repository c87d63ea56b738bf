"""Fixtures for end-to-end Telegram tests: the sandbox Bot API and the bot started against it,
in long-polling and in webhook mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_support import SupportGroup, furnish, sandbox_settings

# Sub-second timers where a test waits for them; the others long enough never to fire.
SLOW = {
    "rescue_accept": "10m",
    "rescue_first_response": "10m",
    "rescue_idle": "10m",
    "rescue_escalate": "10m",
    "rescue_close_reminder": "10m",
}


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns when RetryAfter.retry_after is an int (warnings are errors here); the
    # adapter takes both, so opt in to the timedelta PTB is moving to.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture(params=["polling", "webhook"])
def mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
async def sandbox(mode: str) -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox(push_updates_to_webhook=mode == "webhook") as sandbox:
        furnish(sandbox)
        yield sandbox


@pytest.fixture
async def world(sandbox: TelegramSandbox, mode: str, tmp_path: Path
                ) -> AsyncIterator[Callable[..., Awaitable[SupportGroup]]]:
    """Start the bot with settings overrides (timers default to 10m); stopped after the test."""
    started: list[SupportGroup] = []

    async def start(**overrides: Any) -> SupportGroup:
        settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t{len(started)}.db",
                                    webhook=mode == "webhook", **{**SLOW, **overrides})
        group = SupportGroup(sandbox, settings)
        started.append(group)
        return await group.start()

    yield start
    for group in reversed(started):
        await group.stop()

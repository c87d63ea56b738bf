"""The queue page's names: a platform slower than the page waits for still gets its
lookup finished (and cached by the adapter) for the next poll, one lookup at a time."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from chat_rescue import queue_page
from chat_rescue.bot.queue_view import Snapshot
from chat_rescue.bot.service import Service
from chat_rescue.queue_page import QueuePage


class People:
    def people(self) -> set[tuple[str, str]]:
        return {("slack", "U0ANA")}


class SlowNamer:
    """Slack's users.info, slower than the page waits; what it found is kept."""

    def __init__(self) -> None:
        self.calls = 0
        self.known: dict[str, str] = {}

    async def __call__(self, users: object) -> dict[str, str]:
        if self.known:
            return dict(self.known)
        self.calls += 1
        await asyncio.sleep(0.3)
        self.known = {"U0ANA": "Ana"}
        return dict(self.known)


async def test_a_slow_lookup_finishes_for_the_next_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_page, "NAMES_WAIT", 0.05)
    namer = SlowNamer()
    page = QueuePage(cast(Service, None), "", None, {"slack": namer})
    snapshot = cast(Snapshot, People())
    assert await page.names(snapshot) == {}  # ids this once...
    assert await page.names(snapshot) == {}  # ...and the lookup under way is not asked again
    assert namer.calls == 1
    await asyncio.sleep(0.35)
    assert await page.names(snapshot) == {("slack", "U0ANA"): "Ana"}
    assert namer.calls == 1


async def test_a_failing_lookup_shows_ids() -> None:
    async def broken(users: object) -> dict[str, str]:
        raise RuntimeError("users.info is down")

    page = QueuePage(cast(Service, None), "", None, {"slack": broken})
    assert await page.names(cast(Snapshot, People())) == {}

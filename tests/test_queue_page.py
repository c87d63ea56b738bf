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


class Screen:
    """The people one wall screen shows."""

    def __init__(self, *users: str) -> None:
        self.users = users

    def people(self) -> set[tuple[str, str]]:
        return {("slack", user) for user in self.users}


class CachingNamer:
    """As slack.people.Names: the ids it knows at once, the others slowly."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    async def __call__(self, users: object) -> dict[str, str]:
        wanted = set(users)  # type: ignore[call-overload]
        if wanted - set(self.known):
            await asyncio.sleep(0.3)
            self.known.update({user: user.lower() for user in wanted})
        return {user: self.known.get(user, user) for user in wanted}


async def test_another_screens_slow_lookup_leaves_known_names_shown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_page, "NAMES_WAIT", 0.05)
    page = QueuePage(cast(Service, None), "", None, {"slack": CachingNamer()})
    ana, ben = cast(Snapshot, Screen("U0ANA")), cast(Snapshot, Screen("U0BEN"))
    await page.names(ana)
    await asyncio.sleep(0.35)
    assert await page.names(ana) == {("slack", "U0ANA"): "u0ana"}
    assert await page.names(ben) == {}  # new to the namer: looked up slowly
    assert await page.names(ana) == {("slack", "U0ANA"): "u0ana"}  # not held up by it
    await asyncio.sleep(0.35)
    assert await page.names(ben) == {("slack", "U0BEN"): "u0ben"}


def test_a_team_with_a_nul_or_a_control_character_is_refused_not_an_error() -> None:
    for team in ("slack:\x00", "slack:C1\n", "telegram:\x1b[2J"):
        allowed = queue_page.access({"token": "T", "team": team}, "", "T", None, 0.0)
        assert allowed.status == 403, team
    assert queue_page.access({"token": "T", "team": "slack:C1"}, "", "T", None, 0.0) \
        == queue_page.Access(200, ("slack:C1",))

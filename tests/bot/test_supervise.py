"""Supervised loops: the ticker and the outbox survive store errors, and /healthz says how
each loop is doing, how late the oldest deadline is and how old the oldest queued action."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chat_rescue import server
from chat_rescue.bot import supervise
from chat_rescue.bot.clock import FastClock
from chat_rescue.bot.model import Conversation, ConversationRef, CustomerMessage, PostCard, Timer
from chat_rescue.bot.outbox import Posted
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change
from chat_rescue.bot.settings import Settings
from chat_rescue.bot.supervise import Loop, Loops
from chat_rescue.server import Bot

T0 = 1_700_000_000.0


@pytest.fixture(autouse=True)
def short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise, "FIRST_PAUSE", 0.01)
    monkeypatch.setattr(supervise, "LONGEST_PAUSE", 0.02)


async def wait_until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while not check():
        assert loop.time() < until, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_a_loop_that_fails_is_started_again_and_logs_each_kind_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loops = Loops()
    rounds: list[str] = []

    async def body(loop: Loop) -> None:
        rounds.append(loop.state)
        if len(rounds) <= 3:
            raise sqlite3.OperationalError("database is locked")
        loop.ok()
        await asyncio.Event().wait()

    with caplog.at_level(logging.DEBUG, logger="chat_rescue.bot.supervise"):
        task = asyncio.create_task(loops.supervise("ticker", body))
        await wait_until(lambda: len(rounds) == 4)
        assert loops.states() == {"ticker": "alive"}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert loops.states() == {"ticker": "stopped"}
    assert rounds == ["alive", "failing", "failing", "failing"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None  # one traceback, not three
    assert any("works again after 3 failed rounds" in r.getMessage() for r in caplog.records)


class FlakyStore:
    """Makes the named store methods raise "database is locked" `times` times each."""

    def __init__(self, store: Any, names: tuple[str, ...], times: int) -> None:
        self.failures = 0
        for name in names:
            real = getattr(store, name)
            setattr(store, name, self._flaky(real, times))

    def _flaky(self, real: Callable[..., Any], times: int) -> Callable[..., Any]:
        left = times

        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal left
            if left > 0:
                left -= 1
                self.failures += 1
                raise sqlite3.OperationalError("database is locked")
            return real(*args, **kwargs)

        return call


class Recorder:
    """A platform that records what it is given."""

    name = "fake"

    def __init__(self) -> None:
        self.delivered: list[Any] = []

    async def deliver(self, action: Any) -> Posted | None:
        self.delivered.append(action)
        return Posted(f"card-{len(self.delivered)}") if isinstance(action, PostCard) else None

    def destination(self, action: Any) -> str:
        return "team"

    def free_at(self, action: Any, now: float) -> float:
        return now

    def routes(self, app: Any) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def check(self) -> list[str]:
        return []


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    yield Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/h.db",  # type: ignore[call-arg]
                   host="127.0.0.1", port=0)


async def test_store_errors_in_the_ticker_and_the_outbox_lose_nothing(
    settings: Settings,
) -> None:
    clock = FastClock(T0, speed=600)  # the 2-minute accept timer passes in 0.2 s
    platform = Recorder()
    bot = Bot(settings, clock, adapters=[platform])  # type: ignore[list-item]
    bot.service.base_policy = Policy(accept=120.0)
    await bot.start()
    try:
        ref = ConversationRef("fake", "C1", "t1")
        await bot.service.submit(CustomerMessage(ref, clock.now(), "Zoë", "hello", "team-a"))
        flaky = FlakyStore(bot.store, ("due", "heads"), times=3)
        bot.runtime.ticker.poke(clock.now())
        await wait_until(lambda: any(type(a).__name__ == "Escalate" for a in platform.delivered))
        await wait_until(lambda: bot.store.pending(10) == [])
        assert flaky.failures >= 4  # both loops hit errors ...
        kinds = [type(a).__name__ for a in platform.delivered]
        assert kinds.count("PostCard") == 1 and kinds.count("Escalate") >= 1
        # ... and carried on (a loop says so at the top of its next turn)
        await wait_until(lambda: set(bot.loops.states().values()) == {"alive"})
    finally:
        await bot.stop()


async def test_healthz_reports_loops_and_ages_and_fails_when_a_deadline_is_late(
    settings: Settings,
) -> None:
    clock = FastClock(T0, speed=1)
    bot = Bot(settings, clock, adapters=[Recorder()])  # type: ignore[list-item]
    await bot.start()
    url = f"http://127.0.0.1:{bot.port}/healthz"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as answer:
                report = await answer.json()
                assert answer.status == 200
            assert report["status"] == "ok"
            assert report["loops"] == {"ticker": "alive", "prune": "alive", "metrics": "alive",
                                       "outbox:fake": "alive"}
            assert report["oldest_overdue_s"] == 0.0 and report["oldest_pending_s"] == 0.0
            assert report["outbox"] == {"fake": {"delivered": 0, "dropped": 0, "taken_over": 0,
                                                 "leased_elsewhere": 0}}

            # The ticker dies for good (a bug): its deadlines go overdue.
            bot.runtime._tasks[0].cancel()
            await wait_until(lambda: bot.loops.states()["ticker"] == "stopped")
            late = Conversation(ConversationRef("fake", "C1", "t1"), "team-a", "Zoë",
                                T0, deadline=clock.now() - 90, deadline_timer=Timer.ACCEPT)
            bot.store.commit(Change(late), clock.now())
            async with http.get(url) as answer:
                report = await answer.json()
                assert answer.status == 503
            assert report["status"] == "failing"
            assert report["loops"]["ticker"] == "stopped"
            assert 90 <= report["oldest_overdue_s"] < 100
    finally:
        await bot.stop()


async def test_healthz_fails_while_a_loop_keeps_failing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "STUCK_LIMIT", 0.2)
    clock = FastClock(T0, speed=1)
    bot = Bot(settings, clock, adapters=[Recorder()])  # type: ignore[list-item]
    await bot.start()
    url = f"http://127.0.0.1:{bot.port}/healthz"
    try:
        FlakyStore(bot.store, ("heads",), times=10_000)  # the outbox cannot read its queue
        bot.runtime.outboxes[0].poke()
        await wait_until(lambda: bot.loops.states().get("outbox:fake") == "failing")
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as answer:
                assert answer.status == 200  # a blip: it retries
            await asyncio.sleep(0.3)
            async with http.get(url) as answer:
                report = await answer.json()
                assert answer.status == 503
        assert report["status"] == "failing" and report["stuck"] == ["outbox:fake"]
    finally:
        await bot.stop()

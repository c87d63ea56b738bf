"""The deadline ticker on a fake clock: what is due fires, once, even across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from chat_rescue.bot import engine
from chat_rescue.bot import ticker as ticker_module
from chat_rescue.bot.clock import Clock, FakeClock, FastClock, ShiftedClock
from chat_rescue.bot.model import (
    Claim,
    Close,
    Conversation,
    ConversationRef,
    CustomerMessage,
    InboundEvent,
    OperatorMessage,
    State,
    Timer,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change
from chat_rescue.bot.service import Service
from chat_rescue.bot.ticker import RETRY_FAILED, Ticker
from chat_rescue.storage.sqlite import SQLiteStore

T0 = 1_700_000_000.0
TEAM = "team-a"


def ref(n: int) -> ConversationRef:
    return ConversationRef("test", "C1", f"t{n}")


class PoisonedService(Service):
    """A service that fails on some conversations, as a corrupt row or a bug would."""

    broken: frozenset[str] = frozenset()

    def handle(self, event: InboundEvent, **kwargs: object) -> engine.Decision | None:
        if event.ref.key in self.broken:
            raise RuntimeError(f"cannot decide {event.ref.key}")
        return super().handle(event, **kwargs)  # type: ignore[arg-type]

    def handle_all(self, events: Sequence[tuple[InboundEvent, Conversation]]
                   ) -> list[engine.Decision | None]:
        for event, _ in events:  # as deciding a slice with a broken one in it would
            if event.ref.key in self.broken:
                raise RuntimeError(f"cannot decide {event.ref.key}")
        return super().handle_all(events)


@dataclass
class Bot:
    """One process's worth of objects on a store."""

    store: SQLiteStore
    service: PoisonedService
    ticker: Ticker
    clock: Clock

    def open(self, n: int, channel: str = "C1") -> ConversationRef:
        r = ConversationRef("test", channel, f"t{n}")
        self.service.handle(CustomerMessage(r, self.clock.now(), f"cust-{n}", "help", TEAM))
        return r

    def kinds(self, n: int, since: float = 0.0) -> list[str]:
        return [h.kind for h in self.store.history(TEAM, since)
                if h.ref == ref(n) and h.kind != "outcome"]


def make_bot(path: Path | None, clock: Clock, policy: Policy | None = None, *,
             batch: int = 500, fired: list[tuple[float, float]] | None = None) -> Bot:
    store = SQLiteStore(f"sqlite:///{path}" if path else "sqlite://")
    service = PoisonedService(store, policy or Policy(), clock)
    ticker = Ticker(store, service, clock, batch=batch,
                    on_fire=(lambda d, n: fired.append((d, n))) if fired is not None else None)
    return Bot(store, service, ticker, clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def bot(clock: FakeClock) -> Iterator[Bot]:
    made = make_bot(None, clock)
    yield made
    made.store.close()


def deadline_of(bot: Bot, n: int) -> float | None:
    conv = bot.store.load(ref(n).key)
    assert conv is not None
    return conv.deadline


async def wait_for(condition: Callable[[], bool], timeout: float = 1.0) -> bool:
    """Poll `condition` for up to `timeout` real seconds."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while loop.time() < until:
        if condition():
            return True
        await asyncio.sleep(0.005)
    return condition()


# --- fire_due -------------------------------------------------------------------


def test_fire_due_fires_exactly_the_due_conversations(bot: Bot, clock: FakeClock) -> None:
    bot.open(1)  # accept deadline T0+120
    clock.advance(30)
    bot.open(2)  # T0+150
    clock.advance(60)
    bot.open(3)  # T0+210
    clock.t = T0 + 150  # exactly at conversation 2's deadline
    assert bot.ticker.fire_due(clock.now()) == 2
    assert bot.ticker.fired == 2
    assert bot.kinds(1) == ["opened", "escalated"]
    assert bot.kinds(2) == ["opened", "escalated"]
    assert bot.kinds(3) == ["opened"]
    # Firing moved them on: nothing is due again at the same moment.
    assert bot.ticker.fire_due(clock.now()) == 0
    assert deadline_of(bot, 1) == T0 + 150 + 120


def test_nothing_fires_before_a_deadline(bot: Bot, clock: FakeClock) -> None:
    bot.open(1)
    clock.advance(119.999)
    assert bot.ticker.fire_due(clock.now()) == 0
    assert bot.kinds(1) == ["opened"]


def test_a_batch_fires_the_earliest_deadlines_first(clock: FakeClock) -> None:
    bot = make_bot(None, clock, batch=2)
    for n in range(5):
        bot.open(n)
        clock.advance(1)
    clock.advance(1000)
    assert bot.ticker.fire_due(clock.now()) == 2
    assert [n for n in range(5) if "escalated" in bot.kinds(n)] == [0, 1]
    assert bot.ticker.fire_due(clock.now()) == 2
    assert bot.ticker.fire_due(clock.now()) == 1
    assert bot.ticker.fire_due(clock.now()) == 0
    assert [bot.kinds(n).count("escalated") for n in range(5)] == [1] * 5
    bot.store.close()


def test_on_fire_reports_each_deadline_and_when_it_fired(clock: FakeClock) -> None:
    fired: list[tuple[float, float]] = []
    bot = make_bot(None, clock, fired=fired)
    bot.open(1)
    clock.advance(125)
    bot.ticker.fire_due(clock.now())
    assert fired == [(T0 + 120, T0 + 125)]
    bot.store.close()


def test_a_conversation_that_raises_does_not_stop_the_others(
    bot: Bot, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    for n in (1, 2, 3):
        bot.open(n)
        clock.advance(1)
    bot.service.broken = frozenset({ref(2).key})
    clock.advance(200)
    with caplog.at_level(logging.ERROR, logger="chat_rescue.bot.ticker"):
        bot.ticker.fire_due(clock.now())
    assert bot.kinds(1) == ["opened", "escalated"]
    assert bot.kinds(2) == ["opened"]
    assert bot.kinds(3) == ["opened", "escalated"]
    assert bot.ticker.fired == 2
    assert ref(2).key in caplog.text


def test_a_row_that_does_not_read_does_not_stop_the_others(
    bot: Bot, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    for n in (1, 2):
        bot.open(n)
        clock.advance(1)
    with bot.store.conn:  # first in deadline order, written by a newer release
        bot.store.conn.execute("UPDATE conversations SET state = 'from_a_newer_release' "
                               "WHERE key = ?", (ref(1).key,))
    clock.advance(200)
    with caplog.at_level(logging.ERROR, logger="chat_rescue.storage.rows"):
        for _ in range(3):
            bot.ticker.fire_due(clock.now())
    assert bot.kinds(2) == ["opened", "escalated"]
    assert bot.ticker.fired == 1
    assert ref(1).key in caplog.text and "cannot be read" in caplog.text


def test_fired_deadlines_are_counted_though_the_pass_fails_after_them(
        bot: Bot, clock: FakeClock) -> None:
    # The slice commits, then the next deadline cannot be read (the connection reset):
    # the pass raises, and what it committed is counted all the same.
    for n in range(3):
        bot.open(n)
    clock.advance(1000)

    def reset() -> float | None:
        raise OSError("connection reset")

    bot.store.next_deadline = reset  # type: ignore[method-assign]
    with pytest.raises(OSError):
        asyncio.run(bot.service.call(bot.ticker._pass, clock.now()))
    assert all(bot.kinds(n) == ["opened", "escalated"] for n in range(3))
    counted = bot.service.metrics.escalations.collect()
    assert sum(s.value for m in counted for s in m.samples if s.name.endswith("_total")) == 3


def test_a_failed_deadline_is_retried_later_not_at_once(bot: Bot, clock: FakeClock) -> None:
    bot.open(1)
    bot.service.broken = frozenset({ref(1).key})
    clock.advance(120)
    bot.ticker.fire_due(clock.now())
    bot.service.broken = frozenset()  # whatever broke it is fixed
    clock.advance(RETRY_FAILED / 2)
    bot.ticker.fire_due(clock.now())
    assert bot.kinds(1) == ["opened"]
    clock.advance(RETRY_FAILED / 2)
    bot.ticker.fire_due(clock.now())
    assert bot.kinds(1) == ["opened", "escalated"]


def test_failing_conversations_that_fill_a_batch_do_not_starve_later_deadlines(
    clock: FakeClock,
) -> None:
    bot = make_bot(None, clock, batch=2)
    for n in (1, 2, 3):
        bot.open(n)
        clock.advance(1)
    bot.service.broken = frozenset({ref(1).key, ref(2).key})
    clock.advance(200)
    for _ in range(5):
        bot.ticker.fire_due(clock.now())
        clock.advance(1)
    try:
        assert bot.kinds(3) == ["opened", "escalated"]
    finally:
        bot.store.close()


def test_fire_due_returns_how_many_fired(bot: Bot, clock: FakeClock) -> None:
    bot.open(1)
    bot.open(2)
    bot.service.broken = frozenset({ref(1).key})
    clock.advance(120)
    assert bot.ticker.fire_due(clock.now()) == 1


# --- restart ----------------------------------------------------------------------


def test_after_a_restart_every_overdue_deadline_fires_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "rescue.db"
    clock = FakeClock(T0 - 1000)
    before = make_bot(path, clock)
    # 5: answered, customer wrote again, nudged before the crash (escalate timer running).
    before.open(5)
    before.service.handle(OperatorMessage(ref(5), clock.now(), "ana"))
    before.service.handle(CustomerMessage(ref(5), clock.now(), "cust-5", "hello?", TEAM))
    clock.advance(300)
    assert before.ticker.fire_due(clock.now()) == 1
    assert before.kinds(5)[-1] == "nudged"
    clock.t = T0
    before.open(1)  # 1: queued -> accept
    before.open(2)  # 2: claimed -> first_response
    before.service.handle(Claim(ref(2), clock.now(), "ben"))
    before.open(3)  # 3: waiting on the operator -> idle
    before.service.handle(OperatorMessage(ref(3), clock.now(), "ana"))
    before.service.handle(CustomerMessage(ref(3), clock.now(), "cust-3", "?", TEAM))
    before.open(4)  # 4: waiting on the customer -> close reminder
    before.service.handle(OperatorMessage(ref(4), clock.now(), "ana"))
    before.open(6)  # 6: closed -> no deadline at all
    before.service.handle(OperatorMessage(ref(6), clock.now(), "ana"))
    before.service.handle(Close(ref(6), clock.now(), "ana"))
    deadlines = {n: deadline_of(before, n) for n in range(1, 7)}
    assert deadlines == {1: T0 + 120, 2: T0 + 30, 3: T0 + 300, 4: T0 + 1800,
                         5: T0 - 700 + 300, 6: None}

    # kill -9: no shutdown, no close; the objects are simply never used again.
    graveyard = [before.store]
    del before

    restarted_at = T0 + 10 * 3600
    later = FakeClock(restarted_at)
    fired: list[tuple[float, float]] = []
    after = make_bot(path, later, fired=fired)
    try:
        assert after.ticker.fire_due(later.now()) == 5
        assert after.ticker.fired == 5
        since = {n: after.kinds(n, restarted_at) for n in range(1, 7)}
        assert since == {
            1: ["escalated"],
            2: ["returned"],
            3: ["nudged"],
            4: ["reminded"],
            5: ["returned", "escalated"],
            6: [],
        }
        assert sorted(d for d, _ in fired) == sorted(d for d in deadlines.values() if d)
        assert {now for _, now in fired} == {restarted_at}
        # A second look at the same moment fires nothing: each fired once, not per period.
        assert after.ticker.fire_due(later.now()) == 0
        assert after.ticker.fired == 5
        next_deadline = after.store.next_deadline()
        assert next_deadline is not None and next_deadline > restarted_at
    finally:
        after.store.close()
        for store in graveyard:
            store.close()


async def test_after_a_restart_a_running_ticker_fires_what_was_missed(tmp_path: Path) -> None:
    path = tmp_path / "rescue.db"
    clock = FakeClock(T0)
    before = make_bot(path, clock)
    for n in range(3):
        before.open(n)
    graveyard = [before.store]
    del before

    later = FakeClock(T0 + 86_400)
    after = make_bot(path, later)
    task = asyncio.create_task(after.ticker.run())
    try:
        assert await wait_for(lambda: after.ticker.fired == 3)
        await asyncio.sleep(0.02)  # and nothing fires a second time
        assert [after.kinds(n, T0 + 86_400) for n in range(3)] == [["escalated"]] * 3
        assert after.ticker.fired == 3
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        after.store.close()
        for store in graveyard:
            store.close()


# --- the running ticker ------------------------------------------------------------


@pytest.fixture
async def fast_bot() -> AsyncIterator[Bot]:
    """A running ticker on a clock where one second of bot time is one real millisecond."""
    clock = FastClock(T0, speed=1000)
    made = make_bot(None, clock, Policy(accept=3600, first_response=20))
    task = asyncio.create_task(made.ticker.run())
    yield made
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    made.store.close()


async def test_a_sooner_deadline_wakes_a_ticker_sleeping_on_a_far_one(fast_bot: Bot) -> None:
    bot = fast_bot
    bot.open(1)  # accept 3600 s: the ticker sleeps 3.6 real seconds
    await asyncio.sleep(0.02)

    # Another writer (a replica) stores a claimed conversation due in 20 s; nobody pokes.
    now = bot.clock.now()
    quiet = ref(2)
    opened = engine.decide(None, CustomerMessage(quiet, now, "cust-2", "hi", TEAM),
                           bot.service.policy(TEAM, quiet), now)
    assert opened.conversation is not None
    claimed = engine.decide(opened.conversation, Claim(quiet, now, "ben"),
                            bot.service.policy(TEAM, quiet), now)
    assert claimed.conversation is not None and claimed.conversation.state is State.CLAIMED
    assert claimed.conversation.deadline_timer is Timer.FIRST_RESPONSE
    bot.store.commit(Change(claimed.conversation), now)
    await asyncio.sleep(0.1)  # 100 s of bot time: the quiet one is 80 s overdue
    assert bot.kinds(2) == []
    assert bot.ticker.fired == 0

    # A claim through the service schedules a 20 s deadline and pokes the ticker.
    bot.open(3)
    bot.service.handle(Claim(ref(3), bot.clock.now(), "ana"))
    assert await wait_for(lambda: bot.ticker.fired == 2, timeout=1.0)
    assert bot.kinds(2) == ["returned"]
    assert bot.kinds(3)[-1] == "returned"
    assert "escalated" not in bot.kinds(1)


async def test_a_ticker_with_nothing_scheduled_waits_without_polling() -> None:
    clock = FakeClock(T0)
    bot = make_bot(None, clock)
    queries = Counter[str]()
    due = bot.store.due

    def counting_due(now: float, limit: int) -> list[str]:
        queries["due"] += 1
        return due(now, limit)

    bot.store.due = counting_due  # type: ignore[method-assign]
    task = asyncio.create_task(bot.ticker.run())
    try:
        await asyncio.sleep(0.05)
        assert queries["due"] == 1
        # With the fake clock a due deadline fires as soon as the clock says so.
        bot.open(1)
        clock.advance(120)
        assert await wait_for(lambda: bot.ticker.fired == 1, timeout=1.0)
        assert bot.kinds(1) == ["opened", "escalated"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        bot.store.close()


async def test_a_failing_overdue_conversation_does_not_make_the_ticker_spin(
    fast_bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    bot = fast_bot
    queries = Counter[str]()
    due = bot.store.due

    def counting_due(now: float, limit: int) -> list[str]:
        queries["due"] += 1
        return due(now, limit)

    bot.store.due = counting_due  # type: ignore[method-assign]
    bot.open(1)
    conv = bot.store.load(ref(1).key)
    assert conv is not None
    overdue = replace(conv, deadline=bot.clock.now() - 1)  # as after a long outage
    bot.store.commit(Change(overdue, expected_version=conv.version), bot.clock.now())
    bot.service.broken = frozenset({ref(1).key})
    with caplog.at_level(logging.CRITICAL, logger="chat_rescue.bot.ticker"):
        bot.ticker.poke(bot.clock.now() - 1)
        await asyncio.sleep(0.1)  # 100 s of bot time: a few retries, not thousands
    assert 1 <= queries["due"] < 20
    assert bot.ticker.fired == 0


async def test_a_poke_costs_no_query_and_a_deadline_one_of_each() -> None:
    clock = FakeClock(T0)
    bot = make_bot(None, clock)
    queries = Counter[str]()
    for name in ("due", "next_deadline"):
        method = getattr(bot.store, name)

        def counted(*args: object, _method: Callable[..., object] = method,
                    _name: str = name) -> object:
            queries[_name] += 1
            return _method(*args)

        setattr(bot.store, name, counted)
    task = asyncio.create_task(bot.ticker.run())
    try:
        await asyncio.sleep(0.02)
        assert queries == {"due": 1, "next_deadline": 1}  # the start: anything overdue?
        for n in range(1, 6):  # five new conversations, each pokes with its deadline
            bot.open(n)
            await asyncio.sleep(0.01)
        assert queries == {"due": 1, "next_deadline": 1}
        clock.advance(120)  # all five accept deadlines are due
        bot.ticker.poke(clock.now())  # the fake clock does not wake a sleeper by itself
        assert await wait_for(lambda: bot.ticker.fired == 5)
        await asyncio.sleep(0.02)
        assert queries == {"due": 2, "next_deadline": 2}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        bot.store.close()


async def test_a_wake_after_the_wall_clock_jumped_fires_what_is_due_now() -> None:
    clock = ShiftedClock(T0)
    bot = make_bot(None, clock, Policy(accept=3600.0))
    task = asyncio.create_task(bot.ticker.run())
    try:
        bot.open(1)
        await asyncio.sleep(0.05)  # asleep for an hour of real time
        clock.jump_to(T0 + 3601)
        await asyncio.sleep(0.05)
        assert bot.kinds(1) == ["opened"]  # a jump alone wakes nothing
        bot.ticker.wake()
        for _ in range(100):
            if "escalated" in bot.kinds(1):
                break
            await asyncio.sleep(0.01)
        assert bot.kinds(1) == ["opened", "escalated"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        bot.store.close()


async def test_a_ticker_looks_again_after_a_while_so_a_stepped_clock_is_noticed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asleep towards a deadline an hour away (a weekend, with working hours), the ticker
    looks again every LOOK_AGAIN real seconds: a wall clock stepped past the deadline (a
    machine resumed from sleep) fires it without anybody waking the ticker."""
    monkeypatch.setattr(ticker_module, "LOOK_AGAIN", 0.05)
    clock = ShiftedClock(T0)
    bot = make_bot(None, clock, Policy(accept=3600.0))
    task = asyncio.create_task(bot.ticker.run())
    try:
        bot.open(1)
        await asyncio.sleep(0.02)
        clock.jump_to(T0 + 3601)
        for _ in range(100):
            if "escalated" in bot.kinds(1):
                break
            await asyncio.sleep(0.01)
        assert bot.kinds(1) == ["opened", "escalated"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        bot.store.close()


async def test_a_deadline_stored_by_another_process_is_found_on_the_next_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second process on the same SQLite file stores a deadline and tells nobody (no
    notices on SQLite): the ticker, asleep with nothing scheduled, finds it when it looks
    again after LOOK_AGAIN."""
    monkeypatch.setattr(ticker_module, "LOOK_AGAIN", 0.05)
    clock = FakeClock(T0)
    bot = make_bot(None, clock)
    task = asyncio.create_task(bot.ticker.run())
    try:
        await asyncio.sleep(0.02)  # asleep: nothing is scheduled
        other = Service(bot.store, Policy(), clock)  # "another process": no listeners
        other.handle(CustomerMessage(ref(1), T0, "cust-1", "hi", TEAM))
        clock.advance(121)
        for _ in range(100):
            if "escalated" in bot.kinds(1):
                break
            await asyncio.sleep(0.01)
        assert bot.kinds(1) == ["opened", "escalated"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        bot.store.close()

"""Wake-ups across replicas on PostgreSQL (LISTEN/NOTIFY, `storage/postgres_notices.py`):
what one replica commits wakes another's ticker and outbox workers at once, not at their
next look at the store; nothing rolled back wakes anyone; the listening session survives
being killed. And a ticker whose due deadlines another replica's open batch holds waits
for that batch instead of spinning. Each replica is a store of its own (its own pool and
sessions) on one database, as separate processes would have."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import psycopg
import pytest

from chat_rescue.bot import ticker as ticker_module
from chat_rescue.bot.clock import SystemClock
from chat_rescue.bot.model import (
    Action,
    Conversation,
    ConversationRef,
    Relay,
    Timer,
)
from chat_rescue.bot.outbox import Posted
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change, Intent
from chat_rescue.bot.runtime import Runtime
from chat_rescue.bot.service import Service
from chat_rescue.sandbox.postgres import with_database
from chat_rescue.storage import postgres_notices as notices
from chat_rescue.storage.postgres import PostgresStore

PROMPTLY = 0.1  # seconds: what a notice may take, against the ticker's LOOK_AGAIN minute


def ref(n: int) -> ConversationRef:
    return ConversationRef("slack", "C1", f"{1700000000 + n}.000100")


def due_at(n: int, deadline: float) -> Conversation:
    return Conversation(ref(n), "team-a", f"cust-{n}", deadline - 60, timer_from=deadline - 60,
                        deadline=deadline, deadline_timer=Timer.ACCEPT)


def relay(n: int) -> Relay:
    return Relay(ref(n), False, "U1", f"m{n}")


@pytest.fixture
def pair(postgres_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    one, other = PostgresStore(postgres_url), PostgresStore(postgres_url)
    yield one, other
    one.close()
    other.close()


class Slack:
    """A platform called `slack` that records what it is given, when."""

    name = "slack"

    def __init__(self) -> None:
        self.delivered: list[tuple[float, Action]] = []

    async def deliver(self, action: Action) -> Posted | None:
        self.delivered.append((time.monotonic(), action))
        return None

    def destination(self, action: Action) -> str:
        return "team"

    def free_at(self, action: Action, now: float) -> float:
        return now


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Wait for `condition`; returns how long it took (fails after `timeout`)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        await asyncio.sleep(0.001)
    return time.monotonic() - start


def listener_pid(store: PostgresStore) -> int | None:
    return store._listeners[0].backend_pid if store._listeners else None


@asynccontextmanager
async def running(store: PostgresStore,
                  platforms: Sequence[Slack] = ()) -> AsyncIterator[Runtime]:
    """A replica's runtime on `store`, started and listening."""
    clock = SystemClock()
    runtime = Runtime(Service(store, Policy(), clock), clock, list(platforms))
    await runtime.start()
    try:
        await until(lambda: listener_pid(store) is not None)
        await asyncio.sleep(0.05)  # its first pass, and the wake-up on listening, are over
        yield runtime
    finally:
        await runtime.stop()


class Heard:
    """What a store's listener passed on, from its own thread."""

    def __init__(self, store: PostgresStore) -> None:
        self.deadlines: list[float] = []
        self.platforms: list[str] = []
        self.missed = 0
        self.lock = threading.Lock()
        store.listen(self._deadline, self._outbox, self._missed)

    def _deadline(self, at: float) -> None:
        with self.lock:
            self.deadlines.append(at)

    def _outbox(self, platform: str) -> None:
        with self.lock:
            self.platforms.append(platform)

    def _missed(self) -> None:
        with self.lock:
            self.missed += 1


# --- wake-ups --------------------------------------------------------------------------


async def test_a_deadline_committed_on_one_replica_wakes_anothers_ticker_at_once(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, other = pair
    async with running(other) as replica:
        took = []
        for n in range(5):
            fired = replica.ticker.fired
            one.commit(Change(due_at(n, time.time())), time.time())  # due now
            took.append(await until(lambda f=fired: replica.ticker.fired > f))  # type: ignore[misc]
        print(f"deadline committed elsewhere to fired here: max {max(took) * 1000:.1f} ms")
        assert max(took) < PROMPTLY  # not at its next look, a minute (LOOK_AGAIN) on


async def test_a_sooner_deadline_committed_elsewhere_fires_on_time(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, other = pair
    other.commit(Change(due_at(1, time.time() + 3600)), time.time())  # what it sleeps towards
    async with running(other) as replica:
        at = time.time() + 0.3
        one.commit(Change(due_at(2, at)), time.time())
        await until(lambda: replica.ticker.fired == 1)
        assert time.time() - at < PROMPTLY


async def test_items_queued_on_one_replica_wake_anothers_outbox_worker(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, other = pair
    slack = Slack()
    async with running(other, [slack]):
        queued = time.monotonic()
        one.commit(Change(actions=(relay(1),)), time.time())
        await until(lambda: len(slack.delivered) == 1)
        assert slack.delivered[0][0] - queued < PROMPTLY  # its worker slept with no timeout


async def test_what_is_rolled_back_wakes_nobody_and_a_batch_says_each_thing_once(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, other = pair
    heard = Heard(other)
    await until(lambda: heard.missed == 1)  # listening
    now = time.time()
    with pytest.raises(RuntimeError, match="undone"), one.batch():
        one.commit(Change(due_at(1, now + 1), actions=(relay(1),)), now)
        raise RuntimeError("undone")
    other.commit(Change(due_at(2, now + 2), actions=(relay(2),)), now)  # its own: not heard
    with one.batch():  # five deadlines, five lanes of one platform: one notice each
        for n in range(3, 8):
            one.commit(Change(due_at(n, now + 100 - n), actions=(relay(n),)), now)
    await until(lambda: bool(heard.deadlines))
    await asyncio.sleep(0.1)  # anything else said would have come by now
    assert heard.deadlines == [now + 93]
    assert heard.platforms == ["slack"]


async def test_the_listener_survives_its_session_being_killed_and_says_what_it_missed(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, other = pair
    heard = Heard(other)
    await until(lambda: heard.missed == 1)
    killed = listener_pid(other)
    with psycopg.connect(one.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (killed,))
    await until(lambda: heard.missed == 2 and listener_pid(other) not in (None, killed))
    one.commit(Change(due_at(1, 5.0)), 1.0)
    await until(lambda: heard.deadlines == [5.0])
    assert heard.missed == 2  # once per time it listened again


async def test_items_queued_while_the_listener_was_away_go_once_it_is_back(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    """The wake-up after listening again: its outbox worker, asleep with no timeout, would
    otherwise never learn of items queued meanwhile."""
    one, other = pair
    slack = Slack()
    database = urlsplit(one.url).path.lstrip("/")
    async with running(other, [slack]):
        with psycopg.connect(with_database(one.url, "postgres"), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                admin.execute("SELECT pg_terminate_backend(%s)", (listener_pid(other),))
                await until(lambda: listener_pid(other) is None)
                one.commit(Change(actions=(relay(1),)), time.time())  # nobody hears this
                await asyncio.sleep(0.2)
                assert slack.delivered == []
            finally:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await until(lambda: len(slack.delivered) == 1)


# --- waiting for a claim ---------------------------------------------------------------


class Holder(threading.Thread):
    """Another replica's batch holding every due deadline until `end` is set; then it
    commits (`commit`) or rolls back, having fired none of them."""

    def __init__(self, store: PostgresStore, commit: bool, group: str | None = None) -> None:
        super().__init__()
        self.store, self.commit, self.group = store, commit, group
        self.holding, self.end = threading.Event(), threading.Event()
        self.ended = 0.0

    def run(self) -> None:
        try:
            # a ticker's claim, or a group of events whose conversation is due (locked by
            # the group's read at its start)
            intents = [Intent(self.group, f"held-{self.group}", time.time())] \
                if self.group else []
            with self.store.batch(intents):
                if self.group:
                    assert self.store.load(self.group) is not None
                else:
                    assert self.store.due(time.time(), 100)
                self.holding.set()
                self.end.wait()
                if not self.commit:
                    raise ZeroDivisionError
        except ZeroDivisionError:
            pass
        self.ended = time.monotonic()


@pytest.mark.parametrize("by", ["claim", "group"])
@pytest.mark.parametrize("commit", [True, False], ids=["committed", "rolled-back"])
async def test_a_ticker_waits_for_a_claim_held_elsewhere_without_spinning(
        pair: tuple[PostgresStore, PostgresStore], commit: bool, by: str) -> None:
    one, other = pair
    one.commit(Change(due_at(1, time.time() - 1)), time.time())
    looks = 0
    next_deadline = other.next_deadline

    def counted() -> float | None:
        nonlocal looks
        looks += 1
        return next_deadline()

    other.next_deadline = counted  # type: ignore[method-assign]
    holder = Holder(one, commit, due_at(1, 0).ref.key if by == "group" else None)
    holder.start()
    holder.holding.wait()
    try:
        async with running(other) as replica:
            looks = 0
            await asyncio.sleep(1.0)
            assert replica.ticker.fired == 0
            # One look per CLAIM_WAIT at most, where it used to look thousands of times.
            assert looks <= 1.0 / ticker_module.CLAIM_WAIT + 1
            holder.end.set()
            await until(lambda: replica.ticker.fired == 1)
            took = time.monotonic() - holder.ended
    finally:
        holder.end.set()
        holder.join()
    # Committed: its notice wakes this one at once. Rolled back (as when the server ends
    # a killed replica's session): nothing is said, and the wait's end finds it.
    assert took < (PROMPTLY if commit else ticker_module.CLAIM_WAIT + PROMPTLY)


# --- settings ----------------------------------------------------------------------------


async def test_a_setting_changed_on_one_replica_reaches_the_others_policies(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, other = pair
    async with running(other) as there:
        service = there.service
        before = await service.call(service.team_policy, "team-a")  # derived, and cached
        assert before.idle == Policy().idle != 60.0
        one.put_setting("team:team-a", "idle", "1m", "ana", time.time())  # another replica
        started = time.monotonic()
        while (await service.call(service.team_policy, "team-a")).idle != 60.0:
            assert time.monotonic() - started < PROMPTLY * 10, "the cached policy stayed"
            await asyncio.sleep(0.005)
        one.drop_setting("team:team-a", "idle")
        started = time.monotonic()
        while (await service.call(service.team_policy, "team-a")).idle != Policy().idle:
            assert time.monotonic() - started < PROMPTLY * 10, "the cached policy stayed"
            await asyncio.sleep(0.005)


# --- a session that goes quiet ------------------------------------------------------------


class FreezingProxy:
    """A TCP proxy in front of the server whose connections made so far can be frozen:
    what they carry is held, both ways, without closing them (a half-dead connection: a
    cut network, a stuck middlebox). Connections made after are forwarded as usual."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._frozen: set[socket.socket] = set()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
                self._sockets += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if source in self._frozen:
                    continue  # held: never arrives
                sink.sendall(data)

    def freeze(self) -> None:
        self._frozen.update(self._sockets)

    def close(self) -> None:
        self.server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


def test_a_session_that_stops_answering_is_given_up_and_what_it_missed_looked_for(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notices, "CHECK_EVERY", 0.2)
    monkeypatch.setattr(notices, "ANSWER_WITHIN", 0.5)
    parts = urlsplit(postgres_url)
    proxy = FreezingProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    through = parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}").geturl()
    missed: list[float] = []
    heard: list[str] = []
    listener = notices.Listener(through, "me", lambda at: None, heard.append,
                                lambda: missed.append(time.monotonic()))
    listener.start()
    try:
        deadline = time.monotonic() + 5
        while not missed:
            assert time.monotonic() < deadline, "never listened"
            time.sleep(0.01)
        proxy.freeze()  # the session's connection goes quiet; nothing closes it
        frozen = time.monotonic()
        while len(missed) < 2:
            assert time.monotonic() - frozen < 5, "the check waited on the quiet session"
            time.sleep(0.01)
        # Listening again (and told to look for what it missed): notices reach it.
        assert missed[1] - frozen < notices.CHECK_EVERY + notices.ANSWER_WITHIN + 1.0
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (notices.CHANNEL, "other outbox slack"))
        deadline = time.monotonic() + 5
        while heard != ["slack"]:
            assert time.monotonic() < deadline, "nothing heard after listening again"
            time.sleep(0.01)
    finally:
        listener.stop()
        proxy.close()

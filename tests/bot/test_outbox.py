"""The outbox: in order per conversation, paced, digested, retried, and never lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from chat_rescue.bot import outbox as outbox_module
from chat_rescue.bot import processes
from chat_rescue.bot.clock import FakeClock, FastClock
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.leader import Always
from chat_rescue.bot.model import (
    TO_CUSTOMER,
    Action,
    CloseNotice,
    CloseReminder,
    Conversation,
    ConversationRef,
    CustomerMessage,
    DeadlineDue,
    Digest,
    Escalate,
    Nudge,
    OffHoursNotice,
    OperatorMessage,
    PostCard,
    Refusal,
    Refused,
    Relay,
    ReturnToInbox,
    State,
    UpdateCard,
)
from chat_rescue.bot.outbox import (
    DIGEST_MAX,
    DIGEST_MIN,
    MAX_ATTEMPTS,
    Lacking,
    Outbox,
    Posted,
    Postpone,
    RetryLater,
    Undeliverable,
)
from chat_rescue.bot.pacing import Pace, Pacer
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change, OutboxItem
from chat_rescue.bot.runtime import Runtime
from chat_rescue.bot.service import Service
from chat_rescue.bot.ticker import Ticker
from chat_rescue.bot.worker import StoreWorker
from chat_rescue.storage.sqlite import SQLiteStore

T0 = 1_700_000_000.0


class FakePlatform:
    """Records what it delivers; fails as scripted: `script` is raised one per call, in order."""

    name = "fake"

    def __init__(self, clock: FakeClock | FastClock, interval: float = 0.0) -> None:
        self.clock = clock
        self.pacer = Pacer(lambda place: Pace(gap=interval))
        self.calls: list[Action] = []
        self.delivered: list[tuple[float, Action]] = []
        self.script: list[BaseException] = []
        self.fail: Callable[[Action], BaseException | None] = lambda action: None
        self.hang_once = False
        self.hang_for = 10.0  # seconds the call that hangs takes
        self.cards = 0

    async def deliver(self, action: Action) -> Posted | None:
        self.calls.append(action)
        if self.hang_once:
            self.hang_once = False
            await asyncio.sleep(self.hang_for)
        if self.script:
            raise self.script.pop(0)
        failure = self.fail(action)
        if failure is not None:
            raise failure
        self.delivered.append((self.clock.now(), action))
        self.pacer.note(self.destination(action), self.clock.monotonic())
        if isinstance(action, PostCard):
            self.cards += 1
            return Posted(f"card-{self.cards}", (f"fake:alias-{self.cards}",))
        return None

    def destination(self, action: Action) -> str:
        if isinstance(action, Digest):
            return action.destination
        if isinstance(action, TO_CUSTOMER) or (isinstance(action, Relay) and action.to_customer):
            return f"customer:{action.ref.channel}:{action.ref.thread}"
        if isinstance(action, PostCard | UpdateCard):
            return f"team:{action.conversation.ref.channel}"
        return f"team:{action.ref.channel}"

    def free_at(self, action: Action, now: float) -> float:
        return self.pacer.free_at(self.destination(action), now)

    def actions(self) -> list[Action]:
        return [action for _, action in self.delivered]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    opened = SQLiteStore("sqlite://")
    yield opened
    opened.close()


@pytest.fixture
def platform(clock: FakeClock) -> FakePlatform:
    return FakePlatform(clock)


@pytest.fixture
def outbox(store: SQLiteStore, platform: FakePlatform, clock: FakeClock) -> Outbox:
    return Outbox(store, platform, clock)


def ref(n: int, channel: str = "C1", platform: str = "fake") -> ConversationRef:
    return ConversationRef(platform, channel, f"t{n}")


def conv(n: int, channel: str = "C1") -> Conversation:
    return Conversation(ref(n, channel), "team-a", f"cust-{n}", T0)


def nudge(n: int, channel: str = "C1") -> Nudge:
    return Nudge(ref(n, channel), "ana", 300.0, None, f"cust-{n}")


def current_for(action: Action) -> Conversation | None:
    """A conversation in which `action` is current: a card's own, a nudged one for a
    nudge, and so on (the outbox drops a notice whose reason has gone)."""
    if isinstance(action, PostCard | UpdateCard):
        return action.conversation
    if isinstance(action, Nudge):
        return Conversation(action.ref, "team-a", action.customer, T0, owner=action.owner,
                            state=State.WAITING_ON_OPERATOR, nudged_at=T0)
    if isinstance(action, CloseReminder):
        return Conversation(action.ref, "team-a", action.customer, T0, owner=action.owner,
                            state=State.WAITING_ON_CUSTOMER, reminded=True)
    if isinstance(action, Escalate):
        return Conversation(action.ref, "team-a", action.customer, T0,
                            escalations=action.count)
    if isinstance(action, ReturnToInbox):
        return Conversation(action.ref, "team-a", action.customer, T0)
    return None


def queue(store: SQLiteStore, *actions: Action, at: float = T0) -> None:
    """Queue actions; the conversations they speak of are stored first, as they are when
    the engine queues such actions (the outbox renders cards from them and drops notices
    that are no longer true of them)."""
    for action in actions:
        conversation = current_for(action)
        if conversation is not None and store.load(conversation.ref.key) is None:
            store.commit(Change(conversation), at)
    store.commit(Change(actions=actions), at)


def dead_letters(store: SQLiteStore) -> list[tuple[str, int, str]]:
    rows = store.conn.execute("SELECT kind, attempts, last_error FROM dead_letters").fetchall()
    return [(str(k), int(a), str(e)) for k, a, e in rows]


def lane(actions: list[Action], n: int) -> list[str]:
    """The kinds delivered for conversation `n`, in delivery order (digests unfolded)."""
    kinds = []
    for action in actions:
        for single in action.notices if isinstance(action, Digest) else (action,):
            assert not isinstance(single, Digest)
            key = (single.conversation.ref if isinstance(single, PostCard | UpdateCard)
                   else single.ref)
            if key == ref(n, key.channel):
                kinds.append(type(single).__name__)
    return kinds


# --- order ----------------------------------------------------------------------------


async def test_each_conversations_actions_arrive_in_the_order_queued(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    one = replace(conv(1), state=State.WAITING_ON_OPERATOR, owner="ana", nudged_at=T0)
    queue(store, PostCard(one), PostCard(conv(2)), nudge(1))
    queue(store, Escalate(ref(2), "@here", 120.0, 0),
          Refused(ref(2), "ben", Refusal.CLAIMED, "ana"), Relay(ref(1), True, "-100", "m1"),
          Refused(ref(1), "ben", Refusal.CLAIMED, "ana"))
    assert await outbox.drain() is None
    delivered = platform.actions()
    # The reply is the customer's lane: it never waited behind the team's.
    assert lane(delivered, 1) == ["PostCard", "Relay", "Nudge", "Refused"]
    assert lane(delivered, 2) == ["PostCard", "Escalate", "Refused"]
    assert store.pending(100) == []
    assert outbox.delivered == 7


async def test_copies_of_messages_go_before_cards_and_notices_of_their_lane(
    store: SQLiteStore, clock: FakeClock
) -> None:
    platform = FakePlatform(clock, interval=3.0)  # a paced team channel
    outbox = Outbox(store, platform, clock)
    queue(store, PostCard(conv(1)), Escalate(ref(1), "@here", 120.0, 0),
          PostCard(conv(2)), Relay(ref(1), False, "u1", "m1"), Relay(ref(2), False, "u2", "m2"))
    for _ in range(10):
        next_at = await outbox.drain()
        if next_at is None:
            break
        clock.t = next_at
    kinds = [type(a).__name__ for a in platform.actions()]
    # Then the rest by age, each lane in its order (the escalation waited for its card).
    assert kinds == ["Relay", "Relay", "PostCard", "Escalate", "PostCard"]


async def test_what_goes_to_the_customer_never_waits_behind_the_team_channel(
    store: SQLiteStore, clock: FakeClock
) -> None:
    platform = FakePlatform(clock, interval=3.0)
    outbox = Outbox(store, platform, clock)
    queue(store, *(UpdateCard(conv(n)) for n in range(1, 6)))
    queue(store, *(Relay(ref(n), True, "-100", f"m{n}") for n in range(1, 6)))
    await outbox.drain()  # every customer's reply, and one team post in this slot
    assert [type(a).__name__ for a in platform.actions()] == ["Relay"] * 5 + ["UpdateCard"]


async def test_one_card_update_settles_those_queued_before_it(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    queue(store, PostCard(conv(1)), UpdateCard(conv(1)), nudge(2), UpdateCard(conv(1)))
    queue(store, UpdateCard(conv(1)))
    await outbox.drain()
    assert lane(platform.actions(), 1) == ["PostCard"]  # it showed what they would have
    assert store.pending(10) == []
    assert outbox.delivered == 2  # the card and the nudge; the updates were covered


async def test_a_notice_whose_reason_has_gone_is_dropped_and_recorded(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    queue(store, nudge(1), Escalate(ref(2), "@here", 120.0, 1),
          Escalate(ref(2), "@here", 240.0, 2))
    answered = replace(current_for(nudge(1)), state=State.WAITING_ON_CUSTOMER,  # type: ignore[type-var]
                       nudged_at=None, version=1)
    store.commit(Change(answered, expected_version=0), T0)
    later = replace(current_for(Escalate(ref(2), "@here", 0.0, 2)), version=1)  # type: ignore[type-var]
    store.commit(Change(later, expected_version=0), T0)
    await outbox.drain()
    assert platform.actions() == [Escalate(ref(2), "@here", 240.0, 2)]
    assert outbox.dropped == 2
    dropped = [(e.ref, e.actor) for e in store.history(None, 0) if e.kind == "notice_dropped"]
    assert dropped == [(ref(1), "Nudge"), (ref(2), "Escalate")]
    assert store.pending(10) == []


async def test_a_failing_head_holds_its_conversation_only(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.fail = lambda a: ConnectionError("reset") if a == nudge(1) else None
    queue(store, nudge(1), UpdateCard(conv(1)), Refused(ref(2), "ben", Refusal.CLAIMED, "ana"))
    await outbox.drain()
    assert platform.actions() == [Refused(ref(2), "ben", Refusal.CLAIMED, "ana")]
    platform.fail = lambda a: None
    clock.advance(1)
    await outbox.drain()
    assert lane(platform.actions(), 1) == ["Nudge", "UpdateCard"]


async def test_only_this_platforms_lanes_are_drained(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    other = Nudge(ref(1, platform="slack"), "ana", 1.0)
    queue(store, other, nudge(1))
    await outbox.drain()
    assert platform.actions() == [nudge(1)]
    assert [i.action for i in store.pending(10)] == [other]


# --- retry ------------------------------------------------------------------------------


async def test_retry_later_holds_the_item_and_its_destination_then_delivers_once(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.script = [RetryLater(10)]
    first, second = nudge(1), UpdateCard(conv(2))  # both go to team:C1
    elsewhere = CloseNotice(ref(3), "bye")  # goes to customer:C1
    queue(store, first, second, elsewhere)

    assert await outbox.drain() == T0 + 10
    assert platform.calls == [first, elsewhere]  # the team channel was not tried again
    assert platform.actions() == [elsewhere]
    assert len(store.pending(10)) == 2

    clock.advance(9.9)
    assert await outbox.drain() == T0 + 10
    assert platform.actions() == [elsewhere]

    clock.advance(0.1)
    assert await outbox.drain() is None
    assert platform.actions() == [elsewhere, first, second]
    assert platform.calls.count(first) == 2
    assert store.pending(10) == []


async def test_postpone_holds_that_item_only_and_its_destination_stays_free(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    postponed: list[Action] = []

    def rename_waits(action: Action) -> BaseException | None:
        if isinstance(action, UpdateCard) and not postponed:
            postponed.append(action)
            return Postpone(10)  # a card update whose topic rename must wait
        return None

    platform.fail = rename_waits
    update, notice = UpdateCard(conv(1)), Escalate(ref(2), "@here", 120.0, 0)  # to team:C1
    queue(store, update, notice)
    assert await outbox.drain() == T0 + 10
    assert postponed == [update]
    assert platform.actions() == [notice]  # the team channel took the call at once
    clock.advance(10)
    assert await outbox.drain() is None
    assert platform.actions() == [notice, update]
    assert store.pending(10) == [] and dead_letters(store) == []


async def test_rights_back_cure_a_missing_right_but_not_a_rate_limit(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.script = [Lacking(60, "no right to manage topics"), RetryLater(30)]
    to_team, to_customer = nudge(1), CloseNotice(ref(2), "bye")
    queue(store, to_team, to_customer)
    assert await outbox.drain() == T0 + 30
    assert platform.actions() == []
    outbox.retry_now()  # an admin gave the right back
    assert await outbox.drain() == T0 + 30  # the rate-limited destination still waits
    assert platform.actions() == [to_team]
    clock.advance(30)
    assert await outbox.drain() is None
    assert platform.actions() == [to_team, to_customer]


async def test_failures_back_off_and_the_action_is_delivered_once(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.script = [ConnectionError("reset"), TimeoutError(), OSError("unreachable")]
    queue(store, nudge(1))
    backoff = []
    for expected_attempts in (1, 2, 3):
        next_at = await outbox.drain()
        (item,) = store.pending(10)
        assert item.attempts == expected_attempts
        assert next_at == item.not_before
        backoff.append(item.not_before - clock.now())
        clock.t = item.not_before
    assert backoff == [1.0, 2.0, 4.0]
    assert await outbox.drain() is None
    assert platform.actions() == [nudge(1)]
    assert len(platform.calls) == 4
    assert store.pending(10) == [] and dead_letters(store) == []


async def test_a_hanging_delivery_counts_as_a_failure(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox_module, "DELIVERY_TIMEOUT", 0.02)
    platform.hang_once = True
    queue(store, nudge(1))
    assert await outbox.drain() == T0 + 1
    assert store.pending(10)[0].attempts == 1
    clock.advance(1)
    await outbox.drain()
    assert platform.actions() == [nudge(1)]


async def test_an_undeliverable_action_becomes_a_dead_letter(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    platform.script = [Undeliverable("channel_not_found")]
    queue(store, nudge(1), UpdateCard(conv(1)))
    await outbox.drain()
    assert dead_letters(store) == [("Nudge", 1, "channel_not_found")]
    assert lane(platform.actions(), 1) == ["UpdateCard"]  # the lane moves on
    assert store.pending(10) == []


async def test_cards_show_the_conversation_as_it_is_at_delivery(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    queue(store, PostCard(conv(1)))
    claimed = replace(conv(1), owner="ana", state=State.CLAIMED, version=1)
    store.commit(Change(claimed, expected_version=0), T0)
    store.commit(Change(actions=(PostCard(conv(7)),)), T0)  # a conversation never stored
    await outbox.drain()
    [shown] = platform.actions()
    assert isinstance(shown, PostCard) and shown.conversation.owner == "ana"
    assert dead_letters(store) == [("PostCard", 1, "conversation not found")]


async def test_after_max_attempts_the_action_becomes_a_dead_letter(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.fail = lambda action: ConnectionError("reset")
    queue(store, nudge(1))
    for _ in range(MAX_ATTEMPTS * 2):
        if not store.pending(10):
            break
        await outbox.drain()
        clock.advance(300)
    assert len(platform.calls) == MAX_ATTEMPTS
    assert dead_letters(store) == [("Nudge", MAX_ATTEMPTS, "ConnectionError: reset")]
    assert store.pending(10) == []


async def test_what_waited_behind_a_dead_letter_goes_in_the_same_drain(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.fail = lambda action: ConnectionError("reset") if isinstance(action, Nudge) \
        else None
    queue(store, nudge(1), Refused(ref(1), "ben", Refusal.CLAIMED, "ana"))
    for _ in range(MAX_ATTEMPTS - 1):
        await outbox.drain()
        clock.advance(300)
    assert platform.actions() == []  # the nudge holds its lane through its retries
    assert await outbox.drain() is None  # the last failure: a dead letter ...
    # ... and the lane moves on
    assert platform.actions() == [Refused(ref(1), "ben", Refusal.CLAIMED, "ana")]
    assert store.pending(10) == []


async def test_rate_limit_waits_do_not_use_up_the_failure_budget(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.script = [RetryLater(1.0)] * (MAX_ATTEMPTS - 1) + [ConnectionError("reset")]
    queue(store, nudge(1))
    for _ in range(MAX_ATTEMPTS * 2):
        if not store.pending(10):
            break
        await outbox.drain()
        clock.advance(300)
    assert dead_letters(store) == []
    assert platform.actions() == [nudge(1)]


async def test_a_backlog_of_another_platform_does_not_block_this_one(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    backlog = tuple(Nudge(ref(n, platform="slack"), "ana", 1.0) for n in range(1000))
    queue(store, *backlog)
    queue(store, nudge(1))
    await outbox.drain()
    assert platform.actions() == [nudge(1)]


async def test_a_long_held_lane_does_not_hide_the_other_lanes(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    chatty = tuple(UpdateCard(conv(1, "C7")) for _ in range(1200))
    queue(store, *chatty)
    platform.fail = lambda a: ConnectionError("reset") if isinstance(a, UpdateCard) else None
    await outbox.drain()  # the chatty lane's head fails and holds its lane
    queue(store, CloseNotice(ref(2), "bye"))
    await outbox.drain()
    assert platform.actions() == [CloseNotice(ref(2), "bye")]
    assert len(store.pending(10_000)) == 1200


# --- digests and pacing -----------------------------------------------------------------


async def test_many_notices_for_one_channel_at_once_become_one_digest(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    many = [nudge(n, "C1") for n in range(DIGEST_MIN)]
    few = [nudge(n, "C2") for n in range(DIGEST_MIN - 1)]
    queue(store, *many, *few)
    await outbox.drain()
    digests = [a for a in platform.actions() if isinstance(a, Digest)]
    assert digests == [Digest("team:C1", tuple(many))]
    assert [a for a in platform.actions() if not isinstance(a, Digest)] == few
    assert outbox.delivered == len(many) + len(few)
    assert store.pending(100) == []


async def test_mixed_notice_kinds_are_digested_together(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    notices: list[Action] = [
        nudge(1),
        ReturnToInbox(ref(2), "ben", 40.0, "no first response within 30s", "cust-2"),
        Escalate(ref(3), "@here", 130.0, 1, "cust-3", "hi"),
    ]
    queue(store, *notices, UpdateCard(conv(4)))
    await outbox.drain()
    assert platform.actions() == [Digest("team:C1", tuple(notices)), UpdateCard(conv(4))]


async def test_a_digest_lists_at_most_digest_max_notices(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    queue(store, *(nudge(n) for n in range(DIGEST_MAX + DIGEST_MIN)))
    await outbox.drain()
    sizes = [len(a.notices) for a in platform.actions() if isinstance(a, Digest)]
    assert sizes == [DIGEST_MAX, DIGEST_MIN]


async def test_posts_to_one_destination_are_paced_by_its_interval(
    store: SQLiteStore, clock: FakeClock
) -> None:
    platform = FakePlatform(clock, interval=2.0)
    outbox = Outbox(store, platform, clock)
    queue(store, UpdateCard(conv(1)), UpdateCard(conv(2)), UpdateCard(conv(3)),
          CloseNotice(ref(4), "bye"))
    times = []
    for _ in range(10):
        next_at = await outbox.drain()
        if next_at is None:
            break
        clock.t = next_at
        times.append(next_at)
    at = {(type(a).__name__, lane_of(a)): when for when, a in platform.delivered}
    assert at == {("UpdateCard", 1): T0, ("CloseNotice", 4): T0,
                  ("UpdateCard", 2): T0 + 2, ("UpdateCard", 3): T0 + 4}
    assert times == [T0 + 2, T0 + 4]


def lane_of(action: Action) -> int:
    assert not isinstance(action, Digest)
    r = action.conversation.ref if isinstance(action, PostCard | UpdateCard) else action.ref
    return int(r.thread.removeprefix("t"))


# --- cards --------------------------------------------------------------------------------


async def test_a_posted_card_is_attached_and_later_notices_point_at_it(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    service = Service(store, Policy(accept=120), clock)
    r = ref(1)
    service.handle(CustomerMessage(r, clock.now(), "cust-1", "where is my order?", "team-a"))
    clock.advance(120)
    service.handle(DeadlineDue(r, clock.now()))  # queued before the card exists: card=None
    queued = [i.action for i in store.pending(10)]
    assert [type(a) for a in queued] == [PostCard, Escalate, UpdateCard]
    assert isinstance(queued[1], Escalate) and queued[1].card is None

    await outbox.drain()

    loaded = store.load(r.key)
    assert loaded is not None and loaded.card == "card-1"
    assert store.resolve("fake:alias-1") == r.key
    # The card drawn after the escalation showed it: the update queued with it was covered.
    delivered_post, delivered_escalate = platform.actions()
    assert store.pending(10) == []
    assert isinstance(delivered_post, PostCard)
    assert delivered_post.conversation.escalations == 1  # rendered as it is now
    assert isinstance(delivered_escalate, Escalate)
    assert delivered_escalate.card == "card-1"
    assert delivered_escalate.target == "@here"


async def test_a_card_update_renders_the_conversation_as_it_is_now(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    service = Service(store, Policy(), clock)
    service.handle(CustomerMessage(ref(1), clock.now(), "cust-1", "hi", "team-a"))
    await outbox.drain()
    stale = conv(1)  # an UpdateCard queued with an old picture of the conversation
    queue(store, UpdateCard(stale))
    await outbox.drain()
    update = platform.actions()[-1]
    assert isinstance(update, UpdateCard)
    assert update.conversation.card == "card-1"
    assert update.conversation.preview == "hi"


# --- the running worker -----------------------------------------------------------------------


async def test_the_running_outbox_is_woken_by_new_actions_and_honours_retry_after(
    store: SQLiteStore,
) -> None:
    clock = FastClock(T0, speed=1000)  # one second of bot time is one real millisecond
    platform = FakePlatform(clock)
    outbox = Outbox(store, platform, clock)
    service = Service(store, Policy(), clock)
    service.on_outbox(outbox.poke)
    task = asyncio.create_task(outbox.run())
    try:
        await asyncio.sleep(0.01)
        platform.script = [RetryLater(30)]
        service.handle(CustomerMessage(ref(1), clock.now(), "cust-1", "hi", "team-a"))
        for _ in range(200):
            if platform.delivered:
                break
            await asyncio.sleep(0.002)
        assert [type(a) for a in platform.actions()] == [PostCard]
        (when, _), = platform.delivered
        assert when - T0 >= 30  # not before the platform said
        assert len(platform.calls) == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_poke_wakes_the_worker_only_for_what_could_go_before_it_wakes_anyway(
    store: SQLiteStore,
) -> None:
    clock = FastClock(T0, speed=1000)
    platform = FakePlatform(clock, interval=600.0)  # one post per 10 min (0.6 s) a channel
    outbox = Outbox(store, platform, clock)
    service = Service(store, Policy(), clock)
    service.on_outbox(outbox.poke)
    scans = 0
    heads = store.heads

    def counted(prefix: str, limit: int, now: float) -> list[OutboxItem]:
        nonlocal scans
        scans += 1
        return heads(prefix, limit, now)

    store.heads = counted  # type: ignore[method-assign]
    task = asyncio.create_task(outbox.run())
    try:
        service.handle(CustomerMessage(ref(1), clock.now(), "cust-1", "hi", "team-a"))
        await wait_until(lambda: len(platform.delivered) == 1)  # card 1; C1 is paced now
        service.handle(CustomerMessage(ref(2), clock.now(), "cust-2", "hi", "team-a"))
        await wait_until(lambda: outbox._asleep_until is not None)
        before = scans
        for n in range(3, 13):  # ten more for the paced channel, apart: no rescans
            service.handle(CustomerMessage(ref(n), clock.now(), f"cust-{n}", "hi", "team-a"))
            await asyncio.sleep(0.015)  # longer than the worker gathers pokes
        other = ConversationRef("fake", "C2", "t1")  # a channel that is free: one look
        service.handle(CustomerMessage(other, clock.now(), "cust-x", "hi", "team-a"))
        await wait_until(lambda: any(a.conversation.ref == other for _, a in platform.delivered
                                     if isinstance(a, PostCard)))
        assert scans - before <= 2  # the free channel's card: one look, one after it went
        service.handle(CustomerMessage(ConversationRef("slack", "C1", "t9"), clock.now(),
                                       "cust-y", "hi", "team-a"))  # not this platform's
        await asyncio.sleep(0.01)
        assert scans - before <= 2
        # The paced ones still go, one per slot, in order, when the worker wakes up.
        await wait_until(lambda: len(platform.delivered) == 4, timeout=3.0)
        cards = [a.conversation.ref for _, a in platform.delivered if isinstance(a, PostCard)]
        assert cards == [ref(1), other, ref(2), ref(3)]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until(check: Callable[[], bool], timeout: float = 0.5) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while not check():
        assert loop.time() < until, "condition not met in time"
        await asyncio.sleep(0.001)


# --- clocks, leases, giving up ------------------------------------------------------------


async def test_a_wall_clock_stepped_back_an_hour_holds_no_channel(
    store: SQLiteStore, clock: FakeClock
) -> None:
    platform = FakePlatform(clock, interval=3.0)
    outbox = Outbox(store, platform, clock)
    queue(store, UpdateCard(conv(1)), UpdateCard(conv(2)))
    await outbox.drain()  # the first goes; the channel's next slot is 3 s away
    clock.step(-3600)  # NTP, or a VM resumed: the wall clock jumps back an hour
    clock.advance(3)
    assert await outbox.drain() is None
    assert [type(a).__name__ for a in platform.actions()] == ["UpdateCard", "UpdateCard"]


async def test_a_retry_after_a_clock_step_waits_its_backoff_not_the_step(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.script = [ConnectionError("reset")]
    queue(store, nudge(1))
    await outbox.drain()  # failed: retry in 1 s
    clock.step(-3600)
    clock.advance(1)
    await outbox.drain()
    assert platform.actions() == [nudge(1)]


async def test_a_restarted_worker_rebases_stored_holds_on_its_own_clock(
    store: SQLiteStore, platform: FakePlatform, clock: FakeClock
) -> None:
    queue(store, nudge(1))
    (item,) = store.pending(1)
    # Written by a process whose wall clock was an hour ahead: a hold "until +1 h 10 s".
    store.settle(item.id, retry_at=clock.now() + 3610, error="reset")
    fresh = Outbox(store, platform, clock)
    next_at = await fresh.drain()
    assert next_at is not None and next_at - clock.monotonic() <= outbox_module.LONGEST_BACKOFF


def test_giving_up_takes_about_an_hour_of_backoff() -> None:
    waited = sum(outbox_module.backoff(n) for n in range(MAX_ATTEMPTS - 1))
    assert 55 * 60 <= waited <= 65 * 60


async def test_an_item_leased_by_another_live_worker_is_not_sent(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    queue(store, nudge(1), nudge(2))
    first = store.pending(1)[0]
    other = "elsewhere:1:abc"  # another host: waited for until its lease runs out
    assert store.lease([first.id], other, clock.now() + outbox_module.LEASE, clock.now())
    await outbox.drain()
    assert platform.actions() == [nudge(2)]
    outbox.take_over_dead()
    await outbox.drain()
    assert platform.actions() == [nudge(2)]  # still theirs
    clock.advance(outbox_module.LEASE)
    await outbox.drain()
    assert platform.actions() == [nudge(2), nudge(1)]  # the lease ran out: taken over


def dead_holder(how: str) -> str:
    """A lease holder of this host whose process has ended."""
    namespace = processes.pid_namespace()
    if how == "an ended process":
        ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                               capture_output=True, text=True, check=True)
        return f"{socket.gethostname()}:{ended.stdout.strip()}..{namespace}:abc"
    # pid 1 of a container that was restarted: the same host and pid, started earlier.
    return f"{socket.gethostname()}:{os.getpid()}.1.{namespace}:abc"


@pytest.mark.parametrize("how", ["an ended process", "an earlier process of the same pid"])
async def test_items_of_a_dead_worker_of_this_host_are_taken_over_at_once(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock, how: str
) -> None:
    queue(store, nudge(1))
    (item,) = store.pending(1)
    store.lease([item.id], dead_holder(how), clock.now() + outbox_module.LEASE, clock.now())
    assert outbox.take_over_dead() == 1
    await outbox.drain()
    assert platform.actions() == [nudge(1)]


async def test_a_worker_of_this_host_that_dies_while_it_leases_is_taken_over_soon(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    queue(store, nudge(1))
    (first,) = store.pending(1)
    lease = clock.now() + outbox_module.LEASE
    store.lease([first.id], "elsewhere:1:abc", lease, clock.now())  # alive, as far as we know
    assert await outbox.drain() == clock.monotonic() + outbox_module.LOOK_FOR_DEAD
    queue(store, nudge(2))  # leased by a worker that then died, while this one waits
    (_, second) = store.pending(2)
    store.lease([second.id], dead_holder("an ended process"), lease, clock.now())
    clock.advance(outbox_module.LOOK_FOR_DEAD)
    await outbox.drain()
    assert platform.actions() == [nudge(2)] and outbox.taken_over == 1


async def test_a_presence_held_under_another_name_is_taken_under_a_new_one(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its key is another live worker's (PostgreSQL's keys are 32-bit hashes of the names).
    taken: list[str] = []

    class Taken(Always):
        def try_take(self) -> bool:
            return False

    def present(owner: str) -> Always:
        taken.append(owner)
        return Taken() if len(taken) == 1 else Always()

    monkeypatch.setattr(store, "present", present)
    first = outbox.owner
    queue(store, nudge(1))
    await outbox.drain()
    assert platform.actions() == [nudge(1)] and taken == [first, f"{first}+1"]


async def test_a_wait_of_no_time_is_tried_again_soon_not_left_for_ever(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.script = [RetryLater(0.0, "moved: try the new address")]
    queue(store, nudge(1))
    next_at = await outbox.drain()
    assert next_at is not None and next_at - clock.monotonic() <= 0.1  # it wakes by itself
    clock.advance(0.1)
    assert await outbox.drain() is None
    assert platform.actions() == [nudge(1)]


async def test_an_item_whose_lease_runs_out_is_looked_at_then_without_a_poke(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    queue(store, Relay(ref(1), True, "-100", "m1"))
    (item,) = store.pending(1)
    store.lease([item.id], "elsewhere:1:abc", clock.now() + 20, clock.now())  # then died
    # Its holder (another host: not to be judged here) is asked about every so often ...
    assert await outbox.drain() == clock.monotonic() + outbox_module.LOOK_FOR_DEAD
    clock.advance(19.9)
    assert await outbox.drain() == clock.monotonic() + 0.1  # ... and the end is waited for
    clock.advance(0.1)
    assert await outbox.drain() is None
    assert platform.actions() == [Relay(ref(1), True, "-100", "m1")]


async def test_items_are_given_back_at_once_when_sending_them_breaks(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    queue(store, nudge(1))
    mark = store.outbox_mark
    failures = [sqlite3.OperationalError("database is locked")]

    def locked_once() -> int:
        if failures:
            raise failures.pop()
        return mark()

    store.outbox_mark = locked_once  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        await outbox.drain()  # its supervisor would start it again after a pause
    assert await outbox.drain() is None  # not held by its own lease for a minute
    assert platform.actions() == [nudge(1)]


async def test_a_delivery_the_store_could_not_settle_is_settled_not_sent_again(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    queue(store, nudge(1))
    queue(store, nudge(2, channel="C2"))
    settle = store.settle
    failures = [sqlite3.OperationalError("database is locked")] * 2

    def locked_twice(item_id: int, **how: object) -> None:
        if failures:
            raise failures.pop()
        settle(item_id, **how)  # type: ignore[arg-type]

    store.settle = locked_twice  # type: ignore[method-assign]
    for _ in range(3):  # as its supervisor would: posted, then the store failed; again
        with contextlib.suppress(sqlite3.OperationalError):
            await outbox.drain()
    clock.advance(outbox_module.LEASE + 1)  # no lease is left to hold anything back
    assert await outbox.drain() is None
    # Each went out once: the first was settled, never given back and posted again.
    assert platform.actions() == [nudge(1), nudge(2, channel="C2")]
    assert store.pending(10) == [] and outbox.delivered == 2


async def test_what_goes_to_a_customer_keeps_its_order(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    platform.script = [ConnectionError("reset")]
    queue(store, CloseNotice(ref(1), "We are closing this chat"))
    await outbox.drain()  # failed: it waits a second
    queue(store, Relay(ref(1), True, "-100", "m9"))
    clock.advance(1)
    await outbox.drain()
    assert [type(a).__name__ for a in platform.actions()] == ["CloseNotice", "Relay"]


async def test_a_closing_message_for_a_reopened_conversation_is_not_sent(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    queue(store, CloseNotice(ref(1), "We are closing this chat"))
    store.commit(Change(replace(conv(1), state=State.WAITING_ON_OPERATOR)), T0)  # reopened
    await outbox.drain()
    assert platform.actions() == [] and outbox.dropped == 1


def test_a_copy_of_a_message_wakes_the_worker_though_its_lane_waits(
    store: SQLiteStore, outbox: Outbox
) -> None:
    outbox._waiting, outbox._waiting_complete = {f"{ref(1).key}>team"}, True
    outbox._asleep_until = 1e18  # asleep behind a nudge backing off
    outbox.poke([nudge(1)])
    assert not outbox._wake.is_set()  # it would wait behind the nudge anyway
    outbox.poke([Relay(ref(1), False, "U1", "m1")])
    assert outbox._wake.is_set()  # it goes before the nudge: look now


def test_a_worker_of_another_pid_namespace_counts_as_alive() -> None:
    # Another container with the same host name: its pid 1 is not ours to judge.
    other = f"{socket.gethostname()}:1.{processes.started(1)}.4026500000:abc"
    assert processes.worker_alive(other)
    assert processes.worker_alive(processes.worker_name())


async def started_runtime(store: SQLiteStore, platform: FakePlatform,
                          clock: FastClock) -> tuple[Runtime, Service]:
    service = Service(store, Policy(), clock)
    runtime = Runtime(service, clock, [platform])
    await runtime.start()
    return runtime, service


async def test_a_stop_lets_the_delivery_under_way_finish(store: SQLiteStore) -> None:
    # A deploy stops the old process while the new one serves: what the old one is sending
    # is finished and settled, not cut off (and sent again by the new one).
    clock = FastClock(T0, speed=1)
    platform = FakePlatform(clock)
    platform.hang_once, platform.hang_for = True, 0.3  # a slow platform call
    runtime, service = await started_runtime(store, platform, clock)
    service.handle(CustomerMessage(ref(1), clock.now(), "cust-1", "hi", "team-a"))
    for _ in range(200):
        if platform.calls:
            break
        await asyncio.sleep(0.005)
    await runtime.stop()
    assert [type(a) for a in platform.actions()] == [PostCard]
    assert store.pending(10) == []


async def test_a_delivery_cut_off_by_the_stop_is_free_for_another_worker_at_once(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "STOP_GRACE", 0.05)
    clock = FastClock(T0, speed=1)
    platform = FakePlatform(clock)
    platform.hang_once = True  # longer than the grace
    runtime, service = await started_runtime(store, platform, clock)
    service.handle(CustomerMessage(ref(1), clock.now(), "cust-1", "hi", "team-a"))
    for _ in range(200):
        if platform.calls:
            break
        await asyncio.sleep(0.005)
    await runtime.stop()
    assert platform.actions() == []
    # Not held for the lease's minute: another process's worker sends it now.
    assert [type(i.action) for i in store.heads("fake:", 10, clock.now())] == [PostCard]


async def test_notices_go_before_card_updates_in_a_storm(
    store: SQLiteStore, clock: FakeClock
) -> None:
    platform = FakePlatform(clock, interval=3.0)  # one team post per slot
    outbox = Outbox(store, platform, clock)
    for n in range(1, 4):  # each nudge queued with its card's update, as the engine does
        queue(store, nudge(n), UpdateCard(conv(n)))
    await outbox.drain()  # the first slot: a digest of the three nudges
    for n in range(4, 7):  # more come due: their cards' updates are older than they are
        queue(store, nudge(n), UpdateCard(conv(n)))
    for _ in range(20):
        next_at = await outbox.drain()
        if next_at is None:
            break
        clock.t = next_at
    kinds = [type(a).__name__ for a in platform.actions()]
    assert kinds == ["Digest", "Digest"] + ["UpdateCard"] * 6  # the notices first


@pytest.mark.parametrize(
    ("state", "later", "sent"),
    [
        (State.QUEUED, 0.0, True),
        (State.WAITING_ON_OPERATOR, 0.0, True),
        (State.WAITING_ON_CUSTOMER, 0.0, False),  # an operator answered meanwhile
        (State.CLOSED, 0.0, False),
        (State.QUEUED, 3600.0, False),  # its turn came after the opening it names
    ],
)
async def test_an_off_hours_notice_goes_to_the_customer_while_it_is_true(
    state: State, later: float, sent: bool, store: SQLiteStore, outbox: Outbox,
    platform: FakePlatform, clock: FakeClock,
) -> None:
    away = OffHoursNotice(ref(1), "We're away; back at 09:00.", T0 + 3600)
    store.commit(Change(replace(conv(1), state=state)), T0)
    queue(store, away)
    assert [item.lane for item in store.pending(10)] == [f"{ref(1).key}>customer"]
    clock.advance(later)
    await outbox.drain()
    assert platform.actions() == ([away] if sent else [])
    assert outbox.dropped == (0 if sent else 1)


async def test_what_came_due_while_closed_reaches_the_team_as_one_digest_at_the_opening(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform, clock: FakeClock
) -> None:
    friday = datetime(2026, 12, 4, 17, 0, tzinfo=UTC).timestamp()
    hours = from_environment("mon-fri 09:00-18:00", "UTC", "")
    service = Service(store, Policy(accept=None, idle=300, schedule=hours), clock)
    ticker = Ticker(store, service, clock)
    clock.t = friday
    for n in range(DIGEST_MIN):
        service.handle(CustomerMessage(ref(n), clock.now(), f"cust-{n}", "hi", "team-a"))
        service.handle(OperatorMessage(ref(n), clock.now(), "ana"))
    clock.t = friday + 50 * 60
    for n in range(DIGEST_MIN):  # 17:50: each is due 17:55, while the bot is down
        service.handle(CustomerMessage(ref(n), clock.now(), f"cust-{n}", "still there?",
                                       "team-a"))
    await outbox.drain()
    cards = len(platform.actions())
    clock.t = friday + 17 * 3600  # back up on Saturday at 10:00
    assert ticker.fire_due(clock.now()) == DIGEST_MIN and store.pending(10) == []
    monday = friday + 3 * 86400 - 8 * 3600
    assert store.next_deadline() == monday
    clock.t = monday
    assert ticker.fire_due(clock.now()) == DIGEST_MIN
    await outbox.drain()
    (digest,) = [a for a in platform.actions()[cards:] if not isinstance(a, UpdateCard)]
    assert isinstance(digest, Digest) and len(digest.notices) == DIGEST_MIN
    assert all(isinstance(notice, Nudge) for notice in digest.notices)


async def test_a_digest_is_paced_as_the_digest_it_will_be(
    store: SQLiteStore, outbox: Outbox, platform: FakePlatform
) -> None:
    """The platform is asked about the digest itself (a long one may take several
    messages on Telegram), not about its first notice alone."""
    asked: list[Action] = []
    free_at = platform.free_at

    def recording(action: Action, now: float) -> float:
        asked.append(action)
        return free_at(action, now)

    platform.free_at = recording  # type: ignore[method-assign]
    notices = [nudge(n) for n in range(1, DIGEST_MIN + 1)]
    queue(store, *notices)
    assert await outbox.drain() is None
    digests = [a for a in asked if isinstance(a, Digest)]
    assert digests and set(digests[0].notices) == set(platform.actions()[0].notices)


async def test_a_worker_cancelled_while_its_lease_is_taken_gives_the_items_back(
        store: SQLiteStore, platform: FakePlatform, clock: FakeClock) -> None:
    """The lease is a job on the store's thread: cancelling the task that waits for it does
    not undo it, so what it took must go back at once (not after LEASE, which a replica on
    another host would wait out)."""
    queue(store, Relay(ref(1), True, "-100", "m1"))
    leasing = asyncio.Event()
    real = store.lease

    loop = asyncio.get_running_loop()

    def slow_lease(*args, **kwargs):  # type: ignore[no-untyped-def]
        loop.call_soon_threadsafe(leasing.set)  # (asyncio objects are the loop's alone)
        import time
        time.sleep(0.2)  # on the store's thread: the cancel lands meanwhile
        return real(*args, **kwargs)

    store.lease = slow_lease  # type: ignore[method-assign]
    worker = StoreWorker()
    outbox = Outbox(store, platform, clock, worker=worker)
    task = asyncio.create_task(outbox.run())
    await asyncio.wait_for(leasing.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await worker.idle()  # the lease job has run to its end
    left = store.conn.execute("SELECT locked_until FROM outbox").fetchall()
    assert left and all(until is None or until <= clock.now() for (until,) in left), left
    assert platform.calls == []  # nothing went: it goes with the next worker, at once
    store.lease = real  # type: ignore[method-assign]
    again = Outbox(store, platform, clock, owner="next")
    await again.drain()
    assert platform.actions() == [Relay(ref(1), True, "-100", "m1")]

"""The Store contract: every backend must pass this suite unchanged.

The contract is that of the core's ports (`chat_rescue.bot.ports`), checked together on one
store. To add a backend (say PostgreSQL), add a `Backend` to `BACKENDS`: how to open a
fresh, empty store and how to read its dead letters (the ports have no reader for them).
The suite also lists what the ports never need to (`Store` below): a backend has those two
methods outside the ports.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from chat_rescue.bot import ports
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.codec import unloaded
from chat_rescue.bot.inputs import Input
from chat_rescue.bot.model import (
    Action,
    Claim,
    Close,
    CloseNotice,
    CloseReason,
    Conversation,
    ConversationRef,
    CustomerMessage,
    Digest,
    Escalate,
    HandoverLine,
    HistoryEvent,
    Nudge,
    PostCard,
    Refusal,
    Refused,
    Relay,
    ReturnToInbox,
    ShiftEnd,
    Snooze,
    State,
    Timer,
    UpdateCard,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change, OutboxItem, Outcome
from chat_rescue.bot.report import RESCUES, tally
from chat_rescue.bot.service import Service
from chat_rescue.bot.sweep import Choice, Fate, Group, Phase, Sweep, SweepItem, sweep_id
from chat_rescue.storage.postgres import PostgresStore
from chat_rescue.storage.rows import UNREADABLE_RETRY
from chat_rescue.storage.sqlite import SQLiteStore

T0 = 1_700_000_000.0


class Store(ports.Store, Protocol):
    """Every port, and what only this suite (and other tests) reads of a backend."""

    def pending(self, limit: int) -> list[OutboxItem]:
        """Up to `limit` outbox items in the order they were queued."""

    def sweeps(self, team: str) -> list[Sweep]:
        """A team's sweeps, by the instant their shifts end."""


@dataclass(frozen=True)
class Backend:
    """How the suite opens a fresh store and looks at what the ports do not expose."""

    open: Callable[[Any], Store]  # given a scratch directory, or the value of `place`
    dead_letters: Callable[[Store], list[tuple[str, str, int, str]]]  # lane, kind, attempts, error
    execute: Callable[[Store, str, tuple[Any, ...]], None]  # SQL the ports would never run
    place: str | None = None  # a fixture that gives `open` where to open the store


def _sqlite_dead_letters(store: Store) -> list[tuple[str, str, int, str]]:
    assert isinstance(store, SQLiteStore)
    rows = store.conn.execute(
        "SELECT lane, kind, attempts, last_error FROM dead_letters ORDER BY id"
    ).fetchall()
    return [(str(a), str(b), int(c), str(d)) for a, b, c, d in rows]


def _postgres_dead_letters(store: Store) -> list[tuple[str, str, int, str]]:
    assert isinstance(store, PostgresStore)
    rows = store._rows("SELECT lane, kind, attempts, last_error FROM dead_letters ORDER BY id")
    return [(str(a), str(b), int(c), str(d)) for a, b, c, d in rows]


def _sqlite_execute(store: Store, sql: str, params: tuple[Any, ...]) -> None:
    assert isinstance(store, SQLiteStore)
    with store.conn:
        store.conn.execute(sql.replace("%s", "?"), params)


def _postgres_execute(store: Store, sql: str, params: tuple[Any, ...]) -> None:
    assert isinstance(store, PostgresStore)
    store._run(sql, params)


BACKENDS = {
    "sqlite-file": Backend(lambda tmp: SQLiteStore(f"sqlite:///{tmp / 'contract.db'}"),
                           _sqlite_dead_letters, _sqlite_execute),
    "sqlite-memory": Backend(lambda tmp: SQLiteStore("sqlite://"), _sqlite_dead_letters,
                             _sqlite_execute),
    "postgres": Backend(PostgresStore, _postgres_dead_letters, _postgres_execute,
                        place="postgres_url"),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def store(backend: Backend, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    opened = backend.open(request.getfixturevalue(backend.place) if backend.place else tmp_path)
    yield opened
    opened.close()


def keys(store: Store, now: float, limit: int) -> list[str]:
    return [conv.ref.key for conv in store.due(now, limit)]


def ref(n: int = 1, channel: str = "C1") -> ConversationRef:
    return ConversationRef("slack", channel, f"{1700000000 + n}.000100")


def new(n: int = 1, *, team: str = "team-a", deadline: float | None = T0 + 100,
        state: State = State.QUEUED, channel: str = "C1", **fields: object) -> Conversation:
    """A fresh conversation with an explicit deadline (the store never derives one)."""
    timer = Timer.ACCEPT if deadline is not None else None
    conv = Conversation(ref(n, channel), team, f"cust-{n}", T0, state=state, timer_from=T0,
                        deadline=deadline, deadline_timer=timer)
    return replace(conv, **fields)  # type: ignore[arg-type]


def every_field_set() -> Conversation:
    """A conversation where no field has its default value, so every column is exercised."""
    return Conversation(
        ref=ConversationRef("telegram", "-1001234567890", "topic:42"),
        team="team-ü",
        customer="Zoë 🐙",
        opened_at=T0 + 0.25,
        state=State.WAITING_ON_OPERATOR,
        owner="U0ANNA",
        preview="My order «#1042» hasn't arrived — ✓ 'quotes' \"too\"; DROP TABLE x;",
        timer_from=T0 + 5.5,
        waiting_since=T0 + 6.0,
        queued_at=T0 + 1.0,
        first_reply_at=T0 + 2.0,
        last_customer_at=T0 + 6.0,
        last_operator_at=T0 + 3.0,
        nudged_at=T0 + 7.0,
        snoozed=True,
        reminded=True,
        escalations=3,
        card="1700000000.000999",
        deadline=T0 + 307.0,
        deadline_timer=Timer.ESCALATE,
        away_told_until=T0 + 3600.0,
        rebased_at=T0 + 200.0,
        timer_used=90.0,
        quiet_used=0.0,
        kept_open_at=T0 + 60.0,
        returned_at=T0 + 70.0,
        version=0,
    )


def event(conv: Conversation | ConversationRef, kind: str, at: float, team: str | None = None,
          actor: str | None = "ana", value: float | None = None) -> HistoryEvent:
    if isinstance(conv, Conversation):
        return HistoryEvent(conv.ref, team or conv.team, kind, at, actor, value)
    return HistoryEvent(conv, team or "team-a", kind, at, actor, value)


def nudge(n: int = 1, owner: str = "ana") -> Nudge:
    return Nudge(ref(n), owner, 300.0, None, f"cust-{n}")


# --- conversations ------------------------------------------------------------


def as_stored(action: Action) -> Action:
    """What a store gives back: a card action knows its conversation by key only."""
    if isinstance(action, PostCard | UpdateCard):
        return replace(action, conversation=unloaded(action.conversation.ref))
    return action


def test_the_fixture_conversation_sets_every_field() -> None:
    conv = every_field_set()
    for f in dataclasses.fields(Conversation):
        if f.default is not dataclasses.MISSING and f.name != "version":
            assert getattr(conv, f.name) != f.default, f"{f.name} keeps its default"


def test_every_field_round_trips(store: Store) -> None:
    conv = every_field_set()
    assert store.commit(Change(conv), T0) is Outcome.COMMITTED
    loaded = store.load(conv.ref.key)
    assert loaded == conv
    assert loaded is not None
    assert type(loaded.state) is State and type(loaded.deadline_timer) is Timer
    assert type(loaded.snoozed) is bool and type(loaded.reminded) is bool


def test_unset_fields_round_trip_as_none_and_false(store: Store) -> None:
    conv = Conversation(ref(), "team-a", "cust", T0)
    store.commit(Change(conv), T0)
    assert store.load(conv.ref.key) == conv


def test_an_unknown_key_loads_as_none(store: Store) -> None:
    assert store.load(ref(99).key) is None


def test_an_update_replaces_every_field_and_bumps_the_version(store: Store) -> None:
    conv = every_field_set()
    store.commit(Change(conv), T0)
    closed = replace(conv, state=State.CLOSED, owner=None, waiting_since=None, nudged_at=None,
                     snoozed=False, reminded=False, escalations=0, card=None, deadline=None,
                     deadline_timer=None, preview="")
    assert store.commit(Change(closed, expected_version=0), T0) is Outcome.COMMITTED
    assert store.load(conv.ref.key) == replace(closed, version=1)
    again = replace(closed, state=State.QUEUED, owner="U0BOB")
    assert store.commit(Change(again, expected_version=1), T0) is Outcome.COMMITTED
    assert store.load(conv.ref.key) == replace(again, version=2)


def test_a_stale_version_conflicts_and_writes_nothing(store: Store) -> None:
    conv = new()
    store.commit(Change(conv), T0)
    claimed = replace(conv, state=State.CLAIMED, owner="ana")
    assert store.commit(Change(claimed, expected_version=0), T0) is Outcome.COMMITTED

    rival = replace(conv, state=State.CLAIMED, owner="ben")
    outcome = store.commit(
        Change(rival, expected_version=0, history=(event(conv, "claimed", T0, actor="ben"),),
               actions=(nudge(),), inbound_id="slack:Ev-rival"),
        T0,
    )
    assert outcome is Outcome.CONFLICT
    assert store.load(conv.ref.key) == replace(claimed, version=1)
    assert store.history(None, 0) == []
    assert store.pending(100) == []
    # The inbound id of a conflicting change is not used up: the retry goes through.
    retry = replace(claimed, owner="ana", preview="retried")
    assert store.commit(Change(retry, expected_version=1, inbound_id="slack:Ev-rival"),
                        T0) is Outcome.COMMITTED


def test_an_update_of_a_missing_conversation_conflicts(store: Store) -> None:
    assert store.commit(Change(new(), expected_version=0), T0) is Outcome.CONFLICT
    assert store.load(ref().key) is None


def test_inserting_an_existing_key_conflicts_and_writes_nothing(store: Store) -> None:
    conv = new()
    store.commit(Change(conv, history=(event(conv, "opened", T0),)), T0)
    twin = replace(conv, customer="impostor")
    outcome = store.commit(
        Change(twin, history=(event(conv, "opened", T0 + 1),), actions=(PostCard(twin),)), T0
    )
    assert outcome is Outcome.CONFLICT
    assert store.load(conv.ref.key) == conv
    assert [h.at for h in store.history(None, 0)] == [T0]
    assert store.pending(100) == []


def test_an_inbound_id_is_processed_once(store: Store) -> None:
    conv = new()
    first = Change(conv, history=(event(conv, "opened", T0),), actions=(PostCard(conv),),
                   inbound_id="slack:Ev1")
    assert store.commit(first, T0) is Outcome.COMMITTED
    changed = replace(conv, owner="ben", state=State.CLAIMED)
    second = Change(changed, expected_version=0, history=(event(conv, "claimed", T0 + 1),),
                    actions=(nudge(),), inbound_id="slack:Ev1")
    assert store.commit(second, T0 + 1) is Outcome.DUPLICATE
    assert store.load(conv.ref.key) == conv
    assert [h.kind for h in store.history(None, 0)] == ["opened"]
    assert [type(i.action) for i in store.pending(100)] == [PostCard]
    # Another id is new, and an id alone (nothing else to write) is remembered too.
    assert store.commit(replace(second, inbound_id="slack:Ev2"), T0 + 1) is Outcome.COMMITTED
    assert store.commit(Change(inbound_id="slack:Ev3"), T0) is Outcome.COMMITTED
    assert store.commit(Change(inbound_id="slack:Ev3"), T0) is Outcome.DUPLICATE


def test_history_and_actions_are_written_with_the_conversation(store: Store) -> None:
    conv = new()
    history = (event(conv, "opened", T0, actor="cust-1"), event(conv, "escalated", T0, None))
    actions = (PostCard(conv), Escalate(conv.ref, "@here", 120.0, 1, "cust-1", "hi"))
    assert store.commit(Change(conv, history=history, actions=actions), T0) is Outcome.COMMITTED
    assert store.load(conv.ref.key) == conv
    assert tuple(store.history(None, 0)) == history
    assert tuple(i.action for i in store.pending(100)) == tuple(map(as_stored, actions))


def test_a_change_that_fails_half_way_leaves_no_trace(store: Store) -> None:
    conv = new()
    unstorable = Digest("C-TEAM", (nudge(),))  # digests are made at delivery, never stored
    with pytest.raises(TypeError):
        store.commit(Change(conv, history=(event(conv, "opened", T0),),
                            actions=(PostCard(conv), unstorable), inbound_id="slack:Ev9"), T0)
    assert store.load(conv.ref.key) is None
    assert store.history(None, 0) == []
    assert store.pending(100) == []
    # The store is usable afterwards and the inbound id was not used up.
    assert store.commit(Change(conv, inbound_id="slack:Ev9"), T0) is Outcome.COMMITTED


def test_actions_without_a_conversation_are_queued(store: Store) -> None:
    refused = Refused(ref(), "ben", Refusal.CLAIMED, "ana")
    assert store.commit(Change(actions=(refused,)), T0) is Outcome.COMMITTED
    assert [i.action for i in store.pending(10)] == [refused]


# --- deadlines ------------------------------------------------------------------------


def test_next_deadline_is_the_earliest_of_any_conversation(store: Store) -> None:
    assert store.next_deadline() is None
    store.commit(Change(new(1, deadline=None, state=State.CLOSED)), T0)
    assert store.next_deadline() is None
    for n, deadline in ((2, T0 + 50), (3, T0 + 20), (4, T0 + 90)):
        store.commit(Change(new(n, deadline=deadline)), T0)
    assert store.next_deadline() == T0 + 20


def test_due_returns_deadlines_at_or_before_now_earliest_first(store: Store) -> None:
    deadlines = {1: T0 + 30, 2: T0 + 10, 3: T0 + 20, 4: T0 + 40, 5: None}
    for n, deadline in deadlines.items():
        state = State.CLOSED if deadline is None else State.QUEUED
        store.commit(Change(new(n, deadline=deadline, state=state)), T0)
    assert keys(store, T0 + 5, 10) == []
    assert keys(store, T0 + 20, 10) == [ref(2).key, ref(3).key]  # at the deadline counts
    assert keys(store, T0 + 1e9, 10) == [ref(n).key for n in (2, 3, 1, 4)]
    assert keys(store, T0 + 1e9, 2) == [ref(2).key, ref(3).key]


def test_a_deadline_moves_with_the_conversation(store: Store) -> None:
    conv = new(deadline=T0 + 10)
    store.commit(Change(conv), T0)
    store.commit(Change(replace(conv, deadline=T0 + 500), expected_version=0), T0)
    assert keys(store, T0 + 100, 10) == []
    assert store.next_deadline() == T0 + 500
    closed = replace(conv, state=State.CLOSED, deadline=None, deadline_timer=None)
    store.commit(Change(closed, expected_version=1), T0)
    assert keys(store, T0 + 1e12, 10) == []
    assert store.next_deadline() is None


def test_open_keys_are_a_teams_conversations_that_are_not_closed(store: Store) -> None:
    store.commit(Change(new(2, state=State.WAITING_ON_CUSTOMER)), T0)
    store.commit(Change(new(1)), T0)
    store.commit(Change(new(3, state=State.CLOSED, deadline=None)), T0)
    store.commit(Change(new(4, team="team-b")), T0)
    # in key order, as a transaction changing them all locks them (no deadlock with a group)
    assert store.open_keys("team-a") == sorted([ref(1).key, ref(2).key])
    assert store.open_keys("team-b") == [ref(4).key]
    assert store.open_keys("nobody") == []


def test_longest_waiting_puts_waiting_customers_first_oldest_first(store: Store) -> None:
    store.commit(Change(new(1, waiting_since=T0 + 30)), T0)
    store.commit(Change(new(2, state=State.WAITING_ON_CUSTOMER, owner="ana",
                            last_operator_at=T0 + 5)), T0)
    store.commit(Change(new(3, state=State.WAITING_ON_OPERATOR, owner="ana",
                            waiting_since=T0 + 10)), T0)
    store.commit(Change(new(4, state=State.WAITING_ON_CUSTOMER, owner="bob",
                            last_operator_at=T0 + 1)), T0)
    store.commit(Change(new(5, state=State.CLOSED, deadline=None, waiting_since=T0)), T0)
    store.commit(Change(new(6, team="team-b", waiting_since=T0)), T0)
    order = [c.ref for c in store.longest_waiting("team-a", 10)]
    assert order == [ref(3), ref(1), ref(4), ref(2)]
    assert [c.ref for c in store.longest_waiting("team-a", 2)] == [ref(3), ref(1)]
    assert store.longest_waiting("team-a", 1)[0] == store.load(ref(3).key)
    assert store.longest_waiting("nobody", 10) == []


# --- outbox -------------------------------------------------------------------------


def test_pending_keeps_queue_order_and_the_limit(store: Store) -> None:
    a, b = new(1), new(2)
    store.commit(Change(a, actions=(PostCard(a), nudge(1))), T0)
    store.commit(Change(b, actions=(PostCard(b),)), T0 + 1)
    store.commit(Change(actions=(UpdateCard(a), CloseNotice(a.ref, "bye"))), T0 + 2)
    items = store.pending(100)
    assert [i.action for i in items] == [as_stored(PostCard(a)), nudge(1),
                                         as_stored(PostCard(b)), as_stored(UpdateCard(a)),
                                         CloseNotice(a.ref, "bye")]
    team_a, team_b = f"{a.ref.key}>team", f"{b.ref.key}>team"
    assert [i.lane for i in items] == [team_a, team_a, team_b, team_a, f"{a.ref.key}>customer"]
    assert [i.attempts for i in items] == [0] * 5
    assert [i.not_before for i in items] == [0.0] * 5  # no hold until a failure sets one
    assert len({i.id for i in items}) == 5
    assert [i.id for i in store.pending(2)] == [i.id for i in items[:2]]


def test_heads_are_the_oldest_item_of_each_lane_of_one_platform(store: Store) -> None:
    slack = [Nudge(ConversationRef("slack", "C1", f"t{n}"), "ana", 1.0) for n in range(3)]
    busy = [Nudge(ConversationRef("slack", "C9", "t9"), "ana", float(n)) for n in range(5)]
    other = Nudge(ConversationRef("telegram", "-100", "7"), "ana", 1.0)
    lookalike = Nudge(ConversationRef("slackish", "C1", "t1"), "ana", 1.0)
    store.commit(Change(actions=(*busy, other, lookalike, *slack)), T0)

    heads = store.heads("slack:", 100, T0)
    assert [i.action for i in heads] == [busy[0], *slack]  # oldest first, one per lane
    assert [i.action for i in store.heads("slack:", 2, T0)] == [busy[0], slack[0]]
    assert [i.action for i in store.heads("telegram:", 100, T0)] == [other]
    assert store.heads("console:", 100, T0) == []

    store.settle(heads[0].id)
    assert store.heads("slack:", 100, T0)[0].action == busy[1]
    # A held head (retry later) is still the head: nothing behind it may overtake it.
    store.settle(heads[1].id, retry_at=T0 + 60, error="rate limited")
    held = [i for i in store.heads("slack:", 100, T0) if i.action == slack[0]]
    assert [(i.not_before, i.attempts) for i in held] == [(T0 + 60, 1)]


def test_a_copy_of_a_message_heads_its_lane_before_older_cards(store: Store) -> None:
    conv = new()
    relay = Relay(conv.ref, False, "U1", "m1")
    store.commit(Change(conv, actions=(PostCard(conv), nudge(), relay)), T0)
    assert [i.action for i in store.heads("slack:", 10, T0)] == [relay]
    to_customer = Relay(conv.ref, True, "-100", "m2")
    store.commit(Change(actions=(to_customer,)), T0)
    heads = store.heads("slack:", 10, T0)
    assert [i.action for i in heads] == [relay, to_customer]  # two lanes: team, customer
    assert [i.lane for i in heads] == [f"{conv.ref.key}>team", f"{conv.ref.key}>customer"]


def test_a_leased_lane_offers_no_head_until_the_lease_runs_out(store: Store) -> None:
    conv = new()
    store.commit(Change(conv, actions=(PostCard(conv), nudge())), T0)
    (head,) = store.heads("slack:", 10, T0)
    assert store.lease([head.id], "worker-a", T0 + 60, T0) == [head.id]
    assert store.lease([head.id], "worker-b", T0 + 61, T0 + 1) == []  # taken
    assert store.heads("slack:", 10, T0 + 59) == []  # and its lane waits, in order
    second = store.pending(10)[1]
    assert store.lease([second.id], "worker-b", T0 + 61, T0 + 1) == []
    # worker-a died: after the lease, the same item is the head again, for anyone.
    assert [i.id for i in store.heads("slack:", 10, T0 + 60)] == [head.id]
    assert store.lease([head.id], "worker-b", T0 + 120, T0 + 60) == [head.id]
    store.settle(head.id)
    assert [i.id for i in store.heads("slack:", 10, T0 + 61)] == [second.id]


def test_an_outbox_id_names_one_item_forever(store: Store) -> None:
    # Several workers (processes) hold ids they read a moment ago: an id that came back
    # for a newer item would have them lease, send and settle that item as the old one.
    store.commit(Change(actions=(nudge(1),)), T0)
    (first,) = store.pending(10)
    store.settle(first.id)  # the outbox is empty again
    store.commit(Change(actions=(nudge(2),)), T0)
    (second,) = store.pending(10)
    assert second.id > first.id
    assert store.lease([first.id], "worker-a", T0 + 60, T0) == []  # settled is gone


def test_a_retry_ends_the_lease(store: Store) -> None:
    store.commit(Change(actions=(nudge(),)), T0)
    (head,) = store.heads("slack:", 10, T0)
    store.lease([head.id], "worker-a", T0 + 60, T0)
    store.settle(head.id, retry_at=T0 + 5, error="rate limited", failed=False)
    assert [i.id for i in store.heads("slack:", 10, T0 + 1)] == [head.id]


def test_leases_say_who_holds_them_and_when_the_first_runs_out(store: Store) -> None:
    other = Nudge(ConversationRef("telegram", "-100", "7"), "ana", 1.0)
    store.commit(Change(actions=(nudge(1), nudge(2), nudge(3), other)), T0)
    a, b, c = store.heads("slack:", 10, T0)
    (t,) = store.heads("telegram:", 10, T0)
    assert store.next_lease_end("slack:", T0) is None and store.lease_holders(T0) == []
    store.lease([a.id, c.id], "worker-a", T0 + 60, T0)
    store.lease([b.id], "worker-b", T0 + 30, T0)
    store.lease([t.id], "worker-t", T0 + 10, T0)
    assert store.next_lease_end("slack:", T0) == T0 + 30  # one platform's lanes only
    assert store.next_lease_end("telegram:", T0) == T0 + 10
    assert sorted(store.lease_holders(T0)) == ["worker-a", "worker-b", "worker-t"]
    # A lease ends at its `until`: from then on it is neither held nor waited for.
    assert store.next_lease_end("slack:", T0 + 30) == T0 + 60
    assert store.lease_holders(T0 + 30) == ["worker-a"]
    store.settle(a.id)
    store.settle(c.id)
    assert store.next_lease_end("slack:", T0 + 30) is None
    assert store.lease_holders(T0 + 30) == []


def test_hurry_lets_the_items_waiting_for_a_retry_go_now(store: Store) -> None:
    other = Nudge(ConversationRef("telegram", "-100", "7"), "ana", 1.0)
    store.commit(Change(actions=(nudge(1), nudge(2), other)), T0)
    for item in [*store.heads("slack:", 10, T0), *store.heads("telegram:", 10, T0)]:
        store.settle(item.id, retry_at=T0 + 300, error="no rights")
    assert store.hurry("slack:") == 2
    assert [i.not_before <= T0 for i in store.heads("slack:", 10, T0)] == [True, True]
    assert [i.not_before for i in store.heads("telegram:", 10, T0)] == [T0 + 300]
    assert store.hurry("slack:") == 0  # nothing waits there any more


def test_supersede_forgets_older_card_updates_of_the_lane(store: Store) -> None:
    a, b = new(1), new(2)
    store.commit(Change(a, actions=(UpdateCard(a), nudge(1), UpdateCard(a))), T0)
    store.commit(Change(b, actions=(UpdateCard(b),)), T0)
    mark = store.outbox_mark()
    store.commit(Change(actions=(UpdateCard(a),)), T0)  # after the mark: a newer state
    first = store.pending(10)[0]
    assert store.supersede(first.lane, mark, first.id) == 1
    names = {f"{a.ref.key}>team": "a", f"{b.ref.key}>team": "b"}
    kinds = [(type(i.action).__name__, names[i.lane]) for i in store.pending(10)]
    assert kinds == [("UpdateCard", "a"), ("Nudge", "a"), ("UpdateCard", "b"),
                     ("UpdateCard", "a")]


def test_oldest_pending_is_when_the_oldest_waiting_action_was_queued(store: Store) -> None:
    assert store.oldest_pending() is None
    store.commit(Change(actions=(nudge(1),)), T0)
    store.commit(Change(actions=(nudge(2),)), T0 + 5)
    assert store.oldest_pending() == T0
    store.settle(store.pending(1)[0].id)
    assert store.oldest_pending() == T0 + 5


def test_due_reads_each_conversation_as_it_is(store: Store) -> None:
    store.commit(Change(conversation=new(1, deadline=T0 + 7)), T0)
    assert store.due(T0 + 10, 5) == [store.load(ref(1).key)]
    assert store.due(T0 + 10, 5)[0].deadline == T0 + 7


def test_a_due_row_that_does_not_read_is_put_off_and_the_rest_claimed(
        backend: Backend, store: Store) -> None:
    for n in (1, 2):
        store.commit(Change(conversation=new(n, deadline=T0 + n)), T0)
    backend.execute(store, "UPDATE conversations SET state = %s WHERE key = %s",
                    ("from_a_newer_release", ref(1).key))
    assert [conv.ref for conv in store.due(T0 + 10, 5)] == [ref(2)]
    assert store.next_deadline() == T0 + 2  # the unreadable one: UNREADABLE_RETRY away
    assert keys(store, T0 + 10 + UNREADABLE_RETRY, 5) == [ref(2).key]


def test_postpone_moves_a_deadline(store: Store) -> None:
    store.commit(Change(conversation=new(1, deadline=T0 + 7)), T0)
    store.postpone(ref(1).key, T0 + 100)
    assert keys(store, T0 + 10, 5) == [] and store.next_deadline() == T0 + 100


def test_after_commit_waits_for_the_batch_and_is_dropped_with_it(store: Store) -> None:
    called: list[str] = []
    store.after_commit(lambda: called.append("alone"))  # no batch: committed already
    assert called == ["alone"]
    with store.batch():
        store.commit(Change(conversation=new(1)), T0)
        store.after_commit(lambda: called.append("first"))
        with store.batch():  # part of the outer one
            store.after_commit(lambda: called.append("inner"))
        assert called == ["alone"]  # nothing is committed yet
    assert called == ["alone", "first", "inner"]
    with pytest.raises(RuntimeError), store.batch():
        store.commit(Change(conversation=new(2)), T0)
        store.after_commit(lambda: called.append("rolled back"))
        raise RuntimeError("the batch fails")
    with store.batch():
        pass
    assert called == ["alone", "first", "inner"] and store.load(ref(2).key) is None


def test_after_commit_on_another_thread_does_not_wait_for_this_one_s_batch(
        store: Store) -> None:
    called: list[str] = []
    with store.batch():
        store.commit(Change(conversation=new(1)), T0)
        done = threading.Thread(target=lambda: store.after_commit(
            lambda: called.append("other thread")))
        done.start()
        done.join(0.2)
        store.after_commit(lambda: called.append("this batch"))
    done.join(5)
    # The other thread's own writes are not this batch's: its callback is not dropped or
    # held for it (on SQLite it waits for the connection, and runs once the batch ends).
    assert sorted(called) == ["other thread", "this batch"]


def test_a_batch_commits_together_but_each_change_stays_atomic(store: Store) -> None:
    with store.batch():
        assert store.commit(Change(conversation=new(1), inbound_id="a"), T0) is Outcome.COMMITTED
        assert store.commit(Change(conversation=new(2), inbound_id="a"), T0) is Outcome.DUPLICATE
    assert store.load(ref(1).key) is not None and store.load(ref(2).key) is None
    with pytest.raises(RuntimeError), store.batch():
        store.commit(Change(conversation=new(3)), T0)
        raise RuntimeError("crash inside the batch")
    assert store.load(ref(3).key) is None


def test_changes_to_known_conversations_commit_all_together_or_not_at_all(
        store: Store) -> None:
    for n in (1, 2, 3):
        store.commit(Change(new(n)), T0)
    stale = store.load(ref(3).key)
    assert stale is not None
    store.commit(Change(replace(stale, owner="U0BOB"), expected_version=stale.version), T0)

    def closing(n: int, version: int) -> Change:
        conv = store.load(ref(n).key)
        assert conv is not None
        return Change(replace(conv, state=State.CLOSED), expected_version=version,
                      history=(HistoryEvent(ref(n), "team-a", "closed", T0 + 1),),
                      actions=(CloseNotice(ref(n), "bye"),))

    one, two = (store.load(ref(n).key) for n in (1, 2))
    assert one is not None and two is not None
    with store.batch():  # the third was read before it changed: none is written
        assert not store.commit_all([closing(1, one.version), closing(2, two.version),
                                     closing(3, stale.version)], T0 + 1)
    assert {store.load(ref(n).key).state for n in (1, 2)} == {State.QUEUED}  # type: ignore[union-attr]
    assert store.history(None, T0 + 1) == [] and store.pending(10) == []
    assert store.commit_all([closing(1, one.version), closing(2, two.version)], T0 + 1)
    assert {store.load(ref(n).key).state for n in (1, 2)} == {State.CLOSED}  # type: ignore[union-attr]
    assert [h.ref for h in store.history(None, T0 + 1)] == [ref(1), ref(2)]
    assert [i.action for i in store.pending(10)] == [CloseNotice(ref(1), "bye"),
                                                      CloseNotice(ref(2), "bye")]
    assert store.commit_all([], T0)
    with pytest.raises(ValueError):
        store.commit_all([Change(new(9))], T0)  # a new conversation goes by commit


def test_a_slice_of_many_commits_together_every_field_and_the_order_kept(
        store: Store) -> None:
    # A ticker's slice: more rows than any one-row-per-placeholder statement would take,
    # fields at their defaults beside every field set (None, booleans, int timestamps).
    full = every_field_set()
    convs = [new(n, deadline=T0 + n) for n in range(1, 60)] + [full]
    for conv in convs:
        store.commit(Change(conv), T0)
    fired = [replace(conv, deadline=None, deadline_timer=None, escalations=conv.escalations + 1,
                     nudged_at=int(T0) + 9, snoozed=not conv.snoozed, owner=None)
             for conv in convs]
    changes = [Change(after, before.version,
                      history=(event(after, "escalated", T0 + 10, value=float(n)),),
                      actions=(Nudge(after.ref, "ana", 1.0), CloseNotice(after.ref, f"#{n}")),
                      inputs=(Input(Close(after.ref, T0 + 10, "ana", via="sweep"), after.team,
                                    T0 + 10),))
               for n, (before, after) in enumerate(zip(convs, fired, strict=True))]
    with store.batch():
        assert store.commit_all(changes, T0 + 10)
    for after in fired:
        assert store.load(after.ref.key) == replace(after, version=after.version + 1)
    assert [h.value for h in store.history(None, T0 + 10)] == [float(n) for n in range(60)]
    assert [i.action for i in store.pending(200)] == [
        a for change in changes for a in change.actions]
    assert [i.key for i in store.inputs(None, T0)] == [c.ref.key for c in fired]


def test_a_batch_told_its_events_gives_what_one_by_one_gives(store: Store) -> None:
    # Group commit tells the batch what its events are about (PostgreSQL reads, locks and
    # records them up front and writes what they commit in one go); the callers see the
    # same outcomes, in the same order, on every backend.
    store.commit(Change(new(1)), T0)
    store.commit(Change(actions=(CloseNotice(ref(9), "before"),), inbound_id="old"), T0)
    intents = [ports.Intent(ref(1).key, "a", T0 + 1), ports.Intent(ref(2).key, "b", T0 + 1),
               ports.Intent(ref(1).key, "a", T0 + 1), ports.Intent(ref(3).key, "c", T0 + 1),
               ports.Intent(ref(1).key, "old", T0 + 1)]
    with store.batch(intents):
        one = store.load(ref(1).key)
        assert one is not None and one.version == 0
        owned = replace(one, owner="U0ANA", state=State.WAITING_ON_CUSTOMER)
        assert store.commit(Change(owned, 0, (event(owned, "claimed", T0 + 1),),
                                   (Nudge(one.ref, "ana", 1.0),), inbound_id="a",
                                   aliases=(("C1:1700.5", one.ref.key),)), T0 + 1) \
            is Outcome.COMMITTED
        again = store.load(ref(1).key)  # what this batch wrote, as written
        assert again == replace(owned, version=1)
        assert [h.kind for h in store.history(None, 0)] == ["claimed"]
        assert store.commit(Change(replace(again, preview="x"), 1, inbound_id="a"),
                            T0 + 1) is Outcome.DUPLICATE  # the same delivery twice
        assert store.load(ref(2).key) is None
        assert store.commit(Change(new(2), inbound_id="b",
                                   actions=(CloseNotice(ref(2), "two"),)), T0 + 1) \
            is Outcome.COMMITTED
        assert store.commit(Change(replace(again, preview="y"), 1, inbound_id="old"),
                            T0 + 1) is Outcome.DUPLICATE  # recorded before the batch
        assert store.commit(Change(replace(one, preview="stale"), 0), T0 + 1) \
            is Outcome.CONFLICT
        # "c": its event failed before it committed
    assert store.load(ref(1).key) == replace(owned, version=1)
    assert store.load(ref(2).key) == new(2)
    assert store.resolve("C1:1700.5") == ref(1).key
    assert [i.action for i in store.pending(10)] == [CloseNotice(ref(9), "before"),
                                                      Nudge(ref(1), "ana", 1.0),
                                                      CloseNotice(ref(2), "two")]
    for used in ("a", "b", "old"):
        assert store.commit(Change(inbound_id=used), T0 + 2) is Outcome.DUPLICATE
    assert store.commit(Change(new(3), inbound_id="c"), T0 + 2) is Outcome.COMMITTED


def test_a_batch_told_its_events_keeps_nothing_when_it_raises(store: Store) -> None:
    store.commit(Change(new(1)), T0)
    with pytest.raises(RuntimeError), store.batch([ports.Intent(ref(1).key, "a", T0)]):
        one = store.load(ref(1).key)
        assert one is not None
        assert store.commit(Change(replace(one, owner="U0ANA"), 0, inbound_id="a",
                                   actions=(Nudge(one.ref, "ana", 1.0),)), T0) \
            is Outcome.COMMITTED
        raise RuntimeError("the process died before COMMIT")
    assert store.load(ref(1).key) == new(1) and store.pending(10) == []
    assert store.commit(Change(inbound_id="a"), T0) is Outcome.COMMITTED  # not recorded


def test_a_message_with_control_characters_or_lone_surrogates_is_stored_without_them(
        store: Store) -> None:
    # A NUL and a lone surrogate are valid JSON ("\u0000", "\ud800") from either
    # platform; PostgreSQL's text refuses the one, UTF-8 the other, and the customer's
    # message must not fail for them.
    service = Service(store, Policy(), FakeClock(T0))
    text = "my order\x00 #42\x07 is \ud800late"
    assert service.handle(CustomerMessage(ref(1), T0, "Zoë\x00\udfff", text, "team-a"),
                          inbound_id="nul") is not None
    conv = store.load(ref(1).key)
    assert conv is not None and conv.customer == "Zoë ?"
    assert conv.preview == "my order #42 is ?late"
    assert [i.event.text for i in store.inputs(None, 0)] == [""]  # no text is recorded


def test_heads_include_every_lane_that_starts_with_the_prefix(store: Store) -> None:
    emoji = Nudge(ConversationRef("console", "🆘-room", "t1"), "ana", 1.0)
    store.commit(Change(actions=(emoji,)), T0)
    assert [i.action for i in store.heads("console:", 10, T0)] == [emoji]


def test_every_storable_action_round_trips(store: Store) -> None:
    conv = every_field_set()
    actions = (
        PostCard(conv),
        UpdateCard(conv),
        Nudge(conv.ref, "ana", 301.5, "card-1", "Zoë"),
        ReturnToInbox(conv.ref, "ana", 40.0, "no first response within 30s", "Zoë", "hi", None),
        Escalate(conv.ref, "@here <!subteam^S1>", 125.0, 2, "Zoë", "hi", "card-1"),
        CloseNotice(conv.ref, "We are closing this chat. 👋"),
        Refused(conv.ref, "ben", Refusal.NOT_YOURS, "ana", via="reaction"),
        Relay(conv.ref, True, "-100123", "77"),
    )
    store.commit(Change(actions=actions), T0)
    assert tuple(i.action for i in store.pending(100)) == tuple(map(as_stored, actions))


def test_settle_delivered_retry_and_dead(store: Store, backend: Backend) -> None:
    conv = new()
    store.commit(Change(conv, actions=(PostCard(conv), nudge(), UpdateCard(conv))), T0)
    post, nudged, update = store.pending(10)

    store.settle(post.id)
    assert [i.id for i in store.pending(10)] == [nudged.id, update.id]

    store.settle(nudged.id, retry_at=T0 + 30, error="ConnectionError: reset")
    store.settle(nudged.id, retry_at=T0 + 90, error="ConnectionError: reset")
    held = store.pending(10)[0]
    assert (held.id, held.not_before, held.attempts) == (nudged.id, T0 + 90, 2)
    assert held.action == nudged.action  # still first in its lane

    store.settle(nudged.id, error="channel_not_found", dead=True)
    assert [i.id for i in store.pending(10)] == [update.id]
    assert backend.dead_letters(store) == [(f"{conv.ref.key}>team", "Nudge", 3,
                                            "channel_not_found")]


# --- aliases --------------------------------------------------------------------


def test_attach_sets_the_card_and_aliases_resolve(store: Store) -> None:
    conv = new()
    store.commit(Change(conv), T0)
    assert store.resolve("C-TEAM:1700.1") is None
    store.attach(conv.ref.key, "1700.1", ("C-TEAM:1700.1", "topic:42"))
    loaded = store.load(conv.ref.key)
    assert loaded is not None and loaded.card == "1700.1"
    assert store.resolve("C-TEAM:1700.1") == conv.ref.key
    assert store.resolve("topic:42") == conv.ref.key
    assert store.resolve("topic:43") is None


def test_aliases_are_written_with_a_change_and_only_if_it_is(store: Store) -> None:
    conv = new()
    key = conv.ref.key
    first = Change(conv, inbound_id="slack:Ev1", aliases=(("message:C1:1700.2", key),))
    assert store.commit(first, T0) is Outcome.COMMITTED
    assert store.resolve("message:C1:1700.2") == key
    again = replace(first, aliases=(("message:C1:1700.3", key),))
    assert store.commit(again, T0) is Outcome.DUPLICATE
    stale = Change(replace(conv, owner="ana"), expected_version=7,
                   aliases=(("message:C1:1700.4", key),))
    assert store.commit(stale, T0) is Outcome.CONFLICT
    # an event that changes nothing in a conversation still records where its message is
    assert store.commit(Change(inbound_id="slack:Ev2", aliases=(("message:C1:1700.5", key),)),
                        T0) is Outcome.COMMITTED
    assert store.resolve("message:C1:1700.5") == key
    assert store.resolve("message:C1:1700.3") is None
    assert store.resolve("message:C1:1700.4") is None


def test_a_change_decided_before_attach_cannot_erase_the_card(store: Store) -> None:
    conv = new()
    store.commit(Change(conv), T0)
    decided_on = store.load(conv.ref.key)
    assert decided_on is not None
    store.attach(conv.ref.key, "card-1", ())
    stale = replace(decided_on, owner="ana", state=State.CLAIMED)
    assert store.commit(Change(stale, expected_version=decided_on.version), T0) \
        is Outcome.CONFLICT
    loaded = store.load(conv.ref.key)
    assert loaded is not None and loaded.card == "card-1"


# --- settings, history, summary -------------------------------------------------------


def test_settings_are_stored_per_scope_and_replaced(store: Store) -> None:
    assert store.settings("team:a") == {}
    store.put_setting("team:a", "idle", "10m", "ana", T0)
    store.put_setting("team:a", "escalate_to", "@oncall", "ana", T0)
    store.put_setting("channel:slack:C1", "idle", "2m", "ana", T0)
    store.put_setting("team:a", "idle", "off", "ben", T0 + 1)
    assert store.settings("team:a") == {"idle": "off", "escalate_to": "@oncall"}
    assert store.settings("channel:slack:C1") == {"idle": "2m"}
    assert store.settings("team:b") == {}


def test_a_dropped_setting_is_gone_from_its_scope_only(store: Store) -> None:
    store.put_setting("channel:slack:C1", "hours", "sat 10:00-14:00", "ana", T0)
    store.put_setting("channel:slack:C1", "timezone", "UTC", "ana", T0)
    store.put_setting("team:a", "hours", "mon-fri 09:00-18:00", "ana", T0)
    store.drop_setting("channel:slack:C1", "hours")
    store.drop_setting("channel:slack:C1", "holidays")  # never stored: nothing happens
    assert store.settings("channel:slack:C1") == {"timezone": "UTC"}
    assert store.settings("team:a") == {"hours": "mon-fri 09:00-18:00"}


def test_settings_values_are_kept_verbatim(store: Store) -> None:
    odd = "@here'; DROP TABLE settings; -- ‮عربى 🎉"
    store.put_setting("team:a", "escalate_to", odd, "ana", T0)
    assert store.settings("team:a") == {"escalate_to": odd}


def test_history_filters_by_team_and_since(store: Store) -> None:
    a, b = new(1), new(2, team="team-b")
    store.commit(Change(a, history=(event(a, "opened", T0), event(a, "claimed", T0 + 10))), T0)
    store.commit(Change(b, history=(event(b, "opened", T0 + 5),)), T0)
    store.commit(Change(history=(event(a, "first_reply", T0 + 20, value=20.0),)), T0)
    assert [h.kind for h in store.history("team-a", 0)] == ["opened", "claimed", "first_reply"]
    assert [h.kind for h in store.history("team-a", T0 + 10)] == ["claimed", "first_reply"]
    assert [h.kind for h in store.history("team-b", 0)] == ["opened"]
    assert [h.kind for h in store.history(None, T0 + 5)] == ["claimed", "opened", "first_reply"]
    assert store.history("team-a", T0 + 21) == []
    assert store.history("team-c", 0) == []
    reply = store.history("team-a", T0 + 20)[0]
    assert reply == HistoryEvent(a.ref, "team-a", "first_reply", T0 + 20, "ana", 20.0)


def test_a_reports_tallies_count_what_the_history_says(store: Store) -> None:
    # A varied history of two teams: every kind a report counts, with and without actors,
    # values and details, on both edges of the period and outside it.
    rng = random.Random(7)
    kinds = ("opened", "reopened", "claimed", "first_reply", "reply", "nudged", "outcome",
             "returned", "closed", "escalated")
    details = {"outcome": ("nudge:answered", "return:reclaimed", "escalation:answered",
                           "nudge:handed_off", "reminder:handed_off", "nudge:snoozed", "", None),
               "returned": ("shift_end", "idle", None),
               "closed": (CloseReason.AT_SHIFT_END, CloseReason.BY_OPERATOR, None)}
    since, until = T0 + 1_000, T0 + 90_000
    history = []
    for n in range(600):
        team = "team-a" if n % 5 else "team-b"
        kind = rng.choice(kinds)
        at = rng.choice((since, until, since - 1, until + 1, rng.uniform(T0, T0 + 91_000)))
        history.append(HistoryEvent(
            ref(n % 40, channel=rng.choice(("C1", "C2"))), team, kind, at,
            rng.choice(("ana", "ben", None)), rng.choice((None, 30.0, rng.uniform(0, 900))),
            rng.choice(details.get(kind, (None,)))))
    # One claim that ends a return and an escalation at once: one rescue.
    history += [HistoryEvent(ref(1), "team-a", "outcome", T0 + 5_000, "ana", 9.0, detail)
                for detail in ("return:reclaimed", "escalation:answered")]
    store.commit(Change(history=tuple(history)), T0)
    for team in ("team-a", "team-b", "team-c"):
        counted = store.tallies(team, since, until)
        expected = tally(store.history(team, 0), since, until)
        assert counted.openings == expected.openings and counted.owned == expected.owned
        assert counted.nudged == expected.nudged and counted.shift_end == expected.shift_end
        assert counted.closed == expected.closed and counted.rescues == expected.rescues
        assert sorted(counted.first_replies) == sorted(expected.first_replies)
        assert sorted(counted.outcomes, key=repr) == sorted(expected.outcomes, key=repr)
    counted = store.tallies("team-a", since, until)
    assert sum(counted.openings.values()) > 50  # not vacuous
    assert counted.rescues[(int((T0 + 5_000) // 900), 2)] >= 1
    assert sum(counted.rescues.values()) < sum(n for detail, _, _, n in counted.outcomes
                                               if detail in RESCUES)


def test_recorded_inputs_come_back_by_team_and_since_in_recorded_order(store: Store) -> None:
    a, b = new(1), new(2, team="team-b")
    opened = Input(CustomerMessage(a.ref, T0 - 1, "cust-1", "", "team-a"), "team-a", T0, True)
    presses = (Input(Claim(a.ref, T0 + 9, "ana", via="reaction", on_team=True), "team-a", T0 + 10),
               Input(Snooze(a.ref, T0 + 20, "ana", notice_id="n1700000000000", admin=True),
                     "team-a", T0 + 20))
    store.commit(Change(a, inputs=(opened,)), T0)
    store.commit(Change(b, inputs=(Input(ShiftEnd(b.ref, T0 + 5, "ben", close=True), "team-b",
                                         T0 + 5),)), T0)
    store.commit(Change(replace(a, version=1), expected_version=0, inputs=presses), T0)
    closing = Input(Close(a.ref, T0 + 30, "ana", via="sweep", notice_id="card", admin=False,
                          on_team=False), "team-a", T0 + 30)
    store.commit_all([Change(replace(a, version=2), 1, inputs=(closing,))], T0)
    assert store.inputs("team-a", 0) == [opened, *presses, closing]
    assert store.inputs("team-a", T0 + 10) == [*presses, closing]
    assert [i.team for i in store.inputs(None, 0)] == ["team-a", "team-b", "team-a", "team-a",
                                                        "team-a"]
    assert store.inputs("team-c", 0) == []
    assert store.inputs("team-a", 0, lambda key: key != a.ref.key) == []
    assert store.inputs(None, 0, lambda key: key == b.ref.key)[0].team == "team-b"
    assert store.openings("team-a", 0) == 1 and store.openings("team-a", T0 + 1) == 0
    assert store.openings("team-b", 0) == 0  # a sweep's close is no opening
    # The customer comes back: a second exchange, but still one conversation to sample.
    again = Input(CustomerMessage(a.ref, T0 + 40, "cust-1", "", "team-a"), "team-a", T0 + 40,
                  True)
    store.commit(Change(replace(a, version=3), expected_version=2, inputs=(again,)), T0)
    assert store.openings("team-a", 0) == 1 and store.openings("team-a", T0 + 31) == 1


def test_history_reads_only_the_conversations_asked_for(store: Store) -> None:
    a, b = new(1), new(2)
    store.commit(Change(a, history=(event(a, "opened", T0),)), T0)
    store.commit(Change(b, history=(event(b, "opened", T0), event(b, "claimed", T0 + 1))), T0)
    only_b = store.history("team-a", 0, None, lambda key: key == b.ref.key)
    assert [(h.ref, h.kind) for h in only_b] == [(b.ref, "opened"), (b.ref, "claimed")]
    assert [h.kind for h in store.history("team-a", 0, ("claimed",), lambda key: True)] == [
        "claimed"]


def test_summary_counts_open_and_overdue_conversations(store: Store) -> None:
    assert store.summary("team-a") == (0, 0)
    store.commit(Change(new(1)), T0)
    store.commit(Change(new(2, state=State.WAITING_ON_OPERATOR, owner="ana", nudged_at=T0)), T0)
    store.commit(Change(new(3, escalations=1)), T0)
    store.commit(Change(new(4, state=State.CLOSED, deadline=None, escalations=2)), T0)
    store.commit(Change(new(5, team="team-b", escalations=1)), T0)
    assert store.summary("team-a") == (3, 2)
    assert store.summary("team-b") == (1, 1)


def test_open_counts_are_by_platform_and_state_without_the_closed(store: Store) -> None:
    assert store.open_counts() == {}
    store.commit(Change(new(1)), T0)
    store.commit(Change(new(2, team="team-b")), T0)
    store.commit(Change(new(3, state=State.CLAIMED, owner="ana")), T0)
    store.commit(Change(new(4, state=State.CLOSED, deadline=None)), T0)
    telegram = replace(every_field_set(), state=State.WAITING_ON_CUSTOMER)
    store.commit(Change(telegram), T0)
    assert store.open_counts() == {("slack", "queued"): 2, ("slack", "claimed"): 1,
                                   ("telegram", "waiting_on_customer"): 1}
    # A team of one platform (as the adapters make them) and one that spans two.
    store.commit(Change(replace(new(5, team="slack:T1"), state=State.CLAIMED)), T0)
    spanning = replace(telegram, ref=ConversationRef("telegram", "-1009", "topic:1"),
                       team="team-a", state=State.QUEUED)
    store.commit(Change(spanning), T0)
    assert store.open_counts() == {("slack", "queued"): 2, ("slack", "claimed"): 2,
                                   ("telegram", "waiting_on_customer"): 1,
                                   ("telegram", "queued"): 1}


def test_outbox_counts_are_what_waits_per_platform_and_since_when(store: Store) -> None:
    assert store.outbox_counts() == {}
    telegram = ConversationRef("telegram", "-1001", "topic:7")
    store.commit(Change(actions=(nudge(1),)), T0 + 1)
    store.commit(Change(actions=(nudge(2), CloseNotice(telegram, "bye"))), T0 + 5)
    store.commit(Change(actions=(nudge(3),)), T0 + 9)
    assert store.outbox_counts() == {"slack": (3, T0 + 1), "telegram": (1, T0 + 5)}
    first = store.pending(1)[0]
    store.settle(first.id)
    store.settle(store.pending(1)[0].id, error="gone", dead=True)  # a dead letter waits no more
    assert store.outbox_counts() == {"slack": (1, T0 + 9), "telegram": (1, T0 + 5)}
    store.settle(store.pending(1)[0].id, retry_at=T0 + 60, error="later")  # still waiting
    assert store.outbox_counts()["telegram"] == (1, T0 + 5)


def test_held_requests_come_back_in_arrival_order_once_each(store: Store) -> None:
    store.hold("slack", "slack:Ev2", '{"n": 2}', T0 + 2)
    store.hold("slack", "slack:Ev1", '{"n": 1, "text": "שלום 👋"}', T0 + 1)
    store.hold("telegram", "telegram:9", "{}", T0)
    store.hold("slack", "slack:Ev2", '{"n": "a retry"}', T0 + 3)  # the same request again
    held = store.held("slack", 10)
    assert [(h.inbound_id, h.body, h.at) for h in held] == [
        ("slack:Ev2", '{"n": 2}', T0 + 2), ("slack:Ev1", '{"n": 1, "text": "שלום 👋"}', T0 + 1)]
    assert [h.inbound_id for h in store.held("slack", 1)] == ["slack:Ev2"]
    store.release(held[0].id)
    assert [h.inbound_id for h in store.held("slack", 10)] == ["slack:Ev1"]
    assert [h.inbound_id for h in store.held("telegram", 10)] == ["telegram:9"]


def test_pruned_inbound_ids_are_those_seen_before_the_time_given(store: Store) -> None:
    store.commit(Change(inbound_id="slack:old"), T0)
    store.commit(Change(inbound_id="slack:new"), T0 + 3600)
    store.prune(T0 + 60)
    assert store.commit(Change(inbound_id="slack:old"), T0 + 7200) is Outcome.COMMITTED
    assert store.commit(Change(inbound_id="slack:new"), T0 + 7200) is Outcome.DUPLICATE


def test_an_item_whose_worker_died_is_marked_as_maybe_sent_until_settled(store: Store) -> None:
    store.commit(Change(actions=(nudge(1),)), T0)
    (item,) = store.heads("slack:", 10, T0)
    assert not item.was_leased
    store.lease([item.id], "dead-worker", T0 + 60, T0)
    assert store.end_leases("dead-worker") == [item.id]
    (again,) = store.heads("slack:", 10, T0 + 1)  # free for the next worker at once ...
    assert again.was_leased  # ... which knows it may have reached the platform already
    store.lease([again.id], "next-worker", T0 + 61, T0 + 1)
    store.settle(again.id, retry_at=T0 + 5, error="rate limited", failed=False)
    assert not store.heads("slack:", 10, T0 + 6)[0].was_leased  # refused: it did not go


# --- sweeps ----------------------------------------------------------------------------------


def planned(end: float, team: str = "team-a", shifts: tuple[str, ...] = ("",),
            lead: float = 900.0) -> Sweep:
    return Sweep(sweep_id(team, end), team, end, end - lead, end + 3600, shifts)


def test_planned_sweeps_are_due_at_their_cards_and_count_as_deadlines(store: Store) -> None:
    store.commit(Change(new(1, deadline=T0 + 5000)), T0)
    store.plan_sweeps("team-a", [planned(T0 + 1000), planned(T0 + 2000, shifts=("", "late"))], T0)
    store.plan_sweeps("team-b", [planned(T0 + 1500, team="team-b")], T0)
    assert store.next_deadline() == T0 + 100
    assert [s.id for s in store.due_sweeps(T0 + 700, 10)] == [
        sweep_id("team-a", T0 + 1000), sweep_id("team-b", T0 + 1500)]
    assert store.due_sweeps(T0 + 99, 10) == []
    assert store.sweep(sweep_id("team-a", T0 + 2000)) == planned(T0 + 2000, shifts=("", "late"))
    assert [s.ends_at for s in store.sweeps("team-a")] == [T0 + 1000, T0 + 2000]
    assert store.sweep("team-a@0") is None


def test_next_deadline_is_a_sweeps_when_no_conversation_has_one(store: Store) -> None:
    store.plan_sweeps("team-a", [planned(T0 + 1000)], T0)
    assert store.next_deadline() == T0 + 100


def test_planning_again_keeps_sweeps_under_way_and_forgets_other_planned_ones(
        store: Store) -> None:
    first, second = planned(T0 + 1000), planned(T0 + 2000)
    store.plan_sweeps("team-a", [first, second], T0)
    assert store.advance_sweep(first, Phase.CARDED)
    # The hours changed: a later end, and the first one's cards (already out) stay.
    moved = replace(second, sweep_at=T0 + 1900, shifts=("", "late"))
    store.plan_sweeps("team-a", [replace(first, sweep_at=T0), moved, planned(T0 + 3000)], T0)
    stored = {s.id: s for s in store.sweeps("team-a")}
    assert stored[first.id].phase is Phase.CARDED and stored[first.id].sweep_at == T0 + 100
    assert stored[second.id].sweep_at == T0 + 1900 and stored[second.id].shifts == ("", "late")
    # The shift has ended (its rule is being applied): planning leaves it alone.
    assert store.advance_sweep(stored[first.id], Phase.ENDING)
    store.plan_sweeps("team-a", [], T0 + 1000)  # sweep off: the planned ones go
    assert [(s.id, s.phase) for s in store.sweeps("team-a")] == [(first.id, Phase.ENDING)]


def test_a_sweep_whose_cards_are_out_is_called_off_when_its_end_is_no_longer_planned(
        store: Store) -> None:
    """The hours changed (or `sweep off`) after the cards went out: the old end never comes,
    so nothing is handed over at it; an end already passed is carried out all the same."""
    first, second = planned(T0 + 1000), planned(T0 + 2000)
    store.plan_sweeps("team-a", [first, second], T0)
    assert store.advance_sweep(first, Phase.CARDED)
    assert store.advance_sweep(second, Phase.SORTING)
    store.plan_sweeps("team-a", [planned(T0 + 5000)], T0 + 200)
    stored = {s.id: s for s in store.sweeps("team-a")}
    assert stored[first.id].phase is Phase.CALLED_OFF and stored[first.id].due is None
    assert stored[second.id].phase is Phase.CALLED_OFF
    third = store.sweep(sweep_id("team-a", T0 + 5000))
    assert third is not None and store.advance_sweep(third, Phase.CARDED)
    store.plan_sweeps("team-a", [], T0 + 5000)  # its end has come: not called off
    assert store.sweep(third.id).phase is Phase.CARDED  # type: ignore[union-attr]
    # planned again before its end (the change undone): it starts afresh; an operator's
    # card keeps its id (one already posted still works), what it listed is drawn again
    card = store.add_sweep_card(first.id, "U0ANNA")
    store.put_sweep_items([SweepItem(first.id, ref(1).key, "U0ANNA", card, Group.FINISHED)])
    store.plan_sweeps("team-a", [first], T0 + 300)
    again = store.sweep(first.id)
    assert again is not None and (again.phase, again.due, again.drawn_at) == (
        Phase.PLANNED, first.sweep_at, None)
    assert store.sweep_items(first.id) == [] and store.add_sweep_card(first.id, "U0ANNA") == card
    # cards out, and the shifts ending then change: drawn again too
    assert store.advance_sweep(again, Phase.CARDED)
    store.plan_sweeps("team-a", [replace(first, shifts=("", "late"))], T0 + 300)
    redrawn = store.sweep(first.id)
    assert redrawn is not None and (redrawn.phase, redrawn.shifts) == (Phase.PLANNED,
                                                                        ("", "late"))


def test_a_sweep_moves_on_once_from_the_version_it_was_read_at(store: Store) -> None:
    store.plan_sweeps("team-a", [planned(T0 + 1000)], T0)
    read = store.due_sweeps(T0 + 100, 1)[0]
    assert store.advance_sweep(read, Phase.CARDED)
    assert not store.advance_sweep(read, Phase.CARDED)  # another process read it too
    carded = store.sweep(read.id)
    assert carded is not None and carded.phase is Phase.CARDED
    assert store.due_sweeps(T0 + 999, 5) == [] and store.next_deadline() == T0 + 1000
    assert store.advance_sweep(replace(carded, opens_at=T0 + 7000), Phase.HANDED)
    handed = store.sweep(read.id)
    assert handed is not None and handed.opens_at == T0 + 7000
    assert [s.id for s in store.due_sweeps(T0 + 7000, 5)] == [read.id]
    assert store.advance_sweep(handed, Phase.DONE)
    assert store.due_sweeps(T0 + 1e9, 5) == [] and store.next_deadline() is None


def test_a_failed_step_of_a_sweep_is_postponed(store: Store) -> None:
    store.plan_sweeps("team-a", [planned(T0 + 1000)], T0)
    store.postpone_sweep(sweep_id("team-a", T0 + 1000), T0 + 130)
    assert store.due_sweeps(T0 + 129, 5) == [] and len(store.due_sweeps(T0 + 130, 5)) == 1


def test_sweep_cards_and_items_are_kept_per_sweep(store: Store) -> None:
    store.plan_sweeps("team-a", [planned(T0 + 1000)], T0)
    sweep = sweep_id("team-a", T0 + 1000)
    card = store.add_sweep_card(sweep, "U0ANNA")
    assert store.add_sweep_card(sweep, "U0ANNA") == card  # one card per operator
    other = store.add_sweep_card(sweep, "U0BOB")
    assert other != card and store.sweep_card(other) == (sweep, "U0BOB")
    assert store.sweep_card(other + 100) is None
    items = [SweepItem(sweep, ref(1).key, "U0ANNA", card, Group.FINISHED),
             SweepItem(sweep, ref(2).key, None, None, Group.UNOWNED)]
    store.put_sweep_items(items)
    decided = replace(items[0], choice=Choice.KEEP, fate=Fate.KEEP)
    store.put_sweep_items([decided])
    assert store.sweep_items(sweep) == [items[1], decided] or \
        store.sweep_items(sweep) == [decided, items[1]]
    assert store.sweep_items("team-a@1") == []


def test_a_sweeps_items_are_read_by_card_or_by_conversation(store: Store) -> None:
    sweep = sweep_id("team-a", T0 + 1000)
    anna, bob = store.add_sweep_card(sweep, "U0ANNA"), store.add_sweep_card(sweep, "U0BOB")
    assert store.sweep_cards(sweep) == [(anna, "U0ANNA"), (bob, "U0BOB")]
    assert store.sweep_cards("team-a@1") == []
    items = [SweepItem(sweep, ref(n).key, "U0ANNA" if n % 2 else "U0BOB",
                       anna if n % 2 else bob, Group.WITH_CUSTOMER, customer=f"cust-{n}",
                       preview="hello", since=T0 + n) for n in range(1, 8)]
    store.put_sweep_items(items)
    assert store.sweep_items(sweep, card=anna) == items[0::2]
    assert store.sweep_items(sweep, [ref(n).key for n in (6, 2, 99)]) == [items[1], items[5]]
    assert store.sweep_items(sweep, []) == []


def test_open_conversations_come_a_slice_at_a_time_by_key(store: Store) -> None:
    for n in range(1, 8):
        store.commit(Change(new(n, state=State.CLOSED if n == 4 else State.QUEUED)), T0)
    store.commit(Change(new(9, team="team-b")), T0)
    first = store.open_conversations("team-a", "", 3)
    rest = store.open_conversations("team-a", first[-1].ref.key, 10)
    assert [c.ref.key for c in first + rest] == [ref(n).key for n in (1, 2, 3, 5, 6, 7)]
    assert first[0] == store.load(ref(1).key)
    assert store.open_conversations("team-a", rest[-1].ref.key, 10) == []


def test_the_inbox_of_a_sweep_is_what_it_handed_over_and_nobody_claimed(store: Store) -> None:
    sweep = sweep_id("team-a", T0 + 1000)
    waits = {1: T0 + 50, 2: T0 + 10, 3: T0 + 30, 4: T0 + 20}
    for n, since in waits.items():
        store.commit(Change(new(n, waiting_since=since)), T0)
    store.commit(Change(new(5, state=State.CLAIMED, owner="U0BOB")), T0)  # claimed since
    store.put_sweep_items([
        SweepItem(sweep, ref(1).key, "U0ANNA", 1, Group.CUSTOMER_WAITING, fate=Fate.HAND_OVER),
        SweepItem(sweep, ref(2).key, None, None, Group.UNOWNED, fate=Fate.UNOWNED),
        SweepItem(sweep, ref(3).key, "U0ANNA", 1, Group.FINISHED, fate=Fate.KEEP),
        SweepItem(sweep, ref(4).key, "U0BOB", 2, Group.WITH_CUSTOMER, fate=Fate.HAND_OVER),
        SweepItem(sweep, ref(5).key, "U0ANNA", 1, Group.WITH_CUSTOMER, fate=Fate.HAND_OVER)])
    assert store.sweep_inbox(sweep) == [  # oldest waiting first
        HandoverLine(ref(2).key, "cust-2", "", T0 + 10, None),
        HandoverLine(ref(4).key, "cust-4", "", T0 + 20, "U0BOB"),
        HandoverLine(ref(1).key, "cust-1", "", T0 + 50, "U0ANNA")]


def test_teams_are_those_with_conversations(store: Store) -> None:
    assert store.teams() == []
    store.commit(Change(new(1, team="team-a")), T0)
    store.commit(Change(new(2, team="team-b")), T0)
    store.commit(Change(new(3, team="team-a")), T0)
    assert sorted(store.teams()) == ["team-a", "team-b"]


def test_history_of_some_kinds_only(store: Store) -> None:
    a, b = new(1), new(2, team="team-b")
    store.commit(Change(a, history=(event(a, "opened", T0), event(a, "reply", T0 + 5),
                                    event(a, "claimed", T0 + 10))), T0)
    store.commit(Change(b, history=(event(b, "opened", T0 + 5),)), T0)
    assert [h.kind for h in store.history("team-a", 0, ("opened", "claimed"))] == \
        ["opened", "claimed"]
    assert [h.kind for h in store.history(None, 0, ["opened"])] == ["opened", "opened"]
    assert store.history("team-a", 0, ()) == []
    assert [h.kind for h in store.history("team-a", T0 + 1, {"opened", "claimed"})] == \
        ["claimed"]

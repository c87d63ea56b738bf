"""The service: one event, one transaction; duplicates skipped; policy changes take effect."""

from __future__ import annotations

import asyncio

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.commands import CommandContext, run
from chat_rescue.bot.model import (
    Claim,
    ConversationRef,
    CustomerMessage,
    OperatorMessage,
    Relay,
    State,
    Timer,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change, Outcome
from chat_rescue.bot.service import Service
from chat_rescue.storage.sqlite import SQLiteStore

REF = ConversationRef("test", "C1", "t1")


def make(preview_chars: int = 80) -> tuple[Service, SQLiteStore, FakeClock]:
    store = SQLiteStore("sqlite://")
    clock = FakeClock()
    return Service(store, Policy(), clock, preview_chars=preview_chars), store, clock


def test_the_same_inbound_id_is_processed_once() -> None:
    service, store, clock = make()
    event = CustomerMessage(REF, clock.now(), "alice", "hello", "team")
    assert service.handle(event, inbound_id="slack:Ev1") is not None
    assert service.handle(event, inbound_id="slack:Ev1") is None
    assert len(store.history("team", 0)) == 1
    assert len(store.pending(10)) == 1


def test_aliases_are_recorded_for_conversations_that_exist() -> None:
    service, store, clock = make()
    opened = CustomerMessage(REF, clock.now(), "alice", "hello", "team")
    service.handle(opened, inbound_id="slack:Ev1", aliases=("message:C1:t2",))
    service.handle(OperatorMessage(REF, clock.now(), "ana"), inbound_id="slack:Ev2",
                   aliases=("message:C1:t3",))
    nobody = OperatorMessage(ConversationRef("test", "C1", "t9"), clock.now(), "ana")
    service.handle(nobody, inbound_id="slack:Ev3", aliases=("message:C1:t10",))
    assert store.resolve("message:C1:t2") == store.resolve("message:C1:t3") == REF.key
    assert store.resolve("message:C1:t10") is None  # a thread that is no conversation


def test_queued_actions_change_no_conversation_and_are_queued_once() -> None:
    service, store, clock = make()
    service.handle(CustomerMessage(REF, clock.now(), "alice", "hello", "team"))
    before, woken = store.load(REF.key), []
    service.on_outbox(woken.append)
    copy = Relay(REF, False, "C1", "7", edited=True)
    assert service.queue([copy], inbound_id="telegram:9") is True
    assert service.queue([copy], inbound_id="telegram:9") is False
    assert store.load(REF.key) == before and len(store.history("team", 0)) == 1
    assert [item.action for item in store.pending(10)][1:] == [copy]
    assert woken == [(copy,)]


def test_only_a_short_preview_of_the_message_is_stored() -> None:
    service, store, clock = make(preview_chars=10)
    service.handle(CustomerMessage(REF, clock.now(), "alice", "my card number is 4111 1111"))
    conv = store.load(REF.key)
    assert conv is not None and conv.preview == "my card n…"
    service, store, clock = make(preview_chars=0)
    service.handle(CustomerMessage(REF, clock.now(), "alice", "secret"))
    conv = store.load(REF.key)
    assert conv is not None and conv.preview == ""


def test_a_shorter_timer_set_by_an_admin_moves_open_deadlines_now() -> None:
    service, store, clock = make()
    service.handle(CustomerMessage(REF, clock.now(), "alice", "hi", "team"))
    service.handle(OperatorMessage(REF, clock.now(), "ana"))
    service.handle(CustomerMessage(REF, clock.now(), "alice", "?", "team"))
    conv = store.load(REF.key)
    assert conv is not None and conv.deadline == clock.now() + 300
    ctx = CommandContext("team", ConversationRef("test", "TEAM"), "ana", is_admin=True)
    assert run("set idle 1m", ctx, service) == "idle is now 1m for the team."
    conv = store.load(REF.key)
    assert conv is not None
    assert (conv.deadline, conv.deadline_timer) == (clock.now() + 60, Timer.IDLE)


class RacingStore(SQLiteStore):
    """Another replica claims the conversation just before our first commit lands."""

    raced = True  # armed by the test once the conversation exists

    def commit(self, change: Change, now: float) -> Outcome:
        if not self.raced and change.conversation is not None and change.history:
            self.raced = True
            conv = self.load(change.conversation.ref.key)
            assert conv is not None
            from chat_rescue.bot import engine

            other = engine.decide(conv, Claim(REF, now, "ben"), Policy(), now)
            super().commit(Change(other.conversation, conv.version, other.history), now)
        return super().commit(change, now)


def test_a_lost_race_is_decided_again_and_yields_one_owner() -> None:
    store = RacingStore("sqlite://")
    clock = FakeClock()
    service = Service(store, Policy(), clock)
    service.handle(CustomerMessage(REF, clock.now(), "alice"))
    store.raced = False
    decision = service.handle(Claim(REF, clock.now(), "ana"))
    conv = store.load(REF.key)
    assert conv is not None and conv.owner == "ben" and conv.state is State.CLAIMED
    assert decision is not None
    assert [type(a).__name__ for a in decision.actions] == ["Refused"]


async def test_submitted_events_share_a_transaction_and_each_gets_its_result() -> None:
    service, store, clock = make()
    commits: list[str] = []
    told: list[list[tuple[str, str | None]]] = []
    real_batch = store.batch

    def counting_batch(intents=()):  # type: ignore[no-untyped-def]
        commits.append("batch")
        told.append([(i.key, i.inbound_id) for i in intents])
        return real_batch(intents)

    store.batch = counting_batch  # type: ignore[method-assign]
    refs = [ConversationRef("test", "C1", f"t{n}") for n in range(5)]
    results = await asyncio.gather(
        *(service.submit(CustomerMessage(r, clock.now(), "alice", "hi"), inbound_id=r.key)
          for r in refs),
        service.submit(CustomerMessage(refs[0], clock.now(), "alice", "hi"),
                       inbound_id=refs[0].key),
    )
    assert commits == ["batch"]
    assert told == [[(r.key, r.key) for r in [*refs, refs[0]]]]  # what the batch is for
    assert [d is not None for d in results] == [True] * 5 + [False]  # the repeat is skipped
    assert all(store.load(r.key) is not None for r in refs)


async def test_a_failing_event_does_not_sink_the_others_in_its_transaction() -> None:
    service, store, clock = make()
    good = ConversationRef("test", "C1", "good")
    bad = ConversationRef("test", "C1", "bad")
    real = service.handle

    def handle(event, **kw):  # type: ignore[no-untyped-def]
        if event.ref == bad:
            raise RuntimeError("broken translator")
        return real(event, **kw)

    service.handle = handle  # type: ignore[method-assign]
    outcomes = await asyncio.gather(
        service.submit(CustomerMessage(bad, clock.now(), "x")),
        service.submit(CustomerMessage(good, clock.now(), "y")),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], RuntimeError)
    assert store.load(good.key) is not None and store.load(bad.key) is None


def test_a_refused_button_press_queues_nothing_but_a_refused_reaction_does() -> None:
    service, store, clock = make()
    service.handle(CustomerMessage(REF, clock.now(), "alice", "hello", "team"))
    service.handle(Claim(REF, clock.now(), "ana"))
    before = len(store.pending(100))
    pressed = service.handle(Claim(REF, clock.now(), "ben", via="button"),
                             inbound_id="slack:click-1")
    assert pressed is not None and pressed.refusal is not None  # the adapter answers it
    assert len(store.pending(100)) == before  # no slot of the team channel's pacing
    reacted = service.handle(Claim(REF, clock.now(), "ben", via="reaction"))
    assert reacted is not None and reacted.refusal is not None
    assert len(store.pending(100)) == before + 1  # a reaction has no press to answer on

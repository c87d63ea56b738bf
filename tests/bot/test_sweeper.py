"""The sweep carried out on a fake clock: cards before the shift ends, the choices and the
default rule at the end, the handover digest at the next opening; each step once, even
when a step fails half-way or the process starts again on the same store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from chat_rescue.bot import sweeper as sweeper_module
from chat_rescue.bot import texts
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.commands import CommandContext, run
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.model import (
    CARD_BUTTON,
    Action,
    Claim,
    Close,
    CloseNotice,
    ConversationRef,
    CustomerMessage,
    HandOff,
    HandoverDigest,
    InboundEvent,
    OperatorMessage,
    Refused,
    ShiftEnd,
    State,
    SweepCard,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.bot.sweep import Choice, Fate, Phase
from chat_rescue.bot.sweeper import Sweeper
from chat_rescue.bot.ticker import Ticker
from chat_rescue.storage.sqlite import SQLiteStore

BERLIN = ZoneInfo("Europe/Berlin")
TEAM = "slack:C0TEAM"
WEEKDAYS = from_environment("mon-fri 09:00-18:00", "Europe/Berlin", "")
POLICY = Policy(accept=600, first_response=600, idle=3600, escalate=600, close_reminder=1800,
                schedule=WEEKDAYS, sweep=900)


def at(text: str) -> float:
    """Berlin time; 4 December 2026 is a Friday."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def ref(name: str) -> ConversationRef:
    return ConversationRef("slack", "C0HELP", name)


class BrokenService(Service):
    """A service that fails on some conversations, as a corrupt row or a bug would."""

    broken: frozenset[str] = frozenset()

    def handle(self, event: InboundEvent, **kwargs: object):  # type: ignore[no-untyped-def]
        if event.ref.key in self.broken:
            raise RuntimeError(f"cannot decide {event.ref.key}")
        return super().handle(event, **kwargs)  # type: ignore[arg-type]

    def handle_all(self, events):  # type: ignore[no-untyped-def]
        for event, _ in events:
            if event.ref.key in self.broken:
                raise RuntimeError(f"cannot decide {event.ref.key}")
        return super().handle_all(events)


@dataclass
class Team:
    """One process on a store: a service, a sweeper, a fake clock."""

    store: SQLiteStore
    service: BrokenService
    sweeper: Sweeper
    clock: FakeClock

    def when(self, text: str) -> None:
        self.clock.t = at(text)

    def customer(self, name: str, text: str = "hello") -> None:
        self.service.handle(CustomerMessage(ref(name), self.clock.now(), name, text, TEAM))

    def operator(self, name: str, who: str) -> None:
        self.service.handle(OperatorMessage(ref(name), self.clock.now(), who))

    def tick(self) -> int:
        return self.sweeper.fire_due(self.clock.now())

    def queued(self, kind: type) -> list[Action]:
        return [item.action for item in self.store.pending(1000)
                if isinstance(item.action, kind)]

    def card(self, operator: str) -> SweepCard:
        [card] = [c for c in self.queued(SweepCard)
                  if isinstance(c, SweepCard) and c.operator == operator]
        assert isinstance(card, SweepCard)
        return card

    def state(self, name: str) -> tuple[State, str | None]:
        conv = self.store.load(ref(name).key)
        assert conv is not None
        return conv.state, conv.owner

    def closes(self) -> list[tuple[str, str | None]]:
        return [(h.ref.thread, h.detail) for h in self.store.history(TEAM, 0)
                if h.kind == "closed"]


def open_team(path: Path, clock: FakeClock, policy: Policy = POLICY) -> Team:
    store = SQLiteStore(f"sqlite:///{path}")
    service = BrokenService(store, policy, clock)
    sweeper = Sweeper(store, service, clock)
    sweeper.start()
    return Team(store, service, sweeper, clock)


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    opened = open_team(tmp_path / "t.db", FakeClock(at("2026-12-04 09:00")))
    yield opened
    opened.store.close()


def a_day(team: Team) -> None:
    """Friday: Ana has one finished, one waiting on the customer, one whose customer waits;
    Ben one finished; one nobody has."""
    team.when("2026-12-04 10:00")
    for name in ("done", "pending", "asking", "bens"):
        team.customer(name)
    team.when("2026-12-04 10:01")
    for name in ("done", "pending", "asking"):
        team.operator(name, "U0ANA")
    team.operator("bens", "U0BEN")
    team.when("2026-12-04 17:30")
    team.operator("pending", "U0ANA")  # 15 minutes before the sweep: not finished
    team.customer("asking", "and?")
    team.when("2026-12-04 17:40")
    team.customer("nobody", "hi, anyone?")
    assert team.tick() == 0  # the ticker's wake-up for a new team: its sweeps are planned


def test_cards_go_out_sweep_before_the_end_one_per_operator(team: Team) -> None:
    a_day(team)
    [sweep] = team.store.sweeps(TEAM)
    assert (sweep.sweep_at, sweep.ends_at) == (at("2026-12-04 17:45"), at("2026-12-04 18:00"))
    team.when("2026-12-04 17:44:59")
    assert team.tick() == 0 and team.queued(SweepCard) == []
    team.when("2026-12-04 17:45")
    assert team.tick() == 1
    ana = team.card("U0ANA")
    assert [(line.key, line.group) for line in ana.lines] == [
        (ref("done").key, "finished"), (ref("pending").key, "with_customer"),
        (ref("asking").key, "customer_waiting")]
    assert (ana.unowned, ana.ends_at, ana.drawn_at) == (1, at("2026-12-04 18:00"),
                                                        at("2026-12-04 17:45"))
    assert ana.ends_text == "today 18:00 (Berlin time)" and ana.rule == "handover"
    assert ana.lines[2].since == at("2026-12-04 17:30")  # the customer waits since then
    assert [line.group for line in team.card("U0BEN").lines] == ["finished"]
    assert team.store.sweep(sweep.id).phase is Phase.CARDED  # type: ignore[union-attr]
    assert team.tick() == 0  # nothing more before the end


def test_close_all_finished_closes_exactly_the_finished_ones(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    ana = team.card("U0ANA")
    team.when("2026-12-04 17:50")
    answer = team.sweeper.press(ana.card, "close_all", "", "U0ANA", inbound_id="click-1")
    assert answer is not None and answer.changed and answer.text == "Closed 1 conversation."
    assert team.closes() == [("done", "closed_at_shift_end")]
    assert team.state("pending") == (State.WAITING_ON_CUSTOMER, "U0ANA")
    assert team.state("bens") == (State.WAITING_ON_CUSTOMER, "U0BEN")  # another's card
    # the same click again (a platform's retry), and a second press: nothing more
    assert team.sweeper.press(ana.card, "close_all", "", "U0ANA", inbound_id="click-1") is None
    again = team.sweeper.press(ana.card, "close_all", "", "U0ANA")
    assert again is not None and not again.changed and team.closes() == [
        ("done", "closed_at_shift_end")]


def test_a_finished_one_whose_customer_wrote_since_the_card_is_not_closed(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.when("2026-12-04 17:47")
    team.customer("done", "wait, one more thing")
    answer = team.sweeper.press(team.card("U0ANA").card, "close_all", "", "U0ANA")
    assert answer is not None and not answer.changed
    assert answer.text.startswith("Closed none. 1 is no longer finished")
    assert team.closes() == []


def test_closing_one_whose_customer_wrote_since_the_card_is_refused(team: Team) -> None:
    """Close on a line drawn as finished, pressed after the customer wrote again: the
    customer waits on us now, and is never closed on unseen."""
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.when("2026-12-04 17:47")
    team.customer("done", "wait, one more thing")
    answer = team.sweeper.press(team.card("U0ANA").card, "close", ref("done").key, "U0ANA")
    assert answer is not None and answer.refused and answer.text == texts.WROTE_SINCE
    assert team.state("done") == (State.WAITING_ON_OPERATOR, "U0ANA")
    assert team.closes() == []


def test_a_sweep_whose_end_passed_while_the_bot_was_down_is_carried_out(tmp_path: Path) -> None:
    """Planned on Friday, the process dies before the cards; it starts again at 18:30: the
    end's rule all the same (planning Monday's sweep does not forget Friday's)."""
    clock = FakeClock(at("2026-12-04 09:00"))
    first = open_team(tmp_path / "down.db", clock)
    a_day(first)  # plans the team's sweeps
    first.store.close()
    clock.t = at("2026-12-04 18:30")
    restarted = open_team(tmp_path / "down.db", clock)
    try:
        assert restarted.tick() == 1
        assert restarted.state("done") == (State.CLOSED, "U0ANA")  # finished: closed
        assert restarted.state("asking") == (State.QUEUED, None)  # the rest handed over
        assert restarted.queued(SweepCard) == []  # no cards nobody could press any more
        assert [s.ends_at for s in restarted.store.sweeps(TEAM)] == [
            at("2026-12-04 18:00"), at("2026-12-07 18:00")]
    finally:
        restarted.store.close()


def test_the_end_applies_the_choices_and_the_default_rule(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    ana = team.card("U0ANA")
    press = team.sweeper.press
    assert press(ana.card, "keep", ref("asking").key, "U0ANA").changed  # type: ignore[union-attr]
    team.when("2026-12-04 18:00")
    assert team.tick() == 1
    # Ana: finished closed by the rule, the waiting one handed over, the kept one hers
    assert team.state("done") == (State.CLOSED, "U0ANA")
    assert team.state("pending") == (State.QUEUED, None)
    assert team.state("asking") == (State.WAITING_ON_OPERATOR, "U0ANA")
    assert team.state("bens") == (State.CLOSED, "U0BEN")
    assert team.state("nobody") == (State.QUEUED, None)
    assert sorted(team.closes()) == [("bens", "closed_at_shift_end"),
                                     ("done", "closed_at_shift_end")]
    fates = {item.conversation: (item.choice, item.fate)
             for item in team.store.sweep_items(team.store.sweeps(TEAM)[0].id)}
    assert fates[ref("asking").key] == (Choice.KEEP, Fate.KEEP)
    assert fates[ref("pending").key] == (None, Fate.HAND_OVER)
    assert fates[ref("nobody").key] == (None, Fate.UNOWNED)
    # the next sweep is Monday's, the digest is due at Monday's opening
    first, monday = team.store.sweeps(TEAM)
    assert first.phase is Phase.HANDED and first.opens_at == at("2026-12-07 09:00")
    assert monday.ends_at == at("2026-12-07 18:00") and monday.phase is Phase.PLANNED
    team.when("2026-12-07 08:59:59")
    assert team.tick() == 0 and team.queued(HandoverDigest) == []


def test_the_next_shift_opens_with_the_handover_digest_oldest_first(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    ana = team.card("U0ANA")
    team.sweeper.press(ana.card, "hand_rest", "", "U0ANA")
    team.when("2026-12-04 18:00")
    team.tick()
    team.when("2026-12-07 09:00")
    team.customer("late", "Monday morning question")  # no sweep's business
    assert team.tick() == 1
    [digest] = team.queued(HandoverDigest)
    assert isinstance(digest, HandoverDigest)
    assert [(line.key, line.previous_owner) for line in digest.lines] == [
        (ref("asking").key, "U0ANA"),  # handed over at 18:00, waiting since 17:30
        (ref("nobody").key, None),  # nobody had it, waiting since 17:40
        (ref("pending").key, "U0ANA"),  # handed over at 18:00, the operator spoke last
    ]
    assert digest.drawn_at == at("2026-12-07 09:00")
    assert [line.since for line in digest.lines] == sorted(line.since for line in digest.lines)
    assert team.store.sweeps(TEAM)[0].phase is Phase.DONE


def test_a_conversation_claimed_before_the_opening_is_not_in_the_digest(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 18:00")  # the cards' moment passed while the bot was down
    assert team.tick() == 1
    assert team.queued(SweepCard) == []  # no cards after the end: only the rule
    assert team.state("pending") == (State.QUEUED, None)
    team.when("2026-12-05 10:00")
    team.service.handle(Claim(ref("pending"), team.clock.now(), "U0CARL"))
    team.when("2026-12-07 09:00")
    team.tick()
    [digest] = team.queued(HandoverDigest)
    assert isinstance(digest, HandoverDigest)
    assert {line.key for line in digest.lines} == {ref("asking").key, ref("nobody").key}


def test_with_the_keep_rule_what_nobody_decided_stays_with_its_owner(tmp_path: Path) -> None:
    team = open_team(tmp_path / "k.db", FakeClock(at("2026-12-04 09:00")),
                     replace(POLICY, sweep_default="keep"))
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    assert team.card("U0ANA").rule == "keep"
    team.sweeper.press(team.card("U0ANA").card, "hand_off", ref("asking").key, "U0ANA")
    team.when("2026-12-04 18:00")
    team.tick()
    assert team.state("done") == (State.WAITING_ON_CUSTOMER, "U0ANA")
    assert team.state("asking") == (State.QUEUED, None)  # the one she handed off
    assert team.closes() == []
    team.store.close()


def test_the_closing_message_goes_to_customers_closed_at_the_end(tmp_path: Path) -> None:
    """By the end's rule, and by Close all finished on the card alike."""
    team = open_team(tmp_path / "c.db", FakeClock(at("2026-12-04 09:00")),
                     replace(POLICY, closing_message="We close this chat; write any time."))
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.sweeper.press(team.card("U0BEN").card, "close_all", "", "U0BEN")
    told = [a.ref.thread for a in team.queued(CloseNotice) if isinstance(a, CloseNotice)]
    assert told == ["bens"]
    team.when("2026-12-04 18:00")
    team.tick()
    told = [a.ref.thread for a in team.queued(CloseNotice) if isinstance(a, CloseNotice)]
    assert sorted(told) == ["bens", "done"]
    team.store.close()


def test_presses_after_the_end_or_on_anothers_card_change_nothing(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    ana, ben = team.card("U0ANA"), team.card("U0BEN")
    refused = team.sweeper.press(ana.card, "close_all", "", "U0BEN")
    assert refused is not None and refused.refused and refused.whose == "U0ANA"
    assert refused.text == texts.not_your_card("U0ANA")
    # an admin may decide for Ben
    by_admin = team.sweeper.press(ben.card, "close", ref("bens").key, "U0ANA", admin=True)
    assert by_admin is not None and by_admin.changed
    assert team.closes() == [("bens", "closed_at_shift_end")]
    wrong = team.sweeper.press(ana.card, "keep", ref("bens").key, "U0ANA")
    assert wrong is not None and wrong.refused and wrong.text == texts.NOT_ON_CARD
    team.when("2026-12-04 17:59:59")
    team.service.handle(Claim(ref("nobody"), team.clock.now(), "U0CARL"))
    team.when("2026-12-04 18:00")
    late = team.sweeper.press(ana.card, "close_all", "", "U0ANA")  # a moment too late
    assert late is not None and late.refused and late.text == texts.SWEEP_OVER
    assert team.closes() == [("bens", "closed_at_shift_end")]
    unknown = team.sweeper.press(ana.card + 99, "close_all", "", "U0ANA")
    assert unknown is not None and unknown.refused and unknown.text == texts.SWEEP_UNKNOWN
    # a refused press is recorded too: redelivered, it is not answered again
    assert team.sweeper.press(ana.card, "keep", "", "U0ANA", inbound_id="tg:77") is not None
    assert team.sweeper.press(ana.card, "keep", "", "U0ANA", inbound_id="tg:77") is None


def test_a_card_whose_owner_changed_is_told_it_moved_on(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.when("2026-12-04 17:50")
    team.service.handle(HandOff(ref("asking"), team.clock.now(), "U0ANA", notice_id=CARD_BUTTON))
    moved = team.sweeper.press(team.card("U0ANA").card, "keep", ref("asking").key, "U0ANA")
    assert moved is not None and moved.refused and moved.text == texts.MOVED_ON


def test_a_step_that_fails_half_way_leaves_no_trace_and_is_tried_again(
        team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.when("2026-12-04 18:00")
    monkeypatch.setattr(team.store, "sweep_items", lambda *a, **k: 1 / 0)  # a store error
    assert team.tick() == 1  # taken, failed, postponed
    monkeypatch.undo()
    assert team.closes() == [] and team.state("done") == (State.WAITING_ON_CUSTOMER, "U0ANA")
    assert team.store.sweeps(TEAM)[0].phase is Phase.CARDED
    team.when("2026-12-04 18:00:29")
    assert team.tick() == 0
    team.when("2026-12-04 18:00:30")
    assert team.tick() == 1
    assert sorted(team.closes()) == [("bens", "closed_at_shift_end"),
                                     ("done", "closed_at_shift_end")]


def test_a_second_process_or_a_restart_repeats_no_step(tmp_path: Path) -> None:
    clock = FakeClock(at("2026-12-04 09:00"))
    first = open_team(tmp_path / "two.db", clock)
    a_day(first)
    second = open_team(tmp_path / "two.db", clock)  # another process on the same file
    first.when("2026-12-04 17:45")
    stale = first.store.due_sweeps(clock.now(), 5)
    assert first.tick() == 1 and second.tick() == 0
    first.sweeper.advance(stale[0], clock.now())  # read before the step: changes nothing
    assert len(first.queued(SweepCard)) == 2
    clock.t = at("2026-12-04 18:00")
    assert second.tick() == 1 and first.tick() == 0
    kinds = [h.kind for h in first.store.history(TEAM, 0)]
    assert kinds.count("closed") == 2 and kinds.count("returned") == 2
    restarted = open_team(tmp_path / "two.db", clock)  # after kill -9: plans, repeats nothing
    assert restarted.tick() == 0
    assert [s.phase for s in restarted.store.sweeps(TEAM)] == [Phase.HANDED, Phase.PLANNED]
    for team in (first, second, restarted):
        team.store.close()


def test_named_shifts_sweep_their_members_at_their_own_end(team: Team) -> None:
    admin = CommandContext(TEAM, ConversationRef("slack", "C0TEAM"), "U0ANA", is_admin=True,
                           person=lambda word: word.lstrip("@"))
    assert run("shift late 14:00-22:00 @U0BEN", admin, team.service).startswith("Shift late:")
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    assert [card.operator for card in team.queued(SweepCard)] == ["U0ANA"]  # type: ignore[attr-defined]
    team.when("2026-12-04 18:00")
    team.tick()
    assert team.state("bens") == (State.WAITING_ON_CUSTOMER, "U0BEN")  # still on shift
    # the late shift is at work at 18:00: what the day handed over goes to it at once
    assert len(team.queued(HandoverDigest)) == 1
    team.when("2026-12-04 21:45")
    team.tick()
    assert [card.operator for card in team.queued(SweepCard)] == ["U0ANA", "U0BEN"]  # type: ignore[attr-defined]
    team.when("2026-12-04 22:00")
    team.tick()
    assert team.state("bens") == (State.CLOSED, "U0BEN")


def test_sweep_off_plans_none_and_turning_it_off_forgets_the_planned(team: Team) -> None:
    a_day(team)
    assert len(team.store.sweeps(TEAM)) == 1
    admin = CommandContext(TEAM, ConversationRef("slack", "C0TEAM"), "U0ANA", is_admin=True)
    assert run("set sweep off", admin, team.service) == "sweep is now off for the team."
    assert team.store.sweeps(TEAM) == []
    assert run("set sweep 5m", admin, team.service) == "sweep is now 5m for the team."
    [sweep] = team.store.sweeps(TEAM)
    assert sweep.sweep_at == at("2026-12-04 17:55")


def test_changing_the_hours_after_the_cards_went_out_calls_the_old_end_off(
        team: Team) -> None:
    """Cards out for 18:00; the lead moves today's closing to 20:00: nothing is handed over
    at 18:00, a press on the old card says it was called off, the new end sweeps."""
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    ana = team.card("U0ANA")
    admin = CommandContext(TEAM, ConversationRef("slack", "C0TEAM"), "U0ANA", is_admin=True)
    team.when("2026-12-04 17:50")
    run("holiday 2026-12-04 09:00-20:00", admin, team.service)
    off = team.sweeper.press(ana.card, "close_all", "", "U0ANA")
    assert off is not None and off.refused and off.text == texts.SWEEP_CALLED_OFF
    team.when("2026-12-04 18:00")
    assert team.tick() == 0
    assert team.closes() == [] and team.state("pending") == (State.WAITING_ON_CUSTOMER, "U0ANA")
    team.when("2026-12-04 19:45")
    team.tick()
    assert len(team.queued(SweepCard)) == 4  # the old two and the new two
    team.when("2026-12-04 20:00")
    team.tick()
    assert team.state("asking") == (State.QUEUED, None)  # handed over at the new end


def test_sweep_off_after_the_cards_went_out_hands_nothing_over(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    admin = CommandContext(TEAM, ConversationRef("slack", "C0TEAM"), "U0ANA", is_admin=True)
    run("set sweep off", admin, team.service)
    team.when("2026-12-04 18:00")
    team.tick()
    assert team.closes() == [] and team.state("asking") == (State.WAITING_ON_OPERATOR, "U0ANA")


def test_one_taken_after_the_cards_were_drawn_follows_the_rule(team: Team) -> None:
    """Not on its owner's card, so undecided: the end hands it over by the rule (a customer
    is never left with an operator who has gone home), and it is in the next digest."""
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.when("2026-12-04 17:50")
    team.service.handle(Claim(ref("nobody"), team.clock.now(), "U0ANA"))  # from the inbox
    team.when("2026-12-04 18:00")
    team.tick()
    assert team.state("nobody") == (State.QUEUED, None)
    team.when("2026-12-07 09:00")
    team.tick()
    [digest] = team.queued(HandoverDigest)
    assert ref("nobody").key in [line.key for line in digest.lines]  # type: ignore[attr-defined]


def admin_of(team: Team) -> CommandContext:
    return CommandContext(TEAM, ConversationRef("slack", "C0TEAM"), "U0ANA", is_admin=True,
                          person=lambda word: word.lstrip("@"))


def test_sweep_off_and_on_again_before_the_end_sweeps_at_the_end(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.when("2026-12-04 17:50")
    run("set sweep off", admin_of(team), team.service)
    team.when("2026-12-04 17:52")
    run("set sweep 15m", admin_of(team), team.service)
    team.tick()
    assert len(team.queued(SweepCard)) == 4  # drawn afresh
    team.when("2026-12-04 18:00")
    team.tick()
    assert team.state("asking") == (State.QUEUED, None)


def test_hours_changed_and_changed_back_sweep_the_end_and_the_days_after(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.when("2026-12-04 17:50")
    run("hours mon-fri 09:00-20:00 Europe/Berlin", admin_of(team), team.service)
    team.when("2026-12-04 17:55")
    run("hours mon-fri 09:00-18:00 Europe/Berlin", admin_of(team), team.service)
    team.when("2026-12-04 18:00")
    team.tick()
    assert team.state("asking") == (State.QUEUED, None)
    assert [s.ends_at for s in team.store.sweeps(TEAM) if s.phase is Phase.PLANNED] == [
        at("2026-12-07 18:00")]


def test_a_process_that_loses_the_race_for_a_slice_leaves_no_card_behind(
        tmp_path: Path) -> None:
    clock = FakeClock(at("2026-12-04 09:00"))
    one, two = open_team(tmp_path / "r.db", clock), open_team(tmp_path / "r.db", clock)
    a_day(one)
    one.when("2026-12-04 17:45")
    [seen_by_two] = two.store.due_sweeps(clock.now(), 1)
    [seen_by_one] = one.store.due_sweeps(clock.now(), 1)
    one.sweeper.advance(seen_by_one, clock.now())
    one.service.handle(Claim(ref("nobody"), clock.now(), "U0CAT"))
    assert two.sweeper.advance(seen_by_two, clock.now()) == 0
    while one.tick():
        pass
    assert sorted(c.operator for c in one.queued(SweepCard)) == [  # type: ignore[attr-defined]
        "U0ANA", "U0BEN"]
    for each in (one, two):
        each.store.close()


def test_one_broken_conversation_does_not_hold_up_the_teams_sweeps(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.service.broken = frozenset({ref("asking").key})  # a corrupt row, for good
    team.when("2026-12-04 18:00")
    team.tick()
    assert team.state("done")[0] is State.CLOSED and team.state("bens")[0] is State.CLOSED
    assert team.state("asking") == (State.WAITING_ON_OPERATOR, "U0ANA")  # left as it was
    assert [s.ends_at for s in team.store.sweeps(TEAM) if s.phase is Phase.PLANNED] == [
        at("2026-12-07 18:00")]


def test_two_ends_missed_while_the_bot_was_down_are_both_carried_out(tmp_path: Path) -> None:
    clock = FakeClock(at("2026-12-04 09:00"))
    first = open_team(tmp_path / "d.db", clock)
    run("shift late 14:00-22:00 @U0BEN", admin_of(first), first.service)
    a_day(first)
    first.when("2026-12-04 13:00")
    first.tick()
    first.store.close()  # down from 13:00 to 23:00: the 18:00 and the 22:00 end missed
    clock.t = at("2026-12-04 23:00")
    again = open_team(tmp_path / "d.db", clock)
    while again.tick():
        pass
    assert again.state("asking") == (State.QUEUED, None)  # the 18:00 end (Ana)
    assert again.state("bens")[0] is State.CLOSED  # the 22:00 end (Ben): finished, closed
    again.store.close()


def test_a_big_team_is_swept_a_slice_at_a_time_and_a_restart_between_slices_repeats_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeper_module, "SLICE", 4)
    clock = FakeClock(at("2026-12-04 09:00"))
    first = open_team(tmp_path / "big.db", clock)
    a_day(first)
    first.when("2026-12-04 11:00")
    for n in range(10):  # eleven of Ana's finished in all, one of them "done"
        first.customer(f"old{n}")
        first.operator(f"old{n}", "U0ANA")
    first.when("2026-12-04 17:45")
    assert first.tick() == 1 and first.queued(SweepCard) == []  # 4 of 15 sorted
    [sweep] = first.store.sweeps(TEAM)
    assert sweep.phase is Phase.SORTING and sweep.cursor
    first.store.close()
    again = open_team(tmp_path / "big.db", clock)  # killed between slices
    while again.queued(SweepCard) == []:
        assert again.tick() == 1
    ana = again.card("U0ANA")
    assert len(ana.lines) == 13 and ana.unowned == 1 and ana.drawn_at == at("2026-12-04 17:45")
    assert [line.group for line in ana.lines].count("finished") == 11
    again.when("2026-12-04 18:00")
    assert again.tick() == 1
    [sweep] = [s for s in again.store.sweeps(TEAM) if s.ends_at == at("2026-12-04 18:00")]
    assert sweep.phase is Phase.ENDING and len(again.closes()) < 12
    again.store.close()
    last = open_team(tmp_path / "big.db", clock)
    while last.tick():
        pass
    closes = last.closes()
    assert len(closes) == len(set(closes)) == 12  # Ana's eleven and Ben's one, each once
    assert last.state("asking") == (State.QUEUED, None)
    last.store.close()


def test_cards_half_drawn_when_the_bot_went_down_past_the_end_follow_the_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sorting stopped half-way (killed), back after the end: no card went out, so the
    rule applies to every one, whoever took it when."""
    monkeypatch.setattr(sweeper_module, "SLICE", 3)
    clock = FakeClock(at("2026-12-04 09:00"))
    first = open_team(tmp_path / "half.db", clock)
    a_day(first)
    first.when("2026-12-04 17:45")
    assert first.tick() == 1 and first.store.sweeps(TEAM)[0].phase is Phase.SORTING
    first.when("2026-12-04 17:50")
    first.service.handle(Claim(ref("nobody"), first.clock.now(), "U0ANA"))
    first.store.close()
    clock.t = at("2026-12-04 18:30")
    again = open_team(tmp_path / "half.db", clock)
    while again.tick():
        pass
    assert again.queued(SweepCard) == []
    assert again.state("nobody") == (State.QUEUED, None)  # the rule: handed over
    assert sorted(again.closes()) == [("bens", "closed_at_shift_end"),
                                      ("done", "closed_at_shift_end")]
    again.store.close()


def test_a_seam_between_two_shifts_of_the_same_people_hands_nothing_over(
        team: Team) -> None:
    """Ben works early and late back to back: at 14:00 nobody goes home, so no card, no
    hand-over and no digest of the inbox."""
    run("shift early fri 09:00-14:00 @U0BEN", admin_of(team), team.service)
    run("shift late fri 14:00-18:00 @U0BEN", admin_of(team), team.service)
    run("set sweep off", admin_of(team), team.service)
    team.when("2026-12-04 10:00")
    team.customer("bens")
    team.operator("bens", "U0BEN")
    team.customer("bens", "and?")
    team.customer("nobody", "hi?")
    run("set sweep 15m", admin_of(team), team.service)
    team.when("2026-12-04 13:45")
    team.tick()
    team.when("2026-12-04 14:00")
    team.tick()
    assert team.queued(SweepCard) == [] and team.queued(HandoverDigest) == []
    assert team.state("bens") == (State.WAITING_ON_OPERATOR, "U0BEN")


def test_the_ticker_takes_the_sweeps_steps(team: Team) -> None:
    ticker = Ticker(team.store, team.service, team.clock, sweeper=team.sweeper)
    a_day(team)
    team.when("2026-12-04 17:45")
    ticker.fire_due(team.clock.now())
    assert len(team.queued(SweepCard)) == 2
    assert team.store.sweeps(TEAM)[0].phase is Phase.CARDED


def test_a_shift_that_ends_at_the_same_end_added_after_the_cards_gets_its_cards(
        team: Team) -> None:
    """Ben joins a named shift ending at 18:00 too, after the cards went out: the sweep is
    drawn again (his old card keeps its id) and the end sweeps him."""
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    old = team.card("U0BEN")
    team.when("2026-12-04 17:50")
    run("shift late fri 14:00-18:00 @U0BEN", admin_of(team), team.service)
    [sweep] = team.store.sweeps(TEAM)
    assert sweep.phase is Phase.PLANNED and sweep.shifts == ("", "late")
    team.tick()
    drawn = [c for c in team.queued(SweepCard) if c.operator == "U0BEN"]  # type: ignore[attr-defined]
    assert [c.card for c in drawn] == [old.card, old.card]  # type: ignore[attr-defined]
    team.when("2026-12-04 18:00")
    while team.tick():
        pass
    assert team.state("bens") == (State.CLOSED, "U0BEN")


class Posting:
    """A platform that records what it posts (for the outbox's say on sweep cards)."""

    name = "slack"

    def __init__(self) -> None:
        self.posted: list[Action] = []

    async def deliver(self, action: Action) -> None:
        self.posted.append(action)

    def free_at(self, action: Action, now: float) -> float:
        return now

    def destination(self, action: Action) -> str:
        return "team"


async def test_cards_of_a_sweep_called_off_or_drawn_again_are_not_posted(team: Team) -> None:
    from chat_rescue.bot.outbox import Outbox

    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()  # cards queued; not yet posted (behind the team channel's pacing, say)
    team.when("2026-12-04 17:46")
    run("set sweep off", admin_of(team), team.service)
    run("set sweep 15m", admin_of(team), team.service)  # drawn again
    team.tick()
    posting = Posting()
    await Outbox(team.store, posting, team.clock).drain()  # type: ignore[arg-type]
    cards = [a for a in posting.posted if isinstance(a, SweepCard)]
    assert sorted(c.operator for c in cards) == ["U0ANA", "U0BEN"]  # the new drawing only
    assert {c.drawn_at for c in cards} == {team.clock.now()}
    run("set sweep off", admin_of(team), team.service)
    run("set sweep 15m", admin_of(team), team.service)
    run("set sweep off", admin_of(team), team.service)  # called off, with cards queued
    team.tick()
    await Outbox(team.store, posting, team.clock).drain()  # type: ignore[arg-type]
    assert len([a for a in posting.posted if isinstance(a, SweepCard)]) == 2
    assert team.store.pending(100) == []


def test_sweep_off_after_an_end_missed_while_down_sweeps_nothing(team: Team) -> None:
    a_day(team)
    team.when("2026-12-04 18:30")  # the bot was down at 18:00
    run("set sweep off", admin_of(team), team.service)
    team.tick()
    assert team.closes() == [] and team.state("asking") == (State.WAITING_ON_OPERATOR, "U0ANA")
    assert [s.phase for s in team.store.sweeps(TEAM)] == [Phase.CALLED_OFF]


async def test_the_console_shows_sweep_cards_and_handover_digests(team: Team) -> None:
    from chat_rescue.adapters.console import ConsolePlatform

    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.when("2026-12-04 18:00")
    team.tick()
    team.when("2026-12-07 09:00")
    team.tick()
    console = ConsolePlatform(team.clock, write=lambda line: None)
    for action in (team.card("U0ANA"), *team.queued(HandoverDigest)):
        await console.deliver(action)
    shown = "\n".join(console.lines)
    assert "@U0ANA, your shift ends today 18:00 (Berlin time). You have 3 open" in shown
    assert "[Finished but not closed] done: “hello” · silent 7h44m" in shown
    assert "[Close all finished (1)] [Hand the rest to the next shift]" in shown
    assert "Handed over from the last shift: 3 conversations" in shown


def test_handle_all_goes_one_by_one_when_one_changed_underneath(tmp_path: Path) -> None:
    """`a` changes after it was read: nothing of the lot is committed together; each goes
    on its own, the refusal (an action alone) queued once, the hand-over decided afresh."""
    clock = FakeClock(at("2026-12-04 10:00"))
    store = SQLiteStore(f"sqlite:///{tmp_path / 'h.db'}")
    service = Service(store, POLICY, clock)
    for name in ("a", "b"):
        service.handle(CustomerMessage(ref(name), clock.now(), name, "hi", TEAM))
        service.handle(OperatorMessage(ref(name), clock.now(), "U0ANA"))
    clock.t = at("2026-12-04 10:05")
    a, b = store.load(ref("a").key), store.load(ref("b").key)
    assert a is not None and b is not None
    service.handle(CustomerMessage(ref("a"), clock.now(), "a", "more", TEAM))
    with store.batch():
        service.handle_all([(Close(ref("b"), clock.now(), "U0BEN", via="command"), b),
                            (ShiftEnd(ref("a"), clock.now(), "U0ANA"), a)])
    refused = [i.action for i in store.pending(100) if isinstance(i.action, Refused)]
    assert len(refused) == 1
    after = store.load(ref("a").key)
    assert after is not None and (after.state, after.owner) == (State.QUEUED, None)
    store.close()


def _total(counter: object) -> float:
    return sum(sample.value for metric in counter.collect()  # type: ignore[attr-defined]
               for sample in metric.samples if sample.name.endswith("_total"))


def test_a_failed_sweep_step_counts_its_closes_once_when_it_goes_through(team: Team) -> None:
    # The step's batch fails after its closes were committed in savepoints: rolled back,
    # they are not counted; carried out on the next look, they are counted once.
    a_day(team)
    team.when("2026-12-04 17:45")
    team.tick()
    team.when("2026-12-04 18:00")
    put = team.store.put_sweep_items

    def refused(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the store refused the sweep items")

    team.store.put_sweep_items = refused  # type: ignore[method-assign]
    team.tick()
    team.store.put_sweep_items = put  # type: ignore[method-assign]
    assert team.closes() == [] and _total(team.service.metrics.closes) == 0
    team.when("2026-12-04 18:00:30")
    team.tick()
    assert len(team.closes()) == 2
    assert _total(team.service.metrics.closes) == 2

"""The rescue rules (DESIGN §1) as a table of cases, and invariants under random event streams."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_rescue.bot.authority import nudge_id, reminder_id
from chat_rescue.bot.engine import card_status, decide, next_deadline
from chat_rescue.bot.model import (
    CARD_BUTTON,
    Claim,
    Close,
    CloseNotice,
    CloseReason,
    CloseReminder,
    Conversation,
    ConversationRef,
    CustomerMessage,
    DeadlineDue,
    Escalate,
    HandOff,
    InboundEvent,
    KeepOpen,
    Nudge,
    OperatorMessage,
    PostCard,
    Refusal,
    Refused,
    ReturnToInbox,
    ShiftEnd,
    Snooze,
    State,
    Timer,
    UpdateCard,
)
from chat_rescue.bot.policy import Policy

REF = ConversationRef("test", "C1", "t1")
T0 = 1_000_000.0
POLICY = Policy(accept=120, first_response=30, idle=300, escalate=300, close_reminder=1800,
                auto_close=None, escalate_to="@here", escalate_repeats=2)


@dataclass
class Run:
    """Feeds events through the engine, keeping the conversation and what came out."""

    policy: Policy = POLICY
    conv: Conversation | None = None
    now: float = T0

    def at(self, offset: float, event_of: type, *args: object, **kw: object) -> list[object]:
        self.now = T0 + offset
        event = event_of(REF, self.now, *args, **kw)
        decision = decide(self.conv, event, self.policy, self.now)
        if decision.conversation is not None:
            self.conv = decision.conversation
        self.history = [h.kind for h in decision.history if h.kind != "outcome"]
        self.outcomes = [h.detail for h in decision.history if h.kind == "outcome"]
        self.logged = list(decision.history)
        return list(decision.actions)

    def due(self) -> list[object]:
        assert self.conv is not None and self.conv.deadline is not None
        self.now = self.conv.deadline
        decision = decide(self.conv, DeadlineDue(REF, self.now), self.policy, self.now)
        if decision.conversation is not None:
            self.conv = decision.conversation
        self.history = [h.kind for h in decision.history if h.kind != "outcome"]
        self.outcomes = [h.detail for h in decision.history if h.kind == "outcome"]
        self.logged = list(decision.history)
        return list(decision.actions)

    @property
    def c(self) -> Conversation:
        assert self.conv is not None
        return self.conv


def kinds(actions: list[object]) -> list[type]:
    return [type(a) for a in actions]


def test_new_customer_message_opens_a_queued_conversation_with_a_card() -> None:
    run = Run()
    actions = run.at(0, CustomerMessage, "alice", "where is my order")
    assert kinds(actions) == [PostCard]
    assert run.c.state is State.QUEUED and run.c.owner is None
    assert (run.c.deadline, run.c.deadline_timer) == (T0 + 120, Timer.ACCEPT)
    assert run.history == ["opened"]


def test_claim_by_button_starts_the_first_response_timer() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    actions = run.at(10, Claim, "ana")
    assert run.c.state is State.CLAIMED and run.c.owner == "ana"
    assert (run.c.deadline, run.c.deadline_timer) == (T0 + 40, Timer.FIRST_RESPONSE)
    assert kinds(actions) == [UpdateCard] and run.history == ["claimed"]


@pytest.mark.parametrize("via", ["button", "reaction"])
def test_second_claim_is_refused_with_the_owner_named(via: str) -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(1, Claim, "ana")
    actions = run.at(1, Claim, "ben", via=via)
    assert actions == [Refused(REF, "ben", Refusal.CLAIMED, "ana", via=via)]
    assert run.c.owner == "ana"


def test_claiming_twice_by_the_owner_changes_nothing() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(1, Claim, "ana")
    before = run.c
    assert run.at(2, Claim, "ana") == [] and run.c == before


def test_a_reply_claims_and_answers_at_once() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(12, OperatorMessage, "ben")
    assert run.c.owner == "ben" and run.c.state is State.WAITING_ON_CUSTOMER
    assert run.history == ["claimed", "first_reply"]
    assert run.c.first_reply_at == T0 + 12
    assert run.c.deadline_timer is Timer.CLOSE_REMINDER


def test_first_response_miss_returns_the_conversation_to_the_inbox() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice", "hi")
    run.at(5, Claim, "ana")
    actions = run.due()
    assert run.now == T0 + 35
    returned = actions[0]
    assert isinstance(returned, ReturnToInbox)
    assert returned.previous_owner == "ana" and returned.waited == 35
    assert "first response within 30s" in returned.reason
    assert UpdateCard in kinds(actions)
    assert run.c.state is State.QUEUED and run.c.owner is None
    assert (run.c.deadline, run.c.deadline_timer) == (run.now + 120, Timer.ACCEPT)
    assert run.history == ["returned"]
    # reclaimed by someone else, who answers
    run.at(50, Claim, "ben")
    run.at(55, OperatorMessage, "ben")
    assert run.c.owner == "ben" and run.c.state is State.WAITING_ON_CUSTOMER


def answered(run: Run) -> None:
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.at(100, CustomerMessage, "alice", "still there?")


def test_idle_owner_is_nudged_after_idle() -> None:
    run = Run()
    answered(run)
    assert run.c.state is State.WAITING_ON_OPERATOR
    assert (run.c.deadline, run.c.deadline_timer) == (T0 + 400, Timer.IDLE)
    actions = run.due()
    nudge = actions[0]
    assert isinstance(nudge, Nudge) and nudge.owner == "ana" and nudge.waited == 300
    assert run.history == ["nudged"]
    assert (run.c.deadline, run.c.deadline_timer) == (T0 + 700, Timer.ESCALATE)
    assert card_status(run.c) == "with ana: customer waiting"


def test_follow_up_messages_do_not_restart_the_idle_timer() -> None:
    run = Run()
    answered(run)
    run.at(200, CustomerMessage, "alice", "hello??")
    assert run.c.deadline == T0 + 400


def test_snooze_restarts_the_idle_timer_once() -> None:
    run = Run()
    answered(run)
    nudge = run.due()[0]
    assert isinstance(nudge, Nudge)
    run.at(420, Snooze, "ana", notice_id=nudge.notice_id)
    assert run.history == ["snoozed"]
    assert (run.c.deadline, run.c.deadline_timer) == (T0 + 720, Timer.IDLE)
    again = run.due()[0]  # nudged again
    assert isinstance(again, Nudge)
    assert run.at(730, Snooze, "ana", notice_id=again.notice_id) == [
        Refused(REF, "ana", Refusal.SNOOZED, "ana")]
    assert run.history == [] and run.c.deadline_timer is Timer.ESCALATE


def test_unanswered_nudge_returns_and_calls_more_operators() -> None:
    run = Run()
    answered(run)
    run.due()
    actions = run.due()
    assert kinds(actions)[:2] == [ReturnToInbox, Escalate]
    escalate = actions[1]
    assert isinstance(escalate, Escalate) and escalate.target == "@here" and escalate.count == 1
    assert run.history == ["returned", "escalated"]
    assert run.c.state is State.QUEUED and run.c.owner is None and run.c.escalations == 1


def test_hand_off_returns_to_the_inbox() -> None:
    run = Run()
    answered(run)
    actions = run.at(150, HandOff, "ana", notice_id=CARD_BUTTON)  # the card's button
    assert isinstance(actions[0], ReturnToInbox) and "handed off" in actions[0].reason
    assert run.c.owner is None and run.c.state is State.QUEUED


def test_unclaimed_escalates_each_accept_period_up_to_the_cap() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    counts = []
    while run.c.deadline is not None:
        actions = run.due()
        counts += [a.count for a in actions if isinstance(a, Escalate)]
    assert counts == [1, 2, 3]  # first call + escalate_repeats=2
    assert run.now == T0 + 360
    assert run.c.state is State.QUEUED


def test_close_reminder_then_keep_open_restarts_the_silence() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    actions = run.due()
    assert isinstance(actions[0], CloseReminder) and run.now == T0 + 1810
    assert run.c.deadline is None  # reminded once, auto_close off
    run.at(2000, KeepOpen, "ana", notice_id=actions[0].notice_id)
    assert run.c.deadline == T0 + 2000 + 1800
    assert run.history == ["kept_open"]


def test_auto_close_closes_with_the_closing_message() -> None:
    policy = replace(POLICY, auto_close=3600, closing_message="Bye for now")
    run = Run(policy)
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.due()  # reminder at 30 min
    actions = run.due()
    assert run.now == T0 + 3610
    assert CloseNotice(REF, "Bye for now") in actions
    assert run.c.state is State.CLOSED and run.c.deadline is None


def test_close_then_customer_message_reopens_with_the_same_owner() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.at(20, Close, "ana")
    assert run.c.state is State.CLOSED and run.c.deadline is None
    assert run.history == ["closed"]
    actions = run.at(500, CustomerMessage, "alice", "one more thing")
    assert run.history == ["reopened"]
    assert run.c.state is State.WAITING_ON_OPERATOR and run.c.owner == "ana"
    assert run.c.deadline == T0 + 800
    assert kinds(actions) == [UpdateCard]


def test_closed_while_unclaimed_reopens_into_the_inbox() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(20, Close, "ana")
    actions = run.at(500, CustomerMessage, "alice")
    assert run.c.state is State.QUEUED and isinstance(actions[0], ReturnToInbox)


@pytest.mark.parametrize("timer", ["accept", "first_response", "idle", "escalate"])
def test_off_disables_a_timer(timer: str) -> None:
    run = Run(replace(POLICY, **{timer: None}))
    run.at(0, CustomerMessage, "alice")
    if timer != "accept":
        run.at(1, Claim, "ana")
    if timer in ("idle", "escalate"):
        run.at(2, OperatorMessage, "ana")
        run.at(3, CustomerMessage, "alice")
        if timer == "escalate":
            run.due()
    assert run.c.deadline is None


def test_events_for_unknown_conversations_do_nothing() -> None:
    for event in (OperatorMessage(REF, T0, "ana"), Claim(REF, T0, "ana"), Close(REF, T0, "a"),
                  DeadlineDue(REF, T0)):
        decision = decide(None, event, POLICY, T0)
        assert decision.conversation is None and not decision.actions


def test_stale_deadline_does_nothing_but_follows_a_changed_policy() -> None:
    run = Run()
    answered(run)
    early = decide(run.c, DeadlineDue(REF, T0 + 399), POLICY, T0 + 399)
    assert early.conversation is None and not early.actions
    longer = replace(POLICY, idle=600)
    moved = decide(run.c, DeadlineDue(REF, T0 + 400), longer, T0 + 400)
    assert not moved.actions and moved.conversation is not None
    assert moved.conversation.deadline == T0 + 700


def test_overdue_deadline_fires_once_however_late() -> None:
    run = Run()
    answered(run)
    late = T0 + 10_000
    first = decide(run.c, DeadlineDue(REF, late), POLICY, late)
    assert kinds(list(first.actions))[:1] == [Nudge]
    assert first.conversation is not None
    again = decide(first.conversation, DeadlineDue(REF, late), POLICY, late)
    assert not again.actions


# --- invariants under random streams -----------------------------------------------------

OPERATORS = ["ana", "ben", "chloe"]

event_step = st.one_of(
    st.tuples(st.just("customer"), st.just("alice")),
    st.tuples(st.just("reply"), st.sampled_from(OPERATORS)),
    st.tuples(st.just("claim"), st.sampled_from(OPERATORS)),
    st.tuples(st.just("close"), st.sampled_from(OPERATORS)),
    st.tuples(st.just("snooze"), st.sampled_from(OPERATORS)),
    st.tuples(st.just("handoff"), st.sampled_from(OPERATORS)),
    st.tuples(st.just("keep"), st.sampled_from(OPERATORS)),
    st.tuples(st.just("due"), st.just("")),
)
durations = st.one_of(st.none(), st.integers(min_value=1, max_value=4000).map(float))
policies = st.builds(
    Policy, accept=durations, first_response=durations, idle=durations, escalate=durations,
    close_reminder=durations, auto_close=durations,
    escalate_repeats=st.integers(min_value=0, max_value=3),
)

MAKE: dict[str, type] = {
    "customer": CustomerMessage, "reply": OperatorMessage, "claim": Claim, "close": Close,
    "snooze": Snooze, "handoff": HandOff, "keep": KeepOpen,
}


def _event(kind: str, who: str, now: float, conv: Conversation | None) -> InboundEvent:
    if kind == "due":
        return DeadlineDue(REF, now)
    if kind in ("snooze", "handoff", "keep"):  # pressed on the notice in front of them
        current = (nudge_id(conv) or reminder_id(conv) or CARD_BUTTON) if conv else ""
        event: InboundEvent = MAKE[kind](REF, now, who, notice_id=current)
        return event
    event = MAKE[kind](REF, now, who)
    return event


@settings(max_examples=300, deadline=None)
@given(policy=policies, steps=st.lists(
    st.tuples(event_step, st.integers(min_value=0, max_value=5000)), max_size=40))
def test_invariants_hold_for_any_event_stream(
    policy: Policy, steps: list[tuple[tuple[str, str], int]]
) -> None:
    conv: Conversation | None = None
    now = T0
    for (kind, who), gap in steps:
        now += gap
        if kind == "due" and conv is not None and conv.deadline is not None:
            now = max(now, conv.deadline)
        decision = decide(conv, _event(kind, who, now, conv), policy, now)
        if decision.conversation is not None:
            conv = decision.conversation
        if conv is None:
            continue
        # every deadline matches its state
        due = next_deadline(conv, policy)
        assert (conv.deadline, conv.deadline_timer) == (due if due else (None, None))
        # a closed conversation has no deadline
        if conv.state is State.CLOSED:
            assert conv.deadline is None
        # owned exactly when the state says so
        if conv.state in (State.CLAIMED, State.WAITING_ON_OPERATOR):
            assert conv.owner is not None
        if conv.state is State.QUEUED:
            assert conv.owner is None
        # a deadline never lies in the past right after a decision
        if conv.deadline is not None:
            assert conv.deadline >= now or kind != "due"


@settings(max_examples=200, deadline=None)
@given(claimers=st.lists(st.sampled_from(OPERATORS), min_size=2, max_size=6))
def test_a_claim_race_yields_exactly_one_owner(claimers: list[str]) -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    refused = []
    for who in claimers:
        refused += [a for a in run.at(1, Claim, who) if isinstance(a, Refused)]
    assert run.c.owner == claimers[0]
    assert [r.who for r in refused] == [w for w in claimers if w != claimers[0]]


def test_a_card_changes_with_its_status_not_with_every_turn() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    assert card_status(run.c) == "with ana" and run.c.waiting_since is None
    assert kinds(run.at(50, CustomerMessage, "alice")) == []  # still "with ana"
    assert kinds(run.at(70, OperatorMessage, "ana")) == []
    # answered, then back in the inbox: nobody waits yet
    run.at(80, HandOff, "ana", notice_id=CARD_BUTTON)
    assert card_status(run.c) == "waiting for an operator" and run.c.waiting_since is None
    assert kinds(run.at(90, CustomerMessage, "alice")) == [UpdateCard]  # now somebody waits


# --- a handed-off conversation nobody waits in; auto-close in every open state ------------


def test_a_hand_off_when_nobody_waits_calls_nobody_in() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")  # Ana spoke last
    actions = run.at(50, HandOff, "ana", notice_id=CARD_BUTTON)
    returned = actions[0]
    assert isinstance(returned, ReturnToInbox) and not returned.waiting
    assert run.c.state is State.QUEUED and run.c.waiting_since is None
    assert run.c.deadline is None  # no accept timer: there is nobody to call anyone in for
    # Alice writes: now she waits, and the accept timer counts from her message.
    run.at(1000, CustomerMessage, "alice", "hello?")
    assert (run.c.deadline, run.c.deadline_timer) == (T0 + 1120, Timer.ACCEPT)
    escalate = run.due()[0]
    assert isinstance(escalate, Escalate) and escalate.waited == 120


def test_a_returned_conversation_where_the_customer_waits_says_so() -> None:
    run = Run()
    answered(run)
    returned = run.at(150, HandOff, "ana", notice_id=CARD_BUTTON)[0]
    assert isinstance(returned, ReturnToInbox) and returned.waiting and returned.waited == 50


AUTO_CLOSED = {  # how the conversation got where it stands -> when the silence began
    "queued, nobody waiting": ([(10, OperatorMessage, "ana"),
                                (50, HandOff, "ana", CARD_BUTTON)], 50),
    "waiting on the customer": ([(10, OperatorMessage, "ana")], 10),
}
CUSTOMER_WAITS = {  # a customer who waits on us is rescued, never closed for silence
    "queued, every escalation made": [],
    "claimed": [(10, Claim, "ana")],
    "waiting on the operator, nudged": [(10, OperatorMessage, "ana"),
                                        (20, CustomerMessage, "alice")],
}
AUTO_CLOSE_POLICY = replace(POLICY, auto_close=3600, first_response=None, escalate=None)


def _play(run: Run, steps: list[tuple[Any, ...]]) -> None:
    run.at(0, CustomerMessage, "alice")
    for at, event_of, who, *notice in steps:
        run.at(at, event_of, who, **({"notice_id": notice[0]} if notice else {}))


@pytest.mark.parametrize("where", list(AUTO_CLOSED))
def test_auto_close_reaches_every_open_state_where_nobody_waits(where: str) -> None:
    run = Run(AUTO_CLOSE_POLICY)
    steps, quiet_since = AUTO_CLOSED[where]
    _play(run, steps)
    while run.c.state is not State.CLOSED and run.c.deadline is not None:
        run.due()
    assert run.c.state is State.CLOSED and run.history == ["closed"]
    assert run.now == T0 + quiet_since + 3600


@pytest.mark.parametrize("where", list(CUSTOMER_WAITS))
def test_auto_close_never_closes_on_a_customer_who_waits(where: str) -> None:
    run = Run(replace(AUTO_CLOSE_POLICY, closing_message="We closed this chat."))
    _play(run, CUSTOMER_WAITS[where])
    for _ in range(10):
        if run.c.deadline is None:
            break
        assert not any(isinstance(a, CloseNotice) for a in run.due())
    assert run.c.state is not State.CLOSED and "closed" not in run.history
    late = T0 + 100_000  # long after: still open, still waiting for a rescue
    assert decide(run.c, DeadlineDue(REF, late), run.policy, late).history == ()


def test_a_waiting_customer_is_escalated_not_closed_when_both_are_due() -> None:
    policy = replace(POLICY, idle=300, escalate=300, auto_close=600,
                     closing_message="We closed this chat.")
    run = Run(policy)
    answered(run)
    run.at(200, CustomerMessage, "alice", "hello?")
    nudge = run.due()
    assert any(isinstance(a, Nudge) for a in nudge)
    then = run.due()  # the escalation and the auto-close would both be due now
    assert any(isinstance(a, Escalate) for a in then)
    assert not any(isinstance(a, CloseNotice) for a in then)


def test_auto_close_that_came_due_while_down_closes_without_a_pointless_reminder() -> None:
    run = Run(replace(POLICY, auto_close=600))
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    late = T0 + 10_000
    decision = decide(run.c, DeadlineDue(REF, late), run.policy, late)
    assert [h.kind for h in decision.history] == ["closed"]
    assert not any(isinstance(a, CloseReminder) for a in decision.actions)


# --- a reopening is a new exchange (rule 9) -----------------------------------------------


def test_a_reopening_has_a_first_response_of_its_own() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.at(20, Close, "ana")
    run.at(500, CustomerMessage, "alice", "one more thing")
    assert run.history == ["reopened"] and run.c.first_reply_at is None
    run.at(540, OperatorMessage, "ana")
    assert [(h.kind, h.value) for h in run.logged] == [("first_reply", 40.0)]
    assert run.c.first_reply_at == T0 + 540
    run.at(600, CustomerMessage, "alice")
    run.at(605, OperatorMessage, "ana")
    assert [(h.kind, h.value) for h in run.logged] == [("reply", 5.0)]


def test_closed_unanswered_then_reopened_measures_from_the_reopening() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(20, Close, "ben")  # nobody owned it: any operator may close it
    run.at(500, CustomerMessage, "alice", "hello again")
    run.at(530, OperatorMessage, "ana")
    assert [(h.kind, h.value) for h in run.logged] == [("claimed", 30.0), ("first_reply", 30.0)]


# --- closing reasons ------------------------------------------------------------------------


def _closed_detail(run: Run) -> str | None:
    closed = [h for h in run.logged if h.kind == "closed"]
    assert len(closed) == 1
    return closed[0].detail


@pytest.mark.parametrize(
    ("close_at", "via", "policy", "reason"),
    [
        (20, "button", POLICY, CloseReason.AT_DIALOGUE_END),  # right after the last word
        (10 + 1799, "reaction", POLICY, CloseReason.AT_DIALOGUE_END),
        (10 + 1800, "button", POLICY, CloseReason.BY_OPERATOR),  # close_reminder passed
        (4000, "command", POLICY, CloseReason.BY_OPERATOR),
        (20, "sweep", POLICY, CloseReason.AT_SHIFT_END),  # through the sweep, even at once
        (4000, "sweep", POLICY, CloseReason.AT_SHIFT_END),
        # close_reminder off: the built-in 30 minutes tell a dialogue's end
        (10 + 1799, "button", replace(POLICY, close_reminder=None),
         CloseReason.AT_DIALOGUE_END),
        (10 + 1800, "button", replace(POLICY, close_reminder=None), CloseReason.BY_OPERATOR),
        (300, "button", replace(POLICY, close_reminder=120), CloseReason.BY_OPERATOR),
    ],
)
def test_a_close_records_why(close_at: float, via: str, policy: Policy,
                             reason: CloseReason) -> None:
    run = Run(policy)
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.at(close_at, Close, "ana", via=via)
    assert run.c.state is State.CLOSED
    assert _closed_detail(run) == reason


def test_the_dialogue_end_counts_from_the_last_message_of_either_side() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.at(1000, CustomerMessage, "alice", "thanks!")  # the customer had the last word
    run.at(1000 + 1799, Close, "ana")
    assert _closed_detail(run) == CloseReason.AT_DIALOGUE_END


def test_auto_close_is_closed_by_customer_silence() -> None:
    run = Run(replace(POLICY, auto_close=3600))
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.due()  # the reminder
    run.due()  # the auto-close
    assert run.c.state is State.CLOSED
    assert _closed_detail(run) == CloseReason.BY_CUSTOMER_SILENCE


def test_keep_open_is_remembered_until_the_next_turn() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    reminder = run.due()[0]
    assert isinstance(reminder, CloseReminder)
    run.at(2000, KeepOpen, "ana", notice_id=reminder.notice_id)
    assert run.c.kept_open_at == T0 + 2000
    run.at(2100, CustomerMessage, "alice", "one more thing")
    assert run.c.kept_open_at is None
    run.at(2200, OperatorMessage, "ana")
    assert run.c.kept_open_at is None


# --- the end of a shift -----------------------------------------------------------------------


def test_the_end_of_the_shift_closes_a_finished_conversation_with_the_closing_message() -> None:
    run = Run(replace(POLICY, closing_message="Thanks, we close this chat."))
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    actions = run.at(4000, ShiftEnd, "ana", close=True)
    assert run.c.state is State.CLOSED and run.c.deadline is None
    assert CloseNotice(REF, "Thanks, we close this chat.") in actions
    assert [(h.kind, h.actor, h.detail) for h in run.logged] == [
        ("closed", None, CloseReason.AT_SHIFT_END)]


def test_the_end_of_the_shift_hands_a_conversation_over_without_telling_the_owner() -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.at(100, CustomerMessage, "alice", "and?")
    actions = run.at(200, ShiftEnd, "ana")
    assert run.c.state is State.QUEUED and run.c.owner is None
    assert (run.c.deadline, run.c.deadline_timer) == (T0 + 320, Timer.ACCEPT)
    assert kinds(actions) == [UpdateCard]  # no "back in the inbox" for each: the digest says it
    assert [(h.kind, h.actor, h.value, h.detail) for h in run.logged] == [
        ("returned", "ana", 100.0, "shift_end")]


@pytest.mark.parametrize("close", [True, False])
def test_the_end_of_the_shift_leaves_a_conversation_that_moved_on(close: bool) -> None:
    run = Run()
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.at(20, HandOff, "ana", notice_id=CARD_BUTTON)
    run.at(30, Claim, "ben")
    before = run.c
    assert run.at(40, ShiftEnd, "ana", close=close) == [] and run.c == before
    run.at(50, Close, "ben")
    assert run.at(60, ShiftEnd, "ben", close=close) == [] and run.c.state is State.CLOSED

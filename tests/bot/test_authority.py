"""Who may press what, and which nudge or reminder a button belongs to (DESIGN §1 rule 8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_rescue.bot.authority import needs_admin, nudge_id, reminder_id
from chat_rescue.bot.engine import decide
from chat_rescue.bot.model import (
    CARD_BUTTON,
    Claim,
    Close,
    CloseReminder,
    Conversation,
    ConversationRef,
    CustomerMessage,
    DeadlineDue,
    HandOff,
    InboundEvent,
    KeepOpen,
    Nudge,
    OperatorMessage,
    Refusal,
    Refused,
    Snooze,
    State,
)
from chat_rescue.bot.policy import Policy

REF = ConversationRef("test", "C1", "t1")
T0 = 1_000_000.0
POLICY = Policy(accept=120, first_response=30, idle=300, escalate=300, close_reminder=1800,
                auto_close=None, escalate_to="@here", escalate_repeats=2)
durations = st.one_of(st.none(), st.integers(min_value=1, max_value=4000).map(float))
policies = st.builds(
    Policy, accept=durations, first_response=durations, idle=durations, escalate=durations,
    close_reminder=durations, auto_close=durations,
    escalate_repeats=st.integers(min_value=0, max_value=3),
)


@dataclass
class Run:
    """Feeds events through the engine, keeping the conversation and what came out."""

    conv: Conversation | None = None
    now: float = T0

    def at(self, offset: float, event_of: type, *args: object, **kw: object) -> list[object]:
        self.now = T0 + offset
        return self._apply(event_of(REF, self.now, *args, **kw))

    def due(self) -> list[object]:
        assert self.conv is not None and self.conv.deadline is not None
        self.now = self.conv.deadline
        return self._apply(DeadlineDue(REF, self.now))

    def _apply(self, event: InboundEvent) -> list[object]:
        decision = decide(self.conv, event, POLICY, self.now)
        if decision.conversation is not None:
            self.conv = decision.conversation
        self.history = [h.kind for h in decision.history if h.kind != "outcome"]
        return list(decision.actions)

    @property
    def c(self) -> Conversation:
        assert self.conv is not None
        return self.conv


def answered(run: Run) -> None:
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    run.at(100, CustomerMessage, "alice", "still there?")


def nudged(run: Run) -> Nudge:
    """Ana answered, Alice wrote again and waited: Ana's nudge."""
    answered(run)
    nudge = run.due()[0]
    assert isinstance(nudge, Nudge)
    return nudge


def reminded(run: Run) -> CloseReminder:
    """Ana answered and Alice went quiet: the close reminder."""
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")
    reminder = run.due()[0]
    assert isinstance(reminder, CloseReminder)
    return reminder


def queued(run: Run) -> None:
    run.at(0, CustomerMessage, "alice")


def owned(run: Run) -> None:
    run.at(0, CustomerMessage, "alice")
    run.at(10, OperatorMessage, "ana")


SETUPS = {"nudged": nudged, "reminded": reminded, "queued": queued, "owned": owned}
NOW = "current"  # the id of the nudge or reminder the setup made
EARLIER = "n1"  # a nudge long gone

# (setup, button, presser, facts, what happens: the history it records, or the refusal)
PRESSES: list[tuple[str, type, str, dict[str, Any], str | Refusal]] = [
    ("nudged", Snooze, "ana", {"notice_id": NOW}, "snoozed"),
    ("nudged", Snooze, "ben", {"notice_id": NOW}, Refusal.NOT_YOURS),
    ("nudged", Snooze, "ben", {"notice_id": NOW, "admin": True}, "snoozed"),
    ("nudged", Snooze, "ana", {}, Refusal.STALE),  # an old button, from before notice ids
    ("nudged", Snooze, "ana", {"notice_id": EARLIER}, Refusal.STALE),
    ("nudged", Snooze, "ben", {"notice_id": EARLIER, "admin": True}, Refusal.STALE),
    ("nudged", HandOff, "ana", {"notice_id": NOW}, "returned"),
    ("nudged", HandOff, "ben", {"notice_id": NOW}, Refusal.NOT_YOURS),
    ("nudged", HandOff, "ben", {"notice_id": NOW, "admin": True}, "returned"),
    ("nudged", HandOff, "ana", {}, Refusal.STALE),
    ("nudged", HandOff, "ana", {"notice_id": EARLIER}, Refusal.STALE),
    ("nudged", HandOff, "ana", {"notice_id": CARD_BUTTON}, "returned"),  # the card's is current
    ("nudged", HandOff, "ben", {"notice_id": CARD_BUTTON}, Refusal.NOT_YOURS),
    ("nudged", Close, "ana", {"notice_id": NOW}, "closed"),
    ("nudged", Close, "ben", {"notice_id": NOW}, Refusal.NOT_YOURS),
    ("nudged", Close, "ben", {"notice_id": NOW, "admin": True}, "closed"),
    ("nudged", Close, "ana", {"notice_id": EARLIER}, Refusal.STALE),
    ("nudged", Close, "ana", {}, "closed"),  # the card's Close, a ✅ reaction, /close
    ("nudged", Close, "ben", {}, Refusal.NOT_YOURS),
    ("reminded", KeepOpen, "ana", {"notice_id": NOW}, "kept_open"),
    ("reminded", KeepOpen, "ben", {"notice_id": NOW}, Refusal.NOT_YOURS),
    ("reminded", KeepOpen, "ben", {"notice_id": NOW, "admin": True}, "kept_open"),
    ("reminded", KeepOpen, "ana", {}, Refusal.STALE),
    ("reminded", KeepOpen, "ana", {"notice_id": "r1"}, Refusal.STALE),
    ("reminded", Close, "ana", {"notice_id": NOW}, "closed"),
    ("reminded", Close, "ben", {"notice_id": NOW}, Refusal.NOT_YOURS),
    ("reminded", Snooze, "ana", {"notice_id": NOW}, Refusal.STALE),  # a reminder is no nudge
    ("owned", KeepOpen, "ana", {}, Refusal.STALE),  # no reminder is current
    ("queued", Close, "ben", {}, "closed"),  # nobody owns it: any operator may close it
    ("queued", Close, "eve", {"on_team": False}, Refusal.NOT_ON_TEAM),
    ("queued", Close, "eve", {"on_team": False, "admin": True}, "closed"),
    ("queued", Claim, "ben", {}, "claimed"),
    ("queued", Claim, "eve", {"on_team": False}, Refusal.NOT_ON_TEAM),
    ("owned", Claim, "ben", {}, Refusal.CLAIMED),
]


@pytest.mark.parametrize(("setup", "button", "who", "facts", "expected"), PRESSES,
                         ids=[f"{p[0]}-{p[1].__name__}-{p[2]}-{'-'.join(p[3])}" for p in PRESSES])
def test_who_may_press_what(setup: str, button: type, who: str, facts: dict[str, Any],
                            expected: str | Refusal) -> None:
    run = Run()
    notice = SETUPS[setup](run)
    if facts.get("notice_id") == NOW:
        assert isinstance(notice, Nudge | CloseReminder) and notice.notice_id
        facts = {**facts, "notice_id": notice.notice_id}
    before = run.c
    decision = decide(before, button(REF, run.now + 5, who, **facts), POLICY, run.now + 5)
    if isinstance(expected, Refusal):
        # A refused press changes nothing and says why, to the presser only.
        assert decision.conversation is None and decision.history == ()
        assert decision.actions == (Refused(REF, who, expected, before.owner),)
        assert decision.refusal == decision.actions[0]
    else:
        assert expected in [h.kind for h in decision.history]
        assert decision.refusal is None


def test_yesterdays_hand_off_leaves_todays_owner_alone() -> None:
    """Ana's nudge went unanswered, Ben took the conversation and answered; a day later
    Ana presses Hand off on her old nudge."""
    run = Run()
    old = nudged(run)
    run.due()  # back to the inbox, operators called in
    run.at(800, Claim, "ben")
    run.at(810, OperatorMessage, "ben")
    before = run.c
    actions = run.at(90_000, HandOff, "ana", notice_id=old.notice_id)
    assert actions == [Refused(REF, "ana", Refusal.STALE, "ben")]
    assert run.c == before and run.c.owner == "ben" and run.history == []


def test_a_nudge_is_snoozed_once_and_the_second_press_says_so() -> None:
    run = Run()
    first = nudged(run)
    run.at(420, Snooze, "ana", notice_id=first.notice_id)
    assert run.history == ["snoozed"]
    second = run.due()[0]
    assert isinstance(second, Nudge) and second.notice_id != first.notice_id
    assert run.at(730, Snooze, "ana", notice_id=first.notice_id) == [
        Refused(REF, "ana", Refusal.STALE, "ana")]
    assert run.at(731, Snooze, "ana", notice_id=second.notice_id) == [
        Refused(REF, "ana", Refusal.SNOOZED, "ana")]


def test_each_notice_names_itself_and_goes_stale_when_the_conversation_moves() -> None:
    run = Run()
    nudge = nudged(run)
    assert nudge.notice_id == nudge_id(run.c) != ""
    assert reminder_id(run.c) == ""
    run.at(450, OperatorMessage, "ana")
    assert nudge_id(run.c) == ""  # answered: the nudge is over
    reminder = run.due()[0]
    assert isinstance(reminder, CloseReminder) and reminder.notice_id == reminder_id(run.c)
    run.at(2400, OperatorMessage, "ana")  # a new silence: the old reminder is over
    assert reminder_id(run.c) == ""


def test_a_button_on_a_closed_conversation() -> None:
    run = Run()
    nudge = nudged(run)
    run.at(410, Close, "ana", notice_id=nudge.notice_id)
    assert run.c.state is State.CLOSED
    assert run.at(420, Snooze, "ana", notice_id=nudge.notice_id) == [
        Refused(REF, "ana", Refusal.STALE)]
    assert run.at(421, Close, "ana") == []  # closing twice is nothing to refuse
    assert run.at(422, Claim, "ben") == []


@pytest.mark.parametrize(
    ("setup", "press", "asks"),
    [
        ("nudged", lambda n: HandOff(REF, T0 + 500, "ana", notice_id=n), False),  # the owner
        ("nudged", lambda n: HandOff(REF, T0 + 500, "ben", notice_id=n), True),
        ("nudged", lambda n: HandOff(REF, T0 + 500, "ben", notice_id="n1"), False),  # stale
        ("nudged", lambda n: Snooze(REF, T0 + 500, "ben", notice_id=n, admin=True), False),
        ("queued", lambda n: Close(REF, T0 + 500, "ben"), False),  # any operator may
        ("queued", lambda n: Close(REF, T0 + 500, "eve", on_team=False), True),
        ("owned", lambda n: Close(REF, T0 + 500, "ben"), True),
        ("owned", lambda n: Claim(REF, T0 + 500, "ben"), False),  # admins claim like anyone
    ],
)
def test_the_platform_is_asked_about_admins_only_when_it_matters(
    setup: str, press: Any, asks: bool
) -> None:
    run = Run()
    notice = SETUPS[setup](run)
    event = press(notice.notice_id if isinstance(notice, Nudge) else "")
    assert needs_admin(run.c, event) is asks
    assert needs_admin(None, event) is False


# --- invariants under random streams -----------------------------------------------------

PEOPLE = ["ana", "ben", "eve"]
BUTTONS: dict[str, type] = {"claim": Claim, "close": Close, "snooze": Snooze,
                            "handoff": HandOff, "keep": KeepOpen}
press_step = st.tuples(
    st.sampled_from(sorted(BUTTONS)), st.sampled_from(PEOPLE),
    st.sampled_from(["current", "current", "earlier", "none", "card"]),
    st.booleans(), st.booleans(),
)
step = st.one_of(
    st.tuples(st.just("customer")), st.tuples(st.just("reply"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("due")), press_step,
)


def may_press(conv: Conversation, event: InboundEvent) -> bool:
    """Rule 8 as DESIGN writes it, kept apart from the engine's own code."""
    if isinstance(event, Claim):
        return event.on_team
    assert isinstance(event, Close | Snooze | HandOff | KeepOpen)
    if event.by == conv.owner or event.admin:
        return True
    return isinstance(event, Close) and conv.owner is None and event.on_team


def _press(conv: Conversation, kind: str, who: str, notice: str, admin: bool,
           on_team: bool, now: float) -> InboundEvent:
    current = nudge_id(conv) or reminder_id(conv)
    notice_id = {"current": current, "earlier": "n1", "none": "", "card": CARD_BUTTON}[notice]
    if kind == "claim":
        return Claim(REF, now, who, on_team=on_team)
    if kind == "close":
        return Close(REF, now, who, notice_id=notice_id, admin=admin, on_team=on_team)
    event: InboundEvent = BUTTONS[kind](REF, now, who, notice_id=notice_id, admin=admin)
    return event


@settings(max_examples=300, deadline=None)
@given(policy=policies, steps=st.lists(
    st.tuples(step, st.integers(min_value=0, max_value=5000)), max_size=40))
def test_a_press_that_may_not_act_never_changes_the_conversation(
    policy: Any, steps: list[tuple[tuple[Any, ...], int]]
) -> None:
    now = T0
    conv = decide(None, CustomerMessage(REF, now, "alice"), policy, now).conversation
    assert conv is not None
    for (kind, *args), gap in steps:
        now += gap
        if kind == "customer":
            event: InboundEvent = CustomerMessage(REF, now, "alice")
        elif kind == "reply":
            event = OperatorMessage(REF, now, args[0])
        elif kind == "due":
            now = max(now, conv.deadline or now)
            event = DeadlineDue(REF, now)
        else:
            event = _press(conv, kind, *args, now=now)
        decision = decide(conv, event, policy, now)
        notice = args[1] if kind in BUTTONS else ""
        stale = kind != "claim" and notice == "earlier" or (
            kind in ("snooze", "keep") and notice in ("none", "card")
            or kind == "handoff" and notice == "none")
        if kind in BUTTONS and (stale or not may_press(conv, event)):
            assert decision.conversation is None
            assert decision.history == ()
            assert all(isinstance(a, Refused) for a in decision.actions)
        if decision.refusal is not None:
            assert decision.conversation is None and decision.history == ()
        if decision.conversation is not None:
            conv = decision.conversation

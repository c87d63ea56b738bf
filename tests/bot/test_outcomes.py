"""What became of each nudge, reminder, return and call for operators (bot/outcomes.py),
as the engine records it: one `outcome` event per notice that ends, saying how and when."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from chat_rescue.bot.authority import nudge_id, reminder_id
from chat_rescue.bot.engine import decide
from chat_rescue.bot.model import (
    Claim,
    Close,
    Conversation,
    ConversationRef,
    CustomerMessage,
    DeadlineDue,
    HandOff,
    HistoryEvent,
    InboundEvent,
    KeepOpen,
    OperatorMessage,
    ShiftEnd,
    Snooze,
)
from chat_rescue.bot.policy import Policy

REF = ConversationRef("test", "C1", "t1")
T0 = 1_000_000.0
POLICY = Policy(accept=120, first_response=30, idle=300, escalate=300, close_reminder=1800,
                auto_close=None, escalate_to="@here", escalate_repeats=2)


@dataclass
class Day:
    """One conversation through the engine, every outcome event kept."""

    policy: Policy = POLICY
    conv: Conversation | None = None
    outcomes: list[HistoryEvent] = field(default_factory=list)

    def at(self, offset: float, event: type[InboundEvent], *args: object,
           **kw: object) -> None:
        self._apply(event(REF, T0 + offset, *args, **kw), T0 + offset)  # type: ignore[call-arg]

    def due(self) -> float:
        """Fire the running timer; returns its offset from T0."""
        assert self.conv is not None and self.conv.deadline is not None
        at = self.conv.deadline
        self._apply(DeadlineDue(REF, at), at)
        return at - T0

    def _apply(self, event: InboundEvent, now: float) -> None:
        decision = decide(self.conv, event, self.policy, now)
        if decision.conversation is not None:
            self.conv = decision.conversation
        self.outcomes += [h for h in decision.history if h.kind == "outcome"]

    @property
    def seen(self) -> list[tuple[str | None, str | None, float | None]]:
        return [(h.detail, h.actor, h.value) for h in self.outcomes]


def nudged() -> Day:
    """Answered once, the customer wrote again at 100 s, nudged at 400 s."""
    day = Day()
    day.at(0, CustomerMessage, "alice")
    day.at(10, OperatorMessage, "ana")
    day.at(100, CustomerMessage, "alice")
    assert day.due() == 400 and day.outcomes == []
    return day


def test_a_nudge_answered_says_by_whom_and_how_long_after() -> None:
    day = nudged()
    day.at(440, OperatorMessage, "ana")
    assert day.seen == [("nudge:answered", "ana", 40.0)]


@pytest.mark.parametrize(("press", "result"), [
    (Snooze, "nudge:snoozed"), (HandOff, "nudge:handed_off"), (Close, "nudge:closed")])
def test_a_nudge_pressed_away_says_which_button(press: type[InboundEvent], result: str) -> None:
    day = nudged()
    assert day.conv is not None
    day.at(430, press, "ana", notice_id=nudge_id(day.conv))
    assert day.seen[0] == (result, "ana", 30.0)


def test_a_nudge_ignored_is_returned_and_the_return_reclaimed_later() -> None:
    day = nudged()
    assert day.due() == 700  # escalate: back to the inbox, more operators called in
    assert day.seen == [("nudge:returned", None, 300.0)]
    day.at(760, Claim, "ben")
    assert day.seen[1:] == [("return:reclaimed", "ben", 60.0),
                            ("escalation:answered", "ben", 60.0)]


def test_a_return_without_a_first_response_is_reclaimed_by_a_reply() -> None:
    day = Day()
    day.at(0, CustomerMessage, "alice")
    day.at(5, Claim, "ana")
    assert day.due() == 35  # first_response: returned
    day.at(50, OperatorMessage, "ben")
    assert day.seen == [("return:reclaimed", "ben", 15.0)]


def test_a_call_for_operators_on_a_new_conversation_is_answered_by_the_claim() -> None:
    day = Day()
    day.at(0, CustomerMessage, "alice")
    assert day.due() == 120
    day.at(150, Claim, "ben")
    assert day.seen == [("escalation:answered", "ben", 30.0)]


def test_a_claim_without_a_notice_records_no_outcome() -> None:
    day = Day()
    day.at(0, CustomerMessage, "alice")
    day.at(10, Claim, "ana")
    day.at(20, OperatorMessage, "ana")
    assert day.outcomes == []


@pytest.mark.parametrize(("step", "result", "actor"), [
    ((KeepOpen, "ana"), "reminder:kept_open", "ana"),
    ((Close, "ana"), "reminder:closed", "ana"),
    ((CustomerMessage, "alice"), "reminder:customer_wrote", None),
    ((OperatorMessage, "ana"), "reminder:answered", "ana"),
])
def test_a_close_reminder_ends_by_what_came_next(step: tuple[type[InboundEvent], str],
                                                 result: str, actor: str | None) -> None:
    day = Day()
    day.at(0, CustomerMessage, "alice")
    day.at(10, OperatorMessage, "ana")
    assert day.due() == 1810  # close_reminder
    assert day.conv is not None
    press, who = step
    extra = {"notice_id": reminder_id(day.conv)} if press in (KeepOpen, Close) else {}
    day.at(1900, press, who, **extra)
    assert day.seen == [(result, actor, None)]


def test_the_sweep_closing_or_handing_over_ends_a_standing_nudge() -> None:
    closing, handing = nudged(), nudged()
    closing.at(500, ShiftEnd, "ana", close=True)
    handing.at(500, ShiftEnd, "ana")
    assert closing.seen == [("nudge:closed", None, 100.0)]
    assert handing.seen == [("nudge:handed_off", None, 100.0)]
    handing.at(560, Claim, "ben")  # the next shift takes it from the inbox
    assert handing.seen[1:] == [("return:reclaimed", "ben", 60.0)]

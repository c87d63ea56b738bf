"""The rules under working hours: timers count working time only, nothing reaches the
operators while the team is closed, and a customer who writes then is told once when it
is back."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_rescue.bot.authority import nudge_id, reminder_id
from chat_rescue.bot.engine import decide, next_deadline
from chat_rescue.bot.hours import ALWAYS_OPEN, is_open, next_open
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.model import (
    Action,
    Claim,
    Close,
    CloseReminder,
    Conversation,
    ConversationRef,
    CustomerMessage,
    DeadlineDue,
    Escalate,
    HandOff,
    HoursChanged,
    InboundEvent,
    KeepOpen,
    Nudge,
    OffHoursNotice,
    OperatorMessage,
    PostCard,
    ReturnToInbox,
    Snooze,
    State,
    Timer,
    UpdateCard,
)
from chat_rescue.bot.policy import Policy

REF = ConversationRef("test", "C1", "t1")
BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = from_environment("mon-fri 09:00-18:00", "Europe/Berlin", "")
POLICY = Policy(accept=120, first_response=30, idle=300, escalate=300, close_reminder=1800,
                auto_close=None, schedule=WEEKDAYS,
                off_hours_message="We're away; back {back}.")
TEAM_NOTICES = (Nudge, ReturnToInbox, Escalate, CloseReminder)


def at(text: str) -> float:
    """An instant written in Berlin time: `2026-12-04 17:58` (4 December 2026 is a Friday)."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


@dataclass
class Run:
    """Feeds events through the engine at Berlin wall-clock times."""

    policy: Policy = POLICY
    conv: Conversation | None = None

    def on(self, when: str, event_of: type, *args: object, **kw: object) -> list[Action]:
        return self.event(event_of(REF, at(when), *args, **kw), at(when))

    def due(self, when: str | None = None) -> list[Action]:
        """The ticker fires: at the stored deadline, or at `when`."""
        assert self.conv is not None and self.conv.deadline is not None
        now = self.conv.deadline if when is None else at(when)
        return self.event(DeadlineDue(REF, now), now)

    def event(self, event: InboundEvent, now: float) -> list[Action]:
        decision = decide(self.conv, event, self.policy, now)
        if decision.conversation is not None:
            self.conv = decision.conversation
        return list(decision.actions)

    @property
    def c(self) -> Conversation:
        assert self.conv is not None
        return self.conv


def answered(run: Run, when: str = "2026-12-04 10:00") -> None:
    run.on(when, CustomerMessage, "alice")
    run.on(when, OperatorMessage, "ana")


def of(kind: type, actions: list[Action]) -> list[Action]:
    return [a for a in actions if isinstance(a, kind)]


# --- timers count working time ------------------------------------------------------------


def test_idle_started_at_17_58_on_friday_is_due_at_09_03_on_monday() -> None:
    run = Run()
    answered(run)
    run.on("2026-12-04 17:58", CustomerMessage, "alice")
    assert (run.c.deadline, run.c.deadline_timer) == (at("2026-12-07 09:03"), Timer.IDLE)
    # the wall-clock deadline (18:03) is no deadline: a tick then changes nothing
    assert run.due("2026-12-04 18:03") == [] and run.c.deadline == at("2026-12-07 09:03")
    nudge = of(Nudge, run.due())
    assert len(nudge) == 1
    assert run.c.nudged_at == at("2026-12-07 09:03")


@pytest.mark.parametrize(
    ("steps", "timer", "due"),
    [
        # a new conversation at 17:59 on Thursday: 1 minute of `accept` left for Friday
        ([("2026-12-03 17:59", CustomerMessage, "alice")], Timer.ACCEPT, "2026-12-04 09:01"),
        # claimed at 17:59:45: 15 s tonight, 15 s in the morning
        ([("2026-12-03 17:00", CustomerMessage, "alice"), ("2026-12-03 17:59:45", Claim, "ana")],
         Timer.FIRST_RESPONSE, "2026-12-04 09:00:15"),
        # the operator spoke last at 17:45: `close_reminder` 30m is 15 + 15 minutes
        ([("2026-12-04 17:00", CustomerMessage, "alice"), ("2026-12-04 17:45", OperatorMessage,
                                                           "ana")],
         Timer.CLOSE_REMINDER, "2026-12-07 09:15"),
        # a customer who writes on Saturday: `accept` counts from Monday's opening
        ([("2026-12-05 12:00", CustomerMessage, "alice")], Timer.ACCEPT, "2026-12-07 09:02"),
        # nights count nothing either: a message at 23:00 on Tuesday, due 09:02 Wednesday
        ([("2026-12-01 23:00", CustomerMessage, "alice")], Timer.ACCEPT, "2026-12-02 09:02"),
    ],
)
def test_every_timer_skips_the_closed_night_and_weekend(
    steps: list[tuple[str, type, str]], timer: Timer, due: str
) -> None:
    run = Run()
    for when, event_of, who in steps:
        run.on(when, event_of, who)
    assert (run.c.deadline, run.c.deadline_timer) == (at(due), timer)


def test_the_escalation_after_a_nudge_counts_working_time_too() -> None:
    run = Run()
    answered(run)
    run.on("2026-12-04 17:50", CustomerMessage, "alice")
    assert of(Nudge, run.due())  # 17:55
    # 5 minutes of `escalate` end at the closing instant: due at the next opening
    assert (run.c.deadline, run.c.deadline_timer) == (at("2026-12-07 09:00"), Timer.ESCALATE)
    escalated = run.due()
    assert of(ReturnToInbox, escalated) and of(Escalate, escalated)


def test_auto_close_counts_working_time_in_the_check_that_it_came_due_too() -> None:
    # close_reminder 30m and auto_close 1h after the operator's word at 17:40 on Friday:
    # the reminder is due 09:10 on Monday, the close 09:40. In wall time the close would
    # have passed long before the reminder and swallowed it.
    run = Run(replace(POLICY, auto_close=3600))
    run.on("2026-12-04 17:00", CustomerMessage, "alice")
    run.on("2026-12-04 17:40", OperatorMessage, "ana")
    assert (run.c.deadline, run.c.deadline_timer) == (at("2026-12-07 09:10"),
                                                      Timer.CLOSE_REMINDER)
    assert of(CloseReminder, run.due()) and run.c.state is State.WAITING_ON_CUSTOMER
    assert (run.c.deadline, run.c.deadline_timer) == (at("2026-12-07 09:40"), Timer.AUTO_CLOSE)
    run.due()
    assert run.c.state is State.CLOSED


def test_a_deadline_that_came_due_while_closed_waits_for_the_opening() -> None:
    # The bot was down from 17:54 to 20:00: the nudge due at 17:55 must not reach Ana in
    # her evening; it goes at the opening, with what else came due, and says how long
    # the customer really waited (wall time).
    run = Run()
    answered(run)
    run.on("2026-12-04 17:50", CustomerMessage, "alice")
    assert run.c.deadline == at("2026-12-04 17:55")
    assert run.due("2026-12-04 20:00") == []
    assert (run.c.deadline, run.c.deadline_timer) == (at("2026-12-07 09:00"), Timer.IDLE)
    # what happens meanwhile keeps it there
    run.on("2026-12-05 11:00", CustomerMessage, "alice")
    assert run.c.deadline == at("2026-12-07 09:00")
    (nudge,) = of(Nudge, run.due())
    assert nudge.waited == at("2026-12-07 09:00") - at("2026-12-04 17:50")


def test_changed_hours_move_a_deadline_keeping_the_working_time_used() -> None:
    run = Run(replace(POLICY, schedule=ALWAYS_OPEN))
    answered(run)
    run.on("2026-12-04 17:58", CustomerMessage, "alice")
    assert run.c.deadline == at("2026-12-04 18:03")
    run.policy = POLICY  # what `/rescue hours` does: the service re-decides every deadline
    assert run.due("2026-12-04 17:59") == []
    assert run.c.deadline == at("2026-12-07 09:03")
    run.policy = replace(POLICY, schedule=from_environment("mon-fri 08:00-18:00",
                                                           "Europe/Berlin", ""))
    assert run.due("2026-12-05 10:00") == []
    assert run.c.deadline == at("2026-12-07 08:03")


def test_the_escalation_keeps_the_working_time_it_used_since_the_nudge() -> None:
    # Nudged at 17:57 on Friday: 3 of `escalate`'s 5 minutes pass by 18:00. Round the
    # clock from Saturday 10:00, 2 minutes are left; the wall-clock 5 minutes since the
    # nudge passed long ago, and the old hours would escalate at once.
    run = Run()
    answered(run)
    run.on("2026-12-04 17:52", CustomerMessage, "alice")
    assert of(Nudge, run.due()) and run.c.nudged_at == at("2026-12-04 17:57")
    run.policy = replace(POLICY, schedule=ALWAYS_OPEN)
    assert run.event(HoursChanged(REF, at("2026-12-05 10:00"), WEEKDAYS),
                     at("2026-12-05 10:00")) == []
    assert (run.c.deadline, run.c.deadline_timer) == (at("2026-12-05 10:02"), Timer.ESCALATE)
    assert run.c.nudged_at == at("2026-12-04 17:57")  # the nudge's buttons still match
    escalated = run.due()
    assert of(ReturnToInbox, escalated) and of(Escalate, escalated)
    # the new timer (accept, from the escalation) counts from its own start
    assert (run.c.deadline, run.c.deadline_timer) == (at("2026-12-05 10:04"), Timer.ACCEPT)
    assert run.c.rebased_at is None


def test_always_open_adds_plain_seconds() -> None:
    assert Policy().schedule is ALWAYS_OPEN
    conv = Conversation(REF, "t", "alice", 1000.5, timer_from=1000.5, waiting_since=1000.5)
    assert next_deadline(conv, Policy(accept=0.3)) == (1000.8, Timer.ACCEPT)


# --- the off-hours notice -----------------------------------------------------------------


def test_a_customer_writing_while_closed_is_told_once_when_the_team_is_back() -> None:
    run = Run()
    opened = run.on("2026-12-04 20:00", CustomerMessage, "alice", "hello?")
    assert [type(a) for a in opened] == [PostCard, OffHoursNotice]  # the card goes all the same
    notice = opened[1]
    assert notice == OffHoursNotice(REF, "We're away; back Monday 09:00 (Berlin time).",
                                    at("2026-12-07 09:00"))
    assert run.c.away_told_until == at("2026-12-07 09:00")
    # the same closed period: not again, whatever the day
    assert run.on("2026-12-04 23:00", CustomerMessage, "alice") == []
    assert run.on("2026-12-06 12:00", CustomerMessage, "alice") == []
    # open: nothing to tell
    assert of(OffHoursNotice, run.on("2026-12-07 10:00", CustomerMessage, "alice")) == []
    # the next closed period: told again
    (again,) = of(OffHoursNotice, run.on("2026-12-07 18:30", CustomerMessage, "alice"))
    assert isinstance(again, OffHoursNotice)
    # the weekday, not "tomorrow": the customer's day may not be the team's
    assert again.text == "We're away; back Tuesday 09:00 (Berlin time)."
    assert run.c.away_told_until == at("2026-12-08 09:00")


def test_no_off_hours_notice_while_open_always_open_or_with_no_message() -> None:
    assert of(OffHoursNotice, Run().on("2026-12-04 17:59", CustomerMessage, "alice")) == []
    always = Run(replace(POLICY, schedule=ALWAYS_OPEN))
    assert of(OffHoursNotice, always.on("2026-12-05 03:00", CustomerMessage, "alice")) == []
    quiet = Run(replace(POLICY, off_hours_message=""))
    assert of(OffHoursNotice, quiet.on("2026-12-05 03:00", CustomerMessage, "alice")) == []
    assert quiet.c.away_told_until is None


def test_a_reopening_at_night_is_told_too_and_an_operators_reply_tells_nothing() -> None:
    run = Run()
    answered(run)
    run.on("2026-12-04 11:00", Close, "ana")
    actions = run.on("2026-12-04 22:00", CustomerMessage, "alice")
    assert run.c.state is State.WAITING_ON_OPERATOR
    assert len(of(OffHoursNotice, actions)) == 1
    assert of(OffHoursNotice, run.on("2026-12-04 22:05", OperatorMessage, "ana")) == []


def test_a_customer_in_a_live_exchange_after_closing_is_not_told_the_team_is_away() -> None:
    run = Run()
    run.on("2026-12-04 17:50", CustomerMessage, "alice")
    run.on("2026-12-04 17:52", OperatorMessage, "ana")
    run.on("2026-12-04 18:05", OperatorMessage, "ana")  # Ana stays on after closing
    assert of(OffHoursNotice, run.on("2026-12-04 18:06", CustomerMessage, "alice")) == []
    assert run.c.away_told_until is None
    # an operator's word from before the closing is no live exchange: told
    other = Run()
    other.on("2026-12-04 17:50", CustomerMessage, "alice")
    other.on("2026-12-04 17:52", OperatorMessage, "ana")
    assert len(of(OffHoursNotice, other.on("2026-12-04 18:06", CustomerMessage, "alice"))) == 1


def test_a_customer_reopening_at_night_is_not_announced_to_the_team_until_the_opening(
) -> None:
    run = Run()
    answered(run)
    run.on("2026-12-04 10:05", HandOff, "ana", notice_id="card")
    run.on("2026-12-04 11:00", Close, "ana")
    assert run.c.owner is None
    actions = run.on("2026-12-04 22:00", CustomerMessage, "alice")
    assert run.c.state is State.QUEUED
    assert of(ReturnToInbox, actions) == [] and of(UpdateCard, actions)  # the card shows it
    # the accept timer counts from the opening; its escalation calls people in then
    assert (run.c.deadline, run.c.deadline_timer) == (at("2026-12-07 09:02"), Timer.ACCEPT)
    assert of(Escalate, run.due())
    # while open, the reopening is announced in the inbox as before
    run.on("2026-12-07 09:03", OperatorMessage, "ana")
    run.on("2026-12-07 09:04", HandOff, "ana", notice_id="card")
    run.on("2026-12-07 09:05", Close, "ana")
    assert of(ReturnToInbox, run.on("2026-12-07 10:00", CustomerMessage, "alice"))


def test_the_default_message_names_the_day_and_the_teams_zone() -> None:
    run = Run(replace(POLICY, off_hours_message=Policy().off_hours_message))
    (notice,) = of(OffHoursNotice, run.on("2026-12-04 18:00", CustomerMessage, "alice"))
    assert isinstance(notice, OffHoursNotice)
    assert notice.text == ("Thanks for your message. Our team is away right now; we're back "
                           "Monday 09:00 (Berlin time). We'll answer you then.")


# --- invariants under random streams ------------------------------------------------------

MAKE: dict[str, type] = {
    "customer": CustomerMessage, "reply": OperatorMessage, "claim": Claim, "close": Close,
    "snooze": Snooze, "handoff": HandOff, "keep": KeepOpen,
}
durations = st.one_of(st.none(), st.integers(min_value=1, max_value=40_000).map(float))
policies = st.builds(
    Policy, accept=durations, first_response=durations, idle=durations, escalate=durations,
    close_reminder=durations, auto_close=durations, schedule=st.just(WEEKDAYS),
    escalate_repeats=st.integers(min_value=0, max_value=3),
)
steps = st.lists(st.tuples(st.sampled_from([*MAKE, "due", "due"]),
                           st.integers(min_value=0, max_value=12 * 3600)), max_size=40)


def _event(kind: str, now: float, conv: Conversation | None) -> InboundEvent:
    if kind == "due":
        return DeadlineDue(REF, now)
    if kind in ("snooze", "handoff", "keep"):
        notice = (nudge_id(conv) or reminder_id(conv) or "card") if conv else ""
        event: InboundEvent = MAKE[kind](REF, now, "ana", notice_id=notice)
        return event
    made: InboundEvent = MAKE[kind](REF, now, "alice" if kind == "customer" else "ana")
    return made


@settings(max_examples=300, deadline=None)
@given(policy=policies, stream=steps)
def test_nothing_reaches_the_operators_while_closed_and_customers_are_told_once(
    policy: Policy, stream: list[tuple[str, int]]
) -> None:
    conv: Conversation | None = None
    now = at("2026-12-03 16:00")
    told_for: set[float | None] = set()
    for kind, gap in stream:
        now += gap
        if kind == "due" and conv is not None and conv.deadline is not None:
            now = max(now, conv.deadline)
        decision = decide(conv, _event(kind, now, conv), policy, now)
        conv = decision.conversation or conv
        open_now = is_open(WEEKDAYS, now)
        if not open_now:  # no timer fires, and a reopening is not announced (its card
            # shows it waiting); only what an operator does themselves is told (a hand-off)
            timed = (Nudge, Escalate, CloseReminder) if kind == "handoff" else TEAM_NOTICES
            assert not any(isinstance(a, timed) for a in decision.actions)
        notices = [a for a in decision.actions if isinstance(a, OffHoursNotice)]
        assert len(notices) <= 1
        for notice in notices:  # only while closed, once per closed period
            assert not open_now and notice.until == next_open(WEEKDAYS, now)
            assert notice.until not in told_for
            told_for.add(notice.until)
        if conv is None:
            continue
        due = next_deadline(conv, policy)
        if conv.deadline is not None:
            assert conv.deadline >= now or kind != "due"
            assert is_open(WEEKDAYS, conv.deadline)  # never due while closed
        if due is None or due[0] > now or open_now:
            assert (conv.deadline, conv.deadline_timer) == (due if due else (None, None))
        else:  # came due while closed: held to the opening
            assert (conv.deadline, conv.deadline_timer) == (next_open(WEEKDAYS, now), due[1])


def test_a_dialogue_ends_in_working_time_over_a_weekend() -> None:
    """The last word at 17:50 on Friday and a close at 09:15 on Monday are 25 working
    minutes apart: within close_reminder (30 min), so closed at the dialogue's end."""
    for when, reason in (("2026-12-07 09:15", "closed_at_dialogue_end"),
                         ("2026-12-07 09:25", "closed_by_operator")):
        run = Run()
        answered(run, "2026-12-04 17:50")
        decision = decide(run.conv, Close(REF, at(when), "ana"), POLICY, at(when))
        assert [(h.kind, h.detail) for h in decision.history] == [("closed", reason)]

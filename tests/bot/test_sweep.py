"""The sweep's pure rules as tables: the four groups, what a shift's end does, whose shift
ends when, and when a team's sweeps come."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from chat_rescue.bot.hours import Schedule
from chat_rescue.bot.hours_text import from_environment, parse_week
from chat_rescue.bot.model import Conversation, ConversationRef, State
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.sweep import (
    TEAM_HOURS,
    Choice,
    Fate,
    Group,
    Phase,
    Rule,
    Shift,
    Sweep,
    covers,
    fate,
    group_of,
    opening_after,
    plan,
    shift_setting,
    shifts_of,
    since_of,
)

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = from_environment("mon-fri 09:00-18:00", "Europe/Berlin", "")
POLICY = Policy(close_reminder=1800, schedule=WEEKDAYS)
REF = ConversationRef("test", "C1", "t1")


def at(text: str) -> float:
    """Berlin time; 4 December 2026 is a Friday."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


NOW = at("2026-12-04 17:45")


def conv(state: State, owner: str | None = "ana", *, spoke: str | None = None,
         waiting: str | None = None, kept: str | None = None) -> Conversation:
    """A conversation as the sweep finds it: the operator's last word at `spoke`, the
    customer waiting since `waiting`, *Keep open* said at `kept`."""
    operator = at(spoke) if spoke else None
    return Conversation(REF, "team", "alice", at("2026-12-04 09:00"), state=state, owner=owner,
                        timer_from=at(kept) if kept else operator or at("2026-12-04 09:00"),
                        waiting_since=at(waiting) if waiting else None,
                        last_operator_at=operator, kept_open_at=at(kept) if kept else None)


@pytest.mark.parametrize(
    ("conversation", "policy", "group"),
    [
        # the operator spoke last, the customer silent at least close_reminder: finished
        (conv(State.WAITING_ON_CUSTOMER, spoke="2026-12-04 17:15"), POLICY, Group.FINISHED),
        (conv(State.WAITING_ON_CUSTOMER, spoke="2026-12-04 16:00"), POLICY, Group.FINISHED),
        # ... recently: waiting on the customer
        (conv(State.WAITING_ON_CUSTOMER, spoke="2026-12-04 17:16"), POLICY,
         Group.WITH_CUSTOMER),
        # silence counts working time: 17:50 Friday to 09:19 Monday is 29 minutes
        (conv(State.WAITING_ON_CUSTOMER, spoke="2026-12-03 17:50"), POLICY, Group.FINISHED),
        # the owner said Keep open and nothing happened since: finished, however recent
        (conv(State.WAITING_ON_CUSTOMER, spoke="2026-12-04 17:00", kept="2026-12-04 17:44"),
         POLICY, Group.FINISHED),
        # close_reminder of its own, or off (the built-in 30 minutes)
        (conv(State.WAITING_ON_CUSTOMER, spoke="2026-12-04 17:40"),
         replace(POLICY, close_reminder=300), Group.FINISHED),
        (conv(State.WAITING_ON_CUSTOMER, spoke="2026-12-04 17:16"),
         replace(POLICY, close_reminder=None), Group.WITH_CUSTOMER),
        (conv(State.WAITING_ON_CUSTOMER, spoke="2026-12-04 17:15"),
         replace(POLICY, close_reminder=None), Group.FINISHED),
        # the customer spoke last, or the claim is not answered yet: the customer waits
        (conv(State.WAITING_ON_OPERATOR, spoke="2026-12-04 12:00", waiting="2026-12-04 17:40"),
         POLICY, Group.CUSTOMER_WAITING),
        (conv(State.CLAIMED, waiting="2026-12-04 17:40"), POLICY, Group.CUSTOMER_WAITING),
        # nobody has it
        (conv(State.QUEUED, None, waiting="2026-12-04 17:00"), POLICY, Group.UNOWNED),
        (conv(State.QUEUED, None, spoke="2026-12-04 12:00"), POLICY, Group.UNOWNED),
        (conv(State.CLOSED, spoke="2026-12-04 12:00"), POLICY, None),
    ],
)
def test_each_open_conversation_is_in_one_group(conversation: Conversation, policy: Policy,
                                                group: Group | None) -> None:
    assert group_of(conversation, policy, NOW) is group


@pytest.mark.parametrize(
    ("group", "choice", "rule", "result"),
    [
        (Group.FINISHED, None, Rule.HANDOVER, Fate.CLOSE),
        (Group.WITH_CUSTOMER, None, Rule.HANDOVER, Fate.HAND_OVER),
        (Group.CUSTOMER_WAITING, None, Rule.HANDOVER, Fate.HAND_OVER),
        (Group.FINISHED, None, Rule.KEEP, Fate.KEEP),
        (Group.CUSTOMER_WAITING, None, Rule.KEEP, Fate.KEEP),
        # the operator's choice beats the rule
        (Group.FINISHED, Choice.KEEP, Rule.HANDOVER, Fate.KEEP),
        (Group.CUSTOMER_WAITING, Choice.KEEP, Rule.HANDOVER, Fate.KEEP),
        (Group.FINISHED, Choice.HAND_OFF, Rule.HANDOVER, Fate.HAND_OVER),
        (Group.WITH_CUSTOMER, Choice.HAND_OFF, Rule.KEEP, Fate.HAND_OVER),
        # closed on the card, reopened by the customer since: a new exchange, the rule
        (Group.CUSTOMER_WAITING, Choice.CLOSE, Rule.HANDOVER, Fate.HAND_OVER),
        (Group.CUSTOMER_WAITING, Choice.CLOSE, Rule.KEEP, Fate.KEEP),
        (Group.UNOWNED, None, Rule.HANDOVER, Fate.UNOWNED),
        (Group.UNOWNED, Choice.KEEP, Rule.KEEP, Fate.UNOWNED),
        (None, Choice.KEEP, Rule.HANDOVER, None),  # closed: nothing to do
    ],
)
def test_what_the_end_of_a_shift_does(group: Group | None, choice: Choice | None, rule: Rule,
                                      result: Fate | None) -> None:
    assert fate(group, choice, rule) is result


def test_a_line_counts_from_the_wait_or_the_operators_last_word() -> None:
    waiting = conv(State.WAITING_ON_OPERATOR, spoke="2026-12-04 12:00", waiting="2026-12-04 17:40")
    assert since_of(waiting, Group.CUSTOMER_WAITING) == at("2026-12-04 17:40")
    finished = conv(State.WAITING_ON_CUSTOMER, spoke="2026-12-04 12:00")
    assert since_of(finished, Group.FINISHED) == at("2026-12-04 12:00")


LATE = Shift("late", parse_week("daily 14:00-22:00") or (), ("U0BEN", "U0CHLOE"))
EARLY = Shift("early", parse_week("mon-fri 06:00-14:00") or (), ("U0ANA",))


BOTH = Shift("double", parse_week("mon-fri 06:00-14:00") or (), ("U0EVA",))
EVENING = Shift("evening", parse_week("mon-fri 15:00-20:00") or (), ("U0EVA",))


@pytest.mark.parametrize(
    ("owner", "ending", "shifts", "when", "covered"),
    [
        ("U0DAN", (TEAM_HOURS,), (), "18:00", True),  # no named shifts: the team's end
        ("U0DAN", ("late",), (LATE,), "22:00", False),
        ("U0DAN", (TEAM_HOURS,), (LATE,), "18:00", True),
        ("U0BEN", (TEAM_HOURS,), (LATE,), "18:00", False),  # a member follows their shift
        ("U0BEN", ("late",), (LATE,), "22:00", True),
        ("U0BEN", (TEAM_HOURS, "late"), (LATE, EARLY), "22:00", True),
        ("U0ANA", ("late",), (LATE, EARLY), "22:00", False),
        ("U0ANA", ("early",), (LATE, EARLY), "14:00", True),
        # in two shifts back to back (or after a break): not at an end between them
        ("U0BEN", ("early",), (LATE, replace(EARLY, members=("U0BEN",))), "14:00", False),
        ("U0EVA", ("double",), (BOTH, EVENING), "14:00", False),
        ("U0EVA", ("evening",), (BOTH, EVENING), "20:00", True),
    ],
)
def test_whose_shift_ends(owner: str, ending: tuple[str, ...], shifts: tuple[Shift, ...],
                          when: str, covered: bool) -> None:
    assert covers(owner, ending, shifts, WEEKDAYS, at(f"2026-12-04 {when}")) is covered


def test_the_next_sweep_is_sweep_before_the_end_of_the_working_interval() -> None:
    [sweep] = plan("team", POLICY, (), at("2026-12-04 10:00"))
    assert sweep == Sweep("team@" + str(round(at("2026-12-04 18:00"))), "team",
                          at("2026-12-04 18:00"), at("2026-12-04 17:45"),
                          at("2026-12-07 09:00"), (TEAM_HOURS,), Phase.PLANNED)
    assert sweep.due == sweep.sweep_at
    # from the end itself on, the next shift's
    [monday] = plan("team", POLICY, (), at("2026-12-04 18:00"))
    assert monday.ends_at == at("2026-12-07 18:00")
    # within the sweep: the same one (its cards are due at once)
    [same] = plan("team", POLICY, (), at("2026-12-04 17:50"))
    assert same.id == sweep.id


def test_a_shift_shorter_than_the_sweep_is_swept_from_its_start() -> None:
    split = from_environment("mon-fri 09:00-13:00,16:00-18:00", "Europe/Berlin", "")
    policy = replace(POLICY, schedule=split, sweep=3600)
    [morning] = plan("team", policy, (), at("2026-12-04 10:00"))
    assert (morning.sweep_at, morning.ends_at) == (at("2026-12-04 12:00"), at("2026-12-04 13:00"))
    assert morning.opens_at == at("2026-12-04 16:00")
    [afternoon] = plan("team", replace(policy, sweep=6 * 3600), (), at("2026-12-04 13:00"))
    assert afternoon.sweep_at == at("2026-12-04 16:00")


def test_a_break_shorter_than_two_hours_is_no_end_of_a_shift() -> None:
    """Lunch is not the end of the day: no cards before it, no hand-over at it."""
    lunch = from_environment("mon-fri 09:00-12:30,13:30-15:00,15:15-18:00", "Europe/Berlin", "")
    policy = replace(POLICY, schedule=lunch)
    for when in ("2026-12-04 10:00", "2026-12-04 13:00", "2026-12-04 15:10"):
        [sweep] = plan("team", policy, (), at(when))
        assert (sweep.sweep_at, sweep.ends_at) == (at("2026-12-04 17:45"),
                                                   at("2026-12-04 18:00")), when
    # a named shift's break alike
    split = Shift("split", parse_week("fri 08:00-11:00,12:00-14:00") or (), ("U0ANA",))
    [named, team] = plan("team", POLICY, (split,), at("2026-12-04 09:00"))
    assert named.shifts == ("split",) and named.ends_at == at("2026-12-04 14:00")


def test_a_break_is_as_long_as_the_wall_clock_says_on_the_night_the_clocks_go_back() -> None:
    """1h30 on the wall clock, 2h30 of real time on 25 October 2026: still a break."""
    night = from_environment("daily 22:00-01:30,03:00-06:00", "Europe/Berlin", "")
    for evening, end in (("2026-10-23 23:00", "2026-10-24 06:00"),
                         ("2026-10-24 23:00", "2026-10-25 06:00")):
        [sweep] = plan("team", replace(POLICY, schedule=night), (), at(evening))
        assert sweep.ends_at == at(end)


def test_hours_of_nothing_but_short_breaks_have_no_end_wherever_one_looks() -> None:
    gappy = from_environment("daily 00:30-12:00,13:00-23:59", "Europe/Berlin", "")
    for when in ("2026-12-04 09:00", "2026-12-04 17:45", "2026-12-06 12:30"):
        assert plan("team", replace(POLICY, schedule=gappy), (), at(when)) == []


def test_named_shifts_have_sweeps_of_their_own_and_share_one_that_ends_together() -> None:
    team_late = Shift("evening", parse_week("daily 12:00-18:00") or (), ("U0DAN",))
    sweeps = plan("team", POLICY, (LATE, team_late), at("2026-12-04 15:00"))
    assert [(s.ends_at, s.shifts) for s in sweeps] == [
        (at("2026-12-04 18:00"), (TEAM_HOURS, "evening")),
        (at("2026-12-04 22:00"), ("late",)),
    ]
    # the late shift is at work when the team's hours end: its digest goes at once
    assert sweeps[0].opens_at == at("2026-12-04 18:00")
    assert sweeps[1].opens_at == at("2026-12-05 12:00")  # the evening shift works daily
    assert opening_after(WEEKDAYS, (), at("2026-12-04 18:00")) == at("2026-12-07 09:00")


def test_a_named_shift_keeps_the_teams_days_off() -> None:
    christmas = replace(WEEKDAYS, dates=((date(2026, 12, 25), ()),
                                         (date(2026, 12, 24), ((540, 780),))))
    hours = LATE.schedule(christmas)
    assert hours.zone == "Europe/Berlin" and hours.dates == ((date(2026, 12, 25), ()),)
    late, team = plan("team", replace(POLICY, schedule=christmas), (LATE,),
                      at("2026-12-24 23:00"))
    assert late.ends_at == at("2026-12-26 22:00")  # not on the 25th
    assert team.ends_at == at("2026-12-28 18:00")


def test_no_sweep_when_it_is_off_or_no_shift_ever_ends() -> None:
    assert plan("team", replace(POLICY, sweep=None), (LATE,), NOW) == []
    assert plan("team", Policy(), (), NOW) == []  # always open, no named shifts
    always = Policy(schedule=Schedule(zone="Europe/Berlin"))
    [late] = plan("team", always, (LATE,), NOW)  # always open, but the late shift ends
    # ... and the team is at work round the clock: the digest goes as the shift ends
    assert late.shifts == ("late",) and late.opens_at == late.ends_at


def test_shifts_are_stored_as_settings_and_a_corrupt_one_is_left_out() -> None:
    key, value = shift_setting(LATE)
    assert (key, value) == ("shift:late", "daily 14:00-22:00 | U0BEN U0CHLOE")
    stored = {key: value, "shift:Bad Name": "daily 14:00-22:00 | U1", "shift:x": "nonsense | U1",
              "shift:off": "off | U1", "idle": "5m", "shift:early": shift_setting(EARLY)[1]}
    assert shifts_of(stored) == (EARLY, LATE)

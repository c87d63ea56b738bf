"""The sweep before a shift ends (DESIGN §1 "Working hours and the end of a shift").

Pure: conversations, settings and `now` in, values out. Which group each open
conversation is in, what the end of a shift does to it, whose shift ends when (the team's
working hours, and named shifts with members), and when a team's next sweeps come. The
records the store keeps of a sweep are here too; `sweeper.py` carries them out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from chat_rescue.bot.hours import (
    Day,
    Schedule,
    add_working,
    next_open,
    shift_bounds,
    shift_end,
)
from chat_rescue.bot.hours_text import HoursError, format_week, parse_week
from chat_rescue.bot.model import Conversation, State
from chat_rescue.bot.policy import Policy

log = logging.getLogger(__name__)

FINISHED_AFTER = 1800.0  # the built-in close_reminder: "finished" when that one is off
TEAM_HOURS = ""  # in a sweep's `shifts`: the team's own working hours
SHIFT_PREFIX = "shift:"  # the stored setting of a named shift: `shift:<name>`
SHIFT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,19}")
BREAK = 2 * 3600.0  # a closed gap shorter than this (lunch) is a break, not a shift's end
MAX_BREAKS = 32  # breaks looked past for the end of one working day


class Group(StrEnum):
    """Where a conversation stands as a shift ends."""

    FINISHED = "finished"  # finished but not closed
    WITH_CUSTOMER = "with_customer"  # waiting on the customer (the operator spoke last)
    CUSTOMER_WAITING = "customer_waiting"  # the customer waits on us
    UNOWNED = "unowned"  # nobody has it (in the inbox)


GROUPS = tuple(Group)  # the order a card lists them in


class Choice(StrEnum):
    """What the operator decided on the sweep card for one conversation."""

    CLOSE = "close"  # closed there and then
    KEEP = "keep"  # stays with them past the shift's end
    HAND_OFF = "hand_off"  # to the next shift, at the end of this one


class Rule(StrEnum):
    """`RESCUE_SWEEP_DEFAULT`: what the end of a shift does with what nobody decided."""

    HANDOVER = "handover"  # finished ones closed, the others back in the inbox
    KEEP = "keep"  # left with their owners


class Fate(StrEnum):
    """What the end of a shift does to one conversation (its sweep item's outcome)."""

    CLOSE = "closed"
    HAND_OVER = "handed_over"
    KEEP = "kept"
    UNOWNED = "unowned"  # it was in the inbox: listed for the next shift


def group_of(conv: Conversation, policy: Policy, now: float) -> Group | None:
    """The group of an open conversation (None when closed). Finished: the operator spoke
    last and the customer has been silent at least `close_reminder` (working time; the
    built-in 30 minutes when it is off), or the owner said *Keep open* and nothing happened
    since."""
    if conv.state is State.CLOSED:
        return None
    if conv.owner is None:
        return Group.UNOWNED
    if conv.state is not State.WAITING_ON_CUSTOMER:
        return Group.CUSTOMER_WAITING
    if conv.kept_open_at is not None:
        return Group.FINISHED
    silent_since = conv.last_operator_at if conv.last_operator_at is not None else conv.timer_from
    length = policy.close_reminder if policy.close_reminder is not None else FINISHED_AFTER
    done = add_working(policy.schedule, silent_since, length)
    return Group.FINISHED if done is not None and done <= now else Group.WITH_CUSTOMER


def fate(group: Group | None, choice: Choice | None, rule: Rule) -> Fate | None:
    """What the end of the shift does: the operator's choice, else the default rule (a
    finished one closed, the others handed over, or all kept). None: nothing (closed)."""
    if group is None:
        return None
    if group is Group.UNOWNED:
        return Fate.UNOWNED
    if choice is Choice.KEEP:
        return Fate.KEEP
    if choice is Choice.HAND_OFF:
        return Fate.HAND_OVER
    # Undecided, or closed on the card and reopened since (a new exchange): the rule.
    if rule is Rule.KEEP:
        return Fate.KEEP
    return Fate.CLOSE if group is Group.FINISHED else Fate.HAND_OVER


def since_of(conv: Conversation, group: Group) -> float:
    """The moment a card's line counts from: the customer's oldest unanswered message when
    they wait, else the operator's last word (or the return to the inbox)."""
    if group is Group.CUSTOMER_WAITING and conv.waiting_since is not None:
        return conv.waiting_since
    if group is Group.UNOWNED:
        return conv.waiting_since or conv.queued_at or conv.opened_at
    return conv.last_operator_at or conv.timer_from


# --- named shifts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shift:
    """A named shift: its weekly hours in the team's zone, and its members (user ids), whose
    sweep comes at its ends instead of the team's."""

    name: str
    week: tuple[Day, ...]
    members: tuple[str, ...]

    def schedule(self, team: Schedule) -> Schedule:
        """Its hours as a schedule: the team's zone, and the team's closed dates and public
        holidays (a day off for the team is one for the shift); other dated hours of the
        team are the team's own."""
        closed = tuple((day, hours) for day, hours in team.dates if not hours)
        return Schedule(zone=team.zone, week=self.week, dates=closed, country=team.country)


def shift_setting(shift: Shift) -> tuple[str, str]:
    """The stored setting of a shift: `shift:<name>` = `<week> | <member> <member>`."""
    return f"{SHIFT_PREFIX}{shift.name}", f"{format_week(shift.week)} | {' '.join(shift.members)}"


_REPORTED: set[tuple[str, str]] = set()


def shifts_of(stored: Mapping[str, str]) -> tuple[Shift, ...]:
    """A team's named shifts from its stored settings, by name; an unreadable one is left
    out (said once in the log), so a bad row never stops the sweeps."""
    found = []
    for key, value in sorted(stored.items()):
        if not key.startswith(SHIFT_PREFIX) or value == "off":  # "off": removed
            continue
        written, _, members = value.partition("|")
        try:
            week = parse_week(written, strict=False)
            if week is None or not SHIFT_NAME.fullmatch(key.removeprefix(SHIFT_PREFIX)):
                raise HoursError("no hours")
        except HoursError as bad:
            if (key, value) not in _REPORTED:
                _REPORTED.add((key, value))
                log.warning("stored shift %s = %r is not readable (%s); left out", key, value,
                            bad)
            continue
        found.append(Shift(key.removeprefix(SHIFT_PREFIX), week, tuple(members.split())))
    return tuple(found)


def named_members(shifts: Iterable[Shift]) -> frozenset[str]:
    return frozenset(member for shift in shifts for member in shift.members)


def covers(owner: str, ending: Sequence[str], shifts: Sequence[Shift], hours: Schedule,
           at: float) -> bool:
    """Whether the shifts ending at `at` (`ending`: names, TEAM_HOURS for the team's hours)
    end `owner`'s working day: a member of named shifts follows those, everybody else the
    team's (`hours`); one who goes on in another of their shifts (back to back, or after a
    break) is not at an end."""
    mine = [shift for shift in shifts if owner in shift.members]
    if not mine:
        return TEAM_HOURS in ending
    if not any(shift.name in ending for shift in mine):
        return False
    return not any(_back_within(shift.schedule(hours), at, BREAK) for shift in mine)


def ends_anybody(ending: Sequence[str], shifts: Sequence[Shift], hours: Schedule,
                 at: float) -> bool:
    """Whether the end at `at` of the shifts `ending` is the end of anybody's working day
    (else it is only a seam between shifts, with no hand-over to make)."""
    return TEAM_HOURS in ending or any(
        covers(member, ending, shifts, hours, at)
        for shift in shifts if shift.name in ending for member in shift.members)


def _back_within(hours: Schedule, at: float, gap: float) -> bool:
    """Whether `hours` open again within `gap` of `at`, on the wall clock (a break across a
    change of the clocks is as long as it reads)."""
    back = next_open(hours, at)
    if back is None:
        return False
    zone = ZoneInfo(hours.zone)
    wall = (datetime.fromtimestamp(back, zone).replace(tzinfo=None)
            - datetime.fromtimestamp(at, zone).replace(tzinfo=None))
    return wall.total_seconds() < gap


# --- when the sweeps come ----------------------------------------------------------------


class Phase(StrEnum):
    """How far a sweep has gone. A step takes its conversations a slice at a time, each
    slice one transaction (`sweeper.py`); `Sweep.cursor` says where the step stands."""

    PLANNED = "planned"  # cards go out at `sweep_at`
    SORTING = "sorting"  # the team's open conversations are being sorted
    DRAWING = "drawing"  # the cards are being drawn, one operator's after another
    CARDED = "carded"  # the cards are queued; the shift ends at `ends_at`
    ENDING = "ending"  # the end's rule is being applied
    HANDED = "handed"  # the end's rule is applied; the handover digest goes at `opens_at`
    DONE = "done"  # carried out
    CALLED_OFF = "called_off"  # its end no longer comes (the hours or `sweep` changed)


@dataclass(frozen=True, slots=True)
class Sweep:
    """One sweep of a team: the end of one or more shifts at one instant (`id`: the team and
    that instant), and how far it has gone. `version` guards each slice of a step; `cursor`
    is where the step under way stands (the last conversation key, or card id, taken);
    `drawn_at`, when the cards were drawn (None: not yet); `unowned`, how many
    conversations nobody had then."""

    id: str
    team: str
    ends_at: float
    sweep_at: float
    opens_at: float | None
    shifts: tuple[str, ...] = (TEAM_HOURS,)
    phase: Phase = Phase.PLANNED
    version: int = 0
    cursor: str = ""
    drawn_at: float | None = None
    unowned: int = 0

    @property
    def due(self) -> float | None:
        """When its next step (or the next slice of the one under way) is due; None once
        done."""
        if self.phase in (Phase.PLANNED, Phase.SORTING, Phase.DRAWING):
            return self.sweep_at
        if self.phase in (Phase.CARDED, Phase.ENDING):
            return self.ends_at
        if self.phase is Phase.HANDED:
            return self.opens_at
        return None


@dataclass(frozen=True, slots=True)
class SweepItem:
    """One conversation in a sweep: whose card lists it (None: nobody had it), its group
    and its line on the card as drawn, the operator's choice, and what the shift's end
    did."""

    sweep: str
    conversation: str
    operator: str | None
    card: int | None
    group: Group
    choice: Choice | None = None
    fate: Fate | None = None
    customer: str = ""
    preview: str = ""
    since: float = 0.0


def sweep_id(team: str, ends_at: float) -> str:
    return f"{team}@{round(ends_at)}"


def sources(schedule: Schedule, shifts: Sequence[Shift]) -> list[tuple[str, Schedule]]:
    """Whose shifts end when: the team's hours (unless always open) and each named shift."""
    found = [] if schedule.always_open else [(TEAM_HOURS, schedule)]
    return found + [(shift.name, shift.schedule(schedule)) for shift in shifts]


def opening_after(schedule: Schedule, shifts: Sequence[Shift], at: float) -> float | None:
    """When somebody is next at work at or after `at` (the team's hours, round the clock
    when it has none, or any named shift): where the next shift's handover digest goes.
    None when nobody ever is."""
    hours = [schedule] + [shift.schedule(schedule) for shift in shifts]
    found = [next_open(each, at) for each in hours]
    return min((when for when in found if when is not None), default=None)


def plan(team: str, policy: Policy, shifts: Sequence[Shift], now: float) -> list[Sweep]:
    """The team's next sweeps from `now`: one per instant at which a shift ends next (shifts
    ending together share one; a break under BREAK, like lunch, is no end), its cards
    `policy.sweep` before that but not before the shift began. None with `sweep` off."""
    if policy.sweep is None:
        return []
    ends: dict[int, tuple[float, float, list[str]]] = {}
    for name, hours in sources(policy.schedule, shifts):
        bounds = shift_bounds(hours, now)
        if bounds is None:
            continue
        start, end = bounds[0], _past_breaks(hours, bounds[1])
        if end is None:
            continue
        sweep_at = max(start, end - policy.sweep)
        earlier, _, names = ends.get(round(end), (sweep_at, end, []))
        ends[round(end)] = (min(earlier, sweep_at), end, [*names, name])
    return [Sweep(sweep_id(team, end), team, end, sweep_at,
                  opening_after(policy.schedule, shifts, end), tuple(names))
            for sweep_at, end, names in sorted(ends.values(), key=lambda e: e[1])]


def _past_breaks(hours: Schedule, end: float) -> float | None:
    """The end of the working day an interval ending at `end` is part of: past every break
    shorter than BREAK. None when no longer gap comes in MAX_BREAKS intervals (then it has
    no end to sweep at, wherever one starts looking)."""
    for _ in range(MAX_BREAKS):
        if not _back_within(hours, end, BREAK):
            return end
        later = shift_end(hours, end)
        if later is None:
            return end
        end = later
    return None

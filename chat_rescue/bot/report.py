"""The report behind `/rescue report` and `chat-rescue report`: history in, one frozen value out.

Pure: the history (or its `Tallies`, as a store counts them), the team's working hours,
its `first_response` target and `now` are passed in. Days are the team's local days (its
hours' zone; UTC without hours), and every wait is working time where the team has hours,
wall time otherwise; the `Report` says which.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from chat_rescue.bot.hours import ALWAYS_OPEN, Schedule, working_between
from chat_rescue.bot.model import CloseReason, HistoryEvent
from chat_rescue.bot.stats import percentile

DAY = 86400.0
# The outcomes (`<notice>:<result>`, recorded when a notice is resolved) that are rescues: a
# conversation answered after the bot stepped in, or taken back from the inbox (a claim
# reclaims it). One answer can end two notices at once (a returned conversation that was
# also escalated is claimed): that is one rescue, counted as the later step, the last in
# this order, so a day's rescues are the exchanges rescued that day.
RESCUES = ("nudge:answered", "return:reclaimed", "escalation:answered")
OPENINGS = frozenset({"opened", "reopened"})
_SLOT = 900  # zones' offsets are whole quarter hours: one local (day, hour) per slot


@dataclass(frozen=True, slots=True)
class DayRow:
    """One local day: its exchanges, first responses and rescues."""

    day: date
    conversations: int = 0  # exchanges that started that day (opened or reopened)
    first_responses: int = 0
    p50: float | None = None  # first-response wait, seconds
    p90: float | None = None
    within_target: float | None = None  # share of that day's first responses within target
    rescues: tuple[int, int, int] = (0, 0, 0)  # counts of RESCUES, in that order


@dataclass(frozen=True, slots=True)
class OperatorRow:
    """One operator over the period."""

    operator: str
    conversations: int  # conversations they claimed or answered first
    first_response_p50: float | None  # their first responses' median wait
    nudges: int  # nudges they received (as the owner)
    handed_off: int  # handed off from a nudge or reminder, or to the next shift at its end


@dataclass(frozen=True, slots=True)
class Report:
    """What the charts and the summary show, for one team over `len(days)` local days."""

    team: str
    zone: str  # the zone the days and hours of the week are in
    working_time: bool  # waits count the team's working hours only (else wall time)
    target: float | None  # the team's first_response target, seconds (None: off)
    days: tuple[DayRow, ...]
    hour_of_week: tuple[tuple[int, ...], ...]  # 7 rows (Monday first) of 24 hourly counts
    operators: tuple[OperatorRow, ...]  # most conversations first
    conversations: int = 0  # exchanges started in the period
    first_response: tuple[float | None, float | None] = (None, None)  # p50, p90
    within_target: float | None = None
    rescues: tuple[int, int, int] = (0, 0, 0)
    closed: int = 0
    closed_at_shift_end: int = 0

    @property
    def time_label(self) -> str:
        """`working time` or `wall time`: what every wait in the report counts."""
        return "working time" if self.working_time else "wall time"

    @property
    def shift_end_share(self) -> float | None:
        """The share of closes that happened at shift end (None without closes)."""
        return self.closed_at_shift_end / self.closed if self.closed else None


def period_start(days: int, now: float, zone: str) -> float:
    """The local midnight `days - 1` days before today's: a report of `days` days, today
    (so far) included, starts there."""
    tz = ZoneInfo(zone)
    today = datetime.fromtimestamp(now, tz).date()
    first = today - timedelta(days=days - 1)
    return datetime(first.year, first.month, first.day, tzinfo=tz).timestamp()


@dataclass(frozen=True, slots=True)
class Tallies:
    """A team's history between two moments, counted as a report needs it: what is only
    counted comes counted (the store's `Reports.tallies` does it where the rows are), and
    only first replies come one by one (their waits make percentiles). Slots are quarter
    hours since the epoch (`at // 900`): every zone's offset is whole quarter hours."""

    openings: Mapping[int, int]  # slot -> exchanges started (opened or reopened)
    first_replies: Sequence[tuple[str, float, str | None, float]]  # key, at, operator, wait
    owned: Mapping[str, int]  # operator -> conversations they claimed or answered first
    nudged: Mapping[str, int]  # operator -> nudges they received as the owner
    outcomes: Sequence[tuple[str, str | None, int, int]]  # detail, actor, slot, how many
    rescues: Mapping[tuple[int, int], int]  # (slot, index in RESCUES) -> rescues
    shift_end: Mapping[str, int]  # operator -> conversations the sweep handed on from them
    closed: Mapping[str | None, int]  # close reason -> closes


def tally(history: Iterable[HistoryEvent], since: float, until: float) -> Tallies:
    """The tallies of history events from `since` to `until` (both included), counted
    here: what a store's `Reports.tallies` gives for the same events."""
    openings: Counter[int] = Counter()
    replies: list[tuple[str, float, str | None, float]] = []
    owned: dict[str, set[str]] = defaultdict(set)
    nudged: Counter[str] = Counter()
    outcomes: Counter[tuple[str, str | None, int]] = Counter()
    rescues: dict[tuple[str, float], tuple[int, int]] = {}  # (key, at) -> (slot, step)
    shift_end: Counter[str] = Counter()
    closed: Counter[str | None] = Counter()
    for event in history:
        if not since <= event.at <= until:
            continue
        kind = event.kind
        if kind == "first_reply" and event.value is not None:
            replies.append((event.ref.key, event.at, event.actor, event.value))
            if event.actor is not None:
                owned[event.actor].add(event.ref.key)
        elif kind in OPENINGS:
            openings[int(event.at // _SLOT)] += 1
        elif kind == "claimed" and event.actor is not None:
            owned[event.actor].add(event.ref.key)
        elif kind == "nudged" and event.actor is not None:
            nudged[event.actor] += 1
        elif kind == "outcome" and event.detail:
            slot = int(event.at // _SLOT)
            outcomes[(event.detail, event.actor, slot)] += 1
            if event.detail in RESCUES:  # one answer, one rescue: its latest step
                point, step = (event.ref.key, event.at), (slot, RESCUES.index(event.detail))
                rescues[point] = max(rescues.get(point, step), step)
        elif kind == "returned" and event.detail == "shift_end" and event.actor is not None:
            shift_end[event.actor] += 1
        elif kind == "closed":
            closed[event.detail] += 1
    return Tallies(dict(openings), replies, {who: len(keys) for who, keys in owned.items()},
                   dict(nudged), [(*key, n) for key, n in outcomes.items()],
                   dict(Counter(rescues.values())), dict(shift_end), dict(closed))


def build(history: Iterable[HistoryEvent], *, team: str, days: int, now: float,
          schedule: Schedule = ALWAYS_OPEN, target: float | None = None,
          schedule_of: Callable[[str], Schedule] | None = None) -> Report:
    """The report of the `days` local days up to `now` from history events (events
    outside are left out); see `from_tallies`."""
    since = period_start(days, now, schedule.zone)
    return from_tallies(tally(history, since, now), team=team, days=days, now=now,
                        schedule=schedule, target=target, schedule_of=schedule_of)


def from_tallies(tallies: Tallies, *, team: str, days: int, now: float,
                 schedule: Schedule = ALWAYS_OPEN, target: float | None = None,
                 schedule_of: Callable[[str], Schedule] | None = None) -> Report:
    """The report of the `days` local days up to `now`, from the tallies of that period.

    `schedule` is the team's hours (its zone, and whether waits are working time);
    `schedule_of` gives the hours of a first reply's conversation, by its key (a channel
    may have its own), the team's by default. A first response is on the day it was given,
    an exchange on the day it started; a wait within target is one of at most `target`
    seconds.
    """
    zone = schedule.zone
    working = not schedule.always_open
    start = period_start(days, now, zone)
    tz = ZoneInfo(zone)
    first_day = datetime.fromtimestamp(start, tz).date()
    local: dict[int, tuple[int, int]] = {}  # slot -> (day index, hour of the week)

    def where(slot: int) -> tuple[int, int]:
        found = local.get(slot)
        if found is None:
            moment = datetime.fromtimestamp(slot * _SLOT, tz)
            found = ((moment.date() - first_day).days, moment.weekday() * 24 + moment.hour)
            local[slot] = found
        return found

    waits: list[list[float]] = [[] for _ in range(days)]
    opened = [0] * days
    rescued = [[0, 0, 0] for _ in range(days)]
    week = [0] * (7 * 24)
    answered_by: dict[str, list[float]] = defaultdict(list)
    for key, at, actor, wait in tallies.first_replies:
        if working:
            hours = schedule_of(key) if schedule_of is not None else schedule
            wait = working_between(hours, at - wait, at)
        waits[where(int(at // _SLOT))[0]].append(wait)
        if actor is not None:
            answered_by[actor].append(wait)
    for slot, count in tallies.openings.items():
        index, hour = where(slot)
        opened[index] += count
        week[hour] += count
    handed: Counter[str] = Counter(tallies.shift_end)  # handed to the next shift by the sweep
    for (slot, step), count in tallies.rescues.items():
        rescued[where(slot)[0]][step] += count
    for detail, actor, _, count in tallies.outcomes:
        if detail.endswith(":handed_off") and actor is not None:
            handed[actor] += count
    rows = tuple(_day(first_day + timedelta(days=i), opened[i], waits[i], target,
                      rescued[i]) for i in range(days))
    everything = [wait for day in waits for wait in day]
    operators = sorted(
        (OperatorRow(who, tallies.owned.get(who, 0), percentile(answered_by.get(who, []), 50),
                     tallies.nudged.get(who, 0), handed[who])
         for who in set(tallies.owned) | set(tallies.nudged) | set(handed)),
        key=lambda row: (-row.conversations, row.operator))
    return Report(
        team=team, zone=zone, working_time=working, target=target, days=rows,
        hour_of_week=tuple(tuple(week[d * 24:(d + 1) * 24]) for d in range(7)),
        operators=tuple(operators), conversations=sum(opened),
        first_response=(percentile(everything, 50), percentile(everything, 90)),
        within_target=_within(everything, target),
        rescues=(sum(r[0] for r in rescued), sum(r[1] for r in rescued),
                 sum(r[2] for r in rescued)),
        closed=sum(tallies.closed.values()),
        closed_at_shift_end=tallies.closed.get(CloseReason.AT_SHIFT_END, 0),
    )


def _day(day: date, conversations: int, waits: list[float], target: float | None,
         rescues: list[int]) -> DayRow:
    return DayRow(day, conversations, len(waits), percentile(waits, 50), percentile(waits, 90),
                  _within(waits, target), (rescues[0], rescues[1], rescues[2]))


def _within(waits: list[float], target: float | None) -> float | None:
    if target is None or not waits:
        return None
    return sum(wait <= target for wait in waits) / len(waits)

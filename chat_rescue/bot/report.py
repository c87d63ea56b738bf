"""The report behind `/rescue report` and `chat-rescue report`: history in, one frozen value out.

Pure: the history, the team's working hours, its `first_response` target and `now` are
passed in. Days are the team's local days (its hours' zone; UTC without hours), and every
wait is working time where the team has hours, wall time otherwise; the `Report` says which.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from chat_rescue.bot.hours import ALWAYS_OPEN, Schedule, working_between
from chat_rescue.bot.model import CloseReason, HistoryEvent
from chat_rescue.bot.stats import percentile

DAY = 86400.0
# The outcomes (`<notice>:<result>`, recorded when a notice is resolved) that are rescues: a
# conversation answered after the bot stepped in, or taken back from the inbox.
RESCUES = ("nudge:answered", "return:reclaimed", "escalation:answered")
OPENINGS = frozenset({"opened", "reopened"})
# The kinds of event a report reads (replies after the first are most of history: not these).
KINDS = ("opened", "reopened", "claimed", "first_reply", "nudged", "outcome", "returned",
         "closed")
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


def build(history: Iterable[HistoryEvent], *, team: str, days: int, now: float,
          schedule: Schedule = ALWAYS_OPEN, target: float | None = None,
          schedule_of: Callable[[HistoryEvent], Schedule] | None = None) -> Report:
    """The report of the `days` local days up to `now` (events outside are left out).

    `schedule` is the team's hours (its zone, and whether waits are working time);
    `schedule_of` gives the hours a first reply's conversation had (a channel may have its
    own), the team's by default. A first response is on the day it was given, an exchange
    on the day it started; a wait within target is one of at most `target` seconds.
    """
    zone = schedule.zone
    working = not schedule.always_open
    start = period_start(days, now, zone)
    tz = ZoneInfo(zone)
    first_day = datetime.fromtimestamp(start, tz).date()
    local: dict[int, tuple[int, int]] = {}  # slot -> (day index, hour of the week)

    def where(at: float) -> tuple[int, int]:
        slot = int(at // _SLOT)
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
    owned: dict[str, set[str]] = defaultdict(set)
    answered_by: dict[str, list[float]] = defaultdict(list)
    nudged: Counter[str] = Counter()
    handed: Counter[str] = Counter()
    closed = at_shift_end = 0
    for event in history:
        if not start <= event.at <= now:
            continue
        kind = event.kind
        if kind == "first_reply" and event.value is not None:
            wait = event.value
            if working:
                hours = schedule_of(event) if schedule_of is not None else schedule
                wait = working_between(hours, event.at - wait, event.at)
            waits[where(event.at)[0]].append(wait)
            if event.actor is not None:
                answered_by[event.actor].append(wait)
                owned[event.actor].add(event.ref.key)
        elif kind in OPENINGS:
            index, hour = where(event.at)
            opened[index] += 1
            week[hour] += 1
        elif kind == "claimed" and event.actor is not None:
            owned[event.actor].add(event.ref.key)
        elif kind == "nudged" and event.actor is not None:
            nudged[event.actor] += 1
        elif kind == "outcome" and event.detail:
            if event.detail in RESCUES:
                rescued[where(event.at)[0]][RESCUES.index(event.detail)] += 1
            elif event.detail.endswith(":handed_off") and event.actor is not None:
                handed[event.actor] += 1
        elif kind == "returned" and event.detail == "shift_end" and event.actor is not None:
            handed[event.actor] += 1  # handed to the next shift by the sweep
        elif kind == "closed":
            closed += 1
            at_shift_end += event.detail == CloseReason.AT_SHIFT_END
    rows = tuple(_day(first_day + timedelta(days=i), opened[i], waits[i], target,
                      rescued[i]) for i in range(days))
    everything = [wait for day in waits for wait in day]
    operators = sorted(
        (OperatorRow(who, len(owned[who]), percentile(answered_by.get(who, []), 50),
                     nudged[who], handed[who])
         for who in set(owned) | set(nudged) | set(handed)),
        key=lambda row: (-row.conversations, row.operator))
    return Report(
        team=team, zone=zone, working_time=working, target=target, days=rows,
        hour_of_week=tuple(tuple(week[d * 24:(d + 1) * 24]) for d in range(7)),
        operators=tuple(operators), conversations=sum(opened),
        first_response=(percentile(everything, 50), percentile(everything, 90)),
        within_target=_within(everything, target),
        rescues=(sum(r[0] for r in rescued), sum(r[1] for r in rescued),
                 sum(r[2] for r in rescued)),
        closed=closed, closed_at_shift_end=at_shift_end,
    )


def _day(day: date, conversations: int, waits: list[float], target: float | None,
         rescues: list[int]) -> DayRow:
    return DayRow(day, conversations, len(waits), percentile(waits, 50), percentile(waits, 90),
                  _within(waits, target), (rescues[0], rescues[1], rescues[2]))


def _within(waits: list[float], target: float | None) -> float | None:
    if target is None or not waits:
        return None
    return sum(wait <= target for wait in waits) / len(waits)

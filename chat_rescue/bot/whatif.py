"""What other thresholds would have done: the recorded days, replayed and counted.

`compare` replays the window twice through the engine (`bot/replay.py`), with the
thresholds in force and with the candidate's, and counts nudges, returns, calls for
operators and the customers' waits in each, beside what was recorded. The replay with
today's thresholds matching the record is the check that the replay is faithful.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import TypeVar

from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.inputs import Input
from chat_rescue.bot.model import (
    Close,
    CloseReason,
    CustomerMessage,
    HistoryEvent,
    OperatorMessage,
    ShiftEnd,
    Timer,
)
from chat_rescue.bot.policy import TIMERS, Policy
from chat_rescue.bot.replay import Played, first_openings, reactions, replay
from chat_rescue.bot.stats import percentile

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

Thresholds = Mapping[str, float | None]  # timer name -> seconds (None: off)
# What a comparison reads of history: the notices (calls are what rescuers react to), their
# outcomes, and the answers (the customers' waits).
KINDS = ("nudged", "returned", "escalated", "reminded", "outcome", "first_reply", "reply")
ANSWERS = ("first_reply", "reply")


@dataclass(frozen=True, slots=True)
class Tally:
    """What one version of the window did."""

    conversations: int = 0
    nudges: int = 0
    returns: int = 0
    escalations: int = 0
    waits: tuple[float, ...] = ()  # each answered wait of a customer, seconds
    unanswered: int = 0  # customers still waiting at the window's end
    outcomes: Mapping[str, int] = field(default_factory=dict)
    answered_at: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # key -> times
    reminders: int = 0  # close reminders

    @property
    def notices(self) -> int:
        """Everything the timers sent people: nudges, returns, calls, close reminders."""
        return self.nudges + self.returns + self.escalations + self.reminders

    @property
    def wait(self) -> tuple[float | None, float | None]:
        return percentile(self.waits, 50), percentile(self.waits, 90)


def tally(histories: Iterable[tuple[str, Sequence[HistoryEvent]]],
          waiting: Iterable[str] = ()) -> Tally:
    """Count the conversations' histories ({key: events}); `waiting`: the keys whose
    customer was still waiting at the end."""
    counts: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    waits: list[float] = []
    answered: dict[str, tuple[float, ...]] = {}
    conversations = 0
    for key, events in histories:
        conversations += 1
        times = []
        for event in events:
            if event.kind == "returned" and event.detail == "shift_end":
                continue  # the sweep's hand-over to the next shift: routine, not a rescue
            counts[event.kind] += 1
            if event.kind == "outcome" and event.detail:
                outcomes[event.detail] += 1
            elif event.kind in ANSWERS and event.value is not None:
                waits.append(event.value)
                times.append(event.at)
        answered[key] = tuple(times)
    return Tally(conversations, counts["nudged"], counts["returned"], counts["escalated"],
                 tuple(waits), len(set(waiting)), dict(outcomes), answered,
                 counts["reminded"])


@dataclass(frozen=True, slots=True)
class Comparison:
    """The record (today's thresholds, as they went), the candidate's replay, and, when
    asked for, a replay with today's thresholds (the check that replays are faithful)."""

    days: float
    changes: Thresholds
    recorded: Tally
    candidate: Tally
    today: Tally | None = None
    until: float = 0.0  # the window's end

    @property
    def faithful(self) -> bool | None:
        """Whether the replay with today's thresholds gave what was recorded (None: not
        replayed)."""
        if self.today is None:
            return None
        r, t = self.recorded, self.today
        return (r.nudges, r.returns, r.escalations, r.reminders) == \
            (t.nudges, t.returns, t.escalations, t.reminders)

    def delayed(self) -> tuple[int, float]:
        """Conversations whose customer the candidate answers later than they were (than
        today's replay, when there is one), and the longest delay (seconds); an answer the
        candidate never gives is late until the window's end."""
        base = self.today if self.today is not None else self.recorded
        count, longest = 0, 0.0
        for key, times in base.answered_at.items():
            later = self.candidate.answered_at.get(key, ())
            lags = [b - a for a, b in zip(times, later, strict=False)]
            lags += [self.until - a for a in times[len(later):]]
            worst = max(lags, default=0.0)
            if worst > 0:
                count, longest = count + 1, max(longest, worst)
        return count, longest


def candidate_policy(policy: Policy, changes: Thresholds) -> Policy:
    """`policy` with the named timers changed."""
    unknown = set(changes) - set(TIMERS)
    if unknown:
        raise ValueError(f"not timers: {', '.join(sorted(unknown))}")
    return replace(policy, **dict(changes))  # type: ignore[arg-type]


def compare(inputs: Sequence[Input], history: Sequence[HistoryEvent],
            policy_of: Callable[[Input], Policy], changes: Thresholds, until: float,
            days: float, *, check: bool = False, workers: int = 1) -> Comparison:
    """Replay `inputs` (the window's) with `changes` laid on today's policies, beside the
    record of the conversations the window opened (and, with `check`, a replay with
    today's policies). `workers` > 1 replays in that many processes (forked, where the
    process has no other thread: conversations are independent); the policies are all
    looked up first, here."""
    answers = reactions(inputs, history)
    known = _policies(inputs, policy_of)
    keys = sorted(known.keys_opened)
    began = first_openings(inputs)
    recorded: dict[str, list[HistoryEvent]] = {key: [] for key in keys}
    for event in history:
        events = recorded.get(event.ref.key)
        if events is not None and event.at >= began[event.ref.key]:
            events.append(event)
    # A conversation no timer reached stays so with timers no sooner: its record is the
    # candidate's too, and only the others are replayed.
    kept = {key for key, events in recorded.items()
            if _untimed(events) and _no_sooner(known.by_key[key], changes)}
    runs = [(changes, kept), *([({}, set())] if check else [])]
    job = _Job(inputs, known, until, answers, runs)
    parts = None
    if workers > 1 and len(keys) - len(kept) > 1 and can_fork():
        global _JOB
        _JOB = job
        try:
            parts = forked(_part, [(n, workers) for n in range(workers)])
        finally:
            _JOB = None
        if parts is None:  # a process died: the shares here, one after another
            parts = [job.tallies(share_of(n, workers)) for n in range(workers)]
    if parts is not None:
        tallies = [merged([part[i] for part in parts]) for i in range(len(runs))]
    else:
        tallies = job.tallies(None)
    waiting = _still_waiting(inputs, set(keys))
    as_recorded = tally(((key, recorded[key]) for key in sorted(kept)),
                        [key for key in waiting if key in kept])
    return Comparison(days, changes, tally(recorded.items(), waiting),
                      merged([tallies[0], as_recorded]), tallies[1] if check else None, until)


# What only a timer records: a nudge, a call for operators, a close reminder, a return by
# the `first_response` or `escalate` timer (no detail: a hand-off and the sweep's say so),
# an auto-close.
_TIMED = frozenset({"nudged", "escalated", "reminded"})


def _untimed(events: Iterable[HistoryEvent]) -> bool:
    """Whether no timer fired in the recorded conversation."""
    for event in events:
        if event.kind in _TIMED or (event.kind == "returned" and event.detail is None) or (
                event.kind == "closed" and event.detail == CloseReason.BY_CUSTOMER_SILENCE):
            return False
    return True


def _no_sooner(policy: Policy, changes: Thresholds) -> bool:
    """Whether every changed timer comes due no sooner than today's (or never)."""
    for name, value in changes.items():
        today = policy.timer(Timer(name))
        if value is not None and (today is None or value < today):
            return False
    return True


def _still_waiting(inputs: Iterable[Input], keys: set[str]) -> list[str]:
    """Which of `keys` end the window with the customer waiting on an answer: by what
    people did, as no timer answers anyone (and none closes a conversation while the
    customer waits)."""
    waiting: dict[str, bool] = {}
    for item in inputs:
        if item.key in keys:
            event = item.event
            if isinstance(event, CustomerMessage):
                waiting[item.key] = True
            elif isinstance(event, OperatorMessage | Close) or (
                    isinstance(event, ShiftEnd) and event.close):
                waiting[item.key] = False
    return [key for key, still in waiting.items() if still]


@dataclass(slots=True)
class _Policies:
    """Each conversation's policy by its opening input, looked up once per channel."""

    by_channel: dict[tuple[str, str, str], Policy]
    keys_opened: set[str]
    by_key: dict[str, Policy] = field(default_factory=dict)  # of the conversations opened

    def __call__(self, item: Input) -> Policy:
        ref = item.event.ref
        return self.by_channel[(item.team, ref.platform, ref.channel)]


def _policies(inputs: Sequence[Input], policy_of: Callable[[Input], Policy]) -> _Policies:
    known = _Policies({}, set())
    for item in inputs:
        if item.opened:
            known.keys_opened.add(item.key)
            ref = item.event.ref
            where = (item.team, ref.platform, ref.channel)
            if where not in known.by_channel:
                known.by_channel[where] = policy_of(item)
            known.by_key[item.key] = known.by_channel[where]
    return known


@dataclass(slots=True)
class _Job:
    """The replays to run: today's policies with each of `runs` laid on."""

    inputs: Sequence[Input]
    policies: _Policies
    until: float
    answers: dict[int, float]
    runs: list[tuple[Thresholds, set[str]]]  # the changes, and the conversations not replayed

    def tallies(self, share: Callable[[str], bool] | None) -> list[Tally]:
        found = []
        for changes, kept in self.runs:
            laid: dict[int, Policy] = {}  # today's policy (by identity) -> the candidate's

            def policy_of(item: Input, changes: Thresholds = changes,
                          laid: dict[int, Policy] = laid) -> Policy:
                today = self.policies(item)  # one of a few, shared by the channel's
                candidate = laid.get(id(today))
                if candidate is None:
                    candidate = laid[id(today)] = candidate_policy(today, changes)
                return candidate

            def only(key: str, kept: set[str] = kept) -> bool:
                return key not in kept and (share is None or share(key))

            played = list(replay(self.inputs, policy_of, self.until, self.answers, only))
            found.append(tally(((p.key, p.history) for p in played), _waiting(played)))
        return found


_JOB: _Job | None = None  # what a forked worker replays (inherited, never pickled)


def _part(share: tuple[int, int]) -> list[Tally]:
    """A forked worker's share of the conversations, by key."""
    number, workers = share
    assert _JOB is not None
    return _JOB.tallies(share_of(number, workers))


def merged(parts: Sequence[Tally]) -> Tally:
    """The tallies of disjoint sets of conversations, as one."""
    outcomes: Counter[str] = Counter()
    answered: dict[str, tuple[float, ...]] = {}
    for part in parts:
        outcomes.update(part.outcomes)
        answered.update(part.answered_at)
    return Tally(sum(p.conversations for p in parts), sum(p.nudges for p in parts),
                 sum(p.returns for p in parts), sum(p.escalations for p in parts),
                 tuple(w for p in parts for w in p.waits), sum(p.unanswered for p in parts),
                 dict(outcomes), answered, sum(p.reminders for p in parts))


def joined(parts: Sequence[Comparison]) -> Comparison:
    """The comparisons of disjoint sets of a window's conversations, as one."""
    today = [p.today for p in parts if p.today is not None]
    return replace(parts[0], recorded=merged([p.recorded for p in parts]),
                   candidate=merged([p.candidate for p in parts]),
                   today=merged(today) if today else None)


def share_of(number: int, shares: int) -> Callable[[str], bool]:
    """Which conversation keys are share `number` of `shares` (the same on every run)."""
    return lambda key: zlib.crc32(key.encode()) % shares == number


def can_fork() -> bool:
    """Forking is safe for a process with no other thread (a pool's, a store worker's)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def forked(work: Callable[[T], R], shares: Sequence[T]) -> list[R] | None:
    """`work` of each share, in as many forked processes (which inherit what `work` reads);
    None when one of them died (the out-of-memory killer, a signal): the caller does the
    work itself then, rather than wait for an answer that never comes."""
    context = multiprocessing.get_context("fork")
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(len(shares), mp_context=context)
    try:
        done = list(pool.map(work, shares))
    except BrokenProcessPool as broken:
        pool.shutdown()
        log.warning("a replay process died (%s); replaying in this one", broken)
        print("A replay process died (out of memory?); replaying in this one instead.",
              file=sys.stderr)
        return None
    except BaseException:  # interrupted (Ctrl-C, a signal): the replays are not waited for
        pool.shutdown(wait=False, cancel_futures=True)
        for child in set(multiprocessing.active_children()) - before:
            child.terminate()
        raise
    pool.shutdown()
    return done


def _waiting(played: Iterable[Played]) -> list[str]:
    return [p.key for p in played if p.last is not None and p.last.waiting_since is not None]


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return format_duration(seconds) if seconds >= 1 else f"{seconds:.1f}s"


def named(changes: Thresholds) -> str:
    """`idle 7m, first_response 45s`."""
    return ", ".join(f"{name} {format_duration(value) if value is not None else 'off'}"
                     for name, value in changes.items())


def render(comparison: Comparison, today_named: str) -> str:
    """The comparison as a table: today's thresholds as recorded, (replayed,) the
    candidate's."""
    c = comparison
    tallies = [c.recorded, *([c.today] if c.today is not None else []), c.candidate]
    rows: list[tuple[str, ...]] = [("", "recorded", *(["replayed"] if c.today else []),
                                    "candidate")]
    for name, pick in (("conversations", lambda t: t.conversations),
                       ("nudges", lambda t: t.nudges), ("returns", lambda t: t.returns),
                       ("escalations", lambda t: t.escalations),
                       ("close reminders", lambda t: t.reminders)):
        rows.append((name, *(str(pick(t)) for t in tallies)))
    for name, index in (("wait p50", 0), ("wait p90", 1)):
        rows.append((name, *(_took(t.wait[index]) for t in tallies)))
    rows.append(("still waiting", *(str(t.unanswered) for t in tallies)))
    width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"What if, over the last {c.days:g} days: {named(c.changes)} "
             f"(today: {today_named})"]
    lines += ["  " + "  ".join(cell.rjust(width[i]) if i else cell.ljust(width[i])
                               for i, cell in enumerate(row)) for row in rows]
    count, longest = c.delayed()
    if count:
        lines.append(f"The candidate answers {count} customer(s) later, by up to "
                     f"{_took(longest)}.")
    if c.faithful is False:
        lines.append("Note: the replay with today's thresholds differs from the record: "
                     "thresholds or hours changed in the window.")
    return "\n".join(lines)

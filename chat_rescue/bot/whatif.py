"""What other thresholds would have done: the recorded days, replayed and counted.

`compare` replays the window twice through the engine (`bot/replay.py`), with the
thresholds in force and with the candidate's, and counts nudges, returns, calls for
operators and the customers' waits in each, beside what was recorded. The replay with
today's thresholds matching the record is the check that the replay is faithful.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.inputs import Input
from chat_rescue.bot.model import HistoryEvent
from chat_rescue.bot.policy import TIMERS, Policy
from chat_rescue.bot.replay import reactions, replay
from chat_rescue.bot.stats import percentile

Thresholds = Mapping[str, float | None]  # timer name -> seconds (None: off)
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
                 tuple(waits), len(set(waiting)), dict(outcomes), answered)


@dataclass(frozen=True, slots=True)
class Comparison:
    """The record, the replay with today's thresholds, and the candidate's."""

    days: float
    changes: Thresholds
    recorded: Tally
    today: Tally
    candidate: Tally

    @property
    def faithful(self) -> bool:
        """Whether the replay with today's thresholds gave what was recorded."""
        r, t = self.recorded, self.today
        return (r.nudges, r.returns, r.escalations) == (t.nudges, t.returns, t.escalations)

    def delayed(self) -> tuple[int, float]:
        """Conversations whose customer the candidate answers later than today's replay,
        and the longest delay (seconds)."""
        count, longest = 0, 0.0
        for key, times in self.today.answered_at.items():
            later = [max(0.0, b - a) for a, b in zip(times, self.candidate.answered_at.get(key, ()),
                                                     strict=False)]
            worst = max(later, default=0.0)
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
            days: float) -> Comparison:
    """Replay `inputs` (the window's) with today's policies and with `changes` laid on."""
    answers = reactions(inputs, history)
    today = list(replay(inputs, policy_of, until, answers))
    candidate = list(replay(inputs, lambda item: candidate_policy(policy_of(item), changes),
                            until, answers))
    keys = {played.key for played in today}
    recorded: dict[str, list[HistoryEvent]] = defaultdict(list)
    for event in history:
        if event.ref.key in keys:
            recorded[event.ref.key].append(event)
    return Comparison(
        days, changes,
        tally(((key, recorded.get(key, [])) for key in sorted(keys)), ()),
        tally(((p.key, p.history) for p in today), _waiting(today)),
        tally(((p.key, p.history) for p in candidate), _waiting(candidate)),
    )


def _waiting(played: Iterable[object]) -> list[str]:
    return [p.key for p in played  # type: ignore[attr-defined]
            if p.last is not None and p.last.waiting_since is not None]  # type: ignore[attr-defined]


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return format_duration(seconds) if seconds >= 1 else f"{seconds:.1f}s"


def named(changes: Thresholds) -> str:
    """`idle 7m, first_response 45s`."""
    return ", ".join(f"{name} {format_duration(value) if value is not None else 'off'}"
                     for name, value in changes.items())


def render(comparison: Comparison, today_named: str) -> str:
    """The comparison as a table: recorded, replayed with today's, the candidate's."""
    c = comparison
    rows: list[tuple[str, ...]] = [("", "recorded", "today", "candidate")]
    for name, pick in (("conversations", lambda t: t.conversations),
                       ("nudges", lambda t: t.nudges), ("returns", lambda t: t.returns),
                       ("escalations", lambda t: t.escalations)):
        rows.append((name, *(str(pick(t)) for t in (c.recorded, c.today, c.candidate))))
    for name, index in (("wait p50", 0), ("wait p90", 1)):
        rows.append((name, *(_took(t.wait[index]) for t in (c.recorded, c.today, c.candidate))))
    rows.append(("still waiting", "-", str(c.today.unanswered), str(c.candidate.unanswered)))
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"What if, over the last {c.days:g} days: {named(c.changes)} "
             f"(today: {today_named})"]
    lines += ["  " + "  ".join(cell.rjust(width[i]) if i else cell.ljust(width[i])
                               for i, cell in enumerate(row)) for row in rows]
    count, longest = c.delayed()
    if count:
        lines.append(f"The candidate answers {count} customer(s) later, by up to "
                     f"{_took(longest)}.")
    if not c.faithful:
        lines.append("Note: the replay with today's thresholds differs from the record: "
                     "thresholds or hours changed in the window, or conversations began "
                     "before it.")
    return "\n".join(lines)

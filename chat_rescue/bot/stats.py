"""Figures from the event history: first-response and reply times (wall time and working
time), nudges, rescues, and why conversations were closed (the share closed at shift end)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.hours import Schedule, working_between
from chat_rescue.bot.model import CloseReason, HistoryEvent

RESCUE_KINDS = frozenset({"nudged", "returned", "escalated"})
# How the table names each closing reason, in the order it lists them.
REASONS = {
    CloseReason.AT_SHIFT_END: "at shift end",
    CloseReason.AT_DIALOGUE_END: "at dialogue end",
    CloseReason.BY_OPERATOR: "by operator later",
    CloseReason.BY_CUSTOMER_SILENCE: "customer silence",
}
Pair = tuple[float | None, float | None]


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Stats:
    """What `/rescue stats`, `chat-rescue stats` and the demo summary show."""

    conversations: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    first_response: Pair = (None, None)  # p50, p90 in wall time
    reply: Pair = (None, None)
    nudges: int = 0
    returns: int = 0
    escalations: int = 0
    rescues: int = 0
    closed: int = 0
    first_response_working: Pair = (None, None)  # the same, in the team's working time
    reply_working: Pair = (None, None)
    closed_by: dict[str, int] = field(default_factory=dict)  # CloseReason value -> closes

    @property
    def shift_end_share(self) -> float | None:
        """The share of closes that happened at shift end (None without closes)."""
        if not self.closed:
            return None
        return self.closed_by.get(CloseReason.AT_SHIFT_END, 0) / self.closed


def outcome(kinds: Sequence[str]) -> str:
    """One conversation's outcome, by the worst thing that happened to it."""
    if "escalated" in kinds:
        return "operators called in"
    if "returned" in kinds:
        return "returned to inbox"
    if "nudged" in kinds:
        return "nudged"
    if "first_reply" in kinds:
        return "answered in time"
    return "not answered yet"


def close_reason(event: HistoryEvent) -> str:
    """Why a `closed` event closed; events recorded before reasons were (no detail) read as
    auto-closed when nobody closed them, else as closed by the operator."""
    if event.detail:
        return event.detail
    return CloseReason.BY_CUSTOMER_SILENCE if event.actor is None else CloseReason.BY_OPERATOR


def summarize(history: Iterable[HistoryEvent],
              schedule: Callable[[HistoryEvent], Schedule] | None = None) -> Stats:
    """Aggregate history events (in the order they happened).

    A reopening is a new exchange (rule 9): its first reply is a first response (the
    engine records it as `first_reply`), and a rescue is an answer after trouble in the
    same exchange, not after a nudge in one the conversation had before it was closed.
    Times are wall time and, by `schedule` (the working hours an event's conversation
    had; always open without it), working time: a customer who wrote at 17:55 on Friday
    and was answered at 09:05 on Monday waited 10 working minutes.
    """
    kinds: dict[str, list[str]] = defaultdict(list)
    first: list[float] = []
    replies: list[float] = []
    first_working: list[float] = []
    replies_working: list[float] = []
    closed_by: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    rescued: set[str] = set()
    in_trouble: set[str] = set()  # conversations whose current exchange had a rescue step
    for event in history:
        if event.kind == "returned" and event.detail == "shift_end":
            # Handed to the next shift by the sweep: routine, not a timer's rescue step.
            event = replace(event, kind="handed_over")
        key = event.ref.key
        seen = kinds[key]
        if event.kind == "reopened":
            in_trouble.discard(key)
        elif event.kind in RESCUE_KINDS:
            in_trouble.add(key)
        elif event.kind in ("first_reply", "reply") and key in in_trouble:
            rescued.add(key)
        seen.append(event.kind)
        counts[event.kind] += 1
        if event.kind == "closed":
            closed_by[close_reason(event)] += 1
        if event.value is not None and event.kind in ("first_reply", "reply"):
            working = event.value
            if schedule is not None:
                working = working_between(schedule(event), event.at - event.value, event.at)
            if event.kind == "first_reply":
                first.append(event.value)
                first_working.append(working)
            else:
                replies.append(event.value)
                replies_working.append(working)
    return Stats(
        conversations=len(kinds),
        outcomes=dict(Counter(outcome(k) for k in kinds.values())),
        first_response=(percentile(first, 50), percentile(first, 90)),
        reply=(percentile(replies, 50), percentile(replies, 90)),
        nudges=counts["nudged"],
        returns=counts["returned"],
        escalations=counts["escalated"],
        rescues=len(rescued),
        closed=counts["closed"],
        first_response_working=(percentile(first_working, 50), percentile(first_working, 90)),
        reply_working=(percentile(replies_working, 50), percentile(replies_working, 90)),
        closed_by=dict(closed_by),
    )


def _pair(values: Pair) -> str:
    p50, p90 = values
    if p50 is None or p90 is None:
        return "no data"
    return f"p50 {_took(p50)}, p90 {_took(p90)}"


def _took(seconds: float) -> str:
    """A measured time: no working time in a wait is 0s (format_duration writes settings,
    which are never 0)."""
    return format_duration(seconds) if seconds > 0 else "0s"


def render(stats: Stats, title: str = "") -> str:
    """A plain-text table a support lead can read at a glance."""
    lines = [title] if title else []
    lines.append(f"Conversations           {stats.conversations}")
    for name, count in sorted(stats.outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {name:<22}{count}")
    lines += [
        f"First response          {_pair(stats.first_response)}",
        f"  in working time       {_pair(stats.first_response_working)}",
        f"Reply time              {_pair(stats.reply)}",
        f"  in working time       {_pair(stats.reply_working)}",
        f"Nudges                  {stats.nudges}",
        f"Returns to inbox        {stats.returns}",
        f"Escalations             {stats.escalations}",
        f"Rescued                 {stats.rescues}",
        f"Closed                  {stats.closed}",
    ]
    share = stats.shift_end_share
    if share is not None:
        for reason, name in REASONS.items():
            count = stats.closed_by.get(reason, 0)
            figure = f"{count} ({share:.0%} of closes)" if reason is CloseReason.AT_SHIFT_END \
                else str(count)
            lines.append(f"  {name:<22}{figure}")
    return "\n".join(lines)

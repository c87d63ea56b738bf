"""Figures from the event history: first-response and reply times, nudges, rescues."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.model import HistoryEvent

RESCUE_KINDS = frozenset({"nudged", "returned", "escalated"})


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
    first_response: tuple[float | None, float | None] = (None, None)
    reply: tuple[float | None, float | None] = (None, None)
    nudges: int = 0
    returns: int = 0
    escalations: int = 0
    rescues: int = 0
    closed: int = 0


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


def summarize(history: Iterable[HistoryEvent]) -> Stats:
    """Aggregate history events (in the order they happened).

    A reopening is a new exchange (rule 9): its first reply is a first response (the
    engine records it as `first_reply`), and a rescue is an answer after trouble in the
    same exchange, not after a nudge in one the conversation had before it was closed.
    """
    kinds: dict[str, list[str]] = defaultdict(list)
    first: list[float] = []
    replies: list[float] = []
    counts: Counter[str] = Counter()
    rescued: set[str] = set()
    in_trouble: set[str] = set()  # conversations whose current exchange had a rescue step
    for event in history:
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
        if event.value is not None:
            if event.kind == "first_reply":
                first.append(event.value)
            elif event.kind == "reply":
                replies.append(event.value)
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
    )


def _pair(values: tuple[float | None, float | None]) -> str:
    p50, p90 = values
    if p50 is None or p90 is None:
        return "no data"
    return f"p50 {format_duration(p50)}, p90 {format_duration(p90)}"


def render(stats: Stats, title: str = "") -> str:
    """A plain-text table a support lead can read at a glance."""
    lines = [title] if title else []
    lines.append(f"Conversations           {stats.conversations}")
    for name, count in sorted(stats.outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {name:<22}{count}")
    lines += [
        f"First response          {_pair(stats.first_response)}",
        f"Reply time              {_pair(stats.reply)}",
        f"Nudges                  {stats.nudges}",
        f"Returns to inbox        {stats.returns}",
        f"Escalations             {stats.escalations}",
        f"Rescued                 {stats.rescues}",
        f"Closed                  {stats.closed}",
    ]
    return "\n".join(lines)

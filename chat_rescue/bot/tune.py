"""`/rescue tune`: what the history says about each timer in force, and a suggestion.

For each timer that is on, the recorded outcomes say what its notices led to (a nudge
answered 40 s after it: the owner was there, only slow). The suggestion comes from
replaying the window through the engine (`bot/whatif.py`) with the timer a step longer,
then another: of those that answer no customer more than `DELAY_OK` later (and leave no
more waiting at the end), the one that saves the most notices is suggested, the shorter
of two that save as many; if none does, the timer is kept, with what a longer one
would cost. A replay cannot show what a shorter timer gains (nobody answers a call faster
than they answered), so only longer ones are tried.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Sequence

from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.inputs import Input
from chat_rescue.bot.model import CloseReason, HistoryEvent, Timer
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.stats import percentile
from chat_rescue.bot.whatif import Comparison, compare

# The lengths tried, in seconds: each timer's next steps up from where it is.
LADDER = (15, 30, 45, 60, 90, 120, 180, 300, 420, 600, 900, 1200, 1800, 2700, 3600, 5400,
          7200, 14400, 28800, 86400)
DELAY_OK = 120.0  # a suggestion may answer a customer this much later, no more
SAMPLE = 5000  # conversations replayed at most (a larger window is sampled evenly)
STEPS = 2


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return format_duration(seconds) if seconds >= 1 else "0s"


def longer(value: float) -> list[float]:
    """The next `STEPS` lengths up the ladder from `value`."""
    return [float(step) for step in LADDER if step > value][:STEPS]


def sampler(total: int, limit: int | None = None) -> Callable[[str], bool] | None:
    """Which conversation keys an even sample of about `limit` (SAMPLE) out of `total`
    takes (the same ones on every run); None: all of them."""
    limit = SAMPLE if limit is None else limit
    if total <= limit:
        return None
    every = -(-total // limit)
    return lambda key: zlib.crc32(key.encode()) % every == 0


def sample(inputs: Sequence[Input], limit: int | None = None) -> tuple[list[Input], int, int]:
    """At most about `limit` of the conversations the window opens, chosen by `sampler`:
    (their inputs, how many taken, how many there were)."""
    opened = {i.key for i in inputs if i.opened}
    picks = sampler(len(opened), limit)
    if picks is None:
        return list(inputs), len(opened), len(opened)
    chosen = {key for key in opened if picks(key)}
    return [i for i in inputs if i.key in chosen], len(chosen), len(opened)


def facts(timer: Timer, value: float, history: Sequence[HistoryEvent], days: float) -> str:
    """What the recorded history says about `timer` at `value`."""
    outcome: Counter[str] = Counter()
    after: dict[str, list[float]] = {}
    kinds: Counter[str] = Counter()
    silence = 0
    for event in history:
        kinds[event.kind] += 1
        if event.kind == "outcome" and event.detail:
            outcome[event.detail] += 1
            if event.value is not None:
                after.setdefault(event.detail, []).append(event.value)
        elif event.kind == "closed" and event.detail == CloseReason.BY_CUSTOMER_SILENCE:
            silence += 1
    name, span = f"{timer.value} {format_duration(value)}", f"in {days:g} days"

    def took(detail: str, p: float, what: str) -> str:
        """`, p50 40s after the nudge` (nothing without figures)."""
        seconds = percentile(after.get(detail, []), p)
        return f", p{p:g} {_took(seconds)} {what}" if seconds is not None else ""

    if timer is Timer.IDLE:
        answered = outcome["nudge:answered"]
        slow = (f" ({took('nudge:answered', 50, 'after the nudge')[2:]}: the owner was "
                "there, only slow)") if answered else ""
        return (f"{name}: {kinds['nudged']} nudges {span}; {answered} answered{slow}, "
                f"{outcome['nudge:snoozed']} snoozed, {outcome['nudge:handed_off']} handed "
                f"off, {outcome['nudge:returned']} ignored → returned.")
    if timer is Timer.ESCALATE:
        return (f"{name}: {outcome['nudge:returned']} of {kinds['nudged']} nudges {span} "
                f"ignored → returned"
                f"{took('nudge:answered', 90, 'after the nudge for the answered ones')}.")
    if timer is Timer.ACCEPT:
        return (f"{name}: {kinds['escalated']} calls for operators {span}; "
                f"{outcome['escalation:answered']} answered"
                f"{took('escalation:answered', 50, 'after the call')}.")
    if timer is Timer.FIRST_RESPONSE:
        unanswered = sum(1 for e in history if e.kind == "returned" and e.detail is None) \
            - outcome["nudge:returned"]
        return f"{name}: {max(0, unanswered)} returns with no first response {span}."
    if timer is Timer.CLOSE_REMINDER:
        return (f"{name}: {kinds['reminded']} close reminders {span}; "
                f"{outcome['reminder:closed']} closed, {outcome['reminder:kept_open']} kept "
                f"open, {outcome['reminder:customer_wrote']} the customer wrote again, "
                f"{outcome['reminder:answered']} the operator wrote.")
    return f"{name}: {silence} conversations closed after the customer's silence {span}."


def _notices(c: Comparison) -> tuple[int, int]:
    return c.recorded.notices, c.candidate.notices


def advise(timer: Timer, value: float, tries: list[Comparison]) -> str:
    """The suggestion for `timer` from the replays of its longer lengths."""
    name = f"{timer.value} {format_duration(value)}"
    best: Comparison | None = None
    refused: Comparison | None = None
    for tried in tries:
        before, after = _notices(tried)
        count, longest = tried.delayed()
        if after >= before:
            continue
        if longest <= DELAY_OK and tried.candidate.unanswered <= tried.recorded.unanswered:
            if best is None or after < _notices(best)[1]:  # a longer one only if it saves more
                best = tried
        elif refused is None:
            refused = tried
    if best is not None:
        before, after = _notices(best)
        count, longest = best.delayed()
        length = format_duration(best.changes[timer.value])
        delay = (f" and answered {count} customer(s) up to {_took(longest)} later" if count
                 else ", answering nobody later")
        return (f"Suggest {timer.value} {length} (would have saved {before - after} "
                f"notice(s){delay}).")
    if refused is not None:
        before, after = _notices(refused)
        count, longest = refused.delayed()
        length = format_duration(refused.changes[timer.value])
        return (f"Keep {name}: {timer.value} {length} would have saved {before - after} "
                f"notice(s) but answered {count} customer(s) up to {_took(longest)} later.")
    return f"Keep {name}: a longer one saves nothing here."


def tune(inputs: Sequence[Input], history: Sequence[HistoryEvent],
         policy_of: Callable[[Input], Policy], team: Policy, until: float,
         days: float, limit: int | None = None, total: int | None = None) -> str:
    """The `/rescue tune` answer for a team whose thresholds are `team`'s. `total`: how
    many conversations the window opened, when `inputs` are a sample already."""
    taken, replayed, opened = sample(inputs, limit)
    total = max(opened, total or 0)
    if not replayed:
        return (f"No conversations recorded in the last {days:g} days to learn from (the "
                "people's events are recorded from this release on).")
    keys = {i.key for i in taken}
    mine = [h for h in history if h.ref.key in keys]
    lines = [f"What the last {days:g} days say ({replayed:,} conversations"
             + (f", an even sample of {total:,}" if replayed < total else "") + "):"]
    for timer in Timer:
        value = team.timer(timer)
        if value is None:
            continue
        tries = [compare(taken, mine, policy_of, {timer.value: length}, until, days)
                 for length in longer(value)]
        lines.append(facts(timer, value, mine, days))
        lines.append("  " + advise(timer, value, tries))
    lines.append("Replays keep what people did; a later call brings its rescuer that much "
                 "later. Try any thresholds: chat-rescue whatif --idle 7m --days 30")
    return "\n".join(lines)

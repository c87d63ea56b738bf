"""When a conversation's timer comes due: its state's one deadline, in working time.

Pure, like the engine: `now` is an argument. A timer runs for its length of the policy's
working time (always open: plain seconds). Nothing comes due while the team is closed: a
deadline that passed then (the bot was down, or the hours changed) waits for the opening.
When the hours change, a running timer keeps the working time it used under the old hours
(`rebased`) and counts only the rest in the new ones.
"""

from __future__ import annotations

from chat_rescue.bot.hours import Schedule, add_working, is_open, next_open, working_between
from chat_rescue.bot.model import Conversation, State, Timer, evolve
from chat_rescue.bot.policy import Policy


def next_deadline(conv: Conversation, policy: Policy) -> tuple[float, Timer] | None:
    """The one deadline that the conversation's state implies, or None: the running
    timer's length of working time after its start."""
    candidates: list[tuple[float, Timer]] = []

    def after(start: float, timer: Timer) -> None:
        due = _due(conv, policy, timer, start)
        if due is not None:  # None: off, or the team never opens again
            candidates.append((due, timer))

    if conv.state is State.CLOSED:
        return None
    # A long enough silence closes the conversation (when set) in any open state, but
    # never while the customer waits on us: that one is rescued, not closed.
    if conv.waiting_since is None:
        after(quiet_since(conv), Timer.AUTO_CLOSE)
    if conv.state is State.QUEUED:
        # Calling operators in is for a customer who waits: a conversation handed back
        # after the operator spoke last waits in the inbox, and `accept` starts when the
        # customer writes (see `_customer_message`).
        if conv.waiting_since is not None and conv.escalations <= policy.escalate_repeats:
            after(conv.timer_from, Timer.ACCEPT)
    elif conv.state is State.CLAIMED:
        after(conv.timer_from, Timer.FIRST_RESPONSE)
    elif conv.state is State.WAITING_ON_OPERATOR:
        if conv.nudged_at is None:
            after(conv.timer_from, Timer.IDLE)
        else:
            after(conv.nudged_at, Timer.ESCALATE)
    elif conv.state is State.WAITING_ON_CUSTOMER and not conv.reminded:
        after(conv.timer_from, Timer.CLOSE_REMINDER)
    return min(candidates) if candidates else None


def _due(conv: Conversation, policy: Policy, timer: Timer, start: float) -> float | None:
    """When `timer`, started at `start`, comes due: its length of working time after its
    start, or, if the hours changed while it ran, the rest of it after that change."""
    length = policy.timer(timer)
    if length is None:
        return None
    used = conv.quiet_used if timer is Timer.AUTO_CLOSE else conv.timer_used
    if used is not None and conv.rebased_at is not None:
        return add_working(policy.schedule, conv.rebased_at, length - used)
    return add_working(policy.schedule, start, length)


def timer_start(conv: Conversation) -> float:
    """When the state's timer (not `auto_close`) started: the nudge for `escalate`."""
    if conv.state is State.WAITING_ON_OPERATOR and conv.nudged_at is not None:
        return conv.nudged_at
    return conv.timer_from


def rebased(conv: Conversation, old: Schedule, now: float) -> Conversation:
    """`conv` as the hours change at `now` from `old`: each timer's working time used so
    far under `old` is kept (added to what it used before an earlier change), so the new
    hours count only the rest, from `now`, and never recount the past."""
    if conv.state is State.CLOSED:
        return conv

    def used(start: float, kept: float | None) -> float:
        if kept is not None and conv.rebased_at is not None:
            return kept + working_between(old, conv.rebased_at, now)
        return working_between(old, start, now)

    return evolve(conv, rebased_at=now, timer_used=used(timer_start(conv), conv.timer_used),
                   quiet_used=used(quiet_since(conv), conv.quiet_used))


def restarted(before: Conversation, after: Conversation) -> Conversation:
    """`after` with the used time of each timer whose start moved since `before` dropped:
    a new timer counts from its own start."""
    if after.rebased_at is None:
        return after
    timer_used, quiet_used = after.timer_used, after.quiet_used
    if (before.state, timer_start(before)) != (after.state, timer_start(after)):
        timer_used = None
    if quiet_since(before) != quiet_since(after):
        quiet_used = None
    if timer_used is None and quiet_used is None:
        return evolve(after, rebased_at=None, timer_used=None, quiet_used=None)
    if (timer_used, quiet_used) == (after.timer_used, after.quiet_used):
        return after
    return evolve(after, timer_used=timer_used, quiet_used=quiet_used)


def quiet_since(conv: Conversation) -> float:
    """When the conversation last showed life, which `auto_close` counts from: the latest
    message from either side or its return to the inbox; waiting on the customer, the
    operator's last word or a *Keep open*."""
    if conv.state is State.WAITING_ON_CUSTOMER:
        return conv.timer_from
    moments = (conv.last_customer_at, conv.last_operator_at, conv.queued_at)
    return max((at for at in moments if at is not None), default=conv.opened_at)


def with_deadline(conv: Conversation, policy: Policy, now: float | None = None) -> Conversation:
    """`conv` with `deadline` / `deadline_timer` set from its state; one that has passed
    by `now` while the team is closed is held to the next opening."""
    due = next_deadline(conv, policy)
    at, timer = due if due else (None, None)
    if at is not None and now is not None and at <= now and not is_open(policy.schedule, now):
        at = next_open(policy.schedule, now)
        timer = timer if at is not None else None
    if conv.deadline == at and conv.deadline_timer == timer:
        return conv
    return evolve(conv, deadline=at, deadline_timer=timer)


def passed(conv: Conversation, policy: Policy, start: float, timer: Timer, now: float) -> bool:
    """Whether `timer`'s length of working time since `start` has passed by `now`."""
    due = _due(conv, policy, timer, start)
    return due is not None and due <= now

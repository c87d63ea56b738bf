"""When a conversation's timer comes due: its state's one deadline, in working time.

Pure, like the engine: `now` is an argument. A timer runs for its length of the policy's
working time (always open: plain seconds). Nothing comes due while the team is closed: a
deadline that passed then (the bot was down, or the hours changed) waits for the opening.
"""

from __future__ import annotations

from dataclasses import replace

from chat_rescue.bot.hours import add_working, is_open, next_open
from chat_rescue.bot.model import Conversation, State, Timer
from chat_rescue.bot.policy import Policy


def next_deadline(conv: Conversation, policy: Policy) -> tuple[float, Timer] | None:
    """The one deadline that the conversation's state implies, or None: the running
    timer's length of working time after its start."""
    candidates: list[tuple[float, Timer]] = []

    def after(start: float, timer: Timer) -> None:
        length = policy.timer(timer)
        if length is not None:
            due = add_working(policy.schedule, start, length)
            if due is not None:  # None: the team never opens again
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
    return replace(conv, deadline=at, deadline_timer=timer)


def passed(policy: Policy, start: float, timer: Timer, now: float) -> bool:
    """Whether `timer`'s length of working time since `start` has passed by `now`."""
    length = policy.timer(timer)
    if length is None:
        return False
    due = add_working(policy.schedule, start, length)
    return due is not None and due <= now

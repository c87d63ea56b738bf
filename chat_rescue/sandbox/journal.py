"""A journal of an in-process bot's outbox, for outage tests: what was queued, per
conversation and in order, and what each platform call made of it.

`OutboxJournal.attach(bot)` wraps the bot's store commits (`commit`, and `commit_all` for
a ticker's or a sweep's slice: to see each committed change's actions) and each adapter's
`deliver` (to see every attempt and its outcome), without changing what either does.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from chat_rescue.bot.model import (
    NOTICES,
    Action,
    Digest,
    PostCard,
    UpdateCard,
    lane_of,
    priority_of,
)
from chat_rescue.bot.outbox import Posted
from chat_rescue.bot.ports import Change, Outcome
from chat_rescue.server import Bot

Deliver = Callable[[Action], Coroutine[Any, Any, Posted | None]]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One `deliver` call: when, on which platform, which actions, and how it ended."""

    at: float  # time.monotonic() when it returned
    platform: str
    actions: tuple[Action, ...]  # a digest's notices, or the one action
    error: str | None  # None: delivered

    @property
    def delivered(self) -> bool:
        return self.error is None


@dataclass
class OutboxJournal:
    """Queued actions per lane (in commit order) and every delivery attempt."""

    queued: dict[str, list[tuple[float, Action]]] = field(
        default_factory=lambda: defaultdict(list))
    attempts: list[Attempt] = field(default_factory=list)
    store: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attach(self, bot: Bot) -> OutboxJournal:
        self.store = bot.store
        commit, commit_all = bot.store.commit, bot.store.commit_all

        def journal(changes: Sequence[Change]) -> None:
            # Once the transaction commits (on the store's thread): a batch may still roll
            # back, and a group that fails runs its events again.
            bot.store.after_commit(partial(self._queued, changes, time.monotonic()))

        def journaled_commit(change: Change, now: float) -> Outcome:
            outcome = commit(change, now)
            if outcome is Outcome.COMMITTED:
                journal([change])
            return outcome

        def journaled_commit_all(changes: Sequence[Change], now: float) -> bool:
            together = commit_all(changes, now)
            if together:
                journal(changes)
            return together

        bot.store.commit = journaled_commit  # type: ignore[method-assign]
        bot.store.commit_all = journaled_commit_all  # type: ignore[method-assign]
        for adapter in bot.adapters:
            journaled = self._journaled(adapter.name, adapter.deliver)
            setattr(adapter, "deliver", journaled)  # noqa: B010 - an instance override
        return self

    def _queued(self, changes: Sequence[Change], at: float) -> None:
        with self._lock:  # the store's thread writes; the loop reads (`out_of_order`)
            for change in changes:
                for action in change.actions:
                    self.queued[lane_of(action)].append((at, action))

    def _journaled(self, platform: str, deliver: Deliver) -> Deliver:
        async def journaled_deliver(action: Action) -> Posted | None:
            actions = action.notices if isinstance(action, Digest) else (action,)
            try:
                posted = await deliver(action)
            except BaseException as failed:
                self.attempts.append(Attempt(time.monotonic(), platform, actions,
                                             f"{type(failed).__name__}: {failed}"))
                raise
            self.attempts.append(Attempt(time.monotonic(), platform, actions, None))
            return posted

        return journaled_deliver

    def delivered(self) -> dict[str, list[tuple[float, Action]]]:
        """Delivered actions per lane, in delivery order."""
        lanes: dict[str, list[tuple[float, Action]]] = defaultdict(list)
        for attempt in self.attempts:
            if attempt.delivered:
                for action in attempt.actions:
                    lanes[lane_of(action)].append((attempt.at, action))
        return lanes

    def out_of_order(self) -> list[str]:
        """Lanes whose deliveries break the outbox's order: within each priority
        (`model.priority_of`: copies of messages, then new cards and notices, then card
        updates) the order queued, leaving out only card updates that a card delivered
        later covered and notices dropped because their reason had gone."""
        problems = []
        delivered = self.delivered()
        with self._lock:
            lanes = {lane: list(items) for lane, items in self.queued.items()}
        for lane in sorted(set(lanes) | set(delivered)):
            queued = lanes.get(lane, [])
            got = delivered.get(lane, [])
            cards_at = [at for at, a in got if isinstance(a, PostCard | UpdateCard)]
            for rank in sorted({priority_of(a) for _, a in [*queued, *got]}):
                wanted = [(t, a) for t, a in queued if priority_of(a) == rank]
                made = [(t, a) for t, a in got if priority_of(a) == rank]
                if not _covers(wanted, made, cards_at):
                    problems.append(f"{lane}: queued {[_name(a) for _, a in queued]}, "
                                    f"delivered {[_name(a) for _, a in got]}")
                    break
        return problems

    def drained_at(self, queued_before: float) -> float | None:
        """When the last delivery happened, once nothing queued before `queued_before`
        waits (None: something still does)."""
        waiting = self.store.oldest_pending() if self.store is not None else None
        if waiting is not None and waiting < self.epoch_of(queued_before):
            return None
        done = [a.at for a in self.attempts if a.delivered]
        return max(done, default=queued_before)

    def epoch_of(self, monotonic: float) -> float:
        return time.time() - (time.monotonic() - monotonic)

    def failures(self, platform: str) -> int:
        return sum(1 for a in self.attempts if a.platform == platform and not a.delivered)


def _name(action: Action) -> str:
    return type(action).__name__


def _covers(queued: list[tuple[float, Action]], delivered: list[tuple[float, Action]],
            cards_at: list[float]) -> bool:
    """`delivered` is `queued` in order, less card updates that a card delivered after
    they were queued (at one of `cards_at`) showed, and notices (dropped once their reason
    had gone)."""
    position = 0
    for queued_at, action in queued:
        if position < len(delivered) and _name(delivered[position][1]) == _name(action):
            position += 1
        elif isinstance(action, UpdateCard) and any(at >= queued_at for at in cards_at):
            continue  # superseded: the card was drawn after this update was queued
        elif not isinstance(action, NOTICES):
            return False
    return position == len(delivered)

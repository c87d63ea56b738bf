"""A journal of an in-process bot's outbox, for outage tests: what was queued, per
conversation and in order, and what each platform call made of it.

`OutboxJournal.attach(bot)` wraps the bot's store commit (to see each committed change's
actions) and each adapter's `deliver` (to see every attempt and its outcome), without
changing what either does.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from chat_rescue.bot.model import Action, Digest
from chat_rescue.bot.outbox import Posted
from chat_rescue.server import Bot
from chat_rescue.storage.base import Change, Outcome

Deliver = Callable[[Action], Coroutine[Any, Any, Posted | None]]


def lane_of(action: Action) -> str:
    """The outbox lane (the conversation key) an action is queued in, as the store does."""
    holder: Any = getattr(action, "conversation", None) or action
    key: str = holder.ref.key
    return key


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

    def attach(self, bot: Bot) -> OutboxJournal:
        commit = bot.store.commit

        def journaled_commit(change: Change, now: float) -> Outcome:
            outcome = commit(change, now)
            if outcome is Outcome.COMMITTED:
                for action in change.actions:
                    self.queued[lane_of(action)].append((time.monotonic(), action))
            return outcome

        bot.store.commit = journaled_commit  # type: ignore[method-assign]
        for adapter in bot.adapters:
            journaled = self._journaled(adapter.name, adapter.deliver)
            setattr(adapter, "deliver", journaled)  # noqa: B010 - an instance override
        return self

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
        """Lanes whose deliveries are not exactly their queued actions, in queue order."""
        problems = []
        delivered = self.delivered()
        for lane in sorted(set(self.queued) | set(delivered)):
            wanted = [type(a).__name__ for _, a in self.queued.get(lane, [])]
            got = [type(a).__name__ for _, a in delivered.get(lane, [])]
            if wanted != got:
                problems.append(f"{lane}: queued {wanted}, delivered {got}")
        return problems

    def drained_at(self, queued_before: float) -> float | None:
        """When the last action queued before `queued_before` was delivered (None: not yet)."""
        delivered = self.delivered()
        last = 0.0
        for lane, queued in self.queued.items():
            count = sum(1 for at, _ in queued if at < queued_before)
            done = delivered.get(lane, [])
            if len(done) < count:
                return None
            if count:
                last = max(last, done[count - 1][0])
        return last

    def failures(self, platform: str) -> int:
        return sum(1 for a in self.attempts if a.platform == platform and not a.delivered)

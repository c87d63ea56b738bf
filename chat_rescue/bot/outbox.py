"""Delivers queued actions to a platform: in order per conversation, paced per
channel, folded into digests when many notices for one channel are due at once,
retried with backoff (honouring "retry after N s"), never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from chat_rescue.bot.clock import Clock
from chat_rescue.bot.model import NOTICES, Action, Digest, PostCard, UpdateCard, lane_of
from chat_rescue.storage.base import OutboxItem, Store

log = logging.getLogger(__name__)

HEADS = 1000  # lane heads looked at per pass
DIGEST_MIN = 3  # this many notices for one channel at once become one digest
DIGEST_MAX = 20  # and a digest lists at most this many (Slack: 50 blocks a message)
MAX_ATTEMPTS = 12  # with backoff capped at 5 min: about an hour of trying
DELIVERY_TIMEOUT = 15.0  # a hanging platform call counts as a failure
PAUSE_AFTER_ERROR = 1.0
GATHER_POKES = 0.01


@dataclass(frozen=True, slots=True)
class Posted:
    """What a platform created for a PostCard: the card's id and aliases that lead to it."""

    card: str
    aliases: tuple[str, ...] = ()


class RetryLater(Exception):  # noqa: N818 - reads as what the platform said
    """The platform asked us to wait (HTTP 429 and friends) or pacing says so."""

    def __init__(self, after: float, reason: str = "rate limited") -> None:
        super().__init__(f"{reason}; retry after {after:g}s")
        self.after = after


class Undeliverable(Exception):  # noqa: N818
    """The action can never be delivered (blocked by the user, channel gone)."""


class Platform(Protocol):
    """What an adapter offers the outbox: delivery, and where each action lands."""

    name: str

    async def deliver(self, action: Action) -> Posted | None:
        """Deliver one action (or Digest); raise RetryLater / Undeliverable as fits."""

    def destination(self, action: Action) -> str:
        """The channel an action posts to, for pacing and digests."""

    def interval(self, destination: str) -> float:
        """Minimum seconds between two posts to `destination`."""


class Outbox:
    """One worker per platform, draining that platform's lanes of the store's outbox."""

    def __init__(self, store: Store, platform: Platform, clock: Clock) -> None:
        self.store = store
        self.platform = platform
        self.clock = clock
        self.delivered = 0
        self._next_free: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._prefix = f"{platform.name}:"
        # What the last look at the outbox found, so that a poke for actions that could
        # not go anyway costs nothing: the lanes that already wait (all of them, unless
        # the look hit its limit), and when the worker wakes up by itself.
        self._waiting: set[str] = set()
        self._waiting_complete = False
        self._asleep_until: float | None = None

    def poke(self, actions: Sequence[Action] = ()) -> None:
        """Actions were queued: look at the outbox now, unless none of them can go before
        the worker wakes up anyway (each waits behind an older item of its conversation
        or for its destination's pacing slot). Without `actions`, always look."""
        if not actions or any(self._could_go(action) for action in actions):
            self._wake.set()

    def _could_go(self, action: Action) -> bool:
        lane = lane_of(action)
        if not lane.startswith(self._prefix):
            return False  # another platform's
        if self._waiting_complete and lane in self._waiting:
            return False  # behind an older item of its conversation
        free_at = self._next_free.get(self._where(action), 0.0)
        # Not before its destination's slot, which comes no sooner than the worker's own
        # wake-up: it is looked at then. (Not noted as waiting: the commit that queued it
        # may still roll back.)
        return self._asleep_until is None or free_at < self._asleep_until

    async def run(self) -> None:
        """Drain forever, sleeping until the next retry or pacing slot, or a poke.

        An unexpected error (a bug, a full disk) is logged and the worker goes on after
        a pause: one bad item must not stop delivery for the whole platform.
        """
        while True:
            self._wake.clear()
            try:
                next_at = await self.drain()
            except Exception:
                log.exception("%s: outbox worker failed; going on in %gs", self.platform.name,
                              PAUSE_AFTER_ERROR)
                await asyncio.sleep(PAUSE_AFTER_ERROR)
                continue
            timeout = None
            if next_at is not None:
                timeout = max(0.0, self.clock.real(next_at - self.clock.now()))
            self._asleep_until = next_at
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the event fires, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._asleep_until = None
            if next_at is not None:
                # A paced backlog is waiting, and pokes come once per stored event:
                # gathering them for a moment keeps it from being rescanned hundreds of
                # times a second under load.
                await asyncio.sleep(GATHER_POKES)

    async def drain(self) -> float | None:
        """Deliver everything that may go now; return when the next held item may go."""
        while True:
            ready, next_at = self._ready(self.clock.now())
            if not ready:
                return next_at
            progressed = False
            for batch in self._batches(ready):
                progressed |= await self._send(batch)
            if not progressed:
                return self._ready(self.clock.now())[1]

    def _ready(self, now: float) -> tuple[list[OutboxItem], float | None]:
        """The head item of each lane, if it is not held back; and the earliest hold."""
        ready, next_at = [], None
        heads = self.store.heads(self._prefix, HEADS)
        for item in heads:
            hold = max(item.not_before, self._next_free.get(self._where(item.action), 0.0))
            if hold > now:
                next_at = hold if next_at is None else min(next_at, hold)
            else:
                ready.append(item)
        self._waiting = {item.lane for item in heads}
        self._waiting_complete = len(heads) < HEADS
        return ready, next_at

    def _batches(self, ready: list[OutboxItem]) -> list[list[OutboxItem]]:
        by_place: dict[str, list[OutboxItem]] = defaultdict(list)
        batches = []
        for item in ready:
            if isinstance(item.action, NOTICES):
                by_place[self._where(item.action)].append(item)
            else:
                batches.append([item])
        for items in by_place.values():
            if len(items) >= DIGEST_MIN:
                batches += [items[i:i + DIGEST_MAX] for i in range(0, len(items), DIGEST_MAX)]
            else:
                batches += [[item] for item in items]
        batches.sort(key=lambda b: b[0].id)
        return batches

    def _where(self, action: Action) -> str:
        return self.platform.destination(action)

    async def _send(self, batch: list[OutboxItem]) -> bool:
        """Deliver one item or one digest; True if it left the outbox."""
        now = self.clock.now()
        first = batch[0]
        place = self._where(first.action)
        if self._next_free.get(place, 0.0) > now:
            return False  # an earlier delivery in this round took the slot
        actions = [self._fresh(item.action) for item in batch]
        if len(batch) == 1 and isinstance(actions[0], PostCard | UpdateCard) \
                and actions[0].conversation.version < 0:
            log.warning("%s: no conversation %s to show on a card; dropped",
                        self.platform.name, actions[0].conversation.ref.key)
            self.store.settle(first.id, error="conversation not found", dead=True)
            return True
        action = actions[0] if len(batch) == 1 else Digest(place, tuple(actions))
        try:
            async with asyncio.timeout(DELIVERY_TIMEOUT):
                posted = await self.platform.deliver(action)
        except RetryLater as wait:
            self._next_free[place] = now + wait.after
            for item in batch:
                self.store.settle(item.id, retry_at=now + wait.after, error=str(wait),
                                  failed=False)
            return False
        except Undeliverable as gone:
            log.warning("%s: giving up on %s: %s", self.platform.name, type(action).__name__, gone)
            for item in batch:
                self.store.settle(item.id, error=str(gone), dead=True)
            return True
        except Exception as failed:  # network errors, 5xx, timeouts: back off and retry
            error = f"{type(failed).__name__}: {failed}"
            given_up = False
            for item in batch:
                dead = item.attempts + 1 >= MAX_ATTEMPTS
                delay = min(300.0, 2.0 ** item.attempts)
                self.store.settle(item.id, retry_at=now + delay, error=error, dead=dead)
                given_up |= dead
            log.warning("%s: delivery of %s failed (%s); %s", self.platform.name,
                        type(action).__name__, error,
                        "given up (dead letter)" if given_up else "retrying")
            return given_up  # a dead letter leaves the outbox: what waited behind it may go now
        self._next_free[place] = now + self.platform.interval(place)
        if isinstance(posted, Posted) and isinstance(first.action, PostCard | UpdateCard):
            # An UpdateCard may have had to post the card afresh (the first post was lost).
            self.store.attach(first.action.conversation.ref.key, posted.card, posted.aliases)
        for item in batch:
            self.store.settle(item.id)
        self.delivered += len(batch)
        return True

    def _fresh(self, action: Action) -> Action:
        """Cards render the conversation as it is now; notices point at its current card."""
        if isinstance(action, PostCard | UpdateCard):
            current = self.store.load(action.conversation.ref.key)
            return replace(action, conversation=current) if current else action
        if isinstance(action, NOTICES) and action.card is None:
            current = self.store.load(action.ref.key)
            if current is not None and current.card is not None:
                return replace(action, card=current.card)
        return action

"""The deadline ticker: one task, one deadline query per wake-up.

It sleeps until the earliest deadline in the store and is woken early when a
sooner one is scheduled. No timers per conversation live in memory, so a restart
(even `kill -9`) loses nothing: every deadline that passed while the process was
down is due on the first wake-up and fires once, because firing it moves the
conversation on in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from chat_rescue.bot.clock import Clock
from chat_rescue.bot.model import ConversationRef, DeadlineDue
from chat_rescue.bot.service import Service
from chat_rescue.storage.base import Store

log = logging.getLogger(__name__)

RETRY_FAILED = 30.0  # seconds before a deadline whose handling raised is tried again


class Ticker:
    """Fires `DeadlineDue` for every conversation whose deadline has come."""

    def __init__(self, store: Store, service: Service, clock: Clock, *, batch: int = 500,
                 on_fire: Callable[[float, float], None] | None = None) -> None:
        self.store = store
        self.service = service
        self.clock = clock
        self.batch = batch
        self.on_fire = on_fire
        self.fired = 0
        self._target: float | None = None
        self._wake = asyncio.Event()
        self._failing: dict[str, float] = {}  # key -> when to try its deadline again
        service.on_deadline(self.poke)

    def poke(self, at: float) -> None:
        """A deadline at `at` was scheduled: wake up if it is sooner than the current target."""
        if self._target is None or at < self._target:
            self._wake.set()

    def fire_due(self, now: float) -> int:
        """Fire up to one batch of due deadlines; returns how many were handled."""
        # Fetch past the failing ones so they cannot fill a batch and starve the rest.
        keys = self.store.due(now, self.batch + len(self._failing))
        handled = 0
        for key in keys:
            if handled >= self.batch:
                break
            if self._failing.get(key, 0.0) > now:
                continue
            conv = self.store.load(key)
            if conv is None or conv.deadline is None:
                continue
            try:
                self.service.handle(DeadlineDue(ConversationRef.parse(key), now))
            except Exception:
                # One broken conversation must not stop every other timer, nor spin the loop.
                log.exception("deadline of %s failed; trying again in %gs", key, RETRY_FAILED)
                self._failing[key] = now + RETRY_FAILED
                continue
            self._failing.pop(key, None)
            handled += 1
            self.fired += 1
            if self.on_fire is not None:
                self.on_fire(conv.deadline, self.clock.now())
        return handled

    async def run(self) -> None:
        """Run forever: fire what is due, then sleep until the next deadline or a poke."""
        while True:
            self._wake.clear()
            if self.fire_due(self.clock.now()) >= self.batch:
                await asyncio.sleep(0)  # more are due: let inbound work in between batches
                continue
            now = self.clock.now()
            self._target = self.store.next_deadline()
            if self._target is not None and self._target <= now and self._failing:
                self._target = min(self._failing.values())  # only failing ones are due
            timeout = None
            if self._target is not None:
                timeout = max(0.0, self.clock.real(self._target - now))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the event fires, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

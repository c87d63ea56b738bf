"""The deadline ticker: one task, one deadline query per wake-up.

It sleeps until the earliest deadline in the store and is woken early when a
sooner one is scheduled. No timers per conversation live in memory, so a restart
(even `kill -9`) loses nothing: every deadline that passed while the process was
down is due on the first wake-up and fires once, because firing it moves the
conversation on in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from chat_rescue.bot.clock import Clock
from chat_rescue.bot.engine import Decision
from chat_rescue.bot.metrics import timer_of
from chat_rescue.bot.model import Conversation, DeadlineDue
from chat_rescue.bot.ports import Batching, Deadlines
from chat_rescue.bot.service import Service
from chat_rescue.bot.supervise import Loop
from chat_rescue.bot.sweeper import Sweeper
from chat_rescue.bot.wake import Wake

log = logging.getLogger(__name__)

RETRY_FAILED = 30.0  # seconds before a deadline whose handling raised is tried again
# Real seconds it sleeps at most: the next deadline may be a weekend away (working hours),
# and a wall clock stepped forward or a machine resumed from sleep must not make the
# opening late; another process may also have stored a sooner deadline without a poke.
LOOK_AGAIN = 60.0
SLICE = 64  # deadlines fired per transaction, between which inbound work gets its turn
# Real seconds it waits at most for another replica's batch that holds every due deadline:
# its commit's notice comes first; a replica killed meanwhile has its transaction rolled
# back by the server as its socket closes, and says nothing.
CLAIM_WAIT = 0.5


class TickerStore(Deadlines, Batching, Protocol):
    """What the ticker asks of the store: the deadlines, fired a slice per transaction."""


class Ticker:
    """Fires `DeadlineDue` for every conversation whose deadline has come, and takes the
    steps of sweeps (`sweeper`) that are due."""

    def __init__(self, store: TickerStore, service: Service, clock: Clock, *,
                 batch: int = SLICE, on_fire: Callable[[float, float], None] | None = None,
                 sweeper: Sweeper | None = None) -> None:
        self.store = store
        self.service = service
        self.clock = clock
        self.batch = batch
        self.sweeper = sweeper
        self.on_fire = on_fire
        self.fired = 0
        self._target: float | None = None
        self._poked: float | None = None  # the soonest poke while a pass is under way
        self._passing = False
        self._held_elsewhere = False  # what is due is another replica's open batch's
        self._wake = Wake()
        service.on_deadline(self.poke)
        service.metrics.watch_ticker(self.overdue)

    def poke(self, at: float) -> None:
        """A deadline at `at` was scheduled: make it the target if it is sooner (no query)."""
        if self._passing:  # the pass's own look at the next deadline may have missed it
            self._poked = at if self._poked is None else min(self._poked, at)
        elif self._target is None or at < self._target:
            self._target = at
            self._wake.set()

    @property
    def idle(self) -> bool:
        """Asleep with nothing due and no poke waiting (a script's check that it caught up)."""
        return self._wake.sleeping and not self._wake.is_set() and (
            self._target is None or self._target > self.clock.now())

    def elsewhere(self, at: float) -> None:
        """Another process committed a deadline at `at`, or ended a batch that held due
        deadlines: a poke, unless this ticker waits for that batch (then it looks now)."""
        if self._held_elsewhere:
            self.wake()
        else:
            self.poke(at)

    def wake(self) -> None:
        """Look at the store again now: the wall clock was stepped (a resumed machine, or a
        test that jumps to Monday morning), and what the ticker sleeps towards may be due."""
        self._target = self.clock.now()
        self._wake.set()

    def fire_due(self, now: float) -> int:
        """Take the due sweep steps (each a transaction of its own), then claim and fire up
        to one batch of due deadlines in one transaction; returns how many fired."""
        swept = self.sweeper.fire_due(now) if self.sweeper is not None else 0
        fired: list[float] = []
        timers: list[str] = []
        with self.store.batch():
            # Claimed inside the transaction that fires them, and read by the claim: on
            # PostgreSQL another replica's ticker passes over these until it commits.
            claimed = self.store.due(now, self.batch)
            for conv, decision in self._fire(claimed, now):
                assert conv.deadline is not None
                fired.append(conv.deadline)
                timers.append(timer_of(decision.history if decision is not None else ()))
        self.fired += len(fired)
        fired_at = self.clock.now()
        for deadline, timer in zip(fired, timers, strict=True):
            self.service.metrics.fired(timer, fired_at - deadline)
        if self.on_fire is not None:
            for deadline in fired:
                self.on_fire(deadline, fired_at)
        return len(fired) + swept

    def _fire(self, claimed: list[Conversation], now: float
              ) -> list[tuple[Conversation, Decision | None]]:
        """Fire a slice together (one commit for all of it); if that fails, each on its
        own, so one broken conversation neither stops every other timer nor spins the
        loop: its deadline moves on (in the store, so restarts agree)."""
        events = [(DeadlineDue(conv.ref, now), conv) for conv in claimed]
        try:
            return list(zip(claimed, self.service.handle_all(events), strict=True))
        except Exception:
            log.warning("a slice of %d deadlines failed together; each on its own",
                        len(claimed), exc_info=True)
        fired = []
        for event, conv in events:
            try:
                fired.append((conv, self.service.handle(event, read=conv)))
            except Exception:
                log.exception("deadline of %s failed; trying again in %gs", conv.ref.key,
                              RETRY_FAILED)
                self.store.postpone(conv.ref.key, now + RETRY_FAILED)
        return fired

    def overdue(self) -> float:
        """How far past its time (seconds) the earliest deadline this ticker knows of and
        has not fired yet is: 0 when it sleeps towards one still to come, growing while it
        is stuck in a pass, dead, or waits for another replica's batch."""
        target = self._target
        return max(0.0, self.clock.now() - target) if target is not None else 0.0

    def _pass(self, now: float) -> tuple[int, float | None]:
        """On the store's thread: fire what is due, and when that was all of it, read the
        next deadline (one hand-over for both)."""
        fired = self.fire_due(now)
        return fired, (self.store.next_deadline() if fired < self.batch else None)

    async def run(self, loop: Loop | None = None) -> None:
        """Run forever: fire what is due, then sleep until the next deadline or a poke.

        A wake-up for a deadline queries what is due and, once that is done, the next
        deadline; a poke carries its deadline and costs no query at all. A pass that takes
        nothing though something is due (another replica's open batch holds it) waits for
        that batch's notice, or CLAIM_WAIT, rather than look again at once. A store error
        ends the call; its supervisor pauses and calls again, and overdue deadlines fire
        on that first wake-up as after a restart.
        """
        self._target = self.clock.now()  # overdue deadlines fire on the first wake-up
        while True:
            if loop is not None:
                loop.ok()
            self._wake.clear()
            now = self.clock.now()
            self._held_elsewhere = False
            if self._target is not None and self._target <= now:
                self._passing, self._poked = True, None
                try:
                    fired, following = await self.service.call(self._pass, now)
                finally:
                    self._passing = False
                if fired >= self.batch:
                    continue  # more is due; inbound work went in while this slice ran
                # Due, yet nothing taken: another replica's open batch claimed it (FOR
                # UPDATE SKIP LOCKED). Looking again at once would spin until that commits;
                # its commit's notice (`elsewhere`) comes instead.
                self._held_elsewhere = fired == 0 and following is not None \
                    and following <= now
                # Pokes that came in during the pass may be for deadlines committed after
                # it read the next one.
                self._target = following if self._poked is None or (
                    following is not None and following <= self._poked) else self._poked
                now = self.clock.now()  # firing took time: sleep from now, not from before
            timeout = LOOK_AGAIN
            if self._held_elsewhere:
                timeout = CLAIM_WAIT
            elif self._target is not None:
                timeout = min(LOOK_AGAIN, max(0.0, self.clock.real(self._target - now)))
            await self._wake.sleep(timeout)
            if not self._wake.is_set() and timeout == LOOK_AGAIN:
                # A while without a poke: look at the store (another process on the same
                # SQLite file may have stored a sooner deadline, and SQLite tells nobody).
                self._target = self.clock.now()

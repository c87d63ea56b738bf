"""Delivers queued actions to a platform.

- **Lanes**: one per conversation and audience. What goes to a customer never waits
  behind the team channel; within a lane, order is kept, except that copies of messages
  between the customer and the operators go before cards and notices.
- **Paced** per destination as the platform says (`Platform.free_at`, which counts every
  call the adapter makes); the ready heads of all lanes take a destination's slots in
  order of (priority, age), so copies of messages go first there too.
- **Current**: a card is drawn from the conversation as it is at delivery, and one card
  update settles the older ones queued for it; a notice whose reason has gone by its
  turn (answered, claimed, closed, replaced) is dropped and recorded, not sent, and so is
  a sweep card whose shift has ended.
- **Digests** when many notices for one destination are due at once.
- **Leased**: an item is leased (stored, with an expiry) before it is sent, so two
  processes never send one item. A worker holds its presence (`ports.Presence`: on
  PostgreSQL a lock its session holds) before it leases anything, and one whose lane
  waits behind another's lease asks every LOOK_FOR_DEAD seconds whether that holder still
  lives: a dead one's leases are ended then, not when they run out. A stopping worker
  finishes the delivery under way (or, cut off, ends its lease).
- **Retried** with backoff (honouring "retry after N s"); given up after about an hour
  (dead letters), never dropped silently. Pacing and backoff run on the monotonic clock:
  a wall clock stepped back does not hold a channel.
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
from chat_rescue.bot.leader import Lock
from chat_rescue.bot.metrics import Metrics, kind_of
from chat_rescue.bot.model import (
    NOTICES,
    TEAM_ACTIONS,
    TO_CUSTOMER,
    Action,
    Conversation,
    Digest,
    HistoryEvent,
    PostCard,
    SweepCard,
    UpdateCard,
    key_of_lane,
    lane_of,
    priority_of,
)
from chat_rescue.bot.ports import (
    Conversations,
    OutboxClaims,
    OutboxItem,
    OutboxSettling,
    Presence,
    SweepPlans,
)
from chat_rescue.bot.processes import worker_name
from chat_rescue.bot.stale import stale_because
from chat_rescue.bot.supervise import Loop
from chat_rescue.bot.sweep import Phase
from chat_rescue.bot.wake import Wake
from chat_rescue.bot.worker import StoreWorker

log = logging.getLogger(__name__)

HEADS = 1000  # lane heads looked at per pass
DIGEST_MIN = 3  # this many notices for one channel at once become one digest
DIGEST_MAX = 20  # and a digest lists at most this many (an adapter may split it further)
MAX_ATTEMPTS = 20  # backoff 1 s, 2 s … capped at 5 min: the last try about an hour on
LONGEST_BACKOFF = 300.0
DELIVERY_TIMEOUT = 15.0  # a hanging platform call counts as a failure
LEASE = 60.0  # an item leased and not settled by then is another worker's to take
LOOK_FOR_DEAD = 0.5  # seconds between asking whether the holders of leases a lane waits for live
GATHER_POKES = 0.01
RETRY_SOON = 0.05
STOP_GRACE = 5.0  # seconds a stopping worker may take to finish the delivery under way


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones (0 = the first failed)."""
    return min(LONGEST_BACKOFF, 2.0 ** attempts)


@dataclass(frozen=True, slots=True)
class Posted:
    """What a platform created for a PostCard: the card's id and aliases that lead to it."""

    card: str
    aliases: tuple[str, ...] = ()


class RetryLater(Exception):  # noqa: N818 - reads as what the platform said
    """The platform asked us to wait (HTTP 429 and friends), pacing says so, or the bot
    lacks a right that an admin must give: not counted as a failed attempt."""

    def __init__(self, after: float, reason: str = "rate limited") -> None:
        super().__init__(f"{reason}; retry after {after:g}s")
        self.after = after


class Postpone(RetryLater):
    """This one item waits `after` seconds (a topic rename while the group's window is
    nearly full); its destination stays free for the others."""


class Lacking(RetryLater):
    """The bot lacks a right that an admin must give: its destination waits until
    `Outbox.retry_now` (the right is back) or `after` seconds."""


class Undeliverable(Exception):  # noqa: N818
    """The action can never be delivered (blocked by the user, channel gone)."""


class Platform(Protocol):
    """What an adapter offers the outbox: delivery, and where each action lands."""

    name: str

    async def deliver(self, action: Action) -> Posted | None:
        """Deliver one action (or Digest); raise RetryLater / Undeliverable as fits."""

    def destination(self, action: Action) -> str:
        """The channel an action posts to, for pacing and digests."""

    def free_at(self, action: Action, now: float) -> float:
        """When (monotonic, `now` or later) `action` may be sent, by its destination's pace
        and the calls the adapter made to it so far."""


class OutboxStore(OutboxClaims, OutboxSettling, Presence, Conversations, SweepPlans,
                  Protocol):
    """What an outbox worker asks of the store: the outbox's ports (its own presence and
    the other workers' among them), and the conversations and sweeps that its cards are
    drawn from and its notices judged by."""


class Outbox:
    """One worker per platform, draining that platform's lanes of the store's outbox."""

    def __init__(self, store: OutboxStore, platform: Platform, clock: Clock, *,
                 owner: str | None = None, worker: StoreWorker | None = None,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics(clock, process=False)
        # Every look at the store runs on the store's thread (the service's worker, shared
        # with everything else in the process): the loop only waits for the platform.
        self._call = (worker or StoreWorker()).call
        self.platform = platform
        self.clock = clock
        self.delivered = 0
        self.dropped = 0
        self.taken_over = 0  # items of dead workers' leases ended by this one
        self.leased_elsewhere = 0  # items another worker leased first
        self.owner = owner or worker_name()
        self._named = self.owner
        self._presence: Lock | None = None  # held while leasing under `owner`
        self._absences = 0  # times the presence was let go or lost (each: a new name)
        self._next_look: float | None = None  # monotonic: when to ask about holders again
        # Monotonic readings: until when a destination said "too many" (429), and when
        # items this worker put back (a retry, a rate limit) may go again.
        self._next_free: dict[str, float] = {}
        self._lacking: set[str] = set()  # destinations held for a missing right
        self._holds: dict[int, tuple[float, float]] = {}  # id -> (stored hold, monotonic)
        # Delivered, but not settled yet (the store failed right after the platform said
        # yes): settled before anything else is looked at, never given back or sent again.
        # Keyed by the first item's id: (items, what the platform posted, outbox mark).
        self._unsettled: dict[int, tuple[list[OutboxItem], Posted | None, int]] = {}
        self._wake = Wake()
        self._prefix = f"{platform.name}:"
        # What the last look at the outbox found, so that a poke for actions that could
        # not go anyway costs nothing: the lanes that already wait (all of them, unless
        # the look hit its limit), and when the worker wakes up by itself.
        self._waiting: set[str] = set()
        self._waiting_complete = False
        self._asleep_until: float | None = None
        self._stopping = False
        self._hurry = False

    def poke(self, actions: Sequence[Action] = ()) -> None:
        """Actions were queued: look at the outbox now, unless none of them can go before
        the worker wakes up anyway (each waits behind an older item of its lane or for its
        destination's pacing slot). Without `actions`, always look."""
        if not actions or any(self._could_go(action) for action in actions):
            self._wake.set()

    def _could_go(self, action: Action) -> bool:
        lane = lane_of(action)
        if not lane.startswith(self._prefix):
            return False  # another platform's
        if self._waiting_complete and lane in self._waiting and priority_of(action):
            return False  # behind an older item of its lane (a copy would go before it)
        free_at = self._free_at(action, self.clock.monotonic())
        # Not before its destination's slot, which comes no sooner than the worker's own
        # wake-up: it is looked at then. (Not noted as waiting: the commit that queued it
        # may still roll back.)
        return self._asleep_until is None or free_at < self._asleep_until

    @property
    def idle(self) -> bool:
        """Asleep with nothing ready now and no poke waiting (a script's check that it
        caught up)."""
        return self._wake.sleeping and not self._wake.is_set() and (
            self._asleep_until is None or self._asleep_until > self.clock.monotonic())

    def stop_soon(self) -> None:
        """Start no new delivery: the one under way finishes (and is settled), then `run`
        returns. What is still queued waits in the store for the next worker."""
        self._stopping = True
        self._wake.set()

    def retry_now(self) -> None:
        """What waited for a retry goes now (the cause is cured: rights given back)."""
        self._hurry = True  # the next look at the store lifts the stored holds first
        for place in self._lacking:  # a rate limit still holds: the platform said so
            self._next_free.pop(place, None)
        self._lacking.clear()
        self._wake.set()

    def take_over_dead(self) -> int:
        """End the leases of workers the store knows are gone (killed, crashed, cut off):
        their items go now, not when the leases run out. Returns how many items."""
        taken: list[int] = []
        holders = [h for h in self.store.lease_holders(self.clock.now()) if h != self.owner]
        for holder in self.store.gone(holders) if holders else []:
            taken += self.store.end_leases(holder)
        if taken:
            log.info("%s: took over %d items leased by a worker that is gone",
                     self.platform.name, len(taken))
        self.taken_over += len(taken)
        return len(taken)

    async def run(self, loop: Loop | None = None) -> None:
        """Drain forever, sleeping until the next retry or pacing slot, or a poke. An error
        (the store failing, a bug) ends the call: its supervisor pauses and calls again."""
        try:
            await self._drain_for_ever(loop)
        finally:
            await self._call(self._absent)

    async def _drain_for_ever(self, loop: Loop | None) -> None:
        await self._call(self.take_over_dead)
        while not self._stopping:
            self._wake.clear()
            next_at = await self.drain()
            if self._stopping:
                return
            if loop is not None:
                loop.ok()
            timeout = None
            if next_at is not None:
                timeout = max(0.0, self.clock.real(next_at - self.clock.monotonic()))
            self._asleep_until = next_at
            await self._wake.sleep(timeout)
            self._asleep_until = None
            if next_at is not None:
                # A paced backlog is waiting, and pokes come once per stored event:
                # gathering them for a moment keeps it from being rescanned hundreds of
                # times a second under load.
                await asyncio.sleep(GATHER_POKES)

    async def drain(self) -> float | None:
        """Deliver everything that may go now; return when (monotonic) the next may go."""
        while not self._stopping:
            ready, next_at = await self._call(self._ready)
            if not ready:
                return next_at
            progressed = False
            for batch in self._batches(ready):
                if self._stopping:
                    return None
                progressed |= await self._send(batch)
            if not progressed:
                ready, next_at = await self._call(self._ready)
                if ready:  # ready yet not sent (a lease lost, a wait of 0 s): soon, not never
                    return self.clock.monotonic() + RETRY_SOON
                return next_at
        return None

    def _ready(self) -> tuple[list[OutboxItem], float | None]:
        """The head item of each lane, if it is not held back; and the earliest hold."""
        self._settle_delivered()  # what went out first: it must not look ready again
        if self._hurry:
            self._hurry = False
            self.store.hurry(self._prefix)
        wall, now = self.clock.now(), self.clock.monotonic()
        ready, next_at = [], None
        lease_end = self.store.next_lease_end(self._prefix, wall)
        if lease_end is not None and self._looked_for_dead(now):
            lease_end = self.store.next_lease_end(self._prefix, wall)
        if lease_end is not None:
            # A lane held by a lease: look again when it runs out, or when its holder may
            # be asked about again (a dead one's leases are ended then).
            assert self._next_look is not None
            next_at = now + min(max(0.0, lease_end - wall), LEASE,
                                max(0.0, self._next_look - now))
        heads = self.store.heads(self._prefix, HEADS, wall)
        for item in heads:
            hold = max(self._hold(item, wall, now), self._free_at(item.action, now))
            if hold > now:
                next_at = hold if next_at is None else min(next_at, hold)
            else:
                ready.append(item)
        self._waiting = {item.lane for item in heads}
        self._waiting_complete = len(heads) < HEADS
        return ready, next_at

    def _looked_for_dead(self, now: float) -> bool:
        """Took over the leases of dead holders (asked at most every LOOK_FOR_DEAD s)."""
        if self._next_look is not None and now < self._next_look:
            return False
        self._next_look = now + LOOK_FOR_DEAD
        return self.take_over_dead() > 0

    def _be_present(self) -> None:
        """On the store's thread, before a lease: hold the presence that tells the other
        workers this one lives. One lost (its session ended, the others may be ending this
        name's leases already) or let go is never taken again under the same name, so no
        lease taken from now on can be ended as a dead worker's: the worker goes on under
        a new name, and ends what the old one still held itself."""
        if self._presence is not None and self._presence.still_held():
            return
        lost = self.owner if self._presence is not None else None
        if self._presence is not None:
            self._presence.give_up()
            self._presence = None
            self._absences += 1
        for _ in range(3):
            if self._absences:
                self.owner = f"{self._named}+{self._absences}"
            presence = self.store.present(self.owner)
            if presence.try_take():
                self._presence = presence
                break
            self._absences += 1  # its key is another's (a hash shared): another name
        else:
            raise RuntimeError(f"no presence could be taken for {self._named}")
        if lost is not None:
            ended = self.store.end_leases(lost)
            log.warning("%s: lost the presence of %s (%d leases ended); leasing as %s now",
                        self.platform.name, lost, len(ended), self.owner)

    def _absent(self) -> None:
        """Let the presence go (the worker stops): a later start takes a new name. Not while
        something delivered is still unsettled: the presence keeps its leases from being
        ended as a dead worker's (and the items sent again) until the process exits."""
        with contextlib.suppress(Exception):
            self._settle_delivered()
        if self._unsettled:
            log.warning("%s: %d deliveries could not be settled in the store; their leases "
                        "are kept", self.platform.name, len(self._unsettled))
            return
        if self._presence is not None:
            self._presence.give_up()
            self._presence = None
            self._absences += 1

    def _lease(self, item_ids: list[int]) -> list[int]:
        """On the store's thread: lease the items under this worker's name, present."""
        self._be_present()
        wall = self.clock.now()
        return self.store.lease(item_ids, self.owner, wall + LEASE, wall)

    def _hold(self, item: OutboxItem, wall: float, now: float) -> float:
        """When (monotonic) an item may go. The stored `not_before` is wall time (another
        process, or this one before a restart, wrote it): re-based on the monotonic clock
        and never more than the longest backoff away, so a wall clock stepped back an hour
        holds nothing for that hour."""
        held = self._holds.get(item.id)
        if held is not None and held[0] == item.not_before:
            return held[1]  # as this worker set it (the store was not changed since)
        return now + min(max(0.0, item.not_before - wall), LONGEST_BACKOFF)

    def _batches(self, ready: list[OutboxItem]) -> list[list[OutboxItem]]:
        by_place: dict[str, list[OutboxItem]] = defaultdict(list)
        batches = []
        for item in ready:  # in order of (priority, id): copies of messages first
            if isinstance(item.action, NOTICES):
                by_place[self._where(item.action)].append(item)
            else:
                batches.append([item])
        for items in by_place.values():
            if len(items) >= DIGEST_MIN:
                batches += [items[i:i + DIGEST_MAX] for i in range(0, len(items), DIGEST_MAX)]
            else:
                batches += [[item] for item in items]
        order = {item.id: n for n, item in enumerate(ready)}
        batches.sort(key=lambda b: order[b[0].id])
        return batches

    def _where(self, action: Action) -> str:
        return self.platform.destination(action)

    def _free_at(self, action: Action, now: float) -> float:
        return max(self.platform.free_at(action, now),
                   self._next_free.get(self._where(action), 0.0))

    def _settle_later(self, item: OutboxItem, after: float, *, error: str,
                      failed: bool, dead: bool = False) -> None:
        """Put an item back for `after` seconds (its lease ends), or give it up."""
        retry_at = self.clock.now() + after
        self._holds[item.id] = (retry_at, self.clock.monotonic() + after)
        self.store.settle(item.id, retry_at=retry_at, error=error, failed=failed, dead=dead)
        if dead:
            self._holds.pop(item.id, None)

    def _settled(self, item: OutboxItem, record: HistoryEvent | None = None) -> None:
        self._holds.pop(item.id, None)
        self.store.settle(item.id, record=record)

    async def _send(self, batch: list[OutboxItem]) -> bool:
        """Deliver one item or one digest; True if anything left the outbox."""
        place = self._where(batch[0].action)
        # A digest is asked about as the digest it will be: it may take several messages.
        probe = batch[0].action if len(batch) == 1 else \
            Digest(place, tuple(item.action for item in batch))
        if self._free_at(probe, now := self.clock.monotonic()) > now:
            return False  # an earlier delivery in this round took the slot
        leasing = asyncio.ensure_future(self._call(self._lease, [item.id for item in batch]))
        try:
            taken = set(await asyncio.shield(leasing))
        except BaseException:
            # Cancelled while the lease was being taken: it is taken all the same (a job
            # handed over runs to its end), so give back what it took, now.
            with contextlib.suppress(BaseException):
                got = set(await leasing)
                await self._call(self._give_back, [item for item in batch if item.id in got])
            raise
        self.leased_elsewhere += len(batch) - len(taken)
        batch = [item for item in batch if item.id in taken]  # the others: someone else's
        try:
            return await self._send_leased(batch, place)
        except BaseException:
            # Whatever broke (the store, a bug, a cancellation), the items go back now
            # rather than when their leases run out (at least once: one may have gone),
            # except those the platform took: they are settled, never sent again.
            # (A job handed over is carried out even if this task is cancelled again.)
            await self._call(self._give_back, [item for item in batch
                                               if not self._went_out(item.id)])
            raise

    def _give_back(self, batch: list[OutboxItem]) -> None:
        for item in batch:
            try:
                self.store.settle(item.id, retry_at=self.clock.now(), error="interrupted",
                                  failed=False)
            except Exception:  # the store fails too: the lease runs out, then it goes
                log.warning("%s: could not give item %d back; it goes when its lease ends",
                            self.platform.name, item.id)
                return

    def _card_called_off(self, action: Action) -> str | None:
        """Why a sweep card is not to be posted: its sweep was called off, or drawn again
        since (the hours or the shifts changed), so its buttons would be stale on arrival."""
        if not isinstance(action, SweepCard):
            return None
        sweep = self.store.sweep(action.sweep)
        if sweep is None:
            return None  # not the store's (a card queued by hand): nothing to judge it by
        if sweep.phase is Phase.CALLED_OFF:
            return "its sweep was called off"
        return None if sweep.drawn_at == action.drawn_at else "the sweep was drawn again"

    def _sendable(self, batch: list[OutboxItem]) -> tuple[int, list[tuple[OutboxItem, Action]]]:
        """On the store's thread: the outbox's mark, and each item as it is to go now (its
        card drawn afresh), the stale ones dropped."""
        mark = self.store.outbox_mark()  # before the conversations are read for the cards
        sendable: list[tuple[OutboxItem, Action]] = []
        for item in batch:
            if not isinstance(item.action, (PostCard, UpdateCard, *TO_CUSTOMER, *NOTICES,
                                            *TEAM_ACTIONS)):
                sendable.append((item, item.action))  # copies of messages, ephemerals
                continue
            conv = self.store.load(key_of_lane(item.lane))
            why = stale_because(item.action, conv, self.clock.now()) \
                or self._card_called_off(item.action)
            if why is not None:
                self._drop(item, conv, why)
                continue
            if isinstance(item.action, PostCard | UpdateCard) and conv is None:
                log.warning("%s: no conversation %s to show on a card; dropped",
                            self.platform.name, item.lane)
                self.store.settle(item.id, error="conversation not found", dead=True)
                self._gone(item.action, "dead")
                continue
            sendable.append((item, self._fresh(item.action, conv)))
        return mark, sendable

    async def _send_leased(self, batch: list[OutboxItem], place: str) -> bool:
        mark, sendable = await self._call(self._sendable, batch)
        if not sendable:
            return bool(batch)
        items = [item for item, _ in sendable]
        actions = [action for _, action in sendable]
        action = actions[0] if len(actions) == 1 else Digest(place, tuple(actions))
        try:
            async with asyncio.timeout(DELIVERY_TIMEOUT):
                posted = await self.platform.deliver(action)
        except RetryLater as wait:
            # Waiting for a right an admin must give is a retry; the rest is the platform's
            # (or its window's) pace.
            self._count(action, "retried" if isinstance(wait, Lacking) else "rate_limited")
            if not isinstance(wait, Postpone):
                self._next_free[place] = self.clock.monotonic() + wait.after
                if isinstance(wait, Lacking):
                    self._lacking.add(place)
                else:  # a rate limit now: retry_now must not lift it
                    self._lacking.discard(place)
            await self._call(self._put_back, items, wait.after, str(wait))
            return False
        except Undeliverable as gone:
            log.warning("%s: giving up on %s: %s", self.platform.name, type(action).__name__, gone)
            await self._call(self._give_up, items, str(gone))
            self._count(action, "dead")
            return True
        except Exception as failed:  # network errors, 5xx, timeouts: back off and retry
            error = f"{type(failed).__name__}: {failed}"
            given_up = await self._call(self._back_off, items, error)
            self._count(action, "dead" if given_up else "retried")
            log.warning("%s: delivery of %s failed (%s); %s", self.platform.name,
                        type(action).__name__, error,
                        "given up (dead letter)" if given_up else "retrying")
            return given_up  # a dead letter leaves the outbox: what waited behind it may go now
        self._lacking.discard(place)  # whatever was missing is there again
        self._count(action, "ok")
        self._unsettled[items[0].id] = (items, posted, mark)
        await self._call(self._settle_delivered)
        return True

    def _count(self, action: Action, outcome: str) -> None:
        self.metrics.delivered(self.platform.name, kind_of(action), outcome)

    def _gone(self, action: Action, outcome: str) -> None:
        """On the store's thread: an item left the outbox undelivered (dead or dropped)."""
        self.metrics.delivered(self.platform.name, kind_of(action), outcome)
        self.metrics.left(self.platform.name)

    # -- settling, on the store's thread ---------------------------------------------------

    def _put_back(self, items: list[OutboxItem], after: float, why: str) -> None:
        for item in items:
            self._settle_later(item, after, error=why, failed=False)

    def _give_up(self, items: list[OutboxItem], why: str) -> None:
        for item in items:
            self._holds.pop(item.id, None)
            self.store.settle(item.id, error=why, dead=True)
        self.metrics.left(self.platform.name, len(items))

    def _back_off(self, items: list[OutboxItem], error: str) -> bool:
        """Each item back for its backoff, or given up after its last attempt; True if
        any was given up."""
        given_up = False
        for item in items:
            dead = item.attempts + 1 >= MAX_ATTEMPTS
            self._settle_later(item, backoff(item.attempts), error=error, failed=True,
                               dead=dead)
            if dead:
                self.metrics.left(self.platform.name)
            given_up |= dead
        return given_up

    def _went_out(self, item_id: int) -> bool:
        return any(item.id == item_id for items, _, _ in self._unsettled.values()
                   for item in items)

    def _settle_delivered(self) -> None:
        """On the store's thread: settle what was delivered, oldest first. A store error
        propagates (the worker's supervisor starts it again); nothing settled is lost."""
        while self._unsettled:
            first = next(iter(self._unsettled))
            self._delivered(*self._unsettled[first])
            del self._unsettled[first]

    def _delivered(self, items: list[OutboxItem], posted: Posted | None, mark: int) -> None:
        first = items[0]
        if isinstance(first.action, PostCard | UpdateCard):
            if isinstance(posted, Posted):
                # An UpdateCard may have had to post the card afresh (the first post was lost).
                self.store.attach(key_of_lane(first.lane), posted.card, posted.aliases)
            self.metrics.left(self.platform.name,
                              self.store.supersede(first.lane, mark, first.id))
        for item in items:
            self._settled(item)
        self.metrics.left(self.platform.name, len(items))
        self.delivered += len(items)

    def _drop(self, item: OutboxItem, conv: Conversation | None, why: str) -> None:
        """A notice whose reason has gone: not sent, and recorded in the history."""
        kind = type(item.action).__name__
        log.info("%s: %s for %s not sent: %s", self.platform.name, kind, item.lane, why)
        record = None
        if conv is not None:
            # value 1: it was in flight when its worker died (or ran out of time), so it
            # may have been posted.
            maybe_sent = 1.0 if item.was_leased else None
            record = HistoryEvent(conv.ref, conv.team, "notice_dropped", self.clock.now(),
                                  kind, maybe_sent)
        self._holds.pop(item.id, None)
        self.store.settle(item.id, record=record)
        self._gone(item.action, "dropped")
        self.dropped += 1

    def _fresh(self, action: Action, current: Conversation | None) -> Action:
        """Cards render the conversation as it is now; notices point at its current card."""
        if current is None:
            return action
        if isinstance(action, PostCard | UpdateCard):
            return replace(action, conversation=current)
        if isinstance(action, NOTICES) and action.card is None and current.card is not None:
            return replace(action, card=current.card)
        return action

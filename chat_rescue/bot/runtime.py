"""Wires the shell together: one ticker, one outbox worker per platform, one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from chat_rescue.bot import outbox as outbox_module
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.metrics import OUTBOX_RECOUNT, RECOUNT
from chat_rescue.bot.outbox import Outbox, Platform
from chat_rescue.bot.service import Service
from chat_rescue.bot.supervise import Loop, Loops
from chat_rescue.bot.sweeper import Sweeper
from chat_rescue.bot.ticker import Ticker
from chat_rescue.bot.worker import hand_over_often
from chat_rescue.reports.weekly import TeamChannel, Weekly, WeeklyReports

log = logging.getLogger(__name__)

KEEP_INBOUND_IDS = 7 * 86400.0
STORE_GRACE = 10.0  # seconds a stop waits for the store's thread


class Runtime:
    """The background tasks that turn stored deadlines and queued actions into messages."""

    def __init__(self, service: Service, clock: Clock, platforms: Sequence[Platform], *,
                 loops: Loops | None = None, weekly: Weekly | None = None) -> None:
        self.service = service
        self.clock = clock
        self.loops = loops or Loops()
        self.sweeper = Sweeper(service.store, service, clock)
        self.ticker = Ticker(service.store, service, clock, sweeper=self.sweeper)
        self.outboxes = [Outbox(service.store, platform, clock, worker=service.worker,
                                metrics=service.metrics) for platform in platforms]
        service.metrics.expect(platform.name for platform in platforms)
        for outbox in self.outboxes:
            service.on_outbox(outbox.poke)
            bind = getattr(outbox.platform, "bind_outbox", None)
            if bind is not None:  # an adapter that can tell when to retry at once
                bind(outbox)
            bind_sweeper = getattr(outbox.platform, "bind_sweeper", None)
            if bind_sweeper is not None:  # an adapter with sweep cards' buttons to pass on
                bind_sweeper(self.sweeper)
        # The weekly report, to each platform that has a team channel to post it to.
        channels = [p for p in platforms if isinstance(p, TeamChannel)]
        self.weekly = WeeklyReports(service, weekly, channels) \
            if weekly is not None and channels else None
        self._tasks: list[asyncio.Task[None]] = []
        self._forgetting: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """Start the ticker (which plans every team's sweeps first), the outbox workers and
        the daily clean-up."""
        hand_over_often()
        await self.service.call(self.sweeper.start)
        await self.service.call(self.service.metrics.recount, self.service.store)
        supervise = self.loops.supervise
        self._tasks.append(asyncio.create_task(supervise("ticker", self.ticker.run),
                                               name="ticker"))
        self._tasks.append(asyncio.create_task(supervise("prune", self._forget_old_inbound_ids),
                                               name="prune"))
        self._tasks.append(asyncio.create_task(supervise("metrics", self._recount),
                                               name="metrics"))
        if self.weekly is not None:
            self._tasks.append(asyncio.create_task(supervise("weekly-report", self.weekly.run),
                                                   name="weekly-report"))
        for outbox in self.outboxes:
            name = f"outbox:{outbox.platform.name}"
            self._tasks.append(asyncio.create_task(supervise(name, outbox.run), name=name))
        await self._listen(asyncio.get_running_loop())

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hear what other processes on the store commit. The store calls from a thread of
        its own, so each call only hands over to the loop (asyncio objects are not
        thread-safe)."""

        def soon(callback: Callable[..., None], *args: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to wake
                loop.call_soon_threadsafe(callback, *args)

        await self.service.call(self.service.store.listen,
                                lambda at: soon(self.ticker.elsewhere, at),
                                lambda platform: soon(self._queued_elsewhere, platform),
                                lambda: soon(self._missed),
                                lambda: soon(self._settings_elsewhere))

    def _queued_elsewhere(self, platform: str) -> None:
        for outbox in self.outboxes:
            if outbox.platform.name == platform:
                outbox.poke()

    def _settings_elsewhere(self) -> None:
        """Another replica changed settings: this one's cached policies are stale. Forgotten
        on the store's thread, after any job that may have read the old settings."""
        forget = asyncio.ensure_future(self.service.call(self.service.forget_policies))
        self._forgetting.add(forget)
        forget.add_done_callback(self._forgetting.discard)

    def _missed(self) -> None:
        """Listening (again): what was announced before may have gone unheard, so the
        ticker and every outbox worker look at the store once, and the cached policies are
        derived afresh."""
        self._settings_elsewhere()
        self.ticker.wake()
        for outbox in self.outboxes:
            outbox.poke()

    async def _forget_old_inbound_ids(self, loop: Loop) -> None:
        """Processed inbound ids are kept a week: platforms redeliver within minutes, and
        Telegram may hand out an old update_id again after a long silence.
        """
        while True:
            await self.service.call(self.service.store.prune,
                                    self.clock.now() - KEEP_INBOUND_IDS)
            loop.ok()
            await asyncio.sleep(3600)

    async def _recount(self, loop: Loop) -> None:
        """Count the open conversations every RECOUNT seconds and the outbox every
        OUTBOX_RECOUNT, on the store's thread: other replicas' commits reach this one's
        gauges so (a scrape never counts)."""
        rounds = 0
        every = max(1, round(RECOUNT / OUTBOX_RECOUNT))
        while True:
            loop.ok()  # counted at the start (or by the last round)
            await asyncio.sleep(OUTBOX_RECOUNT)
            rounds += 1
            await self.service.call(self.service.metrics.recount, self.service.store,
                                    conversations=rounds % every == 0)

    async def stop(self) -> None:
        """Let each outbox worker finish the delivery under way (for up to STOP_GRACE
        seconds: another process may go on serving, and must not repeat it), then cancel
        the tasks; state is in the store, so nothing is lost."""
        with contextlib.suppress(TimeoutError):  # a hung store must not hold the stop
            async with asyncio.timeout(STORE_GRACE):
                await self.service.call(self.service.store.stop_listening)
        for outbox in self.outboxes:
            outbox.stop_soon()
        workers = [task for task in self._tasks if task.get_name().startswith("outbox:")]
        if workers:
            await asyncio.wait(workers, timeout=outbox_module.STOP_GRACE)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                # Shutting down must finish whatever a task died of (it was logged then).
                log.exception("%s had stopped with an error", task.get_name())
        self._tasks.clear()
        await self.settled()

    async def settled(self) -> bool:
        """Wait (up to STORE_GRACE seconds) until what was handed to the store's thread has
        run; False if it had not by then (a hung store: it is left to the process's end)."""
        try:
            async with asyncio.timeout(STORE_GRACE):
                await self.service.worker.idle()
        except TimeoutError:
            log.warning("the store's thread still works after %gs; stopping all the same",
                        STORE_GRACE)
            return False
        return True

    async def caught_up(self, timeout: float = 2.0, poll: float = 0.001) -> bool:
        """Wait until the ticker has fired what is due, every outbox worker sleeps with
        nothing ready to go, and the store's thread has no work (seen twice in a row):
        what a script on a paused clock waits for. False if `timeout` passed first."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        seen = 0
        while seen < 2:
            if loop.time() >= until:
                return False
            quiet = self.ticker.idle and all(o.idle for o in self.outboxes) \
                and self.service.worker.is_idle
            seen = seen + 1 if quiet else 0
            await asyncio.sleep(poll)
        return True

    async def drained(self, timeout: float = 10.0, poll: float = 0.02) -> bool:
        """Wait until every queued action for these platforms has been delivered (or
        dropped, or given up): none of their lanes offers a head or holds a lease."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        store = self.service.store
        prefixes = [f"{o.platform.name}:" for o in self.outboxes]

        def busy() -> bool:
            # One job on the store's thread, so this process's workers cannot lease or put
            # back an item between the two reads.
            now = self.clock.now()
            return any(store.next_lease_end(prefix, now) is not None
                       or store.heads(prefix, 1, now) for prefix in prefixes)

        while loop.time() < until:
            if not await self.service.call(busy):
                return True
            await asyncio.sleep(poll)
        return False

"""The store worker: one thread per process that does all of the process's store work.

The event loop only does network I/O. Whatever reads or writes the store (handling an
event, firing a slice of deadlines, leasing outbox items) is a synchronous job that the
loop hands to this thread and awaits, so a slow commit never holds up a webhook or a
delivery. Jobs run one at a time, in the order they were handed over: `Service.handle`'s
rule that nothing interleaves between reading a conversation and committing its change
holds inside each job, as it did on the loop.

Jobs handed over in one iteration of the loop reach the thread together, at its end (one
wake-up of the thread for all of them). Group commit: events handed over with
`call(..., grouped=True)` that are waiting together run in one transaction (each still
all-or-nothing, in a savepoint): those of one loop iteration at least and, under load,
everything that arrived while the previous group was committing, so one commit's cost is
shared by many events. A group whose transaction fails runs again one event at a time,
each in a transaction of its own: what failed fails alone.

Callbacks a job makes for the loop (a ticker's poke, an outbox's wake-up) are `post`ed:
gathered while the job runs and handed to the loop with its result, in one wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chat_rescue.bot.ports import Batching, GroupRefused, Intent

log = logging.getLogger(__name__)

T = TypeVar("T")

GROUP = 256  # most grouped jobs committed in one transaction
IDLE_EXIT = 5.0  # seconds without work after which the thread ends (started again on demand)
SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL while another waits for it


def hand_over_often() -> None:
    """Make the interpreter pass the GIL between threads every SWITCH_INTERVAL (CPython's
    default is 5 ms): while the store thread runs Python (the engine, encoding rows), the
    event loop waits at most that long to answer a request. Process-wide; called by what
    serves (`Runtime.start`)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)


@dataclass(slots=True)
class _Job:
    run: Callable[[], Any]
    done: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    grouped: bool
    intent: Intent | None = None
    outcome: Any = None
    failed: BaseException | None = None
    posted: list[Callable[[], None]] = field(default_factory=list)


class StoreWorker:
    """Runs store work on a thread of its own, handing results back to the event loop."""

    def __init__(self, store: Batching | None = None, *, group: int = GROUP,
                 name: str = "store") -> None:
        self.store = store  # what grouped jobs share a transaction of (none: one by one)
        # Told, on the thread, when a group's transaction fails, what followed: one_by_one
        # (its jobs run again each alone), one_refused (a group of one, refused for what it
        # held), whole (the store failed them all). The metrics count them.
        self.on_group_failed: Callable[[str], None] = lambda outcome: None
        self.group = group
        self.name = name
        self._jobs: deque[_Job] = deque()
        self._handed: dict[asyncio.AbstractEventLoop, list[_Job]] = {}  # this iteration's
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._ident: int | None = None
        self._current: _Job | None = None
        # Loop side: jobs handed over, and settled (in that order: the thread runs them so).
        self._issued = 0
        self._settled = 0
        self._quiet: list[tuple[int, asyncio.Future[None]]] = []  # `idle` callers

    @property
    def on_thread(self) -> bool:
        """The caller is this worker's thread (inside a job)."""
        return threading.get_ident() == self._ident

    async def call(self, fn: Callable[..., T], *args: Any, grouped: bool = False,
                   intent: Intent | None = None, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the worker's thread; its result (or exception).
        `intent`: what a grouped job will read and record (its group's batch is told).

        A cancelled caller does not undo its job: the job still runs, or has run, to its
        end; only its result is dropped.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        job = _Job((lambda: fn(*args, **kwargs)) if args or kwargs else fn, done, loop,
                   grouped, intent)
        handed = self._handed.setdefault(loop, [])
        if not handed:
            loop.call_soon(self._release, loop)
        handed.append(job)
        self._issued += 1
        return await done

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        """At the end of a loop iteration: its jobs to the thread (started if need be)."""
        jobs = self._handed.pop(loop, [])
        with self._work:
            self._jobs.extend(jobs)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self.name,
                                                daemon=True)
                self._thread.start()
            else:
                self._work.notify()

    def post(self, callback: Callable[[], None]) -> None:
        """Call `callback()` on the event loop: after the current job when inside one (with
        its result), at once otherwise (the caller is on the loop, or runs without it)."""
        current = self._current
        if current is not None and self.on_thread:
            current.posted.append(callback)
        else:
            callback()

    @property
    def is_idle(self) -> bool:
        """Every job handed over has run and its result is back."""
        return self._settled == self._issued

    async def idle(self) -> None:
        """Wait until every job handed over so far has run (before closing the store); jobs
        handed over later are not waited for."""
        if self._settled < self._issued:
            quiet = asyncio.get_running_loop().create_future()
            self._quiet.append((self._issued, quiet))
            await quiet

    # -- the thread ------------------------------------------------------------------

    def _serve(self) -> None:
        self._ident = threading.get_ident()
        while True:
            with self._work:
                if not self._jobs:
                    self._work.wait(IDLE_EXIT)
                    if not self._jobs:  # idle long enough: end; the next call starts anew
                        self._thread = None
                        self._ident = None
                        return
                first = self._jobs.popleft()
                jobs = [first]
                while first.grouped and self._jobs and self._jobs[0].grouped \
                        and len(jobs) < self.group:
                    jobs.append(self._jobs.popleft())
            if first.grouped and self.store is not None:
                self._run_together(self.store, jobs)
            else:
                for job in jobs:
                    self._run(job)
            self._hand_back(jobs)

    def _run(self, job: _Job) -> None:
        self._current = job
        try:
            job.outcome = job.run()
        except BaseException as failed:  # handed to the awaiting caller, never lost
            job.failed = failed
        finally:
            self._current = None

    def _run_together(self, store: Batching, jobs: list[_Job]) -> None:
        intents = [job.intent for job in jobs if job.intent is not None]
        try:
            with store.batch(intents) if intents else store.batch():
                for job in jobs:
                    self._run(job)
            return
        except BaseException as failed:  # the COMMIT itself failed: nothing is durable
            refused = isinstance(failed, GroupRefused)
            again = refused and len(jobs) > 1
            with contextlib.suppress(Exception):
                self.on_group_failed("one_by_one" if again else "one_refused" if refused
                                     else "whole")
            if not again:
                # The store out of reach (or this thread interrupted): the whole group's,
                # which running each again would only repeat, one timeout per event. An
                # event alone in its group hears what it would have heard alone.
                if refused and failed.__cause__ is not None:
                    failed = failed.__cause__
                for job in jobs:
                    job.failed, job.outcome, job.posted = failed, None, []
                return
            # One event's write sank the lot (a value the server refuses, a deadlock with
            # another replica): each again on its own, so only its own caller hears of it
            # and the others are not failed (and redelivered) for it.
            log.warning("a group of %d events failed together; each on its own", len(jobs),
                        exc_info=True)
        for job in jobs:
            job.failed, job.outcome, job.posted = None, None, []
            try:
                with store.batch():
                    self._run(job)
            except BaseException as alone:
                job.failed, job.outcome, job.posted = alone, None, []

    def _hand_back(self, jobs: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, done in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(self._settle, done)

    def _settle(self, jobs: list[_Job]) -> None:
        """On the loop: results to their callers, then the jobs' callbacks."""
        self._settled += len(jobs)
        _settle(jobs)
        waiting = []
        for upto, waiter in self._quiet:
            if self._settled < upto:
                waiting.append((upto, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._quiet = waiting


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.done.done():
            continue  # the caller was cancelled
        if job.failed is not None:
            job.done.set_exception(job.failed)
        else:
            job.done.set_result(job.outcome)
    for job in jobs:
        _call_each(job.posted)


def _call_each(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("a store job's callback failed")

"""Leadership: what only one replica may do at a time (long-polling Telegram's getUpdates:
two pollers cut each other off), done by whichever holds a lock the store provides.

The lock is the store's (`ports.Locks`): with SQLite an exclusive lock on a file next to
the database, with PostgreSQL a session advisory lock (`pg_try_advisory_lock`) on a
connection of its own. Either is let go by the operating system or the server the moment
its holder dies, so another replica, trying every TRY seconds, takes over within about a
second: there is no lease to run out and nothing to configure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

TRY = 0.5  # seconds between attempts to take the lock while another replica holds it
CHECK = 1.0  # seconds between checks that the lock is still held while leading


class Lock(Protocol):
    """An exclusive lock shared by every replica on one store."""

    def try_take(self) -> bool:
        """Take it if free (never waits); True when this process holds it now."""

    def still_held(self) -> bool:
        """Whether this process still holds it (False once it was lost: the connection
        that held it is gone)."""

    def give_up(self) -> None:
        """Let it go (if held)."""


def replica_name(configured: str = "") -> str:
    """This process among the replicas: `RESCUE_REPLICA` (`configured`), else host and
    process id."""
    return configured.strip() or f"{socket.gethostname()}:{os.getpid()}"


class Leader:
    """Runs `start` when this process takes the lock and `stop` when it loses it, trying
    again while another replica leads; `leading` says which it is now."""

    def __init__(self, lock: Lock, what: str, *, replica: str = "",
                 on_lead: Callable[[], Awaitable[None]] | None = None) -> None:
        self.lock = lock
        self.what = what
        self.replica = replica_name(replica)
        self.leading = False
        self.on_lead = on_lead  # told each time this process takes the lead
        self._failing = False

    async def try_now(self, start: Callable[[], Awaitable[None]]) -> bool:
        """One attempt to take the lead (and `start`) at once: a process that starts alone
        leads before it says it is up."""
        if self.leading or not await self._ask(self.lock.try_take):
            return self.leading
        self.leading = True
        log.info("this replica (%s) leads %s now", self.replica, self.what)
        if self.on_lead is not None:
            await self.on_lead()
        await start()
        return True

    async def run(self, start: Callable[[], Awaitable[None]],
                  stop: Callable[[], Awaitable[None]]) -> None:
        """Forever (until cancelled, which lets the lock go after `stop`)."""
        try:
            while True:
                if not self.leading:
                    if not await self.try_now(start):
                        await asyncio.sleep(TRY)
                    continue
                await asyncio.sleep(CHECK)
                if not await self._ask(self.lock.still_held):
                    log.warning("this replica (%s) lost the lead of %s; another takes it",
                                self.replica, self.what)
                    self.leading = False
                    await stop()
        finally:
            if self.leading:
                self.leading = False
                with contextlib.suppress(Exception):
                    await stop()
            await asyncio.to_thread(self.lock.give_up)  # it may close a connection


    async def _ask(self, question: Callable[[], bool]) -> bool:
        """The lock's answer, off the event loop; a lock that cannot be asked (its file or
        server out of reach) counts as not held, said once while it lasts."""
        try:
            answer = await asyncio.to_thread(question)
        except Exception as failed:
            if not self._failing:
                log.warning("cannot reach the lock for %s (%s); this replica does not lead "
                            "it until it can", self.what, failed)
            self._failing = True
            return False
        self._failing = False
        return answer


class Always:
    """The lock of a store only one process uses (an in-memory database): always held."""

    def try_take(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def give_up(self) -> None:
        return None

"""A wake-up to sleep on with a timeout (the ticker's and each outbox worker's)."""

from __future__ import annotations

import asyncio
import contextlib


class Wake(asyncio.Event):
    """An event that also tells whether a task is asleep on it (`sleeping`)."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = False

    async def sleep(self, timeout: float | None) -> None:
        """Until set or `timeout` seconds passed (None: until set)."""
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        # that arrives as the event fires, and stop() would hang.
        self.sleeping = True
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.wait()
        finally:
            self.sleeping = False

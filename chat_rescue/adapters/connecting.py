"""Connecting to a platform that may be down when the bot starts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Unreachable(Exception):  # noqa: N818 - reads as what happened
    """The platform did not answer (network error, 5xx, 429): worth trying again later."""


async def keep_connecting(connect: Callable[[], Awaitable[None]], platform: str) -> None:
    """Call `connect` with backoff (1 s, doubling to 60 s) until it stops raising
    Unreachable. Anything else it raises (a refusal) ends the attempts and propagates."""
    delay = 1.0
    while True:
        await asyncio.sleep(delay)
        delay = min(60.0, delay * 2)
        try:
            await connect()
        except Unreachable as down:
            log.warning("%s still not reachable (%s); next try in %gs", platform, down, delay)
            continue
        log.info("%s: connected", platform)
        return

"""Background loops that survive their errors, and how each one is doing.

A store that says "database is locked", a full disk, a bug hit by one odd payload: the
loop pauses (1 s, doubling up to 30 s), logs the first error of each kind with its
traceback and the repeats only at DEBUG, and starts again. `/healthz` reads the states.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

FIRST_PAUSE = 1.0
LONGEST_PAUSE = 30.0


@dataclass
class Loop:
    """One loop's health: `alive`, `failing` (pausing after an error), `stopped` or `dead`."""

    name: str
    state: str = "starting"
    last_error: str | None = None
    failures: int = 0
    failing_since: float | None = None  # time.monotonic() of the first error of a run
    _pause: float = FIRST_PAUSE
    _logged: set[str] = field(default_factory=set)

    def ok(self) -> None:
        """The loop did a round of work without an error."""
        if self.state == "failing":
            log.info("%s works again after %d failed rounds", self.name, self.failures)
            self._logged.clear()  # a later outage is news again
        self.state = "alive"
        self.failures = 0
        self.failing_since = None
        self._pause = FIRST_PAUSE


class Loops:
    """The process's supervised loops, by name."""

    def __init__(self) -> None:
        self._loops: dict[str, Loop] = {}

    def states(self) -> dict[str, str]:
        return {name: loop.state for name, loop in self._loops.items()}

    def stuck(self, limit: float) -> list[str]:
        """Loops that have been failing for more than `limit` seconds on end."""
        now = time.monotonic()
        return [name for name, loop in self._loops.items()
                if loop.failing_since is not None and now - loop.failing_since > limit]

    def get(self, name: str) -> Loop:
        loop = self._loops.get(name)
        if loop is None:
            loop = self._loops[name] = Loop(name)
        return loop

    async def supervise(self, name: str, body: Callable[[Loop], Awaitable[None]]) -> None:
        """Run `body(loop)` until cancelled, starting it again after each error; the body
        calls `loop.ok()` after each round that worked."""
        loop = self.get(name)
        loop.state = "alive"
        try:
            while True:
                try:
                    await body(loop)
                except Exception as failed:
                    if loop.failing_since is None:
                        loop.failing_since = time.monotonic()
                    loop.state = "failing"
                    loop.failures += 1
                    kind = f"{type(failed).__name__}: {str(failed).splitlines()[0][:200]}" \
                        if str(failed) else type(failed).__name__
                    loop.last_error = kind
                    if kind in loop._logged:
                        log.debug("%s failed again (%s); retrying in %gs", name, kind,
                                  loop._pause)
                    else:
                        loop._logged.add(kind)
                        log.exception("%s failed; retrying in %gs (repeats of this error are "
                                      "logged at DEBUG)", name, loop._pause)
                    await asyncio.sleep(loop._pause)
                    loop._pause = min(LONGEST_PAUSE, loop._pause * 2)
                else:
                    loop.state = "stopped"
                    return
        except asyncio.CancelledError:
            loop.state = "stopped"
            raise
        except BaseException:
            loop.state = "dead"
            raise

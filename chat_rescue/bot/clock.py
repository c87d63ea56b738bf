"""Clocks for the shell. The engine never reads one: `now` is passed in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Clock(Protocol):
    """Epoch seconds now, a monotonic reading in the same units (for pacing and backoff,
    which a stepped wall clock must not stretch), and how much real time a span of clock
    time takes."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    def real(self, seconds: float) -> float: ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def real(self, seconds: float) -> float:
        return seconds


class FastClock:
    """Time that runs `speed` times faster than the wall clock (the demo's support day)."""

    def __init__(self, start: float, speed: float) -> None:
        self.start = start
        self.speed = speed
        self._origin = time.monotonic()
        self._held: float | None = None

    def now(self) -> float:
        if self._held is not None:
            return self._held
        return self.start + (time.monotonic() - self._origin) * self.speed

    @contextmanager
    def held(self) -> Iterator[None]:
        """Stand still inside (what happens there happens at one instant), then catch up.

        At high speed a millisecond of work is seconds of support time: without this,
        four customers writing "at once" would be seconds apart, and so their timers.
        """
        self._held = self.now()
        try:
            yield
        finally:
            self._held = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stand still inside, then go on from where it stood: the real time spent inside
        is skipped (a script waiting for the bot to catch up, on a machine too slow for
        the speed, shows the same day as on a fast one)."""
        stood, began = self.now(), time.monotonic()
        self._held = stood
        try:
            yield
        finally:
            self._origin += time.monotonic() - began
            self._held = None

    def monotonic(self) -> float:
        # Its own reading: neither `held` nor a new origin may stop or step it.
        return time.monotonic() * self.speed

    def real(self, seconds: float) -> float:
        return seconds / self.speed


class FakeClock:
    """A clock that moves only when told to (tests). Setting `t` or `advance` moves both
    readings; `step` moves the wall clock alone, as NTP or a resumed VM does."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = start  # the two agree until the wall clock is stepped

    @property
    def t(self) -> float:
        return self._wall

    @t.setter
    def t(self, at: float) -> None:
        self.advance(at - self._wall)

    def now(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def real(self, seconds: float) -> float:
        return 0.0

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def step(self, seconds: float) -> None:
        self._wall += seconds


class ShiftedClock:
    """Wall-clock time moved by an offset that may be jumped (tests: a Friday evening, then
    in a moment the Monday morning). Monotonic readings and real time are the system's."""

    def __init__(self, start: float) -> None:
        self.offset = start - time.time()

    def now(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def real(self, seconds: float) -> float:
        return seconds

    def jump_to(self, at: float) -> None:
        """From now on it reads `at`, and runs on from there."""
        self.offset = at - time.time()

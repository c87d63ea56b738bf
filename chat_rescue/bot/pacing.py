"""How fast a destination may be sent to, and when it may be sent to next.

A platform's limit is a `Pace`: calls at least `gap` seconds apart and, where the platform
counts messages (Telegram: about 20 a minute in a group), at most `count` messages in any
`period` seconds. A `Pacer` keeps what was sent to each destination (monotonic seconds)
and says when the next call fits. An adapter notes every call it makes, as it makes them,
so a delivery that takes three calls costs three; the outbox asks before it sends.

A sliding window lets a burst through and then stops for the rest of its period: work that
can wait (a topic's new name) leaves `spare` messages of the window to what cannot (a
customer's message), so a customer never waits out a window filled by renames.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

PRUNE_AT = 1024  # destinations remembered before the idle ones are forgotten


@dataclass(frozen=True, slots=True)
class Pace:
    """Calls at least `gap` s apart; when `count`, at most `count` messages per `period` s."""

    gap: float = 0.0
    count: int = 0
    period: float = 60.0


UNPACED = Pace()


def uniform(paces: Mapping[str, Pace], gap: float) -> dict[str, Pace]:
    """Every pace replaced by plain `gap` seconds between calls, with no window (the
    sandboxes' fast runs)."""
    return {kind: replace(UNPACED, gap=gap) for kind in paces}


class Pacer:
    """When each destination may take its next call, from the calls noted so far."""

    def __init__(self, pace: Callable[[str], Pace]) -> None:
        self.pace = pace
        self._last: dict[str, float] = {}  # destination -> its latest call
        self._messages: dict[str, deque[float]] = {}  # destination -> its latest messages

    def note(self, place: str, now: float, *, message: bool = True) -> None:
        """A call to `place` was made at `now`; `message` if it put a message there (an
        edit does not, for Telegram)."""
        self._last[place] = max(now, self._last.get(place, now))
        count = self.pace(place).count
        if message and count:
            window = self._messages.get(place)
            if window is None or window.maxlen != count:
                window = self._messages[place] = deque(window or (), maxlen=count)
            window.append(now)
        if len(self._last) > PRUNE_AT:
            self._forget_idle(now)

    def free_at(self, place: str, now: float, *, message: bool = True, spare: int = 0,
                spaced: bool = True) -> float:
        """When (monotonic) the next call to `place` fits: `now` or later. For a message,
        the window must also have room, and `spare` places left over after it. Not
        `spaced`: the window only (a call that follows one just made, in one delivery)."""
        pace = self.pace(place)
        last = self._last.get(place)
        at = now if last is None or not spaced else max(now, last + pace.gap)
        window = self._messages.get(place) if message and pace.count else None
        if window:
            room = pace.count - spare  # messages the window may hold once this one is in
            if room <= 0:
                return max(at, window[-1] + pace.period)
            if len(window) >= room:
                at = max(at, window[len(window) - room] + pace.period)
        return at

    def _forget_idle(self, now: float) -> None:
        for place, last in list(self._last.items()):
            pace = self.pace(place)
            if last + max(pace.gap, pace.period if pace.count else 0.0) <= now:
                del self._last[place]
                self._messages.pop(place, None)

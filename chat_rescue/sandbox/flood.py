"""Optional flood control for the sandboxes: the platforms' posting limits, enforced.

Off unless a sandbox is given one (`TelegramSandbox.flood`, `SlackSandbox.flood`), so tests
that do not ask for it are unaffected. With it, a bot that posts faster than the platform
allows is answered 429 as the platform answers it, and the refusals are counted.

- `TelegramFlood`: per group about 20 messages a minute (a sliding window), per private
  chat one a second, about 30 a second per bot in all; `parameters.retry_after` in whole
  seconds. Counted is what puts a new message in a chat: send*, copyMessage,
  forwardMessage, and (unless `service_messages=False`) the topic calls that leave a
  service message in the group (create, rename, close, reopen). Edits are not counted:
  Telegram documents its limits for messages sent.
- `SlackFlood`: chat.postMessage about one a second per channel, with a short burst
  allowed (a token bucket); 429 with `Retry-After`.

Memory is bounded: each window keeps at most `limit` timestamps, and a sandbox knows a
bounded set of chats and channels.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

MESSAGE_METHODS = frozenset(
    {"sendmessage", "copymessage", "forwardmessage", "sendphoto", "senddocument", "sendvoice",
     "sendsticker", "sendvideo", "sendaudio", "sendanimation"}
)  # fmt: skip
SERVICE_METHODS = frozenset(
    {"createforumtopic", "editforumtopic", "closeforumtopic", "reopenforumtopic"}
)


class SlidingWindow:
    """At most `limit` events in any `period` seconds, per key."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._events: dict[object, deque[float]] = {}

    def wait(self, key: object, now: float) -> float:
        """Seconds until one more event for `key` fits (0: it fits now)."""
        events = self._events.get(key)
        if events is None:
            return 0.0
        while events and events[0] <= now - self.period:
            events.popleft()
        if not events:
            del self._events[key]
            return 0.0
        if len(events) < self.limit:
            return 0.0
        return events[0] + self.period - now

    def add(self, key: object, now: float) -> None:
        self._events.setdefault(key, deque(maxlen=self.limit)).append(now)


def whole_seconds(wait: float) -> int:
    """A retry-after as the platforms send it: whole seconds, at least one."""
    return max(1, math.ceil(wait - 1e-9))


@dataclass
class TelegramFlood:
    """Telegram's limits for one bot. `check` before carrying out a method, `sent` after
    it succeeded; `refused` counts the 429s by the limit that caused them."""

    group_per_minute: int = 20
    chat_per_second: int = 1
    bot_per_second: int = 30
    service_messages: bool = True
    clock: Clock = time.monotonic
    refused: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._groups = SlidingWindow(self.group_per_minute, 60.0)
        self._chats = SlidingWindow(self.chat_per_second, 1.0)
        self._bot = SlidingWindow(self.bot_per_second, 1.0)

    def counts(self, method: str) -> bool:
        """Whether `method` (lower case) puts a message in a chat."""
        return method in MESSAGE_METHODS or (self.service_messages and method in SERVICE_METHODS)

    def check(self, method: str, chat_id: int, private: bool) -> int | None:
        """None if `method` may go to the chat now, else the retry_after to answer."""
        if not self.counts(method):
            return None
        now = self.clock()
        limit, window = ("chat", self._chats) if private else ("group", self._groups)
        wait = max(self._bot.wait(None, now), window.wait(chat_id, now))
        if wait <= 0:
            return None
        self.refused["bot" if self._bot.wait(None, now) > 0 else limit] += 1
        return whole_seconds(wait)

    def sent(self, method: str, chat_id: int, private: bool) -> None:
        """Count a message that was carried out."""
        if not self.counts(method):
            return
        now = self.clock()
        self._bot.add(None, now)
        (self._chats if private else self._groups).add(chat_id, now)


@dataclass
class SlackFlood:
    """chat.postMessage per channel: `per_second` on average, `burst` at once."""

    per_second: float = 1.0
    burst: int = 4
    clock: Clock = time.monotonic
    refused: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, when)

    def take(self, method: str, channel: str) -> int | None:
        """None if the call may go (a token is taken), else the Retry-After to answer."""
        if method != "chat.postMessage":
            return None
        now = self.clock()
        tokens, then = self._buckets.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        if tokens >= 1.0:
            self._buckets[channel] = (tokens - 1.0, now)
            return None
        self._buckets[channel] = (tokens, now)
        self.refused[channel] += 1
        return whole_seconds((1.0 - tokens) / self.per_second)

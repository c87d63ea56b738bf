"""The sandboxes with what the reliability tests need on top: outages that last a period,
and records of what the platform considers acknowledged.

`TelegramTestbed` remembers which updates getUpdates confirmed (an `offset` past them)
and how often each was handed out; `SlackTestbed` and `TelegramTestbed` answer every
API call with 5xx, 429 (with a retry-after) or hold it, for a period of time rather than
for a number of calls (built on the sandboxes' own `fail_next` and `hang`).
`RecordingEventsClient` remembers the `action_ts` of each button click it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_client import SlackEventsClient
from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_world import JSON, ApiError

Kind = Literal["5xx", "429", "hang"]


@dataclass(frozen=True, slots=True)
class Outage:
    """One period in which the platform misbehaves; times are `time.monotonic()`."""

    kind: Kind
    start: float
    end: float
    methods: frozenset[str] | None = None  # None: every method
    status: int = 502
    retry_after: int = 1

    def covers(self, method: str, now: float) -> bool:
        if not self.start <= now < self.end:
            return False
        return self.methods is None or method.lower() in {m.lower() for m in self.methods}

    @property
    def seconds(self) -> float:
        return self.end - self.start


def _outage(kind: Kind, seconds: float, methods: set[str] | None, status: int,
            retry_after: int) -> Outage:
    now = time.monotonic()
    names = frozenset(methods) if methods is not None else None
    return Outage(kind, now, now + seconds, names, status, retry_after)


class TelegramTestbed(TelegramSandbox):
    """The Telegram sandbox, with outage periods and a record of confirmed updates."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outages: list[Outage] = []
        # update id -> when (time.monotonic()) a later getUpdates offset confirmed it
        self.confirmed: dict[int, float] = {}
        self.handed_out: Counter[int] = Counter()  # update id -> getUpdates answers with it
        self.refused: dict[int, str] = {}  # index in `calls` -> the error it was answered

    def outage(self, kind: Kind, seconds: float, *, methods: set[str] | None = None,
               status: int = 502, retry_after: int = 1) -> Outage:
        """From now on, for `seconds`: answer `methods` (default all) with `status`, 429
        and `retry_after`, or hold them until the period ends (then carry them out)."""
        outage = _outage(kind, seconds, methods, status, retry_after)
        self.outages.append(outage)
        return outage

    def take_updates(self, offset: int, limit: int) -> list[JSON]:
        pending = {int(update["update_id"]) for update in self.updates}
        updates = super().take_updates(offset, limit)
        now = time.monotonic()
        for update_id in pending - {int(update["update_id"]) for update in self.updates}:
            self.confirmed.setdefault(update_id, now)
        for update in updates:
            self.handed_out[int(update["update_id"])] += 1
        return updates

    async def _dispatch(self, method: str, params: Any) -> Any:
        index = len(self.calls) - 1  # the call was recorded just before, with no await between
        try:
            return await super()._dispatch(method, params)
        except ApiError as error:
            self.refused[index] = error.description
            raise

    def _take_fault(self, method: str) -> Any:
        now = time.monotonic()
        outage = next((o for o in self.outages if o.covers(method, now)), None)
        if outage is not None:
            if outage.kind == "hang":
                self.hang(method, outage.end - now)
            else:
                status = 429 if outage.kind == "429" else outage.status
                self.fail_next(method, status=status, retry_after=outage.retry_after)
        return super()._take_fault(method)


class SlackTestbed(SlackSandbox):
    """The Slack sandbox, with outage periods for its Web API (not for response_url)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outages: list[Outage] = []
        self._holding: asyncio.Task[None] | None = None

    def outage(self, kind: Kind, seconds: float, *, methods: set[str] | None = None,
               status: int = 503, retry_after: int = 1) -> Outage:
        """From now on, for `seconds`: answer `methods` (default all) with `status`, 429
        and `retry_after`, or hold them until the period ends (then carry them out)."""
        outage = _outage(kind, seconds, methods, status, retry_after)
        self.outages.append(outage)
        if kind == "hang":
            self._holding = asyncio.create_task(self._hold(outage))
        return outage

    async def stop(self) -> None:
        if self._holding is not None:
            self._holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._holding
        await super().stop()

    async def _hold(self, outage: Outage) -> None:
        # `hang` delays each call by a fixed time from its arrival; keeping that time at
        # "until the period ends" makes every held call complete when the outage is over.
        names = sorted(outage.methods) if outage.methods is not None else ["*"]
        try:
            while (left := outage.end - time.monotonic()) > 0:
                for name in names:
                    self.hang(name, left)
                await asyncio.sleep(min(0.02, left))
        finally:
            for name in names:
                self.hang(name, 0)

    def _take_failure(self, method: str) -> Any:
        now = time.monotonic()
        outage = next((o for o in self.outages if o.kind != "hang" and o.covers(method, now)),
                      None)
        if outage is not None:
            status = 429 if outage.kind == "429" else outage.status
            error = "ratelimited" if status == 429 else "service_unavailable"
            self.fail_next(method, status=status, retry_after=outage.retry_after, error=error)
        return super()._take_failure(method)


class RecordingEventsClient(SlackEventsClient):
    """A Slack events client that remembers the last `action_ts` / message ts it made up."""

    last_ts: str = ""

    def _next_ts(self) -> str:
        self.last_ts = super()._next_ts()
        return self.last_ts

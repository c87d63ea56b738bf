"""`chat-rescue run` with the sandboxes' pacing: `python -m chat_rescue.sandbox.paced_run`.

The real command (`ops.run`: settings from the environment, logging, signals, the one
event loop) with one change: the adapters' per-channel pacing (Slack about one post a
second, Telegram twenty a minute per group) is `SANDBOX_PACING` seconds between calls, because
the sandboxes do not rate-limit here (their flood control is off) and a crash test should
measure recovery, not pacing. `SANDBOX_CLOCK_OFFSET` (seconds) moves the bot's wall clock,
so that a test can have a shift end in a few seconds (a Friday at 17:59:45, say) and a
later life start on the Monday morning.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from chat_rescue import ops, server
from chat_rescue.bot.clock import Clock, ShiftedClock
from chat_rescue.bot.pacing import uniform
from chat_rescue.bot.service import Service
from chat_rescue.bot.settings import Settings

PACING_VARIABLE = "SANDBOX_PACING"
CLOCK_VARIABLE = "SANDBOX_CLOCK_OFFSET"


def paced() -> None:
    """Make every adapter that `server.Bot` builds use the sandbox pacing."""
    pace = float(os.environ.get(PACING_VARIABLE, "0.01"))
    build = server.build_adapters

    def build_paced(settings: Settings, service: Service, clock: Clock) -> list[server.Adapter]:
        adapters = build(settings, service, clock)
        for adapter in adapters:
            if hasattr(adapter, "paces"):
                adapter.paces = uniform(adapter.paces, pace)
        return adapters

    server.build_adapters = build_paced


def shifted() -> None:
    """Make `server.Bot` run on the wall clock moved by `SANDBOX_CLOCK_OFFSET`, if set."""
    written = os.environ.get(CLOCK_VARIABLE)
    if not written:
        return
    offset = float(written)
    plain = server.Bot

    class ShiftedBot(plain):  # type: ignore[valid-type, misc]
        def __init__(self, settings: Settings, clock: Clock | None = None,
                     adapters: list[server.Adapter] | None = None) -> None:
            super().__init__(settings, clock or ShiftedClock(time.time() + offset), adapters)

    server.Bot = ShiftedBot  # type: ignore[misc]


def main() -> None:
    """Serve like `chat-rescue run` until SIGINT/SIGTERM."""
    paced()
    shifted()
    sys.exit(asyncio.run(ops.run()))


if __name__ == "__main__":
    main()

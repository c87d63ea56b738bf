"""`chat-rescue run` with the sandboxes' pacing: `python -m chat_rescue.sandbox.paced_run`.

The real command (`ops.run`: settings from the environment, logging, signals, the one
event loop) with one change: the adapters' per-channel pacing (Slack about one post a
second, Telegram twenty a minute per group) is `SANDBOX_PACING` seconds between calls, because
the sandboxes do not rate-limit here (their flood control is off) and a crash test should
measure recovery, not pacing.
"""

from __future__ import annotations

import asyncio
import os
import sys

from chat_rescue import ops, server
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.pacing import uniform
from chat_rescue.bot.service import Service
from chat_rescue.bot.settings import Settings

PACING_VARIABLE = "SANDBOX_PACING"


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


def main() -> None:
    """Serve like `chat-rescue run` until SIGINT/SIGTERM."""
    paced()
    sys.exit(asyncio.run(ops.run()))


if __name__ == "__main__":
    main()

"""The event loop does no store work: while the bot serves a whole demo day on Slack and on
Telegram (events, clicks, commands, timers, sweeps, deliveries), every store call made by
the bot's own code runs on the store's thread (`bot/worker.py`), never on the loop's.

The store is watched, not mocked: a subclass of the real SQLiteStore notes the thread and
the calling module of each call. Calls from the sandbox and the demo script (the stand-ins
for Slack, Telegram and the people, reading what they need) are not the bot's.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chat_rescue import server
from chat_rescue.sandbox.slack_demo import play_slack
from chat_rescue.sandbox.telegram_demo import play_telegram
from chat_rescue.storage.factory import open_store
from chat_rescue.storage.sqlite import SQLiteStore

# Not store work: the handle of a lock with a connection of its own, and closing at the end.
NOT_WORK = {"lock", "close"}
BOTS_CODE = ("chat_rescue.bot.", "chat_rescue.adapters.", "chat_rescue.server")


@contextmanager
def watched_stores() -> Iterator[Counter[str]]:
    """Every store the bot opens notes its calls made on the loop's thread by the bot's code:
    yields a count of `method <- module`."""
    on_loop: Counter[str] = Counter()
    loop_thread = threading.get_ident()

    def watch(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def watched(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                caller = sys._getframe(1).f_globals.get("__name__", "")
                if caller.startswith(BOTS_CODE):
                    on_loop[f"{name} <- {caller}"] += 1
            return method(self, *args, **kwargs)
        return watched

    methods = {name: watch(name, getattr(SQLiteStore, name)) for name in dir(SQLiteStore)
               if not name.startswith("_") and name not in NOT_WORK
               and callable(getattr(SQLiteStore, name))}
    Watched = type("Watched", (SQLiteStore,), methods)

    def opened(url: str) -> Any:
        store = open_store(url)
        assert isinstance(store, SQLiteStore)
        store.__class__ = Watched
        return store

    patch = pytest.MonkeyPatch()
    patch.setattr(server, "open_store", opened)
    try:
        yield on_loop
    finally:
        patch.undo()


async def test_a_slack_day_does_no_store_work_on_the_loop() -> None:
    with watched_stores() as on_loop:
        await asyncio.wait_for(play_slack(1000.0, lambda line: None), timeout=60)
    assert not on_loop, f"store calls on the event loop: {dict(on_loop)}"


async def test_a_telegram_day_does_no_store_work_on_the_loop() -> None:
    with watched_stores() as on_loop:
        await asyncio.wait_for(play_telegram(speed=1000, write=lambda line: None), timeout=60)
    assert not on_loop, f"store calls on the event loop: {dict(on_loop)}"


def test_the_watch_sees_a_call_on_the_loop() -> None:
    """The watch itself can fail: a store call the bot's code makes on the loop is counted."""
    with watched_stores() as on_loop:
        bot = server.Bot(server.Settings(database_url="sqlite:///:memory:"))
        server.Service.team_policy(bot.service, "default")  # on this thread: the loop's
        bot.store.close()
    assert on_loop == Counter({"settings <- chat_rescue.bot.service": 1})

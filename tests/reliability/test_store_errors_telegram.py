"""Store errors while polling Telegram: an update whose handling failed ("database is
locked") is not confirmed; polling pauses, says so once, and handles the same update again,
so the customer's message is carried once the store is back, and polling goes on.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chat_rescue.bot.ports import Change, Outcome
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    ANA,
    BRUNO,
    GROUP,
    SupportGroup,
    eventually,
    furnish,
    sandbox_settings,
)
from chat_rescue.sandbox.testbeds import TelegramTestbed

LOCKED = "database is locked"
POLLING_LOG = "chat_rescue.adapters.telegram.app"


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB warns about int retry_after unless opted in (warnings are errors here).
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def mode() -> str:
    return "polling"


@pytest.fixture
async def polling(tmp_path: Path, mode: str
                  ) -> AsyncIterator[tuple[TelegramTestbed, SupportGroup]]:
    webhook = mode == "webhook"
    async with TelegramTestbed(push_updates_to_webhook=webhook) as sandbox:
        furnish(sandbox)
        settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db", webhook=webhook)
        group = await SupportGroup(sandbox, settings).start()
        app = group.adapter.app
        app.first_pause, app.max_pause = 0.05, 0.4  # the backoff, shortened for the test
        try:
            yield sandbox, group
        finally:
            await group.stop()


async def test_a_store_error_keeps_the_update_until_it_is_handled(
        polling: tuple[TelegramTestbed, SupportGroup], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    sandbox, group = polling
    app, store = group.adapter.app, group.bot.store
    commit = store.commit
    attempts: list[tuple[float, str]] = []  # (when, the polling state then)
    failing_id = ""

    def locked_twice(change: Change, now: float) -> Outcome:
        if change.inbound_id == failing_id:
            attempts.append((time.monotonic(), app.state))
            if len(attempts) <= 2:
                raise sqlite3.OperationalError(LOCKED)
        return commit(change, now)

    monkeypatch.setattr(store, "commit", locked_twice)
    caplog.set_level(logging.INFO, logger=POLLING_LOG)
    # One getUpdates batch: Bruno's message goes through, Alice's meets the locked store.
    before = sandbox.private_message(BRUNO, "First!")["update_id"]
    failed = sandbox.private_message(ALICE, "My order never came")["update_id"]
    failing_id = f"telegram:{failed}"

    await eventually(lambda: len(attempts) == 3, timeout=5)
    thread = await group.topic(1)  # Bruno's came first
    assert "Alice" in group.topic_name(thread)
    await eventually(lambda: len(group.in_topic(thread)) == 2)  # the card and the copy
    await group.drained()

    # The copy may come before the card (copies of messages go first in their lane).
    assert [m.get("text") for m in group.copies(thread)] == ["My order never came"]
    assert group.history("opened") == ["opened", "opened"]  # Bruno's and Alice's, once each
    assert sandbox.handed_out[before] == 1  # confirmed before the failure, never sent again
    assert sandbox.handed_out[failed] == 3  # the same update again until it went through
    assert [state for _, state in attempts] == ["alive", "failing", "failing"]
    assert attempts[2][0] - attempts[0][0] >= 0.05 + 0.1  # paused in between, doubling
    assert app.state == "alive" and app.last_error is None
    said = [r for r in caplog.records if r.name == POLLING_LOG]
    warned = [r for r in said if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and LOCKED in warned[0].getMessage()  # once, not per retry
    assert any("again" in r.getMessage() for r in said if r.levelno == logging.INFO)

    sandbox.private_message(ALICE, "Hello?")  # polling goes on
    await eventually(lambda: len(group.in_topic(thread)) == 3)


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_taking_updates_says_when_it_is_failing_and_recovers(
        polling: tuple[TelegramTestbed, SupportGroup], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A bug (not only a store error) in handling an update does not end polling either;
    `state` tells a health check, with the webhook too (where Telegram does the retries)."""
    sandbox, group = polling
    app = group.adapter.app
    handle = app.handle
    seen: list[str] = []

    async def broken_then_fixed(update: object) -> None:
        seen.append(app.state)
        if len(seen) <= 3:
            raise RuntimeError("a bug")
        await handle(update)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "handle", broken_then_fixed)
    caplog.set_level(logging.WARNING, logger=POLLING_LOG)
    sandbox.private_message(ALICE, "Hello")
    await eventually(lambda: len(seen) >= 3, timeout=5)
    assert app.state == "failing" and app.last_error is not None and "a bug" in app.last_error
    thread = await group.topic(timeout=5)
    await eventually(lambda: len(group.in_topic(thread)) == 2)
    assert app.state == "alive"
    said = [r for r in caplog.records if r.name == POLLING_LOG and "a bug" in r.getMessage()]
    assert len(said) == 1
    await app.stop_intake()
    assert app.state == "stopped"


async def test_a_store_error_in_rescue_set_applies_it_once_when_the_update_comes_again(
        polling: tuple[TelegramTestbed, SupportGroup], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, group = polling
    store = group.bot.store
    put = store.put_setting
    failures = [sqlite3.OperationalError(LOCKED)]

    def locked_once(*args: object, **kwargs: object) -> None:
        if failures and str(args[0]).startswith("team:"):  # the command's write, not a name's
            raise failures.pop()
        put(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "put_setting", locked_once)
    sandbox.group_message(GROUP, ANA, "/rescue set idle 1m")
    await eventually(lambda: store.settings(f"team:telegram:{GROUP}") == {"idle": "1m"})
    await group.adapter.inbound.settled()
    replies = [m["text"] for m in group.general() if "idle is now 1m" in m.get("text", "")]
    assert replies == ["idle is now 1m for the team."]  # applied and answered once
    assert not failures  # the error did happen, and the update came again

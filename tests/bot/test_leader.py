"""The leader runs what only one replica may do while it holds the store's lock."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chat_rescue.bot import leader
from chat_rescue.bot.leader import Leader
from chat_rescue.storage.sqlite_lock import FileLock


class Switch:
    """A lock another replica holds until told otherwise, which this one can lose."""

    def __init__(self) -> None:
        self.free = False
        self.held = False
        self.given_up = 0

    def try_take(self) -> bool:
        if self.free:
            self.held, self.free = True, False
        return self.held

    def still_held(self) -> bool:
        return self.held

    def give_up(self) -> None:
        self.held = False
        self.given_up += 1


async def test_it_leads_while_it_holds_the_lock_and_stops_when_it_loses_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leader, "TRY", 0.01)
    monkeypatch.setattr(leader, "CHECK", 0.01)
    lock, calls, led = Switch(), [], []
    async def lead() -> None:
        led.append(1)

    runner = Leader(lock, "the test", on_lead=lead)

    async def start() -> None:
        calls.append("start")

    async def stop() -> None:
        calls.append("stop")

    task = asyncio.create_task(runner.run(start, stop))
    await asyncio.sleep(0.05)
    assert calls == [] and not runner.leading  # another replica holds it
    lock.free = True
    await asyncio.sleep(0.05)
    assert calls == ["start"] and runner.leading and led == [1]
    lock.held = False  # lost (its connection died)
    await asyncio.sleep(0.05)
    assert calls == ["start", "stop"] and not runner.leading
    lock.free = True
    await asyncio.sleep(0.05)
    assert calls == ["start", "stop", "start"] and led == [1, 1]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls[-1] == "stop" and lock.given_up == 1 and not lock.held


def test_a_file_lock_is_held_by_one_at_a_time_and_freed_by_its_holders_death(
        tmp_path: Path) -> None:
    path = tmp_path / "db.telegram-poller.lock"
    one, two = FileLock(path), FileLock(path)
    assert one.try_take() and one.try_take() and one.still_held()
    assert not two.try_take() and not two.still_held()
    one.give_up()
    assert two.try_take()
    two.give_up()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; "
         "from chat_rescue.storage.sqlite_lock import FileLock; "
         f"assert FileLock(Path({str(path)!r})).try_take(); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not one.try_take()
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: no chance to let go
        holder.wait(10)
        assert one.try_take()
    finally:
        holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
        one.give_up()


async def test_a_lock_that_cannot_be_asked_is_not_held_and_is_asked_again(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(leader, "TRY", 0.01)
    answers = [OSError("read-only file system"), OSError("read-only file system"), True]

    class Flaky(Switch):
        def try_take(self) -> bool:
            answer = answers.pop(0) if answers else True
            if isinstance(answer, Exception):
                raise answer
            self.held = True
            return True

    started: list[int] = []

    async def start() -> None:
        started.append(1)

    async def stop() -> None:
        return None

    task = asyncio.create_task(Leader(Flaky(), "the test").run(start, stop))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert started == [1]
    assert [r.message for r in caplog.records].count(
        "cannot reach the lock for the test (read-only file system); this replica does not "
        "lead it until it can") == 1

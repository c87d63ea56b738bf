"""The store worker (`bot/worker.py`): store work on a thread of its own, results and
callbacks back on the loop, events waiting together committed together, and a stop that
waits for what was handed over before it, not for everything after."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from chat_rescue.bot.ports import GroupRefused
from chat_rescue.bot.worker import StoreWorker
from chat_rescue.storage.sqlite import SQLiteStore


async def test_jobs_run_on_one_thread_in_order_and_callbacks_come_back_on_the_loop() -> None:
    worker = StoreWorker()
    loop_thread = threading.get_ident()
    ran: list[tuple[int, int]] = []
    called_back: list[int] = []

    def job(n: int) -> int:
        ran.append((n, threading.get_ident()))
        worker.post(lambda: called_back.append(threading.get_ident()))
        return n * 10

    results = await asyncio.gather(*(worker.call(job, n) for n in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert [n for n, _ in ran] == [0, 1, 2, 3, 4]
    assert len({thread for _, thread in ran}) == 1 and ran[0][1] != loop_thread
    assert called_back == [loop_thread] * 5


async def test_a_failing_job_fails_its_caller_only() -> None:
    worker = StoreWorker()

    def broken() -> None:
        raise ValueError("a bug")

    outcomes = await asyncio.gather(worker.call(broken), worker.call(lambda: "fine"),
                                    return_exceptions=True)
    assert isinstance(outcomes[0], ValueError) and outcomes[1] == "fine"


async def test_a_cancelled_caller_does_not_undo_its_job() -> None:
    worker = StoreWorker()
    done = threading.Event()

    def slow() -> None:
        time.sleep(0.1)
        done.set()

    task = asyncio.create_task(worker.call(slow))
    await asyncio.sleep(0.02)
    task.cancel()
    await worker.idle()
    assert done.is_set() and task.cancelled()


async def test_idle_waits_for_the_jobs_handed_over_before_it_not_after() -> None:
    """Under steady traffic a stop must not wait for as long as the traffic lasts."""
    worker = StoreWorker()
    first_done = threading.Event()
    release = threading.Event()

    def first() -> None:
        time.sleep(0.05)
        first_done.set()

    def later() -> None:
        release.wait(5)  # held until the test lets it go

    first_call = asyncio.ensure_future(worker.call(first))
    await asyncio.sleep(0)  # handed over
    idle = asyncio.ensure_future(worker.idle())
    later_call = asyncio.ensure_future(worker.call(later))
    await asyncio.wait_for(idle, 2)  # returns while `later` is still held
    assert first_done.is_set() and not later_call.done()
    release.set()
    await asyncio.gather(first_call, later_call)
    assert worker.is_idle


async def test_events_handed_over_together_share_one_transaction() -> None:
    store = SQLiteStore("sqlite://")
    worker = StoreWorker(store)
    batches: list[int] = []
    real = store.batch

    def counting():  # type: ignore[no-untyped-def]
        batches.append(1)
        return real()

    store.batch = counting  # type: ignore[method-assign]
    await asyncio.gather(*(worker.call(store.put_setting, "team:a", f"k{n}", "v", "t", 0.0,
                                       grouped=True) for n in range(20)))
    assert len(batches) == 1 and len(store.settings("team:a")) == 20
    store.close()


async def _group_of_four(failure: Callable[[], BaseException], refuse: Callable[[int], bool]
                         ) -> tuple[SQLiteStore, list[object], list[int], list[int]]:
    """Four settings written as one group on a store whose batch fails with `failure()`
    when a write `refuse`d; (the store, each write's result, the batches begun, the
    writes counted once committed, by `after_commit`, then what `on_group_failed` heard,
    as -1 for one by one and -2 for the whole)."""
    store, refused, batches = _refusing_store(failure)
    worker = StoreWorker(store)
    counted: list[int] = []
    worker.on_group_failed = lambda outcome: counted.append(
        {"one_by_one": -1, "whole": -2}[outcome])

    def write(n: int) -> int:
        store.put_setting("team:a", f"k{n}", "v", "t", 0.0)
        store.after_commit(lambda: counted.append(n))
        if refuse(n):
            refused["now"] = True
        return n

    results = await asyncio.gather(*(worker.call(write, n, grouped=True) for n in range(4)),
                                   return_exceptions=True)
    return store, results, batches, counted


def _refusing_store(failure: Callable[[], BaseException]
                    ) -> tuple[SQLiteStore, dict[str, bool], list[int]]:
    """A store whose batch fails at its end with `failure()` when told to (`refused`)."""
    store = SQLiteStore("sqlite://")
    refused = {"now": False}
    batches: list[int] = []

    @contextlib.contextmanager
    def refusing(intents: object = ()) -> Iterator[None]:
        refused["now"] = False
        batches.append(1)
        with SQLiteStore.batch(store):
            yield
            if refused["now"]:
                raise failure()

    store.batch = refusing  # type: ignore[method-assign, assignment]
    return store, refused, batches


async def test_a_group_that_fails_together_runs_again_one_by_one() -> None:
    # One event's write refused at COMMIT (a value the server will not take, a deadlock
    # with another replica) must fail that event only, not the 255 beside it.
    store, results, batches, counted = await _group_of_four(
        lambda: GroupRefused("a value refused"), lambda n: n == 2)
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], GroupRefused)
    assert sorted(store.settings("team:a")) == ["k0", "k1", "k3"]
    assert len(batches) == 1 + 4  # together once, then each alone
    assert sorted(counted) == [-1, 0, 1, 3]  # what was kept counted once; not the failed try
    store.close()


async def test_a_group_that_fails_for_all_of_it_is_not_run_again() -> None:
    # The store out of reach (a pool timeout, a lost connection): running each event again
    # would wait one more timeout per event; they all fail at once.
    store, results, batches, counted = await _group_of_four(
        lambda: OSError("the server is out of reach"), lambda n: True)
    assert all(isinstance(result, OSError) for result in results)
    assert store.settings("team:a") == {} and len(batches) == 1
    assert counted == [-2]  # nothing was kept; the group's failure told
    store.close()

"""The collector paused for bulk reads and replays (bot/bulk.py), also when several threads
have such a block under way at once."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from chat_rescue.bot.bulk import no_collections


@pytest.fixture(autouse=True)
def collector_running() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_paused_in_the_block_and_resumes_after() -> None:
    with no_collections():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_it_resumes_after_the_last_of_overlapping_blocks_in_other_threads() -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with no_collections():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    with no_collections():
        pass
    assert not gc.isenabled()  # the other thread's block is still under way
    leave.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with no_collections():
        pass
    assert not gc.isenabled()


def test_it_resumes_when_the_block_raises() -> None:
    with pytest.raises(ValueError), no_collections():
        raise ValueError("boom")
    assert gc.isenabled()

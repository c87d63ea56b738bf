"""Reading or replaying a lot at once, with the garbage collector paused.

A 30-day report or replay turns hundreds of thousands of rows into short-lived objects
that hold no reference cycles. Each such burst set off the collector's full passes over a
heap that the burst itself kept growing: about half of the time went to them. Paused,
nothing is collected late that matters: reference counting frees what the burst drops.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_bursts = 0  # blocks under way, in any thread: the collector resumes after the last
_resume = False  # whether it was running when the first began


@contextmanager
def no_collections() -> Iterator[None]:
    """The collector paused for the block (and for other threads' blocks under way)."""
    global _bursts, _resume
    with _lock:
        if _bursts == 0:
            _resume = gc.isenabled()
            gc.disable()
        _bursts += 1
    try:
        yield
    finally:
        with _lock:
            _bursts -= 1
            if _bursts == 0 and _resume:
                gc.enable()

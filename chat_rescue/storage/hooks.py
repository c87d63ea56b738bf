"""What waits on a transaction's end: callbacks for when it commits, dropped if it does not
(`Batching.after_commit`), shared by the backends."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class OnCommit:
    """The callbacks of one open transaction."""

    def __init__(self) -> None:
        self._waiting: list[Callable[[], None]] = []

    def add(self, callback: Callable[[], None]) -> None:
        self._waiting.append(callback)

    def committed(self) -> None:
        """The transaction committed: each callback, in order (one that raises is logged
        and the others still run)."""
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            try:
                callback()
            except Exception:
                log.exception("a callback after a commit failed")

    def rolled_back(self) -> None:
        self._waiting = []

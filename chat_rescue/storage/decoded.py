"""Decoded outbox actions by id, shared by the backends: a paced backlog is read again and
again, and decoding its JSON each time would cost more than the read."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from chat_rescue.bot.codec import decode_action
from chat_rescue.bot.model import Action
from chat_rescue.bot.ports import OutboxItem

DECODED_MIN = 4096  # decoded actions kept before looking for those settled elsewhere


class Decoded:
    """The cache. Another process settles items too, and this one would keep their decoded
    actions for ever (ids are never used again): whenever the cache has doubled, it keeps
    only those still queued."""

    def __init__(self) -> None:
        self._by_id: dict[int, Action] = {}
        self._limit = DECODED_MIN
        self._lock = threading.Lock()

    def items(self, rows: Sequence[tuple[Any, ...]]) -> list[OutboxItem]:
        """Outbox rows (id, lane, kind, payload, not_before, attempts, was_leased) as items."""
        items = []
        for id_, lane, kind, payload, not_before, attempts, was_leased in rows:
            item_id = int(id_)
            action = self._by_id.get(item_id)
            if action is None:
                action = self._by_id[item_id] = decode_action(str(kind), str(payload))
            items.append(OutboxItem(item_id, str(lane), action, float(not_before),
                                    int(attempts), bool(was_leased)))
        return items

    def forget(self, item_id: int) -> None:
        """An item settled or superseded here (its id may be used again on SQLite)."""
        self._by_id.pop(item_id, None)

    def keep_queued(self, queued: Callable[[], Iterable[int]]) -> None:
        """Once the cache has doubled: keep only the ids `queued()` (the outbox's) names."""
        if len(self._by_id) <= self._limit:
            return
        with self._lock:
            still = set(queued())
            for gone in self._by_id.keys() - still:
                self._by_id.pop(gone, None)
            self._limit = max(DECODED_MIN, 2 * len(self._by_id))

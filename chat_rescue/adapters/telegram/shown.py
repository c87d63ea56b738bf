"""What each forum topic and its card show, stored for every replica.

Any replica's outbox may deliver a conversation's next card update, so what the last
one made a topic or card show is stored (settings scope `telegram-shown:<group>:
<topic>`: its name, whether it is closed, and a digest of each card's text and
buttons) and read before deciding to skip an edit. Otherwise a replica would skip a
rename that another replica's since made necessary. These are notes, not settings: the
other replicas are not told of each write (nothing is derived from them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from chat_rescue.bot.ports import ScopeSettings

NAME, CLOSED, CARD = "name", "closed", "card:"
BY = "telegram"


def scope(group: int, topic: int) -> str:
    return f"telegram-shown:{group}:{topic}"


def digest(shown: str) -> str:
    """What a card shows, short enough to store for each card."""
    return hashlib.sha256(shown.encode()).hexdigest()[:20]


def recall(store: ScopeSettings, group: int, topic: int) -> dict[str, str]:
    """The topic's stored marks (empty when no replica stored any)."""
    return store.settings(scope(group, topic))


def keep(store: ScopeSettings, group: int, topic: int, marks: Mapping[str, str],
         at: float) -> None:
    """Store marks (`NAME`, `CLOSED`, `CARD<id>`) a delivery just made true."""
    for key, value in marks.items():
        store.put_setting(scope(group, topic), key, value, BY, at, announce=False)

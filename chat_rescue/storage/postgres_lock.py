"""The leadership lock of a PostgreSQL store (`bot/leader.py`): a session advisory lock
(`pg_try_advisory_lock`) held on a connection of its own, which the server lets go the
moment that session ends (its process died, or the connection broke), so another replica
takes over within about a second.

A machine that vanishes (no FIN, no RST) is noticed by keepalives on both ends of the
session: the server ends it after about KEEPALIVE_IDLE + KEEPALIVE_COUNT seconds of
silence (the lock is free then), and the holder's next `still_held` fails as soon."""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import psycopg

KEEPALIVE_IDLE = 5  # seconds of silence before the first probe
KEEPALIVE_COUNT = 5  # probes a second apart unanswered: the peer is gone


def advisory_key(name: str) -> int:
    """The lock's key (`pg_locks.objid`, `classid` 0): 32 bits of a hash of its name."""
    return zlib.crc32(f"chat-rescue:{name}".encode())


class AdvisoryLock:
    """The advisory lock named `name` (a stable 32-bit key from its name)."""

    def __init__(self, url: str, name: str, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.key = advisory_key(name)
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None

    def try_take(self) -> bool:
        if self._conn is not None:
            return self.still_held()
        conn = psycopg.connect(self.url, autocommit=True, application_name="chat-rescue lock",
                               connect_timeout=max(1, int(self.connect_timeout)),
                               keepalives=1, keepalives_idle=KEEPALIVE_IDLE,
                               keepalives_interval=1, keepalives_count=KEEPALIVE_COUNT,
                               tcp_user_timeout=1000 * (KEEPALIVE_IDLE + KEEPALIVE_COUNT))
        try:
            # The server's end of the same (ignored over a Unix socket).
            conn.execute(f"SET tcp_keepalives_idle = {KEEPALIVE_IDLE}; "
                         "SET tcp_keepalives_interval = 1; "
                         f"SET tcp_keepalives_count = {KEEPALIVE_COUNT}")
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except BaseException:
            conn.close()
            raise
        if not (row and row[0]):
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:  # the session is gone, and the lock with it
            self._drop()
            return False
        return True

    def give_up(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

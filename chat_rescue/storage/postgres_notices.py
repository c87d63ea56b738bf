"""Wake-ups across replicas (the `Wakeups` port) by PostgreSQL's LISTEN/NOTIFY.

A transaction that stores a deadline, ends a claim on due ones, or queues outbox items
says so with `pg_notify` inside itself: the server delivers a notice on commit only, so
nobody wakes for a change rolled back. One notice per kind and transaction (`News`): the
earliest deadline, each platform once. Each process listens on a session of its own
(`Listener`), as the leadership lock holds one (`postgres_lock.py`): a thread blocked on
that socket, so a notice wakes the ticker at once whatever the event loop or the store's
worker are busy with. A broken session is opened again with backoff, and `missed` is
called once it listens, as notices sent meanwhile are lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import select
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "chat_rescue"
FIRST_RETRY = 0.1  # seconds before the first attempt to listen again, doubled up to
LONGEST_RETRY = 5.0
CHECK_EVERY = 10.0  # seconds of silence after which the session is checked (a dead server
# whose socket never closes: a cut network)
STOP_WAIT = 2.0  # seconds `stop` waits for the thread (it may be inside a connect)
ANSWER_WITHIN = 5.0  # seconds the server has to answer that check: a session that does
# not (a half-dead connection) is given up and opened again, and what it missed looked for


def origin() -> str:
    """A store's name in its notices, so that its own listener passes over them (its own
    commits wake its ticker and workers directly)."""
    return secrets.token_hex(4)


@dataclass
class News:
    """What one transaction will announce when it commits."""

    deadline: float | None = None  # the earliest stored
    claimed: float | None = None  # the earliest due one it held (`FOR UPDATE`)
    platforms: set[str] = field(default_factory=set)
    settings: bool = False  # some were changed

    def stored(self, at: float | None) -> None:
        if at is not None and (self.deadline is None or at < self.deadline):
            self.deadline = at

    def held(self, at: float) -> None:
        if self.claimed is None or at < self.claimed:
            self.claimed = at

    def changed(self) -> None:
        self.settings = True

    def queued(self, lanes: list[str]) -> None:
        self.platforms.update(lane.partition(":")[0] for lane in lanes)

    def send(self, conn: psycopg.Connection[Any], sender: str) -> None:
        """Announce it, inside the transaction still open on `conn`. A transaction that
        held due deadlines announces the earliest even when it stored none: a replica
        passing over them waits for that."""
        payloads = [f"{sender} outbox {platform}" for platform in sorted(self.platforms)]
        if self.settings:
            payloads.append(f"{sender} settings")
        at = self.deadline if self.deadline is not None else self.claimed
        if at is not None:
            payloads.append(f"{sender} deadline {at!r}")
        if payloads:
            conn.execute("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p",
                         (CHANNEL, payloads))


class Listener:
    """A thread listening on a session of its own, until `stop`."""

    def __init__(self, url: str, sender: str, deadline: Callable[[float], None],
                 outbox: Callable[[str], None], missed: Callable[[], None],
                 settings: Callable[[], None] = lambda: None, *,
                 connect_timeout: float = 5.0) -> None:
        self.url = url
        self.sender = sender
        self.deadline = deadline
        self.outbox = outbox
        self.missed = missed
        self.settings = settings
        self.connect_timeout = connect_timeout
        self.backend_pid: int | None = None  # the listening session's (tests end it)
        self._stop_read, self._stop_write = os.pipe()  # wakes the thread's select()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chat-rescue notices",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        os.write(self._stop_write, b"x")
        self._thread.join(STOP_WAIT)
        if not self._thread.is_alive():
            os.close(self._stop_read)
            os.close(self._stop_write)

    def _run(self) -> None:
        retry = FIRST_RETRY
        while not self._stopping.is_set():
            try:
                with self._session() as conn:
                    retry = FIRST_RETRY
                    self.missed()
                    self._hear(conn)
            except psycopg.Error as failed:
                if self._stopping.is_set():
                    break
                log.warning("not listening for other replicas' notices (%s); again in %gs",
                            str(failed).strip().splitlines()[0] if str(failed).strip()
                            else type(failed).__name__, retry)
                if self._pause(retry):
                    break
                retry = min(LONGEST_RETRY, retry * 2)
            except Exception:  # a bug in a callback must not end the wake-ups for good
                log.exception("listening for other replicas' notices failed")
                if self._pause(LONGEST_RETRY):
                    break

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        conn = psycopg.connect(self.url, autocommit=True,
                               application_name="chat-rescue notices",
                               connect_timeout=max(1, int(self.connect_timeout)))
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            yield conn
        finally:
            self.backend_pid = None
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _hear(self, conn: psycopg.Connection[Any]) -> None:
        """Pass notices on until stopped; raises psycopg.Error when the session breaks."""
        while not self._stopping.is_set():
            # What has arrived (or came in with a query's answer), without waiting.
            for notice in conn.notifies(timeout=0):
                self._pass_on(notice.payload)
            if conn.broken:
                raise psycopg.OperationalError("the listening session broke")
            readable, _, _ = select.select([conn.fileno(), self._stop_read], [], [],
                                           CHECK_EVERY)
            if self._stop_read in readable:
                return
            if not readable:
                self._check(conn)  # silence: is the server still there?

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """`SELECT 1`, answered within ANSWER_WITHIN seconds or psycopg.OperationalError:
        a blocking `execute` would wait for ever on a connection whose other end went
        quiet without closing it. (libpq's own calls, without a wait: notices that come
        with the answer stay queued for `notifies`.)"""
        pg = conn.pgconn
        pg.send_query(b"SELECT 1")
        until = time.monotonic() + ANSWER_WITHIN
        while True:
            flushed = pg.flush() == 0
            pg.consume_input()
            if flushed and not pg.is_busy():
                break
            left = until - time.monotonic()
            if left <= 0:
                raise psycopg.OperationalError(
                    f"the listening session did not answer within {ANSWER_WITHIN:g}s")
            select.select([conn.fileno()], [] if flushed else [conn.fileno()], [], left)
        while (result := pg.get_result()) is not None:
            if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                raise psycopg.OperationalError("the listening session's check failed: "
                                               f"{result.error_message.decode(errors='replace')}")

    def _pass_on(self, payload: str) -> None:
        sender, _, rest = payload.partition(" ")
        kind, _, value = rest.partition(" ")
        if sender == self.sender:
            return
        if kind == "deadline":
            self.deadline(float(value))
        elif kind == "outbox":
            self.outbox(value)
        elif kind == "settings":
            self.settings()

    def _pause(self, seconds: float) -> bool:
        """Sleep, unless stopped first (True then)."""
        return self._stopping.wait(seconds)

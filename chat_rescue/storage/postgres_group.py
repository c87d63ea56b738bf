"""A group commit's batch on PostgreSQL: its events' round trips paid once for all.

Handled one by one, an event costs five round trips (its conversation's read, a savepoint,
its inbound id, the write, the release); a group of them, told what its events are about
(`batch(intents)`), costs about three for all of them:

- at the start, the events' inbound ids are recorded (`ON CONFLICT DO NOTHING`: those
  already there are duplicates) and their conversations read and locked `FOR UPDATE`,
  both in key order (so two groups never wait on each other in a circle);
- each conversation's first load is served from that read; a commit of a conversation so
  read, at the version read, and of an inbound id so recorded, is taken into memory;
- what was taken is written in one statement, before anything else uses the connection
  (so every other read, write, and the outbox's order, see it as if written at once) and
  at the end, with the inbound ids whose events never committed forgotten again.

What a caller sees is what one by one gives: an id recorded before, or used by an earlier
event of the group, is a DUPLICATE; nobody else can change a locked conversation, and a
commit expecting another version than the one read (or of a conversation not read) goes
the ordinary way. The write stays conditional on the versions read; if one had moved all
the same, the batch fails as a whole (nothing of it is kept) rather than keep a decision
made on a stale read; so does one whose write the client or the server refuses (the
store worker then runs the group's events again one by one, so only the bad one fails).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from chat_rescue.bot.model import Conversation
from chat_rescue.bot.ports import Change, Intent, Outcome
from chat_rescue.storage import postgres_writes as writes
from chat_rescue.storage.postgres_pool import Connection
from chat_rescue.storage.rows import conversation_of, row_of

Rows = tuple[list[Any], list[Any], list[Any]]  # history, outbox and input rows of a change


class Unwritten(RuntimeError):
    """What a group took could not be written: nothing of the group is kept."""


class Changed(Unwritten):
    """A conversation a group had read and locked changed underneath it."""


# SQLSTATEs of a failure that one event of a group may cause: a value the server refuses
# (data exception, integrity constraint), a deadlock or serialization failure with another
# replica's transaction, or a transaction an event's failed statement aborted (all the
# group sees at its end is 25P02, whichever event it was).
_ONE_EVENTS = ("22", "23", "40P01", "40001", "25P02")


def for_one_event(failed: BaseException) -> bool:
    """Whether a group's batch may have failed for one of its events (each run alone then
    fails only that one): what the client or the server refuses of a value, a deadlock;
    not the server out of reach, a lost connection, a pool with no connection to give."""
    if isinstance(failed, Unwritten):
        if isinstance(failed, Changed) or failed.__cause__ is None:
            return True
        failed = failed.__cause__
    if isinstance(failed, psycopg.Error):
        state = failed.sqlstate
        if state is not None:
            return state.startswith(_ONE_EVENTS)
        # Without a state: the client's (a value it cannot send), or the connection's.
        return not isinstance(failed, psycopg.OperationalError | psycopg.InterfaceError)
    return not isinstance(failed, OSError | TimeoutError)


class Group:
    """What a group's batch read at its start, and has taken but not written yet."""

    def __init__(self, conn: Connection, intents: Sequence[Intent], select: str) -> None:
        # In id order, as the conversations in key order: two replicas' groups holding the
        # same redelivered ids never wait on each other in a circle.
        ids = dict(sorted({i.inbound_id: float(i.at) for i in intents
                           if i.inbound_id is not None}.items()))
        self.recorded = frozenset(ids)
        self.fresh: set[str] = set()  # recorded by this group, not used by a commit yet
        if ids:
            self.fresh = {str(row[0]) for row in conn.execute(
                "INSERT INTO inbound (id, seen_at) SELECT * FROM unnest(%b::text[], "
                "%b::float8[]) ON CONFLICT (id) DO NOTHING RETURNING id",
                (list(ids), list(ids.values()))).fetchall()}
        keys = sorted({i.key for i in intents})
        rows = conn.execute(f"{select} WHERE key = ANY(%b::text[]) ORDER BY key FOR UPDATE",
                            (keys,)).fetchall() if keys else []
        self._read: dict[str, Conversation | None] = dict.fromkeys(keys)
        self._read.update((conv.ref.key, conv) for conv in map(conversation_of, rows))
        self._loaded: dict[str, int] = {}  # read by a load, not changed since: its version
        self._updated: list[tuple[Any, ...]] = []
        self._history: list[Any] = []
        self._actions: list[Any] = []
        self._inputs: list[Any] = []
        self._aliases: list[tuple[str, str]] = []
        self._failed: Unwritten | None = None

    def earliest_deadline(self) -> float | None:
        """The earliest deadline of the conversations read and locked at the start."""
        return min((conv.deadline for conv in self._read.values()
                    if conv is not None and conv.deadline is not None), default=None)

    def load(self, key: str) -> tuple[bool, Conversation | None]:
        """(True, the conversation as read at the start) on its first load; (False, None)
        when the store must read it."""
        if key not in self._read:
            return False, None
        conv = self._read.pop(key)
        if conv is not None:
            self._loaded[key] = conv.version
        return True, conv

    def commit(self, change: Change, rows: Callable[[Change], Rows]) -> Outcome | None:
        """Take `change` (COMMITTED), or say it is a DUPLICATE; None: not the group's to
        take (the store commits it the ordinary way, with `use`)."""
        inbound = change.inbound_id
        if inbound is not None:
            if inbound not in self.recorded:
                return None
            if inbound not in self.fresh:
                return Outcome.DUPLICATE
        conv = change.conversation
        if conv is not None and (change.expected_version is None
                                 or self._loaded.get(conv.ref.key) != change.expected_version):
            return None
        history, actions, inputs = rows(change)  # may raise: then nothing is taken
        if conv is not None:
            del self._loaded[conv.ref.key]  # read again from now on, after a write
            self._updated.append((*row_of(conv)[:-1], conv.ref.key, change.expected_version))
        if inbound is not None:
            self.fresh.discard(inbound)
        self._history += history
        self._actions += actions
        self._inputs += inputs
        self._aliases += change.aliases
        return Outcome.COMMITTED

    def use(self, inbound_id: str | None) -> bool:
        """Before an ordinary commit: True when the group recorded `inbound_id` (so the
        commit must not record it again), and it counts as used unless `unuse`d."""
        if inbound_id is None or inbound_id not in self.fresh:
            return False
        self.fresh.discard(inbound_id)
        return True

    def unuse(self, inbound_id: str) -> None:
        """An ordinary commit that used a recorded id did not go through."""
        self.fresh.add(inbound_id)

    def flush(self, conn: Connection, *, ending: bool = False) -> None:
        """Write what was taken (at the end: and forget the ids no commit used)."""
        if self._failed is not None:
            if ending:
                raise self._failed
            return  # the batch fails at its end; nothing more is written
        forgotten = sorted(self.fresh) if ending else []
        if not (self._updated or self._history or self._actions or self._inputs
                or self._aliases or forgotten):
            return
        updated = self._updated
        try:
            params = writes.changes(updated, self._history, self._actions, self._inputs,
                                    self._aliases, forgotten)
            row = conn.execute(writes.UPDATE_SQL, params).fetchone()
        except BaseException as failed:
            # Refused by the client (a value it cannot send) or by the server: either way
            # the batch must not commit what it holds without these.
            self._failed = Unwritten(f"writing what this group took failed ({failed!r}): "
                                     "nothing of the group is kept")
            self._failed.__cause__ = failed
            raise
        finally:
            self._updated, self._history, self._actions, self._inputs = [], [], [], []
            self._aliases = []
        if row is None or int(row[0]) != len(updated):
            self._failed = Changed("a conversation this group read and locked changed "
                                   "underneath it: nothing of the group is kept")
            raise self._failed

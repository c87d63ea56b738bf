"""The outbox half of SQLiteStore: lane heads, leases, settling, superseding.

A lane is one conversation's actions for one audience (`<key>>team`, `<key>>customer`).
Its head is its item of lowest (priority, id). A worker leases the heads it is about to
send (`locked_by`, `locked_until`, wall-clock epoch seconds, because another process reads
them); a lane with an unexpired lease on any item offers no head, so a lane's order holds
across processes, and a crashed sender's item is taken over once its lease has run out.
Ids are never used again (AUTOINCREMENT, migration 6): an id a worker read a moment ago
names that item or nothing, whatever another process settled and queued since.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from chat_rescue.bot.model import HistoryEvent
from chat_rescue.bot.ports import OutboxItem
from chat_rescue.storage.decoded import Decoded

_RANK = 1 << 40  # rank = priority * _RANK + id: lowest rank first, one integer to compare


class OutboxTables:
    """The outbox ports (`OutboxClaims`, `OutboxSettling`) over `self.conn` (mixed into
    SQLiteStore)."""

    conn: sqlite3.Connection
    _decoded: Decoded

    def pending(self, limit: int) -> list[OutboxItem]:
        """Up to `limit` outbox items in the order they were queued. Not a port: the running
        bot never lists the outbox; tests, the demo and the benchmarks do."""
        rows = self.conn.execute(
            "SELECT id, lane, kind, payload, not_before, attempts, locked_by IS NOT NULL "
            "FROM outbox ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return self._decoded.items(rows)

    def heads(self, prefix: str, limit: int, now: float) -> list[OutboxItem]:
        # A busy lane (one chatty conversation) must not hide the heads of the others.
        rows = self.conn.execute(
            "SELECT o.id, o.lane, o.kind, o.payload, o.not_before, o.attempts, "
            "o.locked_by IS NOT NULL FROM outbox o "
            f"JOIN (SELECT min(priority * {_RANK} + id) AS rank FROM outbox "
            "      WHERE lane >= ? AND lane < ? GROUP BY lane "
            "      HAVING coalesce(max(locked_until), 0) <= ?) h "
            f"ON o.id = h.rank % {_RANK} ORDER BY h.rank LIMIT ?",
            (prefix, _after(prefix), now, limit),
        ).fetchall()
        items = self._decoded.items(rows)
        self._decoded.keep_queued(
            lambda: (i for (i,) in self.conn.execute("SELECT id FROM outbox")))
        return items

    def next_lease_end(self, prefix: str, now: float) -> float | None:
        """When the first unexpired lease on lanes starting with `prefix` runs out."""
        row = self.conn.execute(
            "SELECT min(locked_until) FROM outbox WHERE lane >= ? AND lane < ? "
            "AND locked_until > ?", (prefix, _after(prefix), now)).fetchone()
        return None if row[0] is None else float(row[0])

    def lease(self, item_ids: Sequence[int], owner: str, until: float,
              now: float) -> list[int]:
        """Take the items for `owner` until `until`; returns those taken. An item is not
        taken while any item of its lane is leased by someone (its order would break)."""
        taken = []
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            for item_id in item_ids:
                cursor = self.conn.execute(
                    "UPDATE outbox SET locked_by = ?, locked_until = ? WHERE id = ? AND NOT "
                    "EXISTS (SELECT 1 FROM outbox busy WHERE busy.lane = outbox.lane "
                    "AND busy.locked_until > ?)",
                    (owner, until, item_id, now),
                )
                if cursor.rowcount:
                    taken.append(item_id)
        return taken

    def lease_holders(self, now: float) -> list[str]:
        """Who holds unexpired leases."""
        rows = self.conn.execute(
            "SELECT DISTINCT locked_by FROM outbox WHERE locked_until > ?", (now,)).fetchall()
        return [str(owner) for (owner,) in rows]

    def end_leases(self, owner: str) -> list[int]:
        """End every lease of `owner` (a worker known to be dead); returns the items. The
        holder's name stays, as a mark that the item was in flight (it may have gone)."""
        rows = self.conn.execute(
            "UPDATE outbox SET locked_until = 0 WHERE locked_by = ? AND locked_until > 0 "
            "RETURNING id", (owner,)).fetchall()
        return [int(item_id) for (item_id,) in rows]

    def settle(self, item_id: int, *, retry_at: float | None = None, error: str = "",
               dead: bool = False, failed: bool = True,
               record: HistoryEvent | None = None) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            if dead:
                self.conn.execute(
                    "INSERT INTO dead_letters (outbox_id, lane, kind, payload, attempts, "
                    "last_error, failed_at) SELECT id, lane, kind, payload, attempts + 1, ?, "
                    "max(not_before, created_at) FROM outbox WHERE id = ?",
                    (error, item_id),
                )
            if retry_at is None or dead:
                self.conn.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
                self._decoded.forget(item_id)  # the id may be used again
            else:
                self.conn.execute(
                    "UPDATE outbox SET not_before = ?, attempts = attempts + ?, last_error = ?, "
                    "locked_by = NULL, locked_until = NULL WHERE id = ?",
                    (retry_at, int(failed), error, item_id),
                )
            if record is not None:
                self.conn.execute(
                    "INSERT INTO history (conversation, team, kind, at, actor, value) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (record.ref.key, record.team, record.kind, record.at, record.actor,
                     record.value),
                )

    def hurry(self, prefix: str) -> int:
        """Items of lanes starting with `prefix` that wait for a retry may go now."""
        return self.conn.execute(
            "UPDATE outbox SET not_before = 0 WHERE lane >= ? AND lane < ? AND not_before > 0",
            (prefix, _after(prefix))).rowcount

    def outbox_mark(self) -> int:
        """The newest outbox id so far (0 when empty): what `supersede` may cover."""
        row = self.conn.execute("SELECT max(id) FROM outbox").fetchone()
        return int(row[0] or 0)

    def supersede(self, lane: str, through: int, keep: int) -> int:
        """Forget the lane's card updates up to id `through` but `keep` (the one sent): a
        card is drawn from the conversation as it is at delivery, so the one update sent
        showed what they would have. Returns how many were forgotten."""
        gone = self.conn.execute(
            "DELETE FROM outbox WHERE lane = ? AND kind = 'UpdateCard' AND id <= ? "
            "AND id != ? AND coalesce(locked_until, 0) = 0 RETURNING id",
            (lane, through, keep),
        ).fetchall()
        for (item_id,) in gone:
            self._decoded.forget(item_id)
        return len(gone)

    def outbox_size(self) -> int:
        """How many actions wait to be delivered."""
        return int(self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def oldest_pending(self) -> float | None:
        """When the oldest action still waiting was queued (epoch seconds)."""
        row = self.conn.execute("SELECT min(created_at) FROM outbox").fetchone()
        return None if row[0] is None else float(row[0])

    def outbox_counts(self) -> dict[str, tuple[int, float]]:
        rows = self.conn.execute(
            "SELECT substr(lane, 1, instr(lane, ':') - 1), count(*), min(created_at) "
            "FROM outbox GROUP BY 1").fetchall()
        return {str(platform): (int(n), float(oldest)) for platform, n, oldest in rows}


def _after(prefix: str) -> str:
    """The smallest string above every string that starts with `prefix` (for range scans)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"

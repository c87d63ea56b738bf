"""The outbox half of PostgresStore: lane heads, leases, settling, superseding.

The same lanes, heads and leases as SQLite's (`sqlite_outbox.py`): a lane's head is its
item of lowest (priority, id); a lane with an unexpired lease on any item offers no head
and leases no other item, so its order holds across replicas; a dead replica's items are
taken over as soon as its presence lock is seen free (`PostgresStore.gone`), or when their
leases run out. Where SQLite takes its one write lock, a lease here
claims in two statements of one transaction: first a try-lock on each wanted item's lane
(`pg_try_advisory_xact_lock`: a lane another replica is leasing right now is skipped,
not waited for), then `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`,
whose fresh snapshot sees every lease committed before the lane locks were taken. A
card update is superseded by commit order, not by id (`outbox_mark`).
"""

from __future__ import annotations

from collections.abc import Sequence

from chat_rescue.bot.model import HistoryEvent
from chat_rescue.bot.ports import OutboxItem
from chat_rescue.storage.decoded import Decoded
from chat_rescue.storage.postgres_pool import PooledConnections

_RANK = 1 << 40  # rank = priority * _RANK + id: lowest rank first, one integer to compare
# pg_try_advisory_xact_lock(int, int): this class, then the lane's hash.
LANE_LOCKS = int.from_bytes(b"chrl", "big") & 0x7FFF_FFFF

_COLUMNS = "id, lane, kind, payload, not_before, attempts, locked_by IS NOT NULL"


class OutboxTables(PooledConnections):
    """Outbox methods of the Store protocol (a base of PostgresStore)."""

    _decoded: Decoded

    def pending(self, limit: int) -> list[OutboxItem]:
        rows = self._rows(f"SELECT {_COLUMNS} FROM outbox ORDER BY id LIMIT %s", (limit,))
        return self._decoded.items(rows)

    def heads(self, prefix: str, limit: int, now: float) -> list[OutboxItem]:
        # A busy lane (one chatty conversation) must not hide the heads of the others.
        rows = self._rows(
            "SELECT o.id, o.lane, o.kind, o.payload, o.not_before, o.attempts, "
            "o.locked_by IS NOT NULL FROM outbox o "
            f"JOIN (SELECT min(priority * {_RANK} + id) AS rank FROM outbox "
            "      WHERE lane >= %s AND lane < %s GROUP BY lane "
            "      HAVING coalesce(max(locked_until), 0) <= %s) h "
            f"ON o.id = h.rank %% {_RANK} ORDER BY h.rank LIMIT %s",
            (prefix, _after(prefix), now, limit))
        items = self._decoded.items(rows)
        self._decoded.keep_queued(lambda: (int(i) for (i,) in self._rows("SELECT id FROM outbox")))
        return items

    def next_lease_end(self, prefix: str, now: float) -> float | None:
        row = self._row("SELECT min(locked_until) FROM outbox WHERE lane >= %s AND lane < %s "
                        "AND locked_until > %s", (prefix, _after(prefix), now))
        return None if row is None or row[0] is None else float(row[0])

    def lease(self, item_ids: Sequence[int], owner: str, until: float,
              now: float) -> list[int]:
        """Take the items for `owner` until `until`; returns those taken. An item is not
        taken while any item of its lane is leased by someone (its order would break)."""
        if not item_ids:
            return []
        with self._transaction() as conn:
            # Materialized: the lane locks are tried on the wanted items only.
            lanes_locked = conn.execute(
                "WITH wanted AS MATERIALIZED ("
                "  SELECT id, lane FROM outbox WHERE id = ANY(%s::bigint[])) "
                "SELECT id FROM wanted "
                "WHERE pg_try_advisory_xact_lock(%s::integer, hashtext(lane))",
                (list(item_ids), LANE_LOCKS)).fetchall()
            if not lanes_locked:
                return []
            rows = conn.execute(
                "UPDATE outbox SET locked_by = %s, locked_until = %s WHERE id IN ("
                "  SELECT o.id FROM outbox o WHERE o.id = ANY(%s::bigint[]) AND NOT EXISTS ("
                "    SELECT 1 FROM outbox busy WHERE busy.lane = o.lane "
                "    AND busy.locked_until > %s) "
                "  FOR UPDATE SKIP LOCKED) RETURNING id",
                (owner, until, [row[0] for row in lanes_locked], now)).fetchall()
        taken = {int(row[0]) for row in rows}
        return [item_id for item_id in item_ids if item_id in taken]

    def lease_holders(self, now: float) -> list[str]:
        rows = self._rows("SELECT DISTINCT locked_by FROM outbox WHERE locked_until > %s",
                          (now,))
        return [str(owner) for (owner,) in rows]

    def end_leases(self, owner: str) -> list[int]:
        """End every lease of `owner` (a worker known to be dead); returns the items. The
        holder's name stays, as a mark that the item was in flight (it may have gone)."""
        rows = self._rows("UPDATE outbox SET locked_until = 0 WHERE locked_by = %s "
                          "AND locked_until > 0 RETURNING id", (owner,))
        return [int(item_id) for (item_id,) in rows]

    def settle(self, item_id: int, *, retry_at: float | None = None, error: str = "",
               dead: bool = False, failed: bool = True,
               record: HistoryEvent | None = None) -> None:
        with self._transaction() as conn:
            if dead:
                conn.execute(
                    "INSERT INTO dead_letters (outbox_id, lane, kind, payload, attempts, "
                    "last_error, failed_at) SELECT id, lane, kind, payload, attempts + 1, %s, "
                    "greatest(not_before, created_at) FROM outbox WHERE id = %s",
                    (error, item_id))
            if retry_at is None or dead:
                conn.execute("DELETE FROM outbox WHERE id = %s", (item_id,))
                self._decoded.forget(item_id)
            else:
                conn.execute(
                    "UPDATE outbox SET not_before = %s, attempts = attempts + %s, "
                    "last_error = %s, locked_by = NULL, locked_until = NULL WHERE id = %s",
                    (retry_at, int(failed), error, item_id))
            if record is not None:
                conn.execute(
                    "INSERT INTO history (conversation, team, kind, at, actor, value, detail) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (record.ref.key, record.team, record.kind, record.at, record.actor,
                     record.value, record.detail))

    def hurry(self, prefix: str) -> int:
        return self._run("UPDATE outbox SET not_before = 0 WHERE lane >= %s AND lane < %s "
                         "AND not_before > 0", (prefix, _after(prefix)))

    def outbox_mark(self) -> int:
        """The oldest transaction still writing now (its id): every item queued by an
        older one was committed (or rolled back) before, so a card drawn after this sees
        the change it was queued with. Not the highest id: with several writers, a lower
        id may commit after it was read. (Items of younger transactions committed already
        wait for the next card's mark: one update too many, never one too few.)"""
        row = self._row("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return int(row[0]) if row and row[0] is not None else 0

    def supersede(self, lane: str, through: int, keep: int) -> int:
        """Forget the lane's card updates queued by transactions older than `through` (an
        `outbox_mark`) but `keep` (the one sent)."""
        gone = self._rows(
            "DELETE FROM outbox WHERE lane = %s AND kind = 'UpdateCard' AND queued_by < %s "
            "AND id <> %s AND coalesce(locked_until, 0) = 0 RETURNING id",
            (lane, through, keep))
        for (item_id,) in gone:
            self._decoded.forget(int(item_id))
        return len(gone)

    def outbox_size(self) -> int:
        """How many actions wait to be delivered."""
        row = self._row("SELECT count(*) FROM outbox")
        return int(row[0]) if row else 0

    def oldest_pending(self) -> float | None:
        row = self._row("SELECT min(created_at) FROM outbox")
        return None if row is None or row[0] is None else float(row[0])

    def outbox_counts(self) -> dict[str, tuple[int, float]]:
        rows = self._rows("SELECT split_part(lane, ':', 1), count(*), min(created_at) "
                          "FROM outbox GROUP BY 1")
        return {str(platform): (int(n), float(oldest)) for platform, n, oldest in rows}


def _after(prefix: str) -> str:
    """The smallest string above every string that starts with `prefix` (for range scans
    in byte order: the lane column is COLLATE "C")."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"

"""What-if: the suggested core fixes as in-process prototypes, to measure what they would buy.

Nothing here changes the package on disk. With `BENCH_WHATIF=codec,row,noload,group` in
the environment, benchmarks/ingest.py and benchmarks/ticker.py (and the subprocesses the
ticker benchmark starts) monkeypatch these prototypes in before measuring:

* codec  — encode_action without `dataclasses.asdict` (which deep-copies every field, and
           PostCard/UpdateCard carry a whole Conversation); the JSON is byte-identical.
* row    — SQLiteStore's `_row` with one attrgetter instead of a genexpr of getattr +
           isinstance per column; the tuple is identical.
* noload — Ticker.fire_due without the extra `store.load(key)` per due conversation
           (the due query returns the deadline; Service.handle loads the conversation anyway).
* group  — Ticker.fire_due commits one slice of due deadlines (at most 64) in ONE
           transaction (a sketch of a `Store.commit_many`), then yields to the event loop;
           implies noload.
* slice  — only the fairness part of `group`: the ticker's batch is 64 instead of 500, so
           inbound events wait behind at most 64 fires (one transaction per fire, as now).
* ckpt   — SQLiteStore with `wal_autocheckpoint=0` and a background thread (own connection)
           running `PRAGMA wal_checkpoint(PASSIVE)` every 50 ms, so the checkpoint's page
           copying and fsyncs no longer block the event loop inside a COMMIT.
* cache  — SQLiteStore with `PRAGMA cache_size=-32768` (32 MiB page cache instead of the
           2 MiB default), so loads and index updates on a large store hit memory rather than
           pread() into the OS page cache; bounded well inside the 50 MB RSS budget.

    BENCH_WHATIF=codec,row .venv/bin/python benchmarks/ingest.py
    BENCH_WHATIF=codec,row,group .venv/bin/python benchmarks/ticker.py --only load
"""

from __future__ import annotations

import dataclasses
import json
import logging
import operator
import os
import sqlite3
import threading
from typing import Any

PATCHES = ("codec", "row", "noload", "group", "slice", "ckpt", "cache", "switch")
SLICE = 64
log = logging.getLogger("whatif")


def requested() -> list[str]:
    names = [n for n in os.environ.get("BENCH_WHATIF", "").split(",") if n]
    unknown = set(names) - set(PATCHES)
    if unknown:
        raise SystemExit(f"unknown BENCH_WHATIF patches: {sorted(unknown)} (know {PATCHES})")
    return names


def apply() -> list[str]:
    """Apply the patches named in BENCH_WHATIF; returns their names."""
    names = requested()
    for name in names:
        globals()[f"_patch_{name}"]()
    return names


def _patch_codec() -> None:
    import chat_rescue.bot.codec as codec
    import chat_rescue.storage.sqlite as sqlite
    from chat_rescue.bot.model import Conversation, ConversationRef

    conv_fields = tuple(f.name for f in dataclasses.fields(Conversation))
    fields = {cls: tuple(f.name for f in dataclasses.fields(cls))
              for cls in codec._KINDS.values()}
    dumps = json.JSONEncoder(separators=(",", ":")).encode

    def ref_dict(ref: ConversationRef) -> dict[str, str]:
        return {"platform": ref.platform, "channel": ref.channel, "thread": ref.thread}

    def encode_action(action: Any) -> tuple[str, str]:
        cls = type(action)
        names = fields.get(cls)
        if names is None:
            raise TypeError(f"cannot store action {cls.__name__}")
        out = {}
        for name in names:
            value = getattr(action, name)
            kind = type(value)
            if kind is ConversationRef:
                value = ref_dict(value)
            elif kind is Conversation:
                conv = {n: getattr(value, n) for n in conv_fields}
                conv["ref"] = ref_dict(value.ref)
                value = conv
            out[name] = value
        return cls.__name__, dumps(out)

    sqlite.encode_action = encode_action  # type: ignore[assignment]
    codec.encode_action = encode_action  # type: ignore[assignment]


def _patch_row() -> None:
    import chat_rescue.storage.sqlite as sqlite

    columns = list(sqlite._COLUMNS)
    bools = [i for i, c in enumerate(columns) if c in sqlite._BOOLS]
    state, timer = columns.index("state"), columns.index("deadline_timer")
    get = operator.attrgetter(*columns)

    def row(conv: Any) -> tuple[object, ...]:
        values = list(get(conv))
        for i in bools:
            values[i] = int(values[i])
        values[state] = values[state].value
        if values[timer] is not None:
            values[timer] = values[timer].value
        return tuple(values)

    sqlite._row = row


def _due_with_deadlines(store: Any, now: float, limit: int) -> list[tuple[str, float]]:
    return store.conn.execute(
        "SELECT key, deadline FROM conversations WHERE deadline IS NOT NULL AND deadline <= ? "
        "ORDER BY deadline LIMIT ?", (now, limit)).fetchall()


def _patch_noload() -> None:
    from chat_rescue.bot.model import ConversationRef, DeadlineDue
    from chat_rescue.bot.ticker import Ticker

    def fire_due(self: Ticker, now: float) -> int:
        due = _due_with_deadlines(self.store, now, self.batch)
        for key, deadline in due:
            if self._failing.get(key, 0.0) > now:
                continue
            try:
                self.service.handle(DeadlineDue(ConversationRef.parse(key), now))
            except Exception:
                self._failing[key] = now + 30.0
                continue
            self._failing.pop(key, None)
            self.fired += 1
            if self.on_fire is not None:
                self.on_fire(deadline, self.clock.now())
        return len(due)

    Ticker.fire_due = fire_due  # type: ignore[method-assign]


def _patch_slice() -> None:
    from chat_rescue.bot.ticker import Ticker

    init = Ticker.__init__

    def __init__(self: Ticker, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        init(self, *args, **kwargs)
        self.batch = min(self.batch, SLICE)

    Ticker.__init__ = __init__  # type: ignore[method-assign]


def _patch_group() -> None:
    from chat_rescue.bot import engine
    from chat_rescue.bot.model import DeadlineDue
    from chat_rescue.bot.ports import Change, Outcome
    from chat_rescue.bot.ticker import Ticker

    _patch_slice()

    def fire_due(self: Ticker, now: float) -> int:
        store, service = self.store, self.service
        due = _due_with_deadlines(store, now, self.batch)
        if not due:
            return 0
        done = []
        conn = store.conn  # type: ignore[attr-defined]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for key, deadline in due:
                conv = store.load(key)
                if conv is None or conv.deadline is None:
                    continue
                decision = engine.decide(conv, DeadlineDue(conv.ref, now),
                                         service.policy(conv.team, conv.ref), now)
                change = Change(conversation=decision.conversation,
                                expected_version=conv.version, history=decision.history,
                                actions=decision.actions)
                if change.conversation is None and not change.actions:
                    continue
                if store._write(change, now) is Outcome.COMMITTED:  # type: ignore[attr-defined]
                    done.append((decision, bool(change.actions), deadline))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        fired_at = self.clock.now()
        for decision, queued, deadline in done:
            service._notify(decision, queued)
            self.fired += 1
            if self.on_fire is not None:
                self.on_fire(deadline, fired_at)
        return len(due)

    Ticker.fire_due = fire_due  # type: ignore[method-assign]


def _patch_ckpt() -> None:
    from chat_rescue.storage.sqlite import SQLiteStore

    init, close = SQLiteStore.__init__, SQLiteStore.close

    def __init__(self: SQLiteStore, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        init(self, *args, **kwargs)
        path = self.conn.execute("PRAGMA database_list").fetchone()[2]
        self._whatif_stop = threading.Event()  # type: ignore[attr-defined]
        if not path:
            return  # in memory: no WAL
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        stop = self._whatif_stop  # type: ignore[attr-defined]

        def checkpointer() -> None:
            conn = sqlite3.connect(path, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            while not stop.wait(0.05):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            conn.close()

        threading.Thread(target=checkpointer, name="checkpointer", daemon=True).start()

    def close_(self: SQLiteStore) -> None:
        self._whatif_stop.set()  # type: ignore[attr-defined]
        close(self)

    SQLiteStore.__init__ = __init__  # type: ignore[method-assign]
    SQLiteStore.close = close_  # type: ignore[method-assign]


def _patch_cache() -> None:
    from chat_rescue.storage.sqlite import SQLiteStore

    init = SQLiteStore.__init__

    def __init__(self: SQLiteStore, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        init(self, *args, **kwargs)
        self.conn.execute("PRAGMA cache_size=-32768")

    SQLiteStore.__init__ = __init__  # type: ignore[method-assign]


def _patch_switch() -> None:
    """The interpreter hands the GIL over every 1 ms instead of 5 ms: the event loop waits
    less for the store thread's Python work."""
    import sys

    sys.setswitchinterval(0.001)

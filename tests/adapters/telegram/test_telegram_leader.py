"""Several replicas on one store: exactly one long-polls getUpdates (the one holding the
store's lock), and another takes over within about a second when it stops."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from chat_rescue.adapters.telegram.memory import NAMES_SCOPE
from chat_rescue.bot import leader
from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    ANA,
    BEN,
    BRUNO,
    GROUP,
    SupportGroup,
    eventually,
    furnish,
    sandbox_settings,
)
from chat_rescue.server import health
from chat_rescue.storage.sqlite import SQLiteStore

SLOW = {timer: "10m" for timer in ("rescue_accept", "rescue_first_response", "rescue_idle",
                                    "rescue_escalate", "rescue_close_reminder")}


async def test_one_replica_polls_and_another_takes_over_when_it_stops(tmp_path: Path) -> None:
    async with TelegramSandbox() as sandbox:
        furnish(sandbox)
        database = f"sqlite:///{tmp_path}/shared.db"
        replicas = [SupportGroup(sandbox, sandbox_settings(sandbox, database, **SLOW))
                    for _ in range(2)]
        for replica in replicas:
            await replica.start()
        try:
            await eventually(lambda: sum(r.adapter.leader.leading for r in replicas) == 1)
            first = next(r for r in replicas if r.adapter.leader.leading)
            other = next(r for r in replicas if r is not first)
            assert other.adapter.loop_states() == {"telegram:updates": "standby"}
            sandbox.private_message(ALICE, "Hello")
            await first.topic()
            report = await health(other.bot)
            assert report["status"] == "ok"
            assert report["leads"] == {"telegram": {"mode": "polling",
                                                    "this_replica_leads": False,
                                                    "leader": leader.replica_name()}}
            await asyncio.sleep(2 * leader.CHECK)
            assert sandbox.poll_conflicts == 0  # nobody cut the leader's long poll off

            stopped = time.monotonic()
            await first.stop()
            await eventually(lambda: other.adapter.leader.leading, timeout=5.0)
            takeover = time.monotonic() - stopped
            assert takeover < 2 * leader.TRY + 1.0, f"took {takeover:.2f} s"
            sandbox.private_message(BRUNO, "Anyone there?")
            await other.topic(1)  # the new leader takes the updates
            # at most the stopped replica's abandoned long poll, which the server still held
            assert sandbox.poll_conflicts <= 1
        finally:
            for replica in replicas:
                await replica.stop()


async def test_a_standby_replica_names_the_operators_the_leader_met(tmp_path: Path) -> None:
    # Only the leader sees updates, and so names; any replica may deliver what mentions an
    # operator (a nudge, a card "with Ana"), and must not show "7" for Ana.
    async with TelegramSandbox() as sandbox:
        furnish(sandbox)
        database = f"sqlite:///{tmp_path}/shared.db"
        replicas = [SupportGroup(sandbox, sandbox_settings(sandbox, database, **SLOW))
                    for _ in range(2)]
        for replica in replicas:
            await replica.start()
        looking = SQLiteStore(database)  # what the replicas' store holds

        def stored(user: str) -> str | None:
            # the leader remembers a name before it stores it, and another replica can
            # only read what was stored
            return looking.settings(NAMES_SCOPE).get(user)

        try:
            await eventually(lambda: sum(r.adapter.leader.leading for r in replicas) == 1)
            first = next(r for r in replicas if r.adapter.leader.leading)
            other = next(r for r in replicas if r is not first)
            sandbox.private_message(ALICE, "Hello")
            topic = await first.topic()
            sandbox.group_message(GROUP, ANA, "on it", thread_id=topic)
            await eventually(lambda: stored(str(ANA)) == "Ana")  # the leader's memory
            await other.adapter.deliverer.learn_names()  # as before each of its deliveries
            assert other.adapter.memory.name(str(ANA)) == "Ana"
            assert other.adapter.memory.name("424242") == "424242"  # nobody seen: the id
            # A name stored a moment after the standby last looked (Ben's first word, then
            # the card "with Ben" at once): it looks again before it delivers, not skips.
            sandbox.group_message(GROUP, BEN, "me too", thread_id=topic)
            await eventually(lambda: stored(str(BEN)) == "Ben")
            deliverer = other.adapter.deliverer
            deliverer._names_at = deliverer.clock.monotonic()  # it looked just before that
            store = deliverer.service.store
            settings, looks = store.settings, []

            def counted(scope: str) -> dict[str, str]:
                looks.append(scope)
                return settings(scope)

            store.settings = counted  # type: ignore[method-assign]
            try:  # five deliveries naming Ben at once: one look for all
                await asyncio.gather(*(deliverer.learn_names(unknown=True) for _ in range(5)))
            finally:
                store.settings = settings  # type: ignore[method-assign]
            assert other.adapter.memory.name(str(BEN)) == "Ben"
            assert looks == [NAMES_SCOPE]
        finally:
            looking.close()
            for replica in replicas:
                await replica.stop()

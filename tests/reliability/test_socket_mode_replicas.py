"""Slack Socket Mode on several replicas: three `chat-rescue run` children on one
PostgreSQL database each hold a Socket Mode connection; Slack (the stand-in) hands each
envelope to one connection in turn, and sends one that a connection did not acknowledge
(its replica was SIGKILLed with it in flight) again to another.

Checked: the envelopes were spread over every connection; every envelope was
acknowledged in the end, each event is in the store (its inbound id) and was processed
once (one conversation per first message, no more replies than were sent), and the
envelopes cut off by the kill went again to another connection.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from chat_rescue.sandbox.bot_process import BotProcess
from chat_rescue.sandbox.postgres import Databases
from chat_rescue.sandbox.replay import logged_errors
from chat_rescue.sandbox.slack_client import SlackEventsClient
from chat_rescue.sandbox.slack_socket import DEFAULT_APP_TOKEN, Sent, SocketModeStandIn
from chat_rescue.sandbox.slack_world import ANNA, BOB, HELP, SECRET, TEAM
from chat_rescue.sandbox.slack_world import furnish as furnish_slack
from chat_rescue.sandbox.store_view import Event, StoreView
from chat_rescue.sandbox.telegram_support import free_port
from chat_rescue.sandbox.testbeds import SlackTestbed

SEED = int(os.environ.get("SOCKET_SEED", "20261204"))
REPLICAS = 3
CUSTOMERS = 40
SENDERS = 6  # envelopes in flight at once
SLOW = {f"RESCUE_{timer}": "10m" for timer in ("ACCEPT", "FIRST_RESPONSE", "IDLE", "ESCALATE",
                                               "CLOSE_REMINDER")}


@dataclass
class Envelope:
    key: str
    event: dict[str, Any]
    event_id: str
    reply: bool
    acked: bool = False


@dataclass
class SocketRun:
    envelopes: list[Envelope]
    sent: list[Sent]
    connections_of: dict[str, list[int]]  # replica -> its connections (stand-in indexes)
    victim: str
    cut_off: int  # envelopes unacknowledged on the victim's connection when it was killed
    rows: dict[str, dict[str, Any]]
    history: dict[str, list[Event]]
    inbound: set[str]
    exit_codes: list[int]
    errors: list[str]


async def socket_run(databases: Databases, workdir: Path, seed: int) -> SocketRun:
    rng = random.Random(seed)
    url = databases.fresh()
    async with SlackTestbed() as sandbox:
        furnish_slack(sandbox)
        slack = SocketModeStandIn(sandbox)
        await slack.start()
        maker = SlackEventsClient("http://127.0.0.1:9/unused", SECRET, sandbox=sandbox)
        env = {"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "SANDBOX_PACING": "0.01",
               "SLACK_BOT_TOKEN": sandbox.bot_token, "SLACK_APP_TOKEN": DEFAULT_APP_TOKEN,
               "SLACK_API_URL": slack.api_url, "SLACK_TEAM_CHANNEL": TEAM,
               "SLACK_INTAKE_CHANNELS": HELP, **SLOW}
        bots = {f"r{n}": BotProcess({**env, "RESCUE_REPLICA": f"r{n}"}, free_port(), workdir,
                                    workdir / f"bot-r{n}.log")
                for n in range(1, REPLICAS + 1)}
        connections_of: dict[str, list[int]] = {name: [] for name in bots}

        async def start(name: str) -> None:
            before = len(slack.connections)
            await bots[name].start()
            await slack.joined(before + 1)  # Socket Mode connects after /healthz answers
            connections_of[name].append(before)

        for name in bots:  # one at a time: each connection is known to be whose
            await start(name)
        envelopes: list[Envelope] = []
        for number in range(1, CUSTOMERS + 1):
            event = maker.message_event(HELP, f"U0SOCK{number:03d}", f"Order {number} lost")
            key = f"slack:{HELP}:{event['ts']}"
            envelopes.append(Envelope(key, event, f"Ev{number:08d}SOCKET", False))
            for reply in range(2):
                answer = maker.message_event(HELP, rng.choice((ANNA, BOB)), "on it",
                                             thread_ts=str(event["ts"]))
                envelopes.append(Envelope(key, answer, f"Ev{number:08d}R{reply}SOCKET", True))
        # A conversation's envelopes in order (a reply must not overtake its question).
        queue = [envelopes[i:i + 3] for i in range(0, len(envelopes), 3)]

        async def sender() -> None:
            while queue:
                for envelope in queue.pop(0):
                    await slack.event(envelope.event, event_id=envelope.event_id)
                    envelope.acked = True

        victim = rng.choice(sorted(bots))
        cut_off = 0
        try:
            senders = [asyncio.create_task(sender()) for _ in range(SENDERS)]
            # Kill the victim while it holds an envelope it has not acknowledged.
            until = time.monotonic() + 20
            while len(queue) > CUSTOMERS // 2 or \
                    not slack.unacknowledged(connections_of[victim][-1]):
                if time.monotonic() > until:
                    break
                await asyncio.sleep(0)
            cut_off = slack.unacknowledged(connections_of[victim][-1])
            await bots[victim].kill()
            await asyncio.gather(*senders)
            await start(victim)  # back, and served too
            await asyncio.sleep(0.5)
        finally:
            exit_codes = [await bot.stop() for bot in bots.values()]
            await slack.stop()
            await maker.close()
        view = StoreView(url)
        rows, history, inbound = view.rows(), view.history(), view.inbound()
        view.close()
        errors = [f"{name}: {line}" for name, bot in bots.items()
                  for line in logged_errors(bot.log_path)]
        return SocketRun(envelopes, slack.sent, connections_of, victim, cut_off, rows, history,
                         inbound, exit_codes, errors)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(postgres_databases: Databases,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SocketRun]:
    result = await socket_run(postgres_databases, tmp_path_factory.mktemp("socket"), SEED)
    per_connection = Counter(s.connection for s in result.sent)
    outcomes = Counter(s.outcome for s in result.sent)
    print(f"socket mode: {REPLICAS} replicas, {len(result.envelopes)} envelopes, "
          f"{len(result.sent)} sends {dict(outcomes)}; per connection "
          f"{dict(sorted(per_connection.items()))} (replica -> connections "
          f"{result.connections_of}); {result.victim} SIGKILLed with {result.cut_off} "
          f"unacknowledged, sent again: {sum(s.attempt > 0 for s in result.sent)}")
    yield result


def test_socket_mode_envelopes_are_spread_over_every_replica(run: SocketRun) -> None:
    used = {s.connection for s in run.sent if s.outcome == "acked"}
    assert all(set(connections) & used for connections in run.connections_of.values())
    assert run.exit_codes == [0] * REPLICAS
    assert not run.errors, "\n".join(run.errors)


def test_socket_mode_nothing_is_lost_when_a_replica_dies(run: SocketRun) -> None:
    assert all(e.acked for e in run.envelopes)
    missing = [e.event_id for e in run.envelopes if f"slack:{e.event_id}" not in run.inbound]
    assert not missing, f"acknowledged but not in the store: {missing}"
    assert {e.key for e in run.envelopes} == set(run.rows)
    # What the killed connection held went again, to another connection, and was taken.
    assert run.cut_off > 0
    again = [s for s in run.sent if s.attempt > 0]
    assert len(again) >= run.cut_off
    killed = set(run.connections_of[run.victim][:-1])
    assert all(s.connection not in killed for s in again)


def test_socket_mode_each_envelope_is_processed_once(run: SocketRun) -> None:
    for key, events in run.history.items():
        kinds = Counter(kind for kind, _, _ in events)
        assert kinds["opened"] == 1, (key, events)
        assert kinds["first_reply"] + kinds["reply"] <= 2, (key, events)
        assert kinds["claimed"] == 1, (key, events)  # the first reply claims it

"""The peer of replicas.py: pgqueuer's own enqueue and dequeue + ack, on the same server.

Runs with the peer venv's Python (benchmarks/.peer-venv, made by replicas.py), never with
the project's: pgqueuer is not a dependency of chat-rescue. Its asyncpg driver, its
schema as `Queries.install()` makes it (durable: every table logged), its `QueueManager`
consuming with a no-op entrypoint. Each call prints one `RESULT {json}` line.

    install URL                  the schema
    enqueue URL JOBS BATCH       JOBS jobs, BATCH per `Queries.enqueue` call (one statement)
    consume URL BATCH            READY, then on a line `GO <epoch>` from stdin: a
                                 QueueManager in drain mode (dequeue BATCH at a time,
                                 acks buffered BATCH at a time) until the queue is empty
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import timedelta

import asyncpg
from pgqueuer import QueueManager
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

ENTRYPOINT = "fire"


async def install(url: str) -> dict[str, object]:
    conn = await asyncpg.connect(url)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()
    return {"installed": True}


async def enqueue(url: str, jobs: int, batch: int) -> dict[str, object]:
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        started = time.perf_counter()
        for lo in range(0, jobs, batch):
            n = min(batch, jobs - lo)
            await queries.enqueue([ENTRYPOINT] * n,
                                  [f"job {lo + i}".encode() for i in range(n)], [0] * n)
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"jobs": jobs, "seconds": seconds}


async def consume(url: str, batch: int) -> dict[str, object]:
    conn = await asyncpg.connect(url)
    manager = QueueManager(Queries(AsyncpgDriver(conn)))
    done: list[float] = []

    @manager.entrypoint(ENTRYPOINT)
    async def fire(job: Job) -> None:  # a no-op: what is measured is the queue
        done.append(time.time())

    print("READY", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start_at = float(line.split()[1])
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu0, started = time.process_time(), time.time()
    # The periodic folding of the log into statistics is off, so that the parent can count
    # each job's log row (it would start 30 s in at the default, if the run lasted that).
    await manager.run(batch_size=batch, mode=QueueExecutionMode.drain,
                      dequeue_timeout=timedelta(seconds=1),
                      log_aggregation_interval=timedelta(0))
    ended = time.time()
    cpu = time.process_time() - cpu0
    if not conn.is_closed():
        await conn.close()
    return {"jobs": len(done), "started": started, "ended": ended,
            "first": done[0] if done else None, "last": done[-1] if done else None,
            "cpu_s": cpu}


def main() -> None:
    kind, url, *rest = sys.argv[1:]
    if kind == "install":
        result = asyncio.run(install(url))
    elif kind == "enqueue":
        result = asyncio.run(enqueue(url, int(rest[0]), int(rest[1])))
    elif kind == "consume":
        result = asyncio.run(consume(url, int(rest[0])))
    else:
        raise SystemExit(f"unknown command {kind}")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

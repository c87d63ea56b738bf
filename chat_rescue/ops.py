"""`chat-rescue run`, `check`, `stats` and `whatif`: the operational commands."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from pydantic import ValidationError

from chat_rescue import logs
from chat_rescue.bot.bulk import no_collections
from chat_rescue.bot.clock import Clock, SystemClock
from chat_rescue.bot.model import Timer
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Store
from chat_rescue.bot.service import Service
from chat_rescue.bot.settings import Settings
from chat_rescue.bot.stats import render, summarize
from chat_rescue.bot.whatif import KINDS as WHATIF_KINDS
from chat_rescue.bot.whatif import (
    Comparison,
    Thresholds,
    can_fork,
    compare,
    forked,
    joined,
    named,
    share_of,
)
from chat_rescue.bot.whatif import render as render_whatif
from chat_rescue.storage.factory import database_file, describe, may_come, open_store, where_is
from chat_rescue.storage.sqlite import SQLiteStore
from chat_rescue.storage.versions import SchemaTooNew

log = logging.getLogger(__name__)

T = TypeVar("T")
WAIT_STEP = 2.0  # seconds between tries while the database does not answer at the start

# What `run` and `check` say when no platform is configured: one text, so they agree.
NO_PLATFORM = """\
No platform is configured.
Set at least one of:
  Slack:    SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_TEAM_CHANNEL, SLACK_INTAKE_CHANNELS
  Telegram: TELEGRAM_BOT_TOKEN, TELEGRAM_SUPPORT_CHAT_ID
(in the environment or a .env file; see .env.example). To watch the bot work without
any account, run: chat-rescue demo"""


def load_settings() -> Settings | None:
    """Settings from the environment, or None after explaining each bad variable."""
    try:
        return Settings()
    except ValidationError as bad:
        for problem in configuration_problems(bad):
            print(problem, file=sys.stderr)
        return None


def configuration_problems(bad: ValidationError) -> list[str]:
    """One plain line per invalid variable; values are never echoed (they may be secrets)."""
    lines = []
    for error in bad.errors():
        name = "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{name} is invalid: {error['msg']}")
    return lines


def missing_variables(settings: Settings) -> list[str]:
    """Variables a configured platform still needs."""
    missing = []
    if settings.slack_enabled:
        if settings.slack_signing_secret is None and settings.slack_app_token is None:
            missing.append("SLACK_SIGNING_SECRET is not set (or set SLACK_APP_TOKEN for "
                           "Socket Mode)")
        if not settings.slack_team_channel:
            missing.append("SLACK_TEAM_CHANNEL is not set: the channel id of the operators' inbox")
        if not settings.intake_channels:
            missing.append("SLACK_INTAKE_CHANNELS is not set: comma-separated ids of the "
                           "channels customers write in")
    if settings.telegram_enabled:
        if not settings.telegram_support_chat_id:
            missing.append("TELEGRAM_SUPPORT_CHAT_ID is not set: the id of the forum "
                           "supergroup (it starts with -100)")
        if settings.telegram_webhook_url and settings.telegram_webhook_secret is None:
            missing.append("TELEGRAM_WEBHOOK_SECRET is not set although TELEGRAM_WEBHOOK_URL is")
    return missing


async def run() -> int:
    """Serve every configured platform until SIGINT/SIGTERM.

    Opening the store migrates an older schema to this release's (`chat-rescue migrate`
    does the same on purpose); a schema newer than this release knows is refused, with
    nothing written, and exit code 2. A PostgreSQL server that does not answer is waited
    for (`DATABASE_WAIT`); one that cannot be used ends the start with one line, exit 1,
    as `check`, `migrate` and `copy-db` do.
    """
    from chat_rescue.server import Bot

    settings = load_settings()
    if settings is None:
        return 2
    logs.configure(settings)
    if not (settings.slack_enabled or settings.telegram_enabled):
        print(NO_PLATFORM, file=sys.stderr)
        return 2
    missing = missing_variables(settings)
    if missing:
        print("\n".join(missing), file=sys.stderr)
        return 2
    try:
        bot = await _when_reachable(lambda: Bot(settings), settings)
    except SchemaTooNew as newer:
        print(f"chat-rescue will not start: {where_is(settings.database_url)}: {newer}",
              file=sys.stderr)
        return 2
    except ValueError as failed:
        print(f"chat-rescue will not start: {failed}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await bot.start()
    print(f"chat-rescue is running on {settings.host}:{bot.port} "
          f"({', '.join(a.name for a in bot.adapters)}); Ctrl-C stops it.", flush=True)
    try:
        await stop.wait()
    finally:
        await bot.stop()
    return 0


async def _when_reachable(open_bot: Callable[[], T], settings: Settings) -> T:
    """`open_bot()` (which opens the store, migrating an older schema), tried again for up
    to `DATABASE_WAIT` seconds while a PostgreSQL server does not answer yet: replicas
    and their database are often started together (a host's boot, `docker compose up`),
    and a replica that waits a little is better than one that dies and is restarted in a
    loop. A line says so at each try. Raises the last ValueError, in plain words."""
    until = time.monotonic() + settings.database_wait
    while True:
        try:
            return open_bot()
        except ValueError as failed:
            left = until - time.monotonic()
            if not may_come(failed) or left <= 0:
                raise
            pause = min(WAIT_STEP, left)
            print(f"chat-rescue: {failed}; trying again in {pause:.0f} s "
                  f"(for {left:.0f} s more)", file=sys.stderr, flush=True)
            await asyncio.sleep(pause)


async def check() -> int:
    """Validate the configuration and reach each platform once; 0 when all is well."""
    from chat_rescue.server import build_adapters

    settings = load_settings()
    if settings is None:
        return 2
    problems = missing_variables(settings)
    if not (settings.slack_enabled or settings.telegram_enabled):
        problems.append(NO_PLATFORM.replace("\n", "\n  "))  # the lines under its "- "
    try:
        print(f"database: ok, {describe(settings.database_url)}")
    except ValueError as failed:
        problems.append(f"DATABASE_URL: {failed}")
    if not problems:
        # The adapters only talk to their platforms here: a scratch store keeps the
        # check from creating or touching the real database.
        service = Service(SQLiteStore("sqlite://"), settings.base_policy(), SystemClock())
        adapters = build_adapters(settings, service, service.clock)
        try:
            for adapter in adapters:
                found = await adapter.check()
                print(f"{adapter.name}: " + ("ok" if not found else "problems found"))
                problems += [f"{adapter.name}: {p}" for p in found]
        finally:
            for adapter in adapters:
                with contextlib.suppress(Exception):
                    await adapter.stop()
            service.store.close()
    for problem in problems:
        print(f"- {problem}")
    print("configuration ok" if not problems else f"{len(problems)} problem(s) found")
    return 0 if not problems else 1


@contextlib.contextmanager
def reading(settings: Settings) -> Iterator[Store | int]:
    """The store DATABASE_URL names, for commands that read history; or, after saying why
    there is nothing to read, the exit code (0: no database yet; 1: none to reach; 2: a
    newer release's)."""
    file = database_file(settings.database_url)
    if file is not None and not file.exists():
        print(f"No database at {file} yet: the bot creates it when it first runs.")
        yield 0
        return
    try:
        store = open_store(settings.database_url)
    except SchemaTooNew as newer:
        print(f"{where_is(settings.database_url)}: {newer}", file=sys.stderr)
        yield 2
        return
    except ValueError as failed:  # unreachable, or refused: said in one line
        print(f"DATABASE_URL: {failed}", file=sys.stderr)
        yield 1
        return
    try:
        yield store
    finally:
        store.close()


def stats(days: float, team: str | None) -> int:
    """Print the summary table per team from the store's history: response times in wall
    and working time, and why conversations were closed."""
    settings = load_settings()
    if settings is None:
        return 2
    with reading(settings) as store:
        if isinstance(store, int):
            return store
        history = store.history(team, time.time() - days * 86400)
        teams = sorted({h.team for h in history})
        if not teams:
            print(f"No conversations in the last {days:g} days.")
            return 0
        # The working hours each conversation had, for the working-time figures.
        service = Service(store, settings.base_policy(), SystemClock())
        for name in teams:
            print(render(summarize((h for h in history if h.team == name),
                                   lambda event: service.policy(event.team, event.ref).schedule),
                         f"Team {name}, last {days:g} days"))
            print()
    return 0


def whatif(days: float, team: str | None, changes: Thresholds, check: bool = False,
           workers: int = 1) -> int:
    """Replay the last `days` through the engine with `changes` laid on today's thresholds
    and print, per team, what was recorded beside the replay."""
    settings = load_settings()
    if settings is None:
        return 2
    with reading(settings) as store:
        if isinstance(store, int):
            return store
        service = Service(store, settings.base_policy(), SystemClock())
        compared = replay_days(store, service, team, days, changes, time.time(),
                               check=check, workers=workers,
                               reopen=lambda: open_store(settings.database_url))
        if not compared:
            print(f"No recorded conversations in the last {days:g} days (the people's events "
                  "are recorded from this release on).")
            return 0
        for name, comparison in compared:
            today = service.team_policy(name)
            print(f"Team {name}")
            print(render_whatif(comparison, named({k: today.timer(Timer(k)) for k in changes})))
            print()
    return 0


def replay_days(store: Store, service: Service, team: str | None, days: float,
                changes: Thresholds, now: float, *, check: bool = False, workers: int = 1,
                reopen: Callable[[], Store] | None = None) -> list[tuple[str, Comparison]]:
    """`whatif`'s work: each team's last `days` read and replayed (progress on stderr).

    With `workers` > 1 and `reopen` (a new connection to the same store), reading too is
    split: each of `workers` forked processes reads, decodes and replays its share of the
    conversations (by key) from a connection of its own, and the shares are joined here.
    Without `reopen` the reading is this process's and only the replays are split."""
    since = now - days * 86400
    if workers > 1 and threading.active_count() > 1:
        print(f"Replaying in one process, not {workers}: this one runs other threads (a "
              "PostgreSQL connection pool), which a forked worker must not inherit.",
              file=sys.stderr)
    elif workers > 1 and reopen is not None and can_fork():
        print(f"Reading and replaying in {workers} processes…", file=sys.stderr)
        global _SHARED
        _SHARED = _Shares(reopen, service.base_policy, service.clock, team, since, changes,
                          now, days, check, workers)
        try:
            parts = forked(_replay_share, list(range(workers)))
        finally:
            _SHARED = None
        if parts is None:
            # A process died (out of memory, most likely): the shares one after another
            # here, each no bigger than the one that died.
            parts = [_replayed(store, service, team, since, changes, now, days, check, 1,
                               share_of(number, workers), quiet=True)
                     for number in range(workers)]
        teams = sorted({name for part in parts for name, _ in part})
        return [(name, joined([c for part in parts for n, c in part if n == name]))
                for name in teams]
    return _replayed(store, service, team, since, changes, now, days, check, workers)


def _replayed(store: Store, service: Service, team: str | None, since: float,
              changes: Thresholds, now: float, days: float, check: bool, workers: int,
              only: Callable[[str], bool] | None = None, quiet: bool = False
              ) -> list[tuple[str, Comparison]]:
    with no_collections():
        inputs = store.inputs(team, since, only)
        history = store.history(team, since, WHATIF_KINDS, only)
        compared = []
        for name in sorted({i.team for i in inputs}):
            mine = [i for i in inputs if i.team == name]
            if not quiet:
                print(f"Team {name}: replaying {len(mine):,} recorded events…", file=sys.stderr)
            compared.append((name, compare(
                mine, [h for h in history if h.team == name],
                lambda item: service.policy(item.team, item.event.ref), changes, now, days,
                check=check, workers=workers)))
    return compared


@dataclasses.dataclass(frozen=True, slots=True)
class _Shares:
    """What each forked reader of `replay_days` does (inherited, never pickled)."""

    reopen: Callable[[], Store]
    base_policy: Policy
    clock: Clock
    team: str | None
    since: float
    changes: Thresholds
    now: float
    days: float
    check: bool
    workers: int


_SHARED: _Shares | None = None


def _replay_share(number: int) -> list[tuple[str, Comparison]]:
    job = _SHARED
    assert job is not None
    store = job.reopen()
    try:
        return _replayed(store, Service(store, job.base_policy, job.clock), job.team,
                         job.since, job.changes, job.now, job.days, job.check, 1,
                         share_of(number, job.workers), quiet=True)
    finally:
        store.close()

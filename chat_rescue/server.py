"""One process, one event loop: the HTTP server, the ticker, the outbox workers and
every configured platform adapter.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiohttp import web

from chat_rescue.bot.clock import Clock, SystemClock
from chat_rescue.bot.metrics import Metrics
from chat_rescue.bot.outbox import Platform
from chat_rescue.bot.runtime import Runtime
from chat_rescue.bot.service import Service
from chat_rescue.bot.settings import Settings, queue_links
from chat_rescue.bot.supervise import Loops
from chat_rescue.queue_page import QueuePage, add_routes
from chat_rescue.reports.weekly import parse_weekly
from chat_rescue.scrape import metrics_route
from chat_rescue.storage.factory import open_store

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # requests larger than this are refused with 413


class Adapter(Platform, Protocol):
    """A platform adapter: a Platform for the outbox plus its own lifecycle and routes."""

    def routes(self, app: web.Application) -> None:
        """Add the adapter's HTTP endpoints (if any) to the shared aiohttp app."""

    async def start(self) -> None:
        """Connect to the platform (start polling, socket mode, caches)."""

    async def stop(self) -> None:
        """Disconnect; state lives in the store."""

    async def check(self) -> list[str]:
        """Reach the platform once; return problems in plain words (never a secret)."""


def build_adapters(settings: Settings, service: Service, clock: Clock) -> list[Adapter]:
    """An adapter for every platform whose token is set."""
    adapters: list[Adapter] = []
    if settings.slack_enabled:
        from chat_rescue.adapters.slack import SlackAdapter

        adapters.append(SlackAdapter(settings, service, clock))
    if settings.telegram_enabled:
        from chat_rescue.adapters.telegram import TelegramAdapter

        adapters.append(TelegramAdapter(settings, service, clock))
    return adapters


OVERDUE_LIMIT = 60.0  # a deadline this late means the ticker is not doing its job
STUCK_LIMIT = 60.0  # a loop failing this long on end is not getting over a blip
STORE_ANSWERS = 5.0  # seconds /healthz waits for the store's thread


async def health(bot: Bot) -> dict[str, object]:
    """What /healthz reports: each loop's state, what each outbox worker delivered, the
    oldest overdue deadline and the oldest action waiting for delivery (seconds), and
    "failing" when a loop is dead, a deadline is more than a minute overdue or the store
    does not answer within STORE_ANSWERS seconds."""
    now = bot.clock.now()
    loops = bot.loops.states()
    stuck = bot.loops.stuck(STUCK_LIMIT)
    for adapter in bot.adapters:
        states = getattr(adapter, "loop_states", None)
        if states is not None:
            loops.update(states())
        stuck_there = getattr(adapter, "stuck_loops", None)
        if stuck_there is not None:
            stuck += stuck_there(STUCK_LIMIT)
    report: dict[str, object] = {"status": "ok", "loops": loops}
    # What this process's outbox workers did since it started (several processes may
    # share one store: each says its part).
    report["outbox"] = {o.platform.name: {"delivered": o.delivered, "dropped": o.dropped,
                                          "taken_over": o.taken_over,
                                          "leased_elsewhere": o.leased_elsewhere}
                        for o in bot.runtime.outboxes}
    leads: dict[str, object] = {}
    try:
        async with asyncio.timeout(STORE_ANSWERS):
            for adapter in bot.adapters:  # what only one replica does, and which one does it
                led = getattr(adapter, "leads", None)
                if led is not None:
                    leads.update(await led())
            deadline, queued = await bot.service.call(
                lambda: (bot.store.next_deadline(), bot.store.oldest_pending()))
    except TimeoutError:  # its thread is stuck (a lock held elsewhere, a hung server)
        report.update(status="failing", error=f"store: no answer in {STORE_ANSWERS:g}s")
        return report
    except Exception as failed:  # the store itself is what fails
        report.update(status="failing", error=f"store: {type(failed).__name__}: {failed}")
        return report
    if leads:
        report["leads"] = leads
    overdue = max(0.0, now - deadline) if deadline is not None else 0.0
    report["oldest_overdue_s"] = round(overdue, 3)
    report["oldest_pending_s"] = round(max(0.0, now - queued), 3) if queued is not None else 0.0
    if stuck:
        report["stuck"] = sorted(stuck)
    if overdue > OVERDUE_LIMIT or stuck or any(state in ("dead", "stopped")
                                               for state in loops.values()):
        report["status"] = "failing"
    return report


async def healthz(request: web.Request) -> web.Response:
    """Liveness as JSON; 503 when failing, so a load balancer or supervisor can act."""
    report = await health(request.app[BOT])
    return web.json_response(report, status=200 if report["status"] == "ok" else 503)


BOT: web.AppKey[Bot] = web.AppKey("bot")


class Bot:
    """Everything `chat-rescue run` starts, startable and stoppable from tests too."""

    def __init__(self, settings: Settings, clock: Clock | None = None,
                 adapters: list[Adapter] | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.store = open_store(settings.database_url)
        links = queue_links(settings)
        self.metrics = Metrics(self.clock)  # a registry of its own: tests run many bots
        self.service = Service(self.store, settings.base_policy(), self.clock,
                               preview_chars=settings.rescue_preview_chars, queue_links=links,
                               metrics=self.metrics)
        self.adapters = (adapters if adapters is not None
                         else build_adapters(settings, self.service, self.clock))
        self.loops = Loops()
        self.runtime = Runtime(self.service, self.clock, self.adapters, loops=self.loops,
                               weekly=parse_weekly(settings.rescue_report_weekly))
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app[BOT] = self
        self.app.router.add_get("/healthz", healthz)
        metrics_route(self.app, self.metrics.registry, settings.metrics_token)
        for adapter in self.adapters:
            adapter.routes(self.app)
        token = settings.queue_token.get_secret_value() if settings.queue_token else ""
        namers = {a.name: names for a in self.adapters
                  if (names := getattr(a, "names", None)) is not None}
        add_routes(self.app, QueuePage(self.service, token, links, namers))
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        """Serve HTTP, start the ticker and outboxes, then connect every platform."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        await self.runtime.start()
        for adapter in self.adapters:
            await adapter.start()
        names = ", ".join(a.name for a in self.adapters) or "no platform"
        log.info("chat-rescue serving %s on %s:%s", names, self.settings.host, self.port)

    async def stop(self) -> None:
        """Stop everything in reverse order and close the store."""
        await self.runtime.stop()  # first, so nothing is delivered through a closing client
        for adapter in reversed(self.adapters):
            await adapter.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if await self.runtime.settled():  # what the adapters handed over last has run
            self.store.close()

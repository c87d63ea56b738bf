"""GET /queue and GET /queue/data: the read-only queue page and what it polls.

Who may look: a signed link from `/rescue queue` (its own team only, until it expires),
or QUEUE_TOKEN as `?token=` or `Authorization: Bearer` (every team, or `?team=`). No
token and no link: 401; a wrong token, a bad, tampered, stale or other team's link: 403.
Both routes check, and both are GET only: nothing here changes anything.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from chat_rescue.bot.queue_links import UNDECODED, QueueLinks, Verdict
from chat_rescue.bot.queue_view import Snapshot, as_json, read
from chat_rescue.bot.service import Service
from chat_rescue.queue_html import PAGE

log = logging.getLogger(__name__)

Namer = Callable[[Iterable[str]], Awaitable[dict[str, str]]]  # an adapter's `names`

NAMES_WAIT = 1.5  # seconds the data waits for names; a slow platform shows ids this once
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the link's signature stays off other sites' logs
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'",
}


@dataclass(frozen=True, slots=True)
class Access:
    """Whether a request may see the page (`status` 200) and which teams (None: all)."""

    status: int
    teams: tuple[str, ...] | None = None
    reason: str = ""


def access(query: Mapping[str, str], authorization: str, token: str,
           links: QueueLinks | None, now: float) -> Access:
    """The access rules above, for a request's query and Authorization header."""
    scheme, _, bearer = authorization.partition(" ")
    presented = query.get("token") or (bearer.strip() if scheme.lower() == "bearer" else "")
    team = query.get("team", "")
    if not team.isprintable():  # a NUL or a control character names no team (and a
        return Access(403, reason="no such team")  # server's text refuses a NUL outright)
    if presented:
        if token and hmac.compare_digest(presented.encode(*UNDECODED), token.encode()):
            return Access(200, (team,) if team else None)
        return Access(403, reason="wrong token")
    if "sig" in query or "exp" in query:
        if links is None:
            return Access(403, reason="links are not signed here")
        verdict = links.check(team, query.get("exp", ""), query.get("sig", ""), now)
        if verdict is Verdict.VALID:
            return Access(200, (team,))
        return Access(403, reason="this link has expired: ask /rescue queue for a new one"
                      if verdict is Verdict.EXPIRED else "this link is not valid")
    return Access(401, reason="a link from /rescue queue, or the queue token, is needed")


@dataclass(frozen=True, slots=True)
class QueuePage:
    """The page's settings and the bot's parts it reads."""

    service: Service
    token: str
    links: QueueLinks | None
    namers: Mapping[str, Namer]
    # Per platform, the lookup under way and whom it asks for: one slower than NAMES_WAIT
    # goes on (and fills the adapter's cache for the next poll) instead of being cut off
    # at every poll. A poll it does not cover (another screen's team, someone new) asks
    # on its own: the adapter answers the names it knows at once.
    _asking: dict[str, tuple[frozenset[str], asyncio.Future[dict[str, str]]]] = field(
        default_factory=dict)

    def allowed(self, request: web.Request) -> Access:
        """Whether `request` may look, and at which teams (`access`)."""
        return access(request.query, request.headers.get("Authorization", ""), self.token,
                      self.links, self.service.clock.now())

    async def snapshot(self, teams: tuple[str, ...] | None) -> Snapshot:
        """The teams' queue now, read in one job on the store's thread."""
        service = self.service
        return await service.call(read, service.store, service.team_policy, teams,
                                  service.clock.now())

    async def names(self, snapshot: Snapshot) -> dict[tuple[str, str], str]:
        """Names of the people on the page, from each platform's adapter (ids otherwise)."""
        wanted: dict[str, set[str]] = {}
        for platform, user in snapshot.people():
            wanted.setdefault(platform, set()).add(user)
        found: dict[tuple[str, str], str] = {}
        for platform, users in wanted.items():
            namer = self.namers.get(platform)
            if namer is None:
                continue
            under_way = self._asking.get(platform)
            if under_way is not None and not under_way[1].done() and users <= under_way[0]:
                asking = under_way[1]
            else:
                asking = asyncio.ensure_future(namer(users))
                asking.add_done_callback(_retrieved)
                self._asking[platform] = (frozenset(users), asking)
            try:
                async with asyncio.timeout(NAMES_WAIT):
                    named = await asyncio.shield(asking)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - ids instead of names (`_retrieved` logs it)
                continue
            found.update(((platform, user), shown) for user, shown in named.items())
        return found


def _retrieved(asking: asyncio.Future[dict[str, str]]) -> None:
    """A lookup that failed after its poll stopped waiting: said in the log, once."""
    if not asking.cancelled() and asking.exception() is not None:
        log.warning("looking up names failed: %s", asking.exception())


QUEUE: web.AppKey[QueuePage] = web.AppKey("queue")


def refused(allowed: Access) -> web.Response:
    """The 401 or 403, with one plain line saying why (never what a valid link is)."""
    log.info("queue page refused with %s: %s", allowed.status, allowed.reason)
    return web.Response(status=allowed.status, text=allowed.reason + "\n", headers=HEADERS)


async def queue_page(request: web.Request) -> web.Response:
    """The page: a small self-contained shell that polls /queue/data with its own query."""
    allowed = request.app[QUEUE].allowed(request)
    if allowed.status != 200:
        return refused(allowed)
    return web.Response(text=PAGE, content_type="text/html", headers=HEADERS)


async def queue_data(request: web.Request) -> web.Response:
    """The page's data as JSON (`queue_view.as_json`)."""
    page = request.app[QUEUE]
    allowed = page.allowed(request)
    if allowed.status != 200:
        return refused(allowed)
    snapshot = await page.snapshot(allowed.teams)
    names = await page.names(snapshot)
    body = as_json(snapshot, lambda platform, user: names.get((platform, user), user))
    return web.json_response(body, headers=HEADERS)


def add_routes(app: web.Application, page: QueuePage) -> None:
    """GET /queue and GET /queue/data (HEAD too; any other method gets 405)."""
    app[QUEUE] = page
    app.router.add_get("/queue", queue_page)
    app.router.add_get("/queue/data", queue_data)

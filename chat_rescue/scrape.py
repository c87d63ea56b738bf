"""GET /metrics: the client library's own aiohttp handler over the bot's registry, behind a
bearer token when METRICS_TOKEN is set."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler
from pydantic import SecretStr


def metrics_route(app: web.Application, registry: CollectorRegistry,
                  token: SecretStr | None) -> None:
    """Serve `registry` at GET /metrics; with `token`, only to `Authorization: Bearer
    <token>` (anything else: 401 with `WWW-Authenticate: Bearer`)."""
    scrape = make_aiohttp_handler(registry)
    expected = f"Bearer {token.get_secret_value()}".encode() if token is not None else None

    async def metrics(request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogatepass")
        if expected is not None and not hmac.compare_digest(given, expected):
            return web.Response(status=401, text="a bearer token is needed\n",
                                headers={"WWW-Authenticate": "Bearer"})
        return await scrape(request)

    app.router.add_get("/metrics", metrics)

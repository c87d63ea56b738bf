"""The slack-bolt app and its thin aiohttp glue.

Three listeners cover everything Slack sends on the one URL: every Events API event,
every button click, and the `/rescue` command. Bolt verifies signatures (401 on a
bad one or a stale timestamp). Slack is answered only after the listener ran
(`process_before_response`), so a 200 means the event is committed: a crash before
that makes Slack resend it instead of losing it. The listeners only commit (well
under a millisecond) and leave slow work (answering a click) to background tasks.
Authorization comes from the adapter's start-time auth.test, so no request waits on
(or fails with) the Web API.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


class _TokenNotices(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN (read from the environment whatever it is given) is
    unused when a client and `authorize` are passed; that is the design here (the token
    comes from the adapter's settings, per request through `authorize`), so the warning
    would only alarm whoever reads the log at every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be" not in record.getMessage()


logging.getLogger("slack_bolt.AsyncApp").addFilter(_TokenNotices())

EVENTS_PATH = "/slack/events"
ANYTHING = re.compile(".*")

Payload = dict[str, Any]


class Listeners(Protocol):
    """What the adapter does with each kind of request, after Slack has been answered."""

    async def on_event(self, body: Payload) -> None: ...

    async def on_action(self, body: Payload, respond: AsyncRespond) -> None: ...

    async def on_command(self, command: Payload) -> str: ...


def build_app(client: AsyncWebClient, signing_secret: str, listeners: Listeners, *,
              socket_mode: bool, authorize: Callable[..., Awaitable[AuthorizeResult]]
              ) -> AsyncApp:
    """A bolt app that hands every request to `listeners` (signatures checked over HTTP)."""
    app = AsyncApp(
        name="chat-rescue",
        client=client,
        signing_secret=signing_secret,
        authorize=authorize,
        process_before_response=True,
        request_verification_enabled=not socket_mode,  # Socket Mode has no signatures
    )

    @app.event(ANYTHING)
    async def event(body: Payload) -> None:  # bolt answers 200 once this returns
        await listeners.on_event(body)

    @app.action(ANYTHING)
    async def action(ack: AsyncAck, body: Payload, respond: AsyncRespond) -> None:
        await ack()
        await listeners.on_action(body, respond)

    @app.command(ANYTHING)  # whatever the command is called in the manifest
    async def command(ack: AsyncAck, command: Payload) -> None:
        reply = await listeners.on_command(command)
        await ack(text=reply, response_type="ephemeral")

    return app


Early = Callable[[bytes, str], Awaitable[web.Response | None]]


def http_handler(app: AsyncApp, signing_secret: str, early: Early | None = None
                 ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for POST /slack/events: hand the request to bolt, return its answer.

    The signature is checked here first (bolt would parse the body before checking), and
    a signed body that is not shaped like anything Slack sends gets 400, not a traceback.
    `early(body, content_type)` sees each verified request first and may answer it itself.
    """
    verifier = SignatureVerifier(signing_secret)

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:  # Slack sends UTF-8 only; the signature check needs text
            return web.Response(status=400, text="not a Slack request")
        stamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not stamp.isdigit() or not verifier.is_valid(body, stamp, signature):
            log.warning("Slack request refused: Invalid request signature or timestamp")
            return web.Response(status=401, text="invalid request")
        if not _shaped_like_slack(body, request.content_type):
            log.warning("Slack request refused: a signed body Slack would not send")
            return web.Response(status=400, text="not a Slack request")
        if early is not None and (answer := await early(body, request.content_type)) is not None:
            return answer
        response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    return handle


def _shaped_like_slack(body: bytes, content_type: str) -> bool:
    """Events are a JSON object whose `event` is an object; clicks a form with a JSON
    object `payload` whose `actions` is a list of objects; commands a plain form."""
    try:
        text = body.decode("utf-8")
        if content_type == "application/json":
            outer = json.loads(text)
            event = outer.get("event", {}) if isinstance(outer, dict) else None
            return isinstance(event, dict) \
                and all(isinstance(outer.get(k, ""), str) for k in ("type", "event_id")) \
                and isinstance(event.get("user", ""), str)
        form = parse_qs(text, keep_blank_values=True)
        if "payload" not in form:
            return True  # a slash command
        payload = json.loads(form["payload"][0])
        actions = payload.get("actions", []) if isinstance(payload, dict) else None
        return isinstance(actions, list) and all(isinstance(a, dict) for a in actions) \
            and isinstance(payload.get("user", {}), dict)
    except (UnicodeDecodeError, ValueError):
        return False

"""Slack's Socket Mode side, in front of a `SlackSandbox`.

Socket Mode apps call `apps.connections.open` with their app-level token, open the
WebSocket it names, and receive envelopes (`events_api`, `interactive`,
`slash_commands`) that they acknowledge with `{"envelope_id": …}`. This stand-in serves
that method and the socket, and forwards every other Web API call to the sandbox, so
one `SLACK_API_URL` serves the whole app.

An app may hold several connections (one per replica, say); as Slack does, each envelope
goes to one of them (in turn), and one not acknowledged within 3 s, or whose connection
closed before it was acknowledged, goes again to another connection with `retry_attempt`
counted up (three retries at most, then Slack gives up: `Undelivered`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from chat_rescue.sandbox.slack import APP_ID, SlackSandbox

Json = dict[str, Any]
DEFAULT_APP_TOKEN = "xapp-1-sandbox"
_FORWARDED = ("Authorization", "Content-Type")
RETRIES = 3  # Slack sends an envelope at most four times
ACK_WITHIN = 3.0  # seconds Slack waits for an acknowledgement


class ClosedSocket(Exception):  # noqa: N818
    """The connection an envelope went down closed before acknowledging it."""


class Undelivered(Exception):  # noqa: N818 - what Slack concluded
    """No connection acknowledged the envelope, first try and retries."""


@dataclass
class Sent:
    """One attempt at an envelope: which connection (its index in `connections`), which
    try, and how it ended ("acked", "timeout", "connection_closed"; "" while pending)."""

    envelope_id: str
    connection: int
    attempt: int
    outcome: str = ""


class SocketModeStandIn:
    """apps.connections.open + the Socket Mode WebSocket; other methods go to the sandbox."""

    def __init__(self, sandbox: SlackSandbox, app_token: str = DEFAULT_APP_TOKEN) -> None:
        self.sandbox = sandbox
        self.app_token = app_token
        self.connected = asyncio.Event()  # set while at least one connection is open
        self.acks: list[Json] = []
        self.connections: list[web.WebSocketResponse] = []  # every one made, in order
        self.sent: list[Sent] = []
        self._ids = itertools.count(1)
        self._turn = itertools.count()
        self._waiting: dict[str, tuple[int, asyncio.Future[Json]]] = {}
        self._joined = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/apps.connections.open", self._open)
        app.router.add_get("/link", self._link)
        app.router.add_route("*", "/api/{method}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}/"
        self._client = aiohttp.ClientSession()

    async def stop(self) -> None:
        for socket in self.connections:
            if not socket.closed:
                await socket.close()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self._base_url}api/"

    # --- what Slack sends down the socket

    async def event(self, event: Json, event_id: str | None = None) -> Json:
        """Deliver an Events API event as an `events_api` envelope; returns the ack."""
        self.sandbox.record_event(event)
        body = {
            "token": "sandbox-verification-token",
            "team_id": self.sandbox.team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):08d}SCK",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": self.sandbox.team_id,
                                "user_id": self.sandbox.bot_user_id, "is_bot": True}],
        }
        return await self._envelope("events_api", body)

    async def slash_command(self, command: str, text: str, user: str, channel: str) -> Json:
        """Invoke a slash command as a `slash_commands` envelope; returns the ack."""
        body = {
            "token": "sandbox-verification-token",
            "team_id": self.sandbox.team_id,
            "channel_id": channel,
            "user_id": user,
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "response_url": self.sandbox.response_url(),
            "trigger_id": f"{next(self._ids)}.sandbox",
        }
        return await self._envelope("slash_commands", body)

    @property
    def open_connections(self) -> list[int]:
        """Indexes (in `connections`) of the connections still open."""
        return [i for i, socket in enumerate(self.connections) if not socket.closed]

    async def joined(self, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` connections were made (in all, open or not)."""
        async with asyncio.timeout(timeout), self._joined:
            await self._joined.wait_for(lambda: len(self.connections) >= count)

    def unacknowledged(self, connection: int) -> int:
        """Envelopes sent down `connection` and not acknowledged yet."""
        return sum(1 for where, _ in self._waiting.values() if where == connection)

    async def _envelope(self, kind: str, payload: Json, timeout: float = ACK_WITHIN) -> Json:
        envelope_id = f"env-{next(self._ids)}"
        reason = ""
        for attempt in range(RETRIES + 1):
            await asyncio.wait_for(self.connected.wait(), timeout)
            open_now = self.open_connections
            connection = open_now[next(self._turn) % len(open_now)]
            sent = Sent(envelope_id, connection, attempt)
            self.sent.append(sent)
            answered: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
            self._waiting[envelope_id] = (connection, answered)
            try:
                await self.connections[connection].send_str(json.dumps({
                    "envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api",
                    "retry_attempt": attempt, "retry_reason": reason,
                }))
                ack = await asyncio.wait_for(answered, timeout)  # Slack, too, waits 3 s
            except TimeoutError:
                sent.outcome = reason = "timeout"
            except (ConnectionError, ClosedSocket):
                sent.outcome = reason = "connection_closed"
            else:
                sent.outcome = "acked"
                return ack
            finally:
                self._waiting.pop(envelope_id, None)
        raise Undelivered(f"{kind} {envelope_id}: not acknowledged in {RETRIES + 1} tries")

    # --- HTTP

    async def _open(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token != self.app_token:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response({"ok": True, "url": f"ws://{request.host}/link"})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self.connections.append(socket)
        index = len(self.connections) - 1
        async with self._joined:
            self._joined.notify_all()
        await socket.send_str(json.dumps({"type": "hello",
                                          "num_connections": len(self.open_connections),
                                          "connection_info": {"app_id": APP_ID}}))
        self.connected.set()
        try:
            async for message in socket:
                if message.type is aiohttp.WSMsgType.TEXT:
                    ack = json.loads(message.data)
                    self.acks.append(ack)
                    where, waiting = self._waiting.get(str(ack.get("envelope_id")),
                                                       (index, None))
                    if waiting is not None and where == index and not waiting.done():
                        waiting.set_result(ack)
        finally:
            # What this connection had not acknowledged goes to another one at once.
            for where, waiting in list(self._waiting.values()):
                if where == index and not waiting.done():
                    waiting.set_exception(ClosedSocket(f"connection {index} closed"))
            if not self.open_connections:
                self.connected.clear()
        return socket

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._client is not None
        headers = {k: request.headers[k] for k in _FORWARDED if k in request.headers}
        url = f"{self.sandbox.api_url}{request.match_info['method']}"
        async with self._client.request(request.method, url, data=await request.read(),
                                        headers=headers, params=request.query) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() == "retry-after"}
            return web.Response(status=answer.status, body=body, headers=kept,
                                content_type=answer.content_type)

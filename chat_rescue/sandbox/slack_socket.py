"""Slack's Socket Mode side, in front of a `SlackSandbox`.

Socket Mode apps call `apps.connections.open` with their app-level token, open the
WebSocket it names, and receive envelopes (`events_api`, `interactive`,
`slash_commands`) that they acknowledge with `{"envelope_id": …}`. This stand-in serves
that method and the socket, and forwards every other Web API call to the sandbox, so
one `SLACK_API_URL` serves the whole app.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from chat_rescue.sandbox.slack import APP_ID, SlackSandbox

Json = dict[str, Any]
DEFAULT_APP_TOKEN = "xapp-1-sandbox"
_FORWARDED = ("Authorization", "Content-Type")


class SocketModeStandIn:
    """apps.connections.open + the Socket Mode WebSocket; other methods go to the sandbox."""

    def __init__(self, sandbox: SlackSandbox, app_token: str = DEFAULT_APP_TOKEN) -> None:
        self.sandbox = sandbox
        self.app_token = app_token
        self.connected = asyncio.Event()
        self.acks: list[Json] = []
        self._ids = itertools.count(1)
        self._socket: web.WebSocketResponse | None = None
        self._waiting: dict[str, asyncio.Future[Json]] = {}
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
        if self._socket is not None:
            await self._socket.close()
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

    async def _envelope(self, kind: str, payload: Json, timeout: float = 3.0) -> Json:
        await asyncio.wait_for(self.connected.wait(), timeout)
        assert self._socket is not None
        envelope_id = f"env-{next(self._ids)}"
        answered: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._waiting[envelope_id] = answered
        await self._socket.send_str(json.dumps({
            "envelope_id": envelope_id, "type": kind, "payload": payload,
            "accepts_response_payload": kind != "events_api", "retry_attempt": 0,
            "retry_reason": "",
        }))
        return await asyncio.wait_for(answered, timeout)  # Slack, too, waits 3 s

    # --- HTTP

    async def _open(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token != self.app_token:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response({"ok": True, "url": f"ws://{request.host}/link"})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._socket = socket
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                          "connection_info": {"app_id": APP_ID}}))
        self.connected.set()
        async for message in socket:
            if message.type is aiohttp.WSMsgType.TEXT:
                ack = json.loads(message.data)
                self.acks.append(ack)
                waiting = self._waiting.pop(str(ack.get("envelope_id")), None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(ack)
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

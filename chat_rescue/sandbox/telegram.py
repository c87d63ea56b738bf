"""A local Telegram Bot API: an aiohttp server on 127.0.0.1 that speaks the real wire format.

Point the real python-telegram-bot at it with `Bot(token, base_url=sandbox.api_url,
base_file_url=sandbox.file_url)`. Requests may be form-encoded (what PTB sends: strings as
they are, everything else JSON-encoded), multipart (uploads), JSON bodies or query strings.
Answers are `{"ok": true, "result": ...}` or Telegram's error bodies, 429s with
`parameters.retry_after` included. This module is the HTTP glue, getUpdates long polling,
webhooks, failure injection and optional flood control (`flood`, off by default: see
`flood.py`); `telegram_api.py` holds the other methods and `telegram_world.py` the state
they act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from chat_rescue.sandbox.flood import TelegramFlood
from chat_rescue.sandbox.telegram_api import BotApi, Handler, Params, UploadedFile
from chat_rescue.sandbox.telegram_world import (
    JSON,
    LONG_POLL_MAX_TIMEOUT,
    MEDIA_KINDS,
    SANDBOX_TOKEN,
    ApiError,
    TelegramWorld,
    bad_request,
)

__all__ = ["SANDBOX_TOKEN", "ApiCall", "ApiError", "TelegramSandbox", "WebhookDelivery"]

# Wire values of these parameters are text even when they look like JSON ("123", "true").
TEXT_PARAMS = frozenset(
    {"text", "caption", "name", "url", "secret_token", "parse_mode", "callback_query_id",
     "icon_custom_emoji_id", "file_id", "action", "language_code", "ip_address", "title",
     "description", "inline_message_id", "business_connection_id", *MEDIA_KINDS}
)  # fmt: skip
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)


class ApiCall(NamedTuple):
    """One request the sandbox received: method as sent, parameters decoded from the wire."""

    method: str
    params: JSON


@dataclass(frozen=True)
class WebhookDelivery:
    """One attempt to POST an update to the webhook: HTTP status, or None and an error."""

    update_id: int
    status: int | None
    error: str | None = None


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class _Fault:
    method: str
    count: int
    status: int | None = None
    retry_after: int = 1
    description: str | None = None
    hang_seconds: float = 0.0

    def matches(self, method: str) -> bool:
        return self.method == "*" or self.method.lower() == method.lower()

    def error(self) -> ApiError:
        status = self.status or 500
        if status == 429:
            return ApiError(
                429,
                f"Too Many Requests: retry after {self.retry_after}",
                {"retry_after": self.retry_after},
            )
        defaults = {
            400: "Bad Request: sandbox failure",
            401: "Unauthorized",
            403: "Forbidden: bot was blocked by the user",
            404: "Not Found",
            409: POLL_CONFLICT,
        }
        description = self.description or defaults.get(status) or HTTPStatus(status).phrase
        return ApiError(status, description)


def _decode(name: str, raw: str) -> Any:
    """A form value as Telegram reads it: JSON for objects, numbers and flags, else text."""
    if name in TEXT_PARAMS:
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return raw if isinstance(value, str) else value


class TelegramSandbox(TelegramWorld):
    """The Bot API for one bot token, served on 127.0.0.1 from a `TelegramWorld`."""

    def __init__(
        self,
        token: str = SANDBOX_TOKEN,
        *,
        push_updates_to_webhook: bool = False,
        clock: Callable[[], float] = time.time,
        first_update_id: int = 100,
    ) -> None:
        super().__init__(token, clock=clock, first_update_id=first_update_id)
        self.push_updates_to_webhook = push_updates_to_webhook
        self.calls: list[ApiCall] = []
        # Beside each call: who made it (the name in an `api_url_of` URL, "" for the plain
        # one) and when it arrived (time.monotonic()), to tell replicas of one bot apart.
        self.callers: list[tuple[str, float]] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._webhook: _Webhook | None = None
        self._faults: list[_Fault] = []
        # Telegram's posting limits, answered with 429s; None (the default): no limits.
        self.flood: TelegramFlood | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._poll_generation = 0
        self.poll_conflicts = 0  # long polls cut off by a newer getUpdates (two pollers)
        self._session: aiohttp.ClientSession | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._methods: dict[str, Handler] = {
            **BotApi(self).methods(),
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("*", "/as/{caller}/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_get("/as/{caller}/file/bot{token}/{path:.+}", self._handle_file)
        self._stopping = False
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])
        if self.push_updates_to_webhook:
            self._session = aiohttp.ClientSession()
            self._pusher = asyncio.create_task(self._push_updates())

    async def stop(self) -> None:
        """End pending long polls and hangs, stop webhook pushes and close the server."""
        self._stopping = True
        self._wakeup()
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramSandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """Bot API base URL without the token: PTB's `base_url` appends it."""
        return f"{self._origin()}/bot"

    def api_url_of(self, caller: str) -> str:
        """`api_url` for one of several processes of the bot: its calls are recorded with
        `caller` in `callers` (the same bot, token and world)."""
        return f"{self._origin()}/as/{caller}/bot"

    @property
    def file_url(self) -> str:
        """File download base URL without the token: PTB's `base_file_url`."""
        return f"{self._origin()}/file/bot"

    @property
    def webhook_url(self) -> str | None:
        """The webhook URL set by the bot, if any."""
        return self._webhook.url if self._webhook else None

    @property
    def webhook_secret(self) -> str | None:
        """The secret_token set with the webhook, if any."""
        return self._webhook.secret_token if self._webhook else None

    def calls_to(self, method: str) -> list[JSON]:
        """Parameters of every call to `method` (case-insensitive), oldest first."""
        return [call.params for call in self.calls if call.method.lower() == method.lower()]

    # -- failure injection ---------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        count: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next `count` calls to `method` ("*": any) with an error of `status`."""
        self._faults.append(
            _Fault(method, count, status=status, retry_after=retry_after, description=description)
        )

    def hang(self, method: str, seconds: float, count: int = 1) -> None:
        """Delay the next `count` calls to `method` by `seconds`; they are carried out after."""
        self._faults.append(_Fault(method, count, hang_seconds=seconds))

    def on_update_queued(self) -> None:
        """Wake long polls and the webhook pusher."""
        self._wakeup()

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        method = request.match_info["method"]
        try:
            params = await _read_params(request)
        except ValueError:
            return web.json_response(bad_request("can't parse JSON").body(), status=400)
        self.calls.append(ApiCall(method, params))
        self.callers.append((request.match_info.get("caller", ""), time.monotonic()))
        try:
            description, result = await self._dispatch(method, Params(params))
        except ApiError as error:
            return web.json_response(error.body(), status=error.status)
        body: JSON = {"ok": True, "result": result}
        if description:
            body["description"] = description
        return web.json_response(body)

    async def _dispatch(self, method: str, params: Params) -> tuple[str | None, Any]:
        fault = self._take_fault(method)
        if fault is not None and fault.hang_seconds:
            await self._pause(fault.hang_seconds)
        elif fault is not None:
            raise fault.error()
        name = method.lower()
        if name == "getupdates":
            return None, await self._get_updates(params)
        if name not in self._methods:
            raise ApiError(404, "Not Found")
        target = self._flood_target(name, params)
        if target is not None and self.flood is not None:
            retry_after = self.flood.check(name, *target)
            if retry_after is not None:
                raise ApiError(429, f"Too Many Requests: retry after {retry_after}",
                               {"retry_after": retry_after})
        result = self._methods[name](params)
        if target is not None and self.flood is not None:
            self.flood.sent(name, *target)
        if isinstance(result, tuple):  # (description, result): only the webhook methods
            return result[0], result[1]
        return None, result

    def _flood_target(self, method: str, params: Params) -> tuple[int, bool] | None:
        """(chat id, private?) of a call the flood control counts; None for the others."""
        if self.flood is None or not self.flood.counts(method):
            return None
        try:
            chat = self.chat(params.chat_id())
        except ApiError:
            return None  # the method itself answers that
        return chat.id, chat.type == "private"

    async def _handle_file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        stored = next((f for f in self.files.values() if f.file_path == path), None)
        if request.match_info["token"] != self.token or stored is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        return web.Response(body=stored.content, content_type="application/octet-stream")

    def _origin(self) -> str:
        if self._runner is None:
            raise RuntimeError("the Telegram sandbox is not started")
        return f"http://127.0.0.1:{self._port}"

    def _take_fault(self, method: str) -> _Fault | None:
        fault = next((f for f in self._faults if f.matches(method)), None)
        if fault is not None:
            fault.count -= 1
            if fault.count <= 0:
                self._faults.remove(fault)
        return fault

    def _wakeup(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    async def _wait_for_wakeup(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _pause(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping and (left := deadline - loop.time()) > 0:
            await self._wait_for_wakeup(left)

    # -- getUpdates and webhooks ---------------------------------------------------------------

    async def _get_updates(self, params: Params) -> list[JSON]:
        if self._webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = params.opt_int("offset") or 0
        limit = min(max(params.opt_int("limit") or 100, 1), 100)
        timeout = min(max(params.opt_float("timeout") or 0.0, 0.0), LONG_POLL_MAX_TIMEOUT)
        if params.has("allowed_updates"):
            self.set_allowed_updates(params.obj("allowed_updates"))
        # Any newer getUpdates ends the long poll still waiting (answered 409), as on the
        # real server: two instances of a bot that both poll keep cutting each other off.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wakeup()
        updates = self.take_updates(offset, limit)
        if updates or timeout <= 0:
            return list(updates)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._stopping and (left := deadline - loop.time()) > 0:
            await self._wait_for_wakeup(left)
            if generation != self._poll_generation:
                self.poll_conflicts += 1
                raise ApiError(409, POLL_CONFLICT)
            if self._webhook is not None:
                raise ApiError(409, "Conflict: terminated by setWebhook request")
            if updates := self.take_updates(offset, limit):
                return list(updates)
        return []

    def _set_webhook(self, params: Params) -> tuple[str, bool]:
        url = params.opt_str("url") or ""
        if not url:
            return self._delete_webhook(params)
        if not url.startswith(("https://", "http://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.opt_str("secret_token")
        if secret is not None and not SECRET_PATTERN.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        if params.has("allowed_updates"):
            self.set_allowed_updates(params.obj("allowed_updates"))
        if params.flag("drop_pending_updates"):
            self.updates.clear()
        already = self._webhook is not None and (self._webhook.url, self._webhook.secret_token) == (
            url,
            secret,
        )
        max_connections = params.opt_int("max_connections") or 40
        self._webhook = _Webhook(url, secret, max_connections)
        self._wakeup()
        return ("Webhook is already set" if already else "Webhook was set"), True

    def _delete_webhook(self, params: Params) -> tuple[str, bool]:
        if params.flag("drop_pending_updates"):
            self.updates.clear()
        existed, self._webhook = self._webhook is not None, None
        return ("Webhook was deleted" if existed else "Webhook is already deleted"), True

    def _get_webhook_info(self, _: Params) -> JSON:
        info: JSON = {
            "url": self._webhook.url if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }
        if self._webhook is not None:
            info["max_connections"] = self._webhook.max_connections
            if self._webhook.last_error_date is not None:
                info["last_error_date"] = self._webhook.last_error_date
                info["last_error_message"] = self._webhook.last_error_message
        if self.allowed_updates is not None:
            info["allowed_updates"] = sorted(self.allowed_updates)
        return info

    async def _push_updates(self) -> None:
        """Deliver queued updates to the webhook one by one, retrying failures with backoff."""
        backoff = 0.05
        while not self._stopping:
            hook = self._webhook
            if hook is None or not self.updates:
                await self._wait_for_wakeup(3600)
                continue
            update = self.updates[0]
            status, error = await self._post_update(hook, update)
            self.webhook_deliveries.append(WebhookDelivery(update["update_id"], status, error))
            if status is not None and 200 <= status < 300:
                self.drop_update(update)
                backoff = 0.05
                continue
            hook.last_error_date = self.now()
            hook.last_error_message = error or f"Wrong response from the webhook: {status}"
            await self._wait_for_wakeup(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _post_update(self, hook: _Webhook, update: JSON) -> tuple[int | None, str | None]:
        assert self._session is not None
        headers = (
            {"X-Telegram-Bot-Api-Secret-Token": hook.secret_token} if hook.secret_token else {}
        )
        try:
            async with self._session.post(
                hook.url, json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                await response.read()
                return response.status, None
        except (aiohttp.ClientError, TimeoutError) as error:
            return None, str(error) or type(error).__name__


async def _read_params(request: web.Request) -> JSON:
    """Every parameter of a request: query string, then form/multipart or JSON body."""
    params: JSON = {name: _decode(name, value) for name, value in request.query.items()}
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params
    form = await request.post()
    for name, value in form.items():
        if isinstance(value, web.FileField):
            params[name] = UploadedFile(value.filename, value.file.read())
        else:
            params[name] = _decode(name, str(value))
    return params

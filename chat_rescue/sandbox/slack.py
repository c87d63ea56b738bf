"""A local stand-in for the Slack Web API, speaking Slack's wire format over HTTP.

Point the real ``AsyncWebClient(token=..., base_url=sandbox.api_url)`` at a running
``SlackSandbox``. It keeps channels, users and messages in memory, records every call, and
injects 429s, 5xxs and hangs on request, so outage handling is testable without a workspace.
With ``flood`` set (off by default), chat.postMessage is limited per channel as Slack limits
it (see ``flood.py``).
The Slack side of the bot's own endpoint (signed events, buttons, slash commands) lives in
``chat_rescue.sandbox.slack_client``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import itertools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from chat_rescue.sandbox.flood import SlackFlood

Json = dict[str, Any]

DEFAULT_BOT_TOKEN = "xoxb-sandbox"
TEAM_ID = "T0SANDBOX"
TEAM_DOMAIN = "sandbox"
APP_ID = "A0SANDBOX"
BOT_USER_ID = "U0SANDBOXBOT"
BOT_ID = "B0SANDBOXBOT"
WORKSPACE_URL = f"https://{TEAM_DOMAIN}.slack.com/"

_USER_FLAGS = dict.fromkeys(
    ("deleted", "is_primary_owner", "is_restricted", "is_ultra_restricted", "is_app_user"), False
)
_EVENT_ONLY = ("channel", "event_ts", "channel_type")
# Which process of the bot the request being answered came from (`api_url_of`).
_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")
_CHANNEL_FLAGS = dict.fromkeys(
    ("is_group", "is_im", "is_mpim", "is_archived", "is_general", "is_org_shared"), False
)


class SlackError(Exception):
    """An API error, answered as HTTP 200 ``{"ok": false, "error": code}`` like Slack does."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class ApiCall:
    """One Web API request the sandbox received, in arrival order (token removed)."""

    method: str
    params: Json
    status: int | None = None  # None while the answer is held back by hang()
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True unless the call was answered HTTP 200 with ``ok: true``."""
        return self.status != 200 or self.error is not None


@dataclass
class SandboxChannel:
    """A channel the sandbox knows; ``members`` is kept in join order."""

    id: str
    name: str
    members: list[str] = field(default_factory=list)
    is_private: bool = False
    is_ext_shared: bool = False


@dataclass
class SharedFile:
    """A file uploaded with files.getUploadURLExternal, its upload URL and
    files.completeUploadExternal (``channel`` None until completed)."""

    id: str
    name: str
    length: int
    content: bytes | None = None  # None until its bytes were POSTed to the upload URL
    title: str = ""
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str = ""


@dataclass
class _Failure:
    status: int
    error: str
    retry_after: int | None
    remaining: int


class SlackSandbox:
    """An aiohttp server on 127.0.0.1 answering Slack Web API methods from memory."""

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        team_id: str = TEAM_ID,
        bot_user_id: str = BOT_USER_ID,
        bot_id: str = BOT_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.calls: list[ApiCall] = []
        # Who posted each message (by its ts): the name in an `api_url_of` URL, for the
        # messages of one bot's several processes; none for the plain `api_url`.
        self.posted_by: dict[str, str] = {}
        self.responses: list[Json] = []  # bodies POSTed to response_url, in order
        # Messages only one user sees: chat.postEphemeral, and ephemeral response_url
        # answers (those with "via": "response_url"), shown to whoever clicked.
        self.ephemerals: list[Json] = []
        self._clock = clock
        self._last_micros = 0
        self._channels: dict[str, SandboxChannel] = {}
        self._users: dict[str, Json] = {}
        self._usergroups: list[Json] = []
        self._messages: dict[str, list[Json]] = {}
        self._response_targets: dict[str, tuple[str | None, str | None, str | None]] = {}
        self._response_ids = itertools.count(1)
        self.files: dict[str, SharedFile] = {}  # by id, in the order uploads began
        self._file_ids = itertools.count(1)
        self._failures: dict[str, list[_Failure]] = {}
        self._hangs: dict[str, float] = {}
        # Slack's posting limit, answered with 429s; None (the default): no limit.
        self.flood: SlackFlood | None = None
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._methods: dict[str, Callable[[Json], Json]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._get_permalink,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "users.info": self._users_info,
            "reactions.add": self._reactions_add,
            "reactions.get": self._reactions_get,
            "usergroups.list": self._usergroups_list,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }
        self.add_user(bot_user_id, "chat-rescue", is_bot=True)

    # ---- lifecycle

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_route("*", "/as/{caller}/api/{method}", self._handle_api)
        app.router.add_post("/response/{response_id}", self._handle_response_url)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        self._stopping.clear()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}/"

    async def stop(self) -> None:
        """Release held-back answers and close the server."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackSandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:PORT/``."""
        if self._base_url is None:
            raise RuntimeError("SlackSandbox is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        """The Web API base for ``AsyncWebClient(base_url=...)``."""
        return f"{self.base_url}api/"

    def api_url_of(self, caller: str) -> str:
        """`api_url` for one of several processes of the bot: the messages they post are
        recorded with `caller` in `posted_by` (the same bot, token and workspace)."""
        return f"{self.base_url}as/{caller}/api/"

    # ---- state helpers for tests

    def add_channel(
        self,
        channel_id: str,
        name: str,
        members: Iterable[str] = (),
        *,
        is_private: bool = False,
        is_ext_shared: bool = False,
    ) -> SandboxChannel:
        """Create (or replace) a channel with the given members."""
        channel = SandboxChannel(channel_id, name, list(members), is_private, is_ext_shared)
        self._channels[channel_id] = channel
        return channel

    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        *,
        real_name: str | None = None,
        display_name: str | None = None,
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
    ) -> Json:
        """Register a user as ``users.info`` will describe it."""
        name = name or user_id.lower()
        user: Json = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name or name,
            "tz": "Etc/UTC",
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_bot": is_bot,
            **_USER_FLAGS,
            "updated": int(self._clock()),
            "profile": {
                "display_name": display_name if display_name is not None else name,
                "real_name": real_name or name,
                "team": self.team_id,
            },
        }
        self._users[user_id] = user
        return user

    def add_usergroup(self, group_id: str, handle: str, users: Iterable[str] = ()) -> Json:
        """Register a user group for ``usergroups.list``."""
        group: Json = {
            "id": group_id,
            "team_id": self.team_id,
            "is_usergroup": True,
            "name": handle,
            "handle": handle,
            "description": "",
            "users": list(users),
        }
        group["user_count"] = len(group["users"])
        self._usergroups.append(group)
        return group

    def channel(self, channel_id: str) -> SandboxChannel | None:
        """The channel with this id, if the sandbox knows it."""
        return self._channels.get(channel_id)

    def user(self, user_id: str) -> Json | None:
        """The ``users.info`` record of this user, if registered."""
        return self._users.get(user_id)

    def messages(self, channel: str, thread_ts: str | None = None) -> list[Json]:
        """Top-level messages of a channel, or only the replies in the thread ``thread_ts``."""
        stored = self._messages.get(channel, [])
        if thread_ts is None:
            return [m for m in stored if m["thread_ts"] in (None, m["ts"])]
        return [m for m in stored if m["thread_ts"] == thread_ts and m["ts"] != thread_ts]

    def message(self, channel: str, ts: str) -> Json | None:
        """The stored message with this ts in this channel, if any."""
        return next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)

    def calls_to(self, method: str) -> list[ApiCall]:
        """The recorded calls of one Web API method, in arrival order."""
        return [call for call in self.calls if call.method == method]

    def next_ts(self) -> str:
        """A fresh message ts like ``1700000000.000100``, strictly increasing."""
        micros = max(int(self._clock() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def response_url(self, channel: str | None = None, message_ts: str | None = None,
                     user: str | None = None) -> str:
        """A response_url on this sandbox; ``replace_original`` there edits that message, an
        ephemeral answer is shown to `user` (who clicked) in the message's channel."""
        response_id = f"R{next(self._response_ids):06d}"
        self._response_targets[response_id] = (channel, message_ts, user)
        return f"{self.base_url}response/{response_id}"

    def record_event(self, event: Json) -> None:
        """Mirror an event Slack is about to deliver: store messages, members, reactions."""
        kind, channel = event.get("type"), event.get("channel", "")
        known = self._channels.get(channel)
        if kind == "message" and "ts" in event and self.message(channel, event["ts"]) is None:
            self._store(channel, {k: v for k, v in event.items() if k not in _EVENT_ONLY})
        elif kind == "member_joined_channel" and known and event["user"] not in known.members:
            known.members.append(event["user"])
        elif kind == "member_left_channel" and known and event["user"] in known.members:
            known.members.remove(event["user"])
        elif kind == "reaction_added":
            item = event.get("item", {})
            target = self.message(item.get("channel", ""), item.get("ts", ""))
            if target is not None:
                _add_reaction(target, event["reaction"], event["user"])

    # ---- failure injection

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        count: int = 1,
        error: str | None = None,
    ) -> None:
        """Answer the next ``count`` calls of ``method`` (``"*"``: any) with an error."""
        code = error or ("ratelimited" if status == 429 else "fatal_error")
        after = retry_after if status == 429 else None
        self._failures.setdefault(method, []).append(_Failure(status, code, after, count))

    def hang(self, method: str, seconds: float) -> None:
        """Hold back answers to ``method`` (``"*"``: any) for ``seconds``; 0 clears it."""
        if seconds > 0:
            self._hangs[method] = seconds
        else:
            self._hangs.pop(method, None)

    def _take_failure(self, method: str) -> _Failure | None:
        for key in (method, "*"):
            queue = self._failures.get(key)
            if queue:
                failure = queue[0]
                failure.remaining -= 1
                if failure.remaining <= 0:
                    queue.pop(0)
                return failure
        return None

    # ---- HTTP glue

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        _CALLER.set(request.match_info.get("caller", ""))
        call = ApiCall(method, {})
        self.calls.append(call)
        try:
            call.params = await _read_params(request)
        except SlackError as exc:
            return _answer(call, {"ok": False, "error": exc.code})
        form_token = call.params.pop("token", None)  # never keep a secret in the record
        token = _bearer_token(request) or form_token
        delay = self._hangs.get(method, self._hangs.get("*", 0.0))
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():  # released by stop(): the outage never ended
                return _answer(call, {"ok": False, "error": "service_unavailable"}, status=503)
        failure = self._take_failure(method)
        if failure is not None:
            after = failure.retry_after
            headers = {} if after is None else {"Retry-After": str(after)}
            body = {"ok": False, "error": failure.error}
            return _answer(call, body, status=failure.status, headers=headers)
        channel = str(call.params.get("channel", ""))
        if self.flood is not None and token == self.bot_token and channel in self._channels:
            wait = self.flood.take(method, channel)
            if wait is not None:
                return _answer(call, {"ok": False, "error": "ratelimited"}, status=429,
                               headers={"Retry-After": str(wait)})
        return _answer(call, self._dispatch(method, token, call.params))

    def _dispatch(self, method: str, token: str | None, params: Json) -> Json:
        handler = self._methods.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != self.bot_token:
            return {"ok": False, "error": "invalid_auth"}
        try:
            return {"ok": True, **handler(params)}
        except SlackError as exc:
            return {"ok": False, "error": exc.code}

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append(body)
        channel, ts, user = self._response_targets.get(request.match_info["response_id"],
                                                       (None, None, None))
        if channel and ts and _truthy(body.get("replace_original")):
            stored = self.message(channel, ts)
            if stored is not None:
                stored.update(text=body.get("text", ""), blocks=body.get("blocks"))
        elif channel and ts and _truthy(body.get("delete_original")):
            self._messages[channel] = [m for m in self._messages[channel] if m["ts"] != ts]
        elif body.get("response_type") == "ephemeral" and channel and user:
            stored = self.message(channel, ts) if ts else None
            self.ephemerals.append({
                "channel": channel, "user": user, "ts": self.next_ts(),
                "thread_ts": (stored or {}).get("thread_ts"), "text": body.get("text", ""),
                "blocks": body.get("blocks"), "via": "response_url"})
        return web.Response(text="ok")

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """The upload URL files.getUploadURLExternal hands out: the file's bytes, raw or as
        a multipart form's one file, answered ``OK - <length>`` as Slack's file server does."""
        shared = self.files.get(request.match_info["file_id"])
        if shared is None:
            return web.Response(status=404, text="not found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            parts = [v for v in form.values() if isinstance(v, web.FileField)]
            content = parts[0].file.read() if parts else b""
        else:
            content = await request.read()
        shared.content = content
        return web.Response(text=f"OK - {len(content)}")

    def shared_files(self, channel: str | None = None) -> list[SharedFile]:
        """Files shared into channels (into `channel`, if given), in the order shared."""
        return [f for f in self.files.values()
                if f.channel is not None and (channel is None or f.channel == channel)]

    # ---- Web API methods (params in, response fields out)

    def _get_upload_url(self, params: Json) -> Json:
        name = str(params.get("filename") or "")
        try:
            length = int(params.get("length") or 0)
        except (TypeError, ValueError):
            length = 0
        if not name or length <= 0:
            raise SlackError("invalid_arguments")
        file_id = f"F{next(self._file_ids):08d}"
        self.files[file_id] = SharedFile(file_id, name, length)
        return {"upload_url": f"{self.base_url}upload/v1/{file_id}", "file_id": file_id}

    def _complete_upload(self, params: Json) -> Json:
        try:
            listed = json.loads(str(params.get("files") or ""))
        except ValueError as exc:
            raise SlackError("invalid_arguments") from exc
        if not isinstance(listed, list) or not listed:
            raise SlackError("invalid_arguments")
        channel = str(params.get("channel_id") or "")
        if channel and channel not in self._channels:
            raise SlackError("channel_not_found")
        thread_ts = str(params.get("thread_ts") or "") or None
        if thread_ts and self.message(channel, thread_ts) is None:
            raise SlackError("invalid_thread_ts")
        done = []
        for entry in listed:
            shared = self.files.get(str(entry.get("id", ""))) if isinstance(entry, dict) else None
            if shared is None or shared.content is None:
                raise SlackError("file_not_found")  # never uploaded to its URL
            shared.title = str(entry.get("title") or shared.name)
            done.append(shared)
        comment = str(params.get("initial_comment") or "")
        for shared in done:
            if channel:
                shared.channel, shared.thread_ts, shared.initial_comment = \
                    channel, thread_ts, comment
        if channel:  # the share shows as one message with its files
            self._store(channel, {
                "type": "message", "subtype": "file_share", "ts": self.next_ts(),
                "text": comment, "thread_ts": thread_ts, "user": self.bot_user_id,
                "bot_id": self.bot_id, "files": [{"id": f.id, "name": f.name} for f in done]})
        return {"files": [{"id": f.id, "title": f.title, "name": f.name, "size": f.length}
                          for f in done]}


    def _auth_test(self, params: Json) -> Json:
        return {
            "url": WORKSPACE_URL,
            "team": "Sandbox Workspace",
            "user": self._users[self.bot_user_id]["name"],
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def dm_channel(self, user_id: str) -> str:
        """The id of the app's direct-message channel with a user (made on first use)."""
        channel_id = "D" + user_id[1:]
        if channel_id not in self._channels:
            self.add_channel(channel_id, user_id, [self.bot_user_id, user_id])
        return channel_id

    def _post_message(self, params: Json) -> Json:
        if str(params.get("channel", "")) in self._users:  # a user id: their DM with the app
            params = {**params, "channel": self.dm_channel(str(params["channel"]))}
        channel = self._require_channel(params).id
        text, blocks = _require_content(params)
        message = {
            "type": "message",
            "ts": self.next_ts(),
            "text": text,
            "blocks": blocks,
            "thread_ts": params.get("thread_ts") or None,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": APP_ID,
            "team": self.team_id,
        }
        self._store(channel, message)
        if caller := _CALLER.get():
            self.posted_by[str(message["ts"])] = caller
        return {"channel": channel, "ts": message["ts"], "message": _public(message)}

    def _update(self, params: Json) -> Json:
        channel = self._require_channel(params).id
        message = self._require_message(channel, params.get("ts"))
        text, blocks = _require_content(params)
        if message.get("bot_id") != self.bot_id:
            raise SlackError("cant_update_message")
        message.update(text=text, blocks=blocks)
        message["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}
        return {"channel": channel, "ts": message["ts"], "text": text, "message": _public(message)}

    def _post_ephemeral(self, params: Json) -> Json:
        channel = self._require_channel(params)
        user = params.get("user")
        if not user or user not in channel.members:
            raise SlackError("user_not_in_channel")
        text, blocks = _require_content(params)
        ts = self.next_ts()
        thread_ts = params.get("thread_ts") or None
        ephemeral = {"channel": channel.id, "user": user, "ts": ts, "thread_ts": thread_ts}
        self.ephemerals.append({**ephemeral, "text": text, "blocks": blocks})
        return {"message_ts": ts}

    def _get_permalink(self, params: Json) -> Json:
        channel = str(params.get("channel", ""))
        message = self._require_message(channel, params.get("message_ts"))
        link = f"{WORKSPACE_URL}archives/{channel}/p{message['ts'].replace('.', '')}"
        if message["thread_ts"] not in (None, message["ts"]):
            link += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _conversations_info(self, params: Json) -> Json:
        channel = self._require_channel(params)
        info: Json = {
            "id": channel.id,
            "name": channel.name,
            "name_normalized": channel.name,
            "is_channel": not channel.is_private,
            "is_private": channel.is_private,
            "is_shared": channel.is_ext_shared,
            "is_ext_shared": channel.is_ext_shared,
            "is_member": self.bot_user_id in channel.members,
            **_CHANNEL_FLAGS,
            "created": 1700000000,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }
        if _truthy(params.get("include_num_members")):
            info["num_members"] = len(channel.members)
        return {"channel": info}

    def _conversations_members(self, params: Json) -> Json:
        members = self._require_channel(params).members
        try:
            limit = int(params.get("limit") or 100)
            cursor = str(params.get("cursor") or "")
            start = int(base64.b64decode(cursor).decode().removeprefix("offset:")) if cursor else 0
        except (ValueError, binascii.Error) as exc:
            raise SlackError("invalid_cursor") from exc
        limit = min(max(limit, 1), 1000)
        end = start + limit
        next_cursor = base64.b64encode(f"offset:{end}".encode()).decode()
        return {
            "members": members[start:end],
            "response_metadata": {"next_cursor": next_cursor if end < len(members) else ""},
        }

    def _users_info(self, params: Json) -> Json:
        user = self._users.get(str(params.get("user", "")))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user}

    def _reactions_add(self, params: Json) -> Json:
        message = self._require_message(str(params.get("channel", "")), params.get("timestamp"))
        name = str(params.get("name", "")).strip(":")
        if not name:
            raise SlackError("invalid_name")
        if not _add_reaction(message, name, self.bot_user_id):
            raise SlackError("already_reacted")
        return {}

    def _reactions_get(self, params: Json) -> Json:
        channel = str(params.get("channel", ""))
        message = self._require_message(channel, params.get("timestamp"))
        return {"type": "message", "channel": channel, "message": _public(message)}

    def _usergroups_list(self, params: Json) -> Json:
        with_users = _truthy(params.get("include_users"))
        return {
            "usergroups": [
                {k: v for k, v in g.items() if with_users or k != "users"} for g in self._usergroups
            ]
        }

    # ---- shared checks

    def _require_channel(self, params: Json) -> SandboxChannel:
        channel = self._channels.get(str(params.get("channel", "")))
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    def _require_message(self, channel: str, ts: Any) -> Json:
        message = self.message(channel, str(ts or ""))
        if message is None:
            known = channel in self._channels or channel in self._messages
            raise SlackError("message_not_found" if known else "channel_not_found")
        return message

    def _store(self, channel: str, message: Json) -> None:
        message.setdefault("text", "")
        message.setdefault("blocks", None)
        message.setdefault("thread_ts", None)
        stored = self._messages.setdefault(channel, [])
        stored.append(message)
        stored.sort(key=lambda m: _ts_key(m["ts"]))


async def _read_params(request: web.Request) -> Json:
    """Merge query string, form and JSON body, as Slack accepts all three."""
    params: Json = dict(request.query)
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise SlackError("invalid_json") from exc
        if not isinstance(body, dict):
            raise SlackError("invalid_json")
        params.update(body)
    elif request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in ("blocks", "attachments"):
        if isinstance(params.get(key), str):
            try:
                params[key] = json.loads(params[key])
            except ValueError as exc:
                raise SlackError(f"invalid_{key}") from exc
    return params


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _answer(
    call: ApiCall, body: Json, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    call.status = status
    call.error = None if body.get("ok") else str(body.get("error", "unknown"))
    return web.json_response(body, status=status, headers=headers)


def _require_content(params: Json) -> tuple[str, list[Any] | None]:
    text = str(params.get("text") or params.get("markdown_text") or "")
    blocks = params.get("blocks") or None
    if not text and not blocks and not params.get("attachments"):
        raise SlackError("no_text")
    return text, blocks


def _add_reaction(message: Json, name: str, user: str) -> bool:
    reactions: list[Json] = message.setdefault("reactions", [])
    entry = next((r for r in reactions if r["name"] == name), None)
    if entry is None:
        reactions.append({"name": name, "users": [user], "count": 1})
        return True
    if user in entry["users"]:
        return False
    entry["users"].append(user)
    entry["count"] += 1
    return True


def _public(message: Json) -> Json:
    """A stored message as the API shows it: no null fields."""
    return {k: v for k, v in message.items() if v is not None}


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)

"""Raw, malformed and forged requests to a bot's endpoints, and what the store held before
and after them — for the bad-input and access tests.

`SlackEventsClient` and the Telegram sandbox only make well-formed requests; here the body
is whatever bytes a test gives, signed (or not) the way Slack signs, or sent with (or
without) Telegram's webhook secret header. `snapshot` reads every table a request could
corrupt, so a test can say "nothing stored changed" in one comparison.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from chat_rescue.storage.sqlite import SQLiteStore

TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What a request may change; the outbox and inbound ids are bookkeeping, compared apart.
STATE_TABLES = ("conversations", "history", "settings", "aliases")


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`X-Slack-Signature` over the exact bytes of a body (which need not be UTF-8)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


async def post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
    """POST raw bytes with exactly these headers; (status, body text)."""
    # BytesIO: aiohttp warns about large raw bodies, and warnings are errors in the tests.
    async with aiohttp.ClientSession() as session, session.post(
        url, data=io.BytesIO(body), headers=dict(headers)
    ) as answer:
        return answer.status, await answer.text(errors="replace")


async def raw_get(port: int, target: bytes, headers: bytes = b"") -> int:
    """GET `target` (path and query, as bytes) from 127.0.0.1:`port` with `headers` as
    raw header lines, bytes no well-behaved client would send (not UTF-8, say); the status.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers
                     + b"Connection: close\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


async def slack_post(
    url: str,
    body: bytes,
    secret: str | None,
    *,
    content_type: str = "application/json",
    timestamp: str | int | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """POST to /slack/events signed with `secret` (None: no signature headers at all)."""
    sent = {"Content-Type": content_type, **(headers or {})}
    if secret is not None:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        sent["X-Slack-Request-Timestamp"] = stamp
        sent["X-Slack-Signature"] = slack_signature(secret, stamp, body)
    return await post(url, body, sent)


async def telegram_post(
    url: str, body: bytes, secret: str | None, *, content_type: str = "application/json"
) -> tuple[int, str]:
    """POST to /telegram/webhook with `secret` in the header (None: no header)."""
    sent = {"Content-Type": content_type}
    if secret is not None:
        sent[TELEGRAM_SECRET_HEADER] = secret
    return await post(url, body, sent)


def snapshot(store: SQLiteStore, tables: tuple[str, ...] = STATE_TABLES
             ) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of `tables`, in a stable order."""
    return {
        table: sorted(store.conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
        for table in tables
    }


def integrity(store: SQLiteStore) -> str:
    """SQLite's own verdict on the database file ("ok" when sound)."""
    return str(store.conn.execute("PRAGMA integrity_check").fetchone()[0])

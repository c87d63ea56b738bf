"""Telegram's limits, and every call the bot makes counted against them.

Telegram allows about 20 messages a minute in a group, about one a second in a private
chat, and about 30 a second in all. What counts is what puts a message in a chat: a send
or copy, and the service message that creating, renaming, closing or reopening a topic
leaves. Edits leave none and are only spaced out. The bot's HTTP requests are noted as
they succeed (`NotingRequest`), so a delivery that takes three calls (a new topic, its
card, the announcement) costs three, and answers to `/rescue` typed in the group count too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram.request import HTTPXRequest, RequestData

from chat_rescue.bot.pacing import Pace

log = logging.getLogger(__name__)

MESSAGES = frozenset({
    "sendmessage", "copymessage", "copymessages", "forwardmessage", "forwardmessages",
    "sendphoto", "senddocument", "sendvoice", "sendsticker", "sendvideo", "sendaudio",
    "sendanimation", "sendmediagroup",
    # topic service messages
    "createforumtopic", "editforumtopic", "closeforumtopic", "reopenforumtopic",
})  # fmt: skip
CALLS = frozenset({"editmessagetext", "editmessagereplymarkup", "deletemessage"})

# Telegram's 20 a minute less one: a call is noted when its answer arrives, after Telegram
# counted it, and a delivery of several messages waits for room for all of them; the one
# kept back is for a call Telegram carried out whose answer never came (a timeout). (A
# margin of two cost the copies of customers' messages 6.5 s at p99 in a group near its
# limit.)
GROUP_PACE = Pace(gap=1.0, count=19, period=60.0)
CHAT_PACE = Pace(gap=1.0)
BOT_PACE = Pace(count=25, period=1.0)  # all chats together: about 30 a second
# Messages of the group's window that renames leave to the customers' messages, cards and
# notices: a burst of status changes never makes a customer wait out a full window. A
# rename that waited RENAME_PATIENCE seconds, and opening or closing a topic, wait for room
# like any message; a waiting card update looks again every RECHECK seconds (its card is
# redrawn then, if the conversation moved on meanwhile).
RENAME_SPARE = 6
RENAME_PATIENCE = 120.0
RECHECK = 5.0

Noted = Callable[[str | int, bool], None]  # (chat id, put a message there)
RoomWait = Callable[[int, int], float]  # (messages, spare) -> seconds until the group has room


class NotingRequest(HTTPXRequest):
    """PTB's HTTP request that reports each call that went through to `noted`."""

    def __init__(self, noted: Noted, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.noted = noted

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(url, method, request_data, *args, **kwargs)
        name = url.rpartition("/")[2].lower()
        if 200 <= code < 300 and request_data is not None and (name in MESSAGES or
                                                               name in CALLS):
            chat = request_data.parameters.get("chat_id")
            try:  # the call went through: nothing here may make it look failed (and resent)
                if isinstance(chat, str | int):
                    self.noted(chat, name in MESSAGES)
            except Exception:
                log.exception("could not note a call to %s for pacing", name)
        return code, payload

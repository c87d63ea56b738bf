"""`/rescue report` on Telegram: the picture sent with sendPhoto (a multipart upload) into
the topic where it was asked, or General (sent without message_thread_id, as General
wants), its summary as the caption (at most 1,024 characters). A topic deleted while the
report was being made sends it to General instead."""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, RetryAfter, TelegramError

from chat_rescue.adapters.telegram.deliver import retry_seconds
from chat_rescue.adapters.telegram.topics import GONE, says
from chat_rescue.bot.report_text import caption
from chat_rescue.bot.service import Service
from chat_rescue.reports import posting
from chat_rescue.reports.making import Picture

log = logging.getLogger(__name__)


def _wait_asked(error: Exception) -> float | None:
    return retry_seconds(error) if isinstance(error, RetryAfter) else None


async def post_report(bot: Bot, service: Service, team: str, days: int, chat_id: int,
                      thread_id: int | None, reply_to: int | None = None,
                      name: Callable[[str], str] | None = None) -> None:
    """Send the report of the team's last `days` days (in reply to the command `reply_to`,
    if any); a short message there if it cannot."""

    where = thread_id

    async def send(picture: Picture) -> None:
        nonlocal where
        try:
            await bot.send_photo(
                chat_id, photo=picture.png, caption=caption(picture.text),
                message_thread_id=where, filename=f"rescue-report-{days}d.png",
                reply_parameters=None if reply_to is None or where != thread_id else
                ReplyParameters(reply_to, allow_sending_without_reply=True))
        except BadRequest as bad:
            if where is None or not says(bad, *GONE):
                raise  # a topic deleted since it was asked: General has it, and the rest
            log.info("the topic %s asked for a report is gone; posting it to General", where)
            where = None
            await send(picture)

    async def failed(text: str) -> None:
        nonlocal where
        try:
            await bot.send_message(chat_id, text, message_thread_id=where)
        except BadRequest as bad:
            if where is None or not says(bad, *GONE):
                raise
            where = None  # the topic is gone: the one who asked still hears why, in General
            await bot.send_message(chat_id, text)

    await posting.post_report(service, team, days, send, _wait_asked, failed, (TelegramError,),
                              name=name)

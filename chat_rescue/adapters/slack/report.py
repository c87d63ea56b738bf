"""`/rescue report` on Slack: the picture shared into the channel (or thread) where it was
asked, with files_upload_v2 (files.getUploadURLExternal, the bytes to the upload URL, then
files.completeUploadExternal; the retired files.upload is never used)."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from chat_rescue.adapters.slack.errors import retry_after
from chat_rescue.bot.service import Service
from chat_rescue.reports import posting
from chat_rescue.reports.making import Picture

ERRORS = (SlackApiError, SlackRequestError, aiohttp.ClientError, TimeoutError)


def _wait_asked(error: Exception) -> float | None:
    if isinstance(error, SlackApiError) and error.response.status_code == 429:
        return retry_after(error.response.headers)
    return None


async def post_report(client: AsyncWebClient, service: Service, team: str, days: int,
                      channel: str, thread_ts: str | None) -> None:
    """Share the report of the team's last `days` days into `channel` (`thread_ts`: that
    thread), its summary as the comment; a short message there if it cannot."""

    async def share(picture: Picture) -> None:
        await client.files_upload_v2(
            channel=channel, thread_ts=thread_ts, file=picture.png,
            filename=f"rescue-report-{days}d.png", title=f"Report, last {days} days",
            alt_txt=f"Charts of the last {days} days", initial_comment=picture.text)

    async def failed(text: str) -> None:
        await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)

    await posting.post_report(service, team, days, share, _wait_asked, failed, ERRORS)

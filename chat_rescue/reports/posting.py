"""Posting a report picture like a user expects: retried with backoff when the platform is
busy (its Retry-After honoured), and a short text when it cannot be posted, never nothing.

Each platform says how to post, how long a failure asks to wait (None: a plain failure,
backed off), and how to tell the channel it did not work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chat_rescue.bot.service import Service
from chat_rescue.reports import making
from chat_rescue.reports.making import Picture

log = logging.getLogger(__name__)

ATTEMPTS = 4
BACKOFF = (1.0, 3.0, 10.0)  # seconds before the 2nd, 3rd and 4th attempt
LONGEST_WAIT = 60.0  # a Retry-After beyond this is not waited for: the report is late
COULD_NOT = "Sorry, the report could not be posted here ({why}). Try /rescue report again later."
COULD_NOT_DRAW = "Sorry, the report could not be made ({why}). Try /rescue report again later."


async def post_report(service: Service, team: str, days: int,
                      post: Callable[[Picture], Awaitable[None]],
                      wait_asked: Callable[[Exception], float | None],
                      failed: Callable[[str], Awaitable[None]],
                      errors: tuple[type[Exception], ...],
                      sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                      name: Callable[[str], str] | None = None) -> bool:
    """Make the team's report and `post` it; True once posted. A failure in `errors` is
    tried again (after what `wait_asked` says, or the backoff); after the last attempt, or
    when the report cannot be made, `failed(text)` tells the channel."""
    try:
        picture = await making.make(service, team, days, name)
    except Exception as broken:  # noqa: BLE001 - the asker must hear of it, whatever it is
        log.exception("could not make the report of %s", team)
        await _tell(failed, COULD_NOT_DRAW.format(why=type(broken).__name__))
        return False
    why = ""
    for attempt in range(ATTEMPTS):
        try:
            await post(picture)
            return True
        except errors as error:
            asked = wait_asked(error)
            why = "the platform is busy" if asked is not None else str(error)[:120] or \
                type(error).__name__
            log.warning("posting the report of %s failed (attempt %d): %s", team,
                        attempt + 1, error)
            if attempt + 1 == ATTEMPTS or (asked is not None and asked > LONGEST_WAIT):
                break
            await sleep(asked if asked is not None else BACKOFF[attempt])
    await _tell(failed, COULD_NOT.format(why=why))
    return False


async def _tell(failed: Callable[[str], Awaitable[None]], text: str) -> None:
    try:
        await failed(text)
    except Exception:  # noqa: BLE001 - the platform is down: the log is all that is left
        log.exception("could not say that the report failed")

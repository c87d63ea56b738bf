"""How the bot answers `/rescue tune`: the window read on the store's thread, replayed in
the report's drawing process (a dozen replays are seconds of CPU: on the store's thread
they would stall every store call, in a thread of the bot's process they would hold the
interpreter's lock away from the event loop), the answer posted as the command's reply.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from chat_rescue.bot.bulk import no_collections
from chat_rescue.bot.inputs import Input
from chat_rescue.bot.model import HistoryEvent
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.bot.tune import sampler, tune
from chat_rescue.reports import making

log = logging.getLogger(__name__)

DAYS = 30
# What a replay and the facts read of history: the notices, their outcomes, the answers.
KINDS = ("nudged", "returned", "escalated", "reminded", "outcome", "first_reply", "reply",
         "closed")


@dataclass(frozen=True, slots=True)
class Window:
    """A team's recorded days, as read on the store's thread (picklable: it crosses to the
    replaying process)."""

    team: str
    days: int
    until: float
    inputs: list[Input]
    history: list[HistoryEvent]
    policies: dict[tuple[str, str], Policy]  # (platform, channel) -> its policy
    team_policy: Policy
    total: int  # conversations the window opened, before sampling

    def policy_of(self, item: Input) -> Policy:
        return self.policies[(item.event.ref.platform, item.event.ref.channel)]


def read(service: Service, team: str, days: int = DAYS) -> Window:
    """The team's last `days` days, sampled as `tune` would (store work: run it on the
    store's thread)."""
    until = service.clock.now()
    since = until - days * 86400
    store = service.store
    # Drawn by key before anything is decoded: only the sample's rows become objects here.
    total = store.openings(team, since)
    picks = sampler(total)
    with no_collections():
        taken = store.inputs(team, since, picks)
        history = store.history(team, since, KINDS, picks)
    policies = {}
    for item in taken:
        where = (item.event.ref.platform, item.event.ref.channel)
        if where not in policies:
            policies[where] = service.policy(team, item.event.ref)
    return Window(team, days, until, taken, history, policies, service.team_policy(team),
                  total)


def answer_of(window: Window) -> str:
    """The answer (CPU work, no store)."""
    with no_collections():
        return tune(window.inputs, window.history, window.policy_of, window.team_policy,
                    window.until, window.days, total=window.total)


_one_at_a_time = asyncio.Lock()  # a second tune waits: each reads 30 days on the store thread


async def answer(service: Service, team: str, days: int = DAYS) -> str:
    """`/rescue tune`'s answer for `team`, as the bot makes it (one tune at a time)."""
    async with _one_at_a_time:
        return await _answer(service, team, days)


async def _answer(service: Service, team: str, days: int) -> str:
    loop = asyncio.get_running_loop()
    window = await service.call(read, service, team, days)
    try:
        return await loop.run_in_executor(making.drawing_process(), answer_of, window)
    except (BrokenProcessPool, OSError) as broken:  # the process died or cannot start
        log.warning("tuning in this process: %s", broken)
        making.forget_drawing_process()
        return await loop.run_in_executor(None, answer_of, window)

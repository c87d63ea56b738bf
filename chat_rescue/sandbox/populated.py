"""A store filled the way a working day fills it, through the real service, engine,
commands and sweeper: for the tests of what copies a store from one backend to another
(`chat-rescue copy-db`) and of a bot that goes on where another left off.

A Friday at 17:45 in Berlin (hours mon–fri 09:00–18:00, sweep 15 minutes before the end):
conversations in every state on Slack and Telegram, their deadlines (some already due),
history, a team and a channel setting made by `/rescue set`, inbound ids and aliases,
queued outbox items (one leased by a sender, one settled so ids have moved on past the
highest left, one dead letter), a held request, and the sweep with its cards and items.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from chat_rescue.bot import commands
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    OperatorMessage,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import OutboxItem, Store
from chat_rescue.bot.service import Service
from chat_rescue.bot.sweep import Sweep
from chat_rescue.bot.sweeper import Sweeper

TEAM = "team-a"
OPERATORS = ("U0ANA", "U0BEN", "U0CAT")
CONVERSATIONS = 40


def berlin(text: str) -> float:
    """An instant given as Berlin wall-clock time (4 December 2026 is a Friday)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Berlin")).timestamp()


POLICY = Policy(schedule=from_environment("mon-fri 09:00-18:00", "Europe/Berlin", ""),
                sweep=900)
SWEEP_AT = berlin("2026-12-04 17:45")


def ref(n: int) -> ConversationRef:
    if n % 2:
        return ConversationRef("telegram", "-100777", f"{5000 + n}")
    return ConversationRef("slack", "C0HELP", f"17648{n:05d}.000{n % 7}00")


class FilledStore(Store, Protocol):
    """A store whose sweeps and outbox can be listed (every backend can; no port)."""

    def sweeps(self, team: str) -> list[Sweep]: ...
    def pending(self, limit: int) -> list[OutboxItem]: ...


def populate(store: FilledStore) -> FakeClock:
    """Fill `store` as described above; returns the clock, at the sweep's cards."""
    clock = FakeClock(berlin("2026-12-04 10:00"))
    service = Service(store, POLICY, clock)
    sweeper = Sweeper(store, service, clock)
    admin = commands.CommandContext(TEAM, ConversationRef("slack", "C0TEAM"), "U0ANA",
                                    is_admin=True)
    said = [commands.run("set idle 7m", admin, service)]
    channel = commands.CommandContext(TEAM, ref(0), "U0ANA", is_admin=True, intake=True)
    said.append(commands.run("set first_response 45s", channel, service))
    assert all("set" in answer.lower() or "now" in answer.lower() for answer in said), said
    for n in range(CONVERSATIONS):
        here, operator = ref(n), OPERATORS[n % len(OPERATORS)]
        service.handle(CustomerMessage(here, clock.now(), f"cust-{n}", f"help with {n}", TEAM),
                       inbound_id=f"Ev{n:04d}", aliases=(f"msg-{n}",))
        clock.t += 3.125
        if n % 5 == 1:
            service.handle(Claim(here, clock.now(), operator))
        elif n % 5 >= 2:
            service.handle(OperatorMessage(here, clock.now(), operator))
            clock.t += 0.5
            if n % 5 == 3:
                service.handle(CustomerMessage(here, clock.now(), f"cust-{n}", "and?", TEAM))
            elif n % 5 == 4:
                service.handle(Close(here, clock.now(), operator))
        clock.t += 61.75
    store.hold("telegram", "tg-update-901", '{"update_id": 901}', clock.now())
    sweeper.start()
    sweeper.fire_due(clock.now())  # plans the team's sweeps
    clock.t = SWEEP_AT
    while any(s.due is not None and s.due <= clock.now() for s in store.sweeps(TEAM)):
        sweeper.fire_due(clock.now())
    newest = max(item.id for item in store.pending(10_000))
    store.settle(newest)  # delivered: the highest id handed out is no longer in the outbox
    heads = store.heads("slack:", 3, clock.now())
    store.settle(heads[1].id, dead=True, error="channel_not_found")
    store.lease([heads[0].id], "replica-old:1", clock.now() + 60, clock.now())  # in flight
    return clock

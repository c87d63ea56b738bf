"""The ports now live in the core, in `chat_rescue.bot.ports`; this module re-exports them.

Backends implement the core's ports (and pass tests/storage/test_store_contract.py). New
code imports from `chat_rescue.bot.ports`; these names stay for code written against this
module.
"""

from __future__ import annotations

from typing import Protocol

from chat_rescue.bot.ports import (
    Batching,
    Change,
    Conversations,
    Deadlines,
    Held,
    Inbound,
    Locks,
    OutboxClaims,
    OutboxItem,
    OutboxSettling,
    Outcome,
    Reports,
    ScopeSettings,
    Store,
    SweepCards,
    SweepPlans,
    Teams,
)

__all__ = [
    "Batching",
    "Change",
    "Conversations",
    "Deadlines",
    "Held",
    "Inbound",
    "Locks",
    "OutboxClaims",
    "OutboxItem",
    "OutboxSettling",
    "Outcome",
    "Reports",
    "ScopeSettings",
    "Store",
    "SweepCards",
    "SweepPlans",
    "SweepStore",
    "Teams",
]


class SweepStore(SweepPlans, SweepCards, Teams, Locks, Protocol):
    """The sweep methods (and `lock`) under their old name: now the ports `SweepPlans`,
    `SweepCards`, `Teams` and `Locks`."""

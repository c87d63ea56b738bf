"""The narrow persistence port. Every backend passes tests/storage/test_store_contract.py."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from chat_rescue.bot.leader import Lock
from chat_rescue.bot.model import Action, Conversation, HandoverLine, HistoryEvent
from chat_rescue.bot.sweep import Phase, Sweep, SweepItem


class Outcome(Enum):
    """How a commit went."""

    COMMITTED = "committed"
    DUPLICATE = "duplicate"  # the inbound id was processed before: nothing written
    CONFLICT = "conflict"  # the conversation changed underneath: nothing written, retry


@dataclass(frozen=True, slots=True)
class Change:
    """Everything one inbound event writes, committed atomically or not at all.

    `expected_version` is the version the change was decided on (None: a new
    conversation), so a claim race between replicas yields one owner. `aliases` are
    (alias, conversation key) pairs: platform ids, such as a message in a conversation's
    thread, that `Store.resolve` leads back to the conversation.
    """

    conversation: Conversation | None = None
    expected_version: int | None = None
    history: tuple[HistoryEvent, ...] = ()
    actions: tuple[Action, ...] = ()
    inbound_id: str | None = None
    aliases: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A pending platform action; `lane` keeps one conversation's actions in order."""

    id: int
    lane: str
    action: Action
    not_before: float
    attempts: int
    was_leased: bool = False  # a worker that died or ran out of time had it in flight


@dataclass(frozen=True, slots=True)
class Held:
    """An inbound request acknowledged while it could not be handled yet (kept verbatim)."""

    id: int
    inbound_id: str
    body: str
    at: float


class SweepStore(Protocol):
    """A team's sweeps before its shifts end (`bot/sweeper.py`), their cards and items."""

    def plan_sweeps(self, team: str, sweeps: Sequence[Sweep], now: float) -> None:
        """Make `sweeps` the team's planned ones: add the new, bring those of the same id
        that are still planned up to date, forget the other planned ones, and call off
        those whose cards are out (or being drawn) for an end still to come that is no
        longer planned (the hours or `sweep` changed); one called off and planned again
        starts afresh. A planned one whose end has passed (the bot was down) stays, to be
        carried out; sweeps ending or ended are left alone."""

    def sweep(self, sweep_id: str) -> Sweep | None:
        """One sweep as it stands."""

    def sweeps(self, team: str) -> list[Sweep]:
        """A team's sweeps, by the instant their shifts end."""

    def due_sweeps(self, now: float, limit: int) -> list[Sweep]:
        """Sweeps whose next step is due at or before `now`, earliest first."""

    def advance_sweep(self, sweep: Sweep, phase: Phase) -> bool:
        """Move a sweep to `phase` (with its `opens_at`, `cursor`, `drawn_at`, `unowned`),
        if it is still at the version it was read at; False when another process moved it
        first (then nothing changed)."""

    def postpone_sweep(self, sweep_id: str, until: float) -> None:
        """Move the next step of a sweep whose step failed, so it neither spins nor blocks."""

    def add_sweep_card(self, sweep_id: str, operator: str) -> int:
        """The id of `operator`'s card in the sweep (made on first asking)."""

    def sweep_card(self, card_id: int) -> tuple[str, str] | None:
        """(sweep id, operator) of a card."""

    def sweep_cards(self, sweep_id: str) -> list[tuple[int, str]]:
        """(card id, operator) of each card of a sweep, in the order they were made."""

    def put_sweep_items(self, items: Sequence[SweepItem]) -> None:
        """Record the sweep's conversations (replacing what was recorded of each)."""

    def sweep_items(self, sweep_id: str, keys: Sequence[str] | None = None,
                    card: int | None = None) -> list[SweepItem]:
        """The sweep's conversations (only those of `keys`, or on `card`, if given), in the
        order they were last recorded."""

    def sweep_inbox(self, sweep_id: str) -> list[HandoverLine]:
        """The sweep's conversations handed over (or that nobody had) still in the inbox,
        unclaimed, as lines of its handover digest: oldest waiting first."""

    def lock(self, name: str) -> Lock:
        """The lock named `name` shared by every process on this store, for what only one
        of them may do at a time (`bot/leader.py`); let go when its holder dies."""

    def open_conversations(self, team: str, after: str, limit: int) -> list[Conversation]:
        """Up to `limit` of a team's conversations that are not closed, by key, from the
        first key past `after` (a sweep's step takes them a slice at a time)."""

    def teams(self) -> list[str]:
        """Every team that has conversations."""


class Store(SweepStore, Protocol):
    """Conversations with their deadlines, history, settings, outbox and seen inbound ids."""

    def load(self, key: str) -> Conversation | None:
        """The conversation with this key, if any."""

    def resolve(self, alias: str) -> str | None:
        """The conversation key a platform alias (card, topic, message) points at."""

    def commit(self, change: Change, now: float) -> Outcome:
        """Write a change atomically (conditional on the conversation's version)."""

    def attach(self, key: str, card: str, aliases: tuple[str, ...]) -> None:
        """Record the inbox card posted for a conversation and aliases that lead to it."""

    def next_deadline(self) -> float | None:
        """The earliest deadline of any conversation or step of a sweep."""

    def due(self, now: float, limit: int) -> list[tuple[str, float]]:
        """(key, deadline) of conversations due at or before `now`, earliest first."""

    def postpone(self, key: str, until: float) -> None:
        """Move a deadline whose handling failed, so it neither spins nor blocks others."""

    def commit_all(self, changes: Sequence[Change], now: float) -> bool:
        """Commit changes to known conversations (each with its expected version, no
        inbound id, no aliases) all together or not at all: False, with nothing written,
        when any of the conversations changed underneath (a slice of work then goes one by
        one). Raises ValueError for any other change."""

    def batch(self) -> AbstractContextManager[None]:
        """Group the commits inside into one transaction; each commit stays all-or-nothing."""

    def pending(self, limit: int) -> list[OutboxItem]:
        """Outbox items in the order they were queued."""

    def heads(self, prefix: str, limit: int, now: float) -> list[OutboxItem]:
        """The head (lowest priority, then oldest) of each lane starting with `prefix` that
        has no lease unexpired at `now`, in that order."""

    def next_lease_end(self, prefix: str, now: float) -> float | None:
        """When the first lease unexpired at `now` on lanes starting with `prefix` ends."""

    def lease(self, item_ids: Sequence[int], owner: str, until: float,
              now: float) -> list[int]:
        """Take items for `owner` until `until` before sending them; returns those taken
        (none of a lane in which another item is leased)."""

    def settle(self, item_id: int, *, retry_at: float | None = None, error: str = "",
               dead: bool = False, failed: bool = True,
               record: HistoryEvent | None = None) -> None:
        """Delivered or dropped (no arguments), to retry at `retry_at` (the lease ends), or
        given up (`dead`); `record` is written with it (why it was dropped).

        A retry counts as a failed attempt unless `failed=False` (a rate-limit wait).
        """

    def lease_holders(self, now: float) -> list[str]:
        """The workers holding unexpired leases."""

    def end_leases(self, owner: str) -> list[int]:
        """End the leases of a worker known to be dead (its items go to the next taker);
        returns those items."""

    def hurry(self, prefix: str) -> int:
        """Let the items of lanes starting with `prefix` that wait for a retry go now."""

    def outbox_mark(self) -> int:
        """The newest outbox id so far: what a card drawn now covers."""

    def supersede(self, lane: str, through: int, keep: int) -> int:
        """Forget the lane's unleased card updates up to id `through`, except `keep`."""

    def oldest_pending(self) -> float | None:
        """When the oldest action still waiting to be delivered was queued."""

    def settings(self, scope: str) -> dict[str, str]:
        """Stored `/rescue` settings for a scope (a team or a channel)."""

    def put_setting(self, scope: str, key: str, value: str, by: str, at: float) -> None:
        """Store one setting, replacing the previous value."""

    def drop_setting(self, scope: str, key: str) -> None:
        """Forget one setting, so the scope below's holds again (nothing if not stored)."""

    def history(self, team: str | None, since: float) -> list[HistoryEvent]:
        """Recorded transitions since `since`, for one team or all."""

    def open_keys(self, team: str) -> list[str]:
        """Keys of a team's conversations that are not closed."""

    def summary(self, team: str) -> tuple[int, int]:
        """(open, overdue) conversations of a team."""

    def prune(self, before: float) -> None:
        """Forget processed inbound ids recorded before `before`."""

    def hold(self, platform: str, inbound_id: str, body: str, at: float) -> None:
        """Keep a request to handle later; a second one with the same inbound id is ignored."""

    def held(self, platform: str, limit: int) -> list[Held]:
        """Held requests of a platform, in the order they arrived."""

    def release(self, held_id: int) -> None:
        """Forget a held request once it was handled."""

    def close(self) -> None:
        """Release the connection."""

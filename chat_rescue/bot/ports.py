"""The ports: what the core asks of persistence, as a few small protocols.

The core owns them; `storage/` implements them (SQLiteStore, and any other backend), and
every backend passes tests/storage/test_store_contract.py. Each consumer takes the ports it
uses (the ticker `Deadlines` and `Batching`, the outbox worker the outbox's and a little
more); `Store` is all of them, for what wires the bot together. Nothing here exists only
for tests: what they read besides is on the backends, outside the ports.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from chat_rescue.bot.inputs import Input
from chat_rescue.bot.leader import Lock
from chat_rescue.bot.model import Action, Conversation, HandoverLine, HistoryEvent
from chat_rescue.bot.report import Tallies
from chat_rescue.bot.sweep import Phase, Sweep, SweepItem

__all__ = [
    "Batching",
    "Census",
    "Change",
    "Conversations",
    "Deadlines",
    "Held",
    "Inbound",
    "Intent",
    "Locks",
    "OutboxClaims",
    "OutboxItem",
    "OutboxSettling",
    "Outcome",
    "Presence",
    "Reports",
    "ScopeSettings",
    "Store",
    "SweepCards",
    "SweepPlans",
    "Teams",
    "Wakeups",
]


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
    thread, that `Conversations.resolve` leads back to the conversation.
    """

    conversation: Conversation | None = None
    expected_version: int | None = None
    history: tuple[HistoryEvent, ...] = ()
    actions: tuple[Action, ...] = ()
    inbound_id: str | None = None
    aliases: tuple[tuple[str, str], ...] = ()
    inputs: tuple[Input, ...] = ()


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


@dataclass(frozen=True, slots=True)
class Intent:
    """What one event of a batch will read and record: its conversation's key, and its
    inbound id (if any) with when it came."""

    key: str
    inbound_id: str | None = None
    at: float = 0.0


class GroupRefused(Exception):
    """A batch told its events' intents failed for something one of them holds, not known
    which (a value the server refuses, a deadlock with another replica's group): each
    event run alone, only that one fails. Any other failure of a batch (the store out of
    reach) is the whole group's, and running its events one by one would only repeat it."""


class Batching(Protocol):
    """Several writes, through any of the ports, as one transaction."""

    def batch(self, intents: Sequence[Intent] = ()) -> AbstractContextManager[None]:
        """Make every write inside one transaction: all of it is kept when the block ends,
        none of it when the block raises. A commit inside that does not go through
        (duplicate, conflict) writes nothing and undoes none of the others; a batch inside
        a batch is part of the outer one (its `intents` are not looked at).

        `intents`: the events the batch is for (group commit), so a store on a server can
        read and lock their conversations and record their inbound ids in one go at the
        start, and write their changes in one go at the end, rather than a few round trips
        for each. What the callers see is the same either way; a batch with `intents`
        that fails for what one of its events holds raises GroupRefused."""

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once what this thread wrote so far is committed: when its
        batch commits (never, if the batch rolls back), or at once outside a batch (each
        write there commits on its own). What counts a commit (the metrics) counts it so
        once, however the batch around it ends."""


class Conversations(Protocol):
    """Conversations by key: read, found by a platform alias, changed conditionally."""

    def load(self, key: str) -> Conversation | None:
        """The conversation with this key as last committed (with its version), if any."""

    def resolve(self, alias: str) -> str | None:
        """The conversation key a platform alias (card, topic, message) points at; an alias
        written again points at the conversation it was written for last."""

    def commit(self, change: Change, now: float) -> Outcome:
        """Write a change atomically, all of it or nothing.

        DUPLICATE when its inbound id was seen before; CONFLICT when the conversation is
        not at `expected_version` (or, expected None, exists already); in both nothing is
        written. COMMITTED: the conversation is stored (a new one as given, an update with
        its version bumped by one), its history recorded, its actions queued at `now`, its
        inbound id seen at `now` and its aliases written. A change without a conversation
        writes the rest alone.
        """

    def commit_all(self, changes: Sequence[Change], now: float) -> bool:
        """Commit changes to known conversations (each with its expected version, no
        inbound id, no aliases) all together or not at all: False, with nothing written,
        when any of the conversations changed underneath (a slice of work then goes one by
        one). Raises ValueError for any other change."""

    def attach(self, key: str, card: str, aliases: tuple[str, ...]) -> None:
        """Record the inbox card posted for a conversation, bumping its version (a change
        decided before cannot erase the card), and aliases that lead to it."""


class Deadlines(Protocol):
    """The one deadline each conversation (and each sweep's next step) may have."""

    def next_deadline(self) -> float | None:
        """The earliest deadline of any conversation or step of a sweep (None: none)."""

    def due(self, now: float, limit: int) -> list[Conversation]:
        """Up to `limit` conversations whose deadline is at or before `now`, earliest first,
        as they are now: inside a batch, claimed for it (another process's `due` passes over
        them until it ends) and read in it, so they can be handled without reading again."""

    def postpone(self, key: str, until: float) -> None:
        """Move a deadline whose handling failed to `until`, so it neither spins nor blocks
        others."""


class OutboxClaims(Protocol):
    """What may be sent, taken with a lease before it is sent.

    A lane is one conversation's actions for one audience, and its order holds across
    workers: a lane with an unexpired lease on any item offers none of its items.
    """

    def heads(self, prefix: str, limit: int, now: float) -> list[OutboxItem]:
        """The head (lowest priority, then oldest) of each lane starting with `prefix` that
        has no lease unexpired at `now`, in that order, up to `limit`; whatever their
        `not_before`."""

    def next_lease_end(self, prefix: str, now: float) -> float | None:
        """When the first lease unexpired at `now` on lanes starting with `prefix` ends
        (None: no such lease)."""

    def lease(self, item_ids: Sequence[int], owner: str, until: float,
              now: float) -> list[int]:
        """Take items for `owner` until `until` before sending them; returns those taken,
        in the order asked. An item is not taken while any item of its lane (itself
        included) has a lease unexpired at `now`."""

    def lease_holders(self, now: float) -> list[str]:
        """The workers holding leases unexpired at `now`."""

    def end_leases(self, owner: str) -> list[int]:
        """End the leases of a worker known to be dead, so its items go to the next taker
        (marked `was_leased`: they may have been sent); returns those items."""

    def hurry(self, prefix: str) -> int:
        """Let the items of lanes starting with `prefix` that wait for a retry go now;
        returns how many."""


class Presence(Protocol):
    """Whether the outbox worker that holds a lease still lives, as every process on this
    store can tell: a dead one's leases are ended at once, not waited out."""

    def present(self, owner: str) -> Lock:
        """The lock `owner` holds for as long as it lives (taken before it leases anything
        under that name); let go when its process dies or loses the store."""

    def gone(self, owners: Sequence[str]) -> list[str]:
        """Those of `owners` known to be dead (a live one, or one that cannot be judged, is
        not among them: its leases are waited for until they run out)."""


class OutboxSettling(Protocol):
    """How a taken item ended, and what is still waiting."""

    def settle(self, item_id: int, *, retry_at: float | None = None, error: str = "",
               dead: bool = False, failed: bool = True,
               record: HistoryEvent | None = None) -> None:
        """Delivered or dropped (no arguments), to retry at `retry_at` (the lease ends), or
        given up (`dead`: kept as a dead letter with `error`); `record` is written with it
        (why it was dropped).

        A retry counts as a failed attempt unless `failed=False` (a rate-limit wait).
        """

    def outbox_mark(self) -> int:
        """A mark of the items whose queuing has committed by now, for `supersede`: a card
        drawn after it shows their changes. (One writer: the highest id queued, 0 when
        none. Several: ids are not in commit order, and the mark says so.)"""

    def supersede(self, lane: str, through: int, keep: int) -> int:
        """Forget the lane's card updates that the mark `through` covers, except `keep`,
        that hold no lease (one whose lease merely ran out may be on its way, and stays);
        returns how many were forgotten. One committed after the mark stays."""

    def oldest_pending(self) -> float | None:
        """When (the `now` of its commit) the oldest action still waiting to be delivered
        was queued; None when none waits."""


class Census(Protocol):
    """What is open and what waits, counted in one grouped query each: where the metrics'
    gauges start from, and what corrects them now and then (other replicas' commits)."""

    def open_counts(self) -> dict[tuple[str, str], int]:
        """(platform, state) to how many conversations are in that state (closed ones are
        not counted); a pair with none is absent."""

    def outbox_counts(self) -> dict[str, tuple[int, float]]:
        """Platform to (how many actions wait to be delivered on its lanes, when the oldest
        of them was queued); a platform with none waiting is absent."""


class ScopeSettings(Protocol):
    """The `/rescue` settings stored per scope (a team or a channel)."""

    def settings(self, scope: str) -> dict[str, str]:
        """The scope's stored settings, key to value, verbatim (empty when none)."""

    def put_setting(self, scope: str, key: str, value: str, by: str, at: float, *,
                    announce: bool = True) -> None:
        """Store one setting, replacing the previous value. Not to `announce`: a note that
        no process derives anything from (the other processes are not told of it)."""

    def drop_setting(self, scope: str, key: str) -> None:
        """Forget one setting, so the scope below's holds again (nothing if not stored)."""


class Reports(Protocol):
    """What happened, for `/rescue stats`, `/rescue status` and `chat-rescue stats`."""

    def history(self, team: str | None, since: float,
                kinds: Collection[str] | None = None,
                only: Callable[[str], bool] | None = None) -> list[HistoryEvent]:
        """Transitions recorded at or after `since`, for one team or all, of the `kinds`
        given (all without), in the order they were recorded; `only`: of the conversation
        keys it accepts (the others are never decoded)."""

    def inputs(self, team: str | None, since: float,
               only: Callable[[str], bool] | None = None) -> list[Input]:
        """The people's events recorded at or after `since` (for replays), for one team or
        all, in the order they were recorded; `only`: of the conversation keys it accepts
        (the others are never decoded)."""

    def tallies(self, team: str, since: float, until: float) -> Tallies:
        """A team's history from `since` to `until` (both included), counted as a report
        needs it (`bot/report.py`): counts by kind, and each first reply."""

    def openings(self, team: str, since: float) -> int:
        """How many conversations had an exchange begin at or after `since` (recorded
        openings; a reopened conversation is counted once): what a sample is drawn from."""

    def summary(self, team: str) -> tuple[int, int]:
        """(open, overdue) conversations of a team: open is not closed, overdue is open with
        a nudge standing (`nudged_at` set) or escalated (`escalations` above 0)."""


class Teams(Protocol):
    """Which teams there are, and each team's conversations that are not closed."""

    def teams(self) -> list[str]:
        """Every team that has conversations, each once."""

    def open_keys(self, team: str) -> list[str]:
        """Keys of a team's conversations that are not closed, in key order (the order
        a transaction that changes them all locks them in)."""

    def open_conversations(self, team: str, after: str, limit: int) -> list[Conversation]:
        """Up to `limit` of a team's conversations that are not closed, by key, from the
        first key past `after` (a sweep's step takes them a slice at a time)."""

    def longest_waiting(self, team: str, limit: int) -> list[Conversation]:
        """Up to `limit` of a team's conversations that are not closed: first those whose
        customer waits on us, longest waiting first (`waiting_since`), then the others, the
        longest silent first (`last_operator_at`); the queue page shows them so."""


class Inbound(Protocol):
    """Platform requests: the ids already processed, and those held to handle later."""

    def prune(self, before: float) -> None:
        """Forget processed inbound ids seen before `before` (a commit with one of them
        goes through again)."""

    def hold(self, platform: str, inbound_id: str, body: str, at: float) -> None:
        """Keep a request to handle later; a second one with the same inbound id is ignored."""

    def held(self, platform: str, limit: int) -> list[Held]:
        """Up to `limit` held requests of a platform, in the order they arrived."""

    def release(self, held_id: int) -> None:
        """Forget a held request once it was handled."""


class Locks(Protocol):
    """Locks every process on one store shares, for what only one may do at a time."""

    def lock(self, name: str) -> Lock:
        """The lock named `name` shared by every process on this store (`bot/leader.py`);
        let go when its holder dies."""


class Wakeups(Protocol):
    """Word of what the other processes on this store committed, so that nobody waits for
    its next look at the store (which stays, as a fallback) to learn of it."""

    def listen(self, deadline: Callable[[float], None], outbox: Callable[[str], None],
               missed: Callable[[], None], settings: Callable[[], None] = lambda: None
               ) -> None:
        """Start calling `deadline(at)` when another process committed a deadline at `at`
        (or ended a transaction holding due ones: they may be due here now), `outbox(
        platform)` when it queued actions for `platform`'s lanes, `settings()` when it
        changed settings (what this process derived from them is stale), and `missed()`
        each time listening (re)starts, as what was said before may have been missed. The calls come
        from a thread of the store's own: hand them over to the event loop. A store no
        other process shares never calls them."""

    def stop_listening(self) -> None:
        """Stop those calls; none is under way once this returns."""


class SweepPlans(Protocol):
    """A team's sweeps before its shifts end (`bot/sweeper.py`) and their steps."""

    def plan_sweeps(self, team: str, sweeps: Sequence[Sweep], now: float) -> None:
        """Make `sweeps` the team's planned ones: add the new, bring those of the same id
        that are still planned up to date, forget the other planned ones, and call off
        those whose cards are out (or being drawn) for an end still to come that is no
        longer planned (the hours or `sweep` changed); one called off and planned again
        starts afresh. A planned one whose end has passed (the bot was down) stays, to be
        carried out; sweeps ending or ended are left alone."""

    def sweep(self, sweep_id: str) -> Sweep | None:
        """One sweep as it stands."""

    def due_sweeps(self, now: float, limit: int) -> list[Sweep]:
        """Up to `limit` sweeps whose next step is due at or before `now`, earliest first."""

    def advance_sweep(self, sweep: Sweep, phase: Phase) -> bool:
        """Move a sweep to `phase` (with its `opens_at`, `cursor`, `drawn_at`, `unowned`),
        if it is still at the version it was read at; False when another process moved it
        first (then nothing changed)."""

    def postpone_sweep(self, sweep_id: str, until: float) -> None:
        """Move the next step of a sweep whose step failed to `until`, so it neither spins
        nor blocks."""


class SweepCards(Protocol):
    """A sweep's cards (one per operator) and the conversations it sorted."""

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


class Store(Conversations, Deadlines, OutboxClaims, OutboxSettling, Presence, ScopeSettings,
            Reports, Teams, Inbound, Locks, Wakeups, SweepPlans, SweepCards, Batching, Census,
            Protocol):
    """Every port, on one connection: what wires the bot together (`Service`, the runtime)
    and what a backend implements."""

    # The exceptions by which the backend says the store itself failed (not the work
    # given to it): what is kept and tried again later, never dropped as a bad event.
    errors: tuple[type[Exception], ...]

    def close(self) -> None:
        """Release the connection."""

"""Applies inbound events: load, decide, and commit state, history and outbox at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

from chat_rescue.bot import engine
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.inputs import record_of
from chat_rescue.bot.metrics import Metrics
from chat_rescue.bot.model import (
    Action,
    Conversation,
    ConversationRef,
    CustomerMessage,
    DeadlineDue,
    HistoryEvent,
    HoursChanged,
    InboundEvent,
    Refused,
)
from chat_rescue.bot.policy import Policy, resolve
from chat_rescue.bot.ports import Change, Intent, Outcome, Store
from chat_rescue.bot.queue_links import QueueLinks
from chat_rescue.bot.worker import StoreWorker

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5

T = TypeVar("T")


def team_scope(team: str) -> str:
    return f"team:{team}"


def channel_scope(ref: ConversationRef) -> str:
    return f"channel:{ref.platform}:{ref.channel}"


class Service:
    """The one path by which anything changes a conversation.

    `handle` is synchronous on purpose: nothing awaits between reading a
    conversation and committing its change, and the store's conditional update
    covers other processes. The event loop runs it, and all other store work, on the
    store's thread (`call`, `submit`), and is woken by the listeners from there.
    """

    def __init__(
        self,
        store: Store,
        base_policy: Policy,
        clock: Clock,
        *,
        preview_chars: int = 80,
        queue_links: QueueLinks | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics(clock, process=False)
        self.base_policy = base_policy
        self.clock = clock
        self.preview_chars = preview_chars
        self.queue_links = queue_links  # signs `/rescue queue`'s links (None: no secret)
        self._policies: dict[tuple[str, str], Policy] = {}
        self.worker = StoreWorker(store)
        self.worker.on_group_failed = lambda outcome: self.metrics.group_failed(outcome)
        self._deadline_listeners: list[Callable[[float], None]] = []
        self._outbox_listeners: list[Callable[[tuple[Action, ...]], None]] = []
        self._team_listeners: list[Callable[[str, bool], None]] = []
        self._elsewhere_listeners: list[Callable[[], None]] = []

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run store work, `fn(*args, **kwargs)`, on the store's thread; await its result."""
        return await self.worker.call(fn, *args, **kwargs)

    def on_deadline(self, listener: Callable[[float], None]) -> None:
        """Call `listener(at)`, on the event loop, whenever a conversation gets a deadline
        (the ticker's wake-up)."""
        self._deadline_listeners.append(listener)

    def on_outbox(self, listener: Callable[[tuple[Action, ...]], None]) -> None:
        """Call `listener(actions)`, on the event loop, whenever actions were queued (the
        outbox's wake-up)."""
        self._outbox_listeners.append(listener)

    def on_team(self, listener: Callable[[str, bool], None]) -> None:
        """Call `listener(team, changed)`, in the transaction, when a team's settings
        changed (`changed`) or it opened a conversation: the sweeps' planner (its shifts
        may end at other times)."""
        self._team_listeners.append(listener)

    def scheduled(self, at: float) -> None:
        """Something other than a conversation got a deadline at `at` (a sweep's next step):
        wake the ticker for it."""
        self._wake_deadline(at)

    def team_policy(self, team: str) -> Policy:
        """The team's own policy (no channel's overrides): what its sweeps follow."""
        key = (team, "")
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = resolve(
                self.base_policy, self.store.settings(team_scope(team)), {})
        return policy

    def policy(self, team: str, ref: ConversationRef) -> Policy:
        """The policy in force for a conversation of `team` in `ref`'s channel."""
        key = (team, channel_scope(ref))
        policy = self._policies.get(key)
        if policy is None:
            policy = resolve(
                self.base_policy,
                self.store.settings(team_scope(team)),
                self.store.settings(key[1]),
            )
            self._policies[key] = policy
        return policy

    def on_settings_elsewhere(self, listener: Callable[[], None]) -> None:
        """Call `listener()`, on the store's thread, when another process changed settings
        (or word of it may have been missed): what this one derived from them is stale."""
        self._elsewhere_listeners.append(listener)

    def forget_policies(self) -> None:
        """Settings changed elsewhere (another replica): derive the policies afresh, and
        tell the `on_settings_elsewhere` listeners."""
        self._policies.clear()
        for listener in self._elsewhere_listeners:
            listener()

    def settings_changed(self, team: str) -> int:
        """After `/rescue set`: forget cached policies and move the team's open deadlines.

        A deadline that the new policy puts in the past fires now. Returns how many
        conversations were looked at. (Changing the hours goes through
        `changing_settings`, so the timers keep the working time they used.)
        """
        self._policies.clear()
        keys = self.store.open_keys(team)
        with self.store.batch():  # one transaction: 10,000 open conversations take ~0.3 s
            for key in keys:
                self.handle(DeadlineDue(ConversationRef.parse(key), self.clock.now()))
            for listener in self._team_listeners:
                listener(team, True)
        return len(keys)

    @contextmanager
    def changing_settings(self, team: str) -> Iterator[None]:
        """Around writing a team's settings (or one of its channels'): in one transaction,
        note the hours each open conversation's timers count in, let the caller write,
        then move the deadlines. A timer keeps the working time it used under the old
        hours and counts the rest in the new ones; one the new policy puts in the past
        fires now."""
        with self.store.batch():
            keys = self.store.open_keys(team)
            old = {key: self.policy(team, ConversationRef.parse(key)).schedule for key in keys}
            yield
            self._policies.clear()
            now = self.clock.now()
            for key, schedule in old.items():
                self.handle(HoursChanged(ConversationRef.parse(key), now, schedule))
            for listener in self._team_listeners:  # the sweeps follow the new hours
                listener(team, True)

    def handle(
        self,
        event: InboundEvent,
        *,
        inbound_id: str | None = None,
        extra_actions: Iterable[Action] = (),
        aliases: Iterable[str] = (),
        read: Conversation | None = None,
    ) -> engine.Decision | None:
        """Apply one event; None when `inbound_id` was processed before.

        `aliases` (platform ids of the event's message) are recorded as leading to the
        event's conversation, in the same transaction, if that conversation exists.
        `read`: the conversation as the caller just read it in this transaction (a sweep's
        slice), so it is not read again; a conflict reads it afresh all the same.
        """
        if isinstance(event, CustomerMessage):
            clipped = preview(event.text, self.preview_chars)
            named = storable(event.customer)  # a name is stored as it is
            if clipped != event.text or named != event.customer:
                event = replace(event, text=clipped, customer=named)
        extra = tuple(extra_actions)
        names = tuple(aliases)
        for _ in range(MAX_ATTEMPTS):
            now = self.clock.now()
            if read is not None and read.ref.key != event.ref.key:
                raise ValueError(f"read {read.ref.key} for an event of {event.ref.key}")
            conv = read if read is not None else self.store.load(event.ref.key)
            read = None
            team = conv.team if conv else getattr(event, "team", "default")
            decision = engine.decide(conv, event, self.policy(team, event.ref), now)
            change = Change(
                conversation=decision.conversation,
                expected_version=conv.version if conv else None,
                history=decision.history,
                actions=tuple(a for a in decision.actions if not _answered_on_press(a))
                + extra,
                inbound_id=inbound_id,
                aliases=tuple((name, event.ref.key) for name in names)
                if conv is not None or decision.conversation is not None else (),
                inputs=record_of(event, team, now, conv, decision.refusal is not None)
                if conv is not None or decision.conversation is not None else (),
            )
            if change.conversation is None and not change.actions and inbound_id is None \
                    and not change.aliases and not change.inputs:
                return decision
            outcome = self.store.commit(change, now)
            if outcome is Outcome.DUPLICATE:
                log.info("skipped %s: already processed", inbound_id)
                return None
            if outcome is Outcome.COMMITTED:
                self._count(event, conv, decision.conversation, decision.history,
                            change.actions, now)
                self._notify(decision, change.actions)
                return decision
            log.info("conversation %s changed underneath; deciding again", event.ref.key)
        raise RuntimeError(f"could not apply {type(event).__name__} to {event.ref.key}")

    def handle_all(self, events: Sequence[tuple[InboundEvent, Conversation]]
                   ) -> list[engine.Decision | None]:
        """Apply events to conversations the caller just read in this transaction (a
        sweep's or the ticker's slice), committed together: one statement for the lot
        instead of several for each. If any changed underneath, they go one by one, as
        `handle` does. Returns each event's decision, in order."""
        now = self.clock.now()
        decisions: list[engine.Decision | None] = []
        decided: list[tuple[engine.Decision, Change, InboundEvent, Conversation]] = []
        for event, conv in events:
            if conv.ref.key != event.ref.key:
                raise ValueError(f"read {conv.ref.key} for an event of {event.ref.key}")
            decision = engine.decide(conv, event, self.policy(conv.team, event.ref), now)
            actions = tuple(a for a in decision.actions if not _answered_on_press(a))
            if decision.conversation is None:
                # nothing to write but what to say: the ordinary way
                decisions.append(self.handle(event, read=conv) if actions else decision)
                continue
            decisions.append(decision)
            decided.append((decision, Change(
                decision.conversation, conv.version, decision.history, actions,
                inputs=record_of(event, conv.team, now, conv, decision.refusal is not None)),
                event, conv))
        if self.store.commit_all([change for _, change, _, _ in decided], now):
            for decision, change, event, conv in decided:
                self._count(event, conv, change.conversation, change.history,
                            change.actions, now)
                self._notify(decision, change.actions)
            return decisions
        again = {change.conversation.ref.key for _, change, _, _ in decided
                 if change.conversation is not None}
        # one changed underneath: each on its own
        return [self.handle(event) if event.ref.key in again else decision
                for (event, _), decision in zip(events, decisions, strict=True)]

    def queue(self, actions: Iterable[Action], *, inbound_id: str | None = None) -> bool:
        """Queue actions that change no conversation (the copy of an edited message), with
        `inbound_id` recorded; False when it was processed before (nothing queued)."""
        queued = tuple(actions)
        now = self.clock.now()
        outcome = self.store.commit(Change(actions=queued, inbound_id=inbound_id), now)
        if outcome is Outcome.DUPLICATE:
            log.info("skipped %s: already processed", inbound_id)
            return False
        self.store.after_commit(partial(self.metrics.queued, queued, now))
        self._wake_outbox(queued)
        return True

    async def submit(
        self,
        event: InboundEvent,
        *,
        inbound_id: str | None = None,
        extra_actions: Iterable[Action] = (),
        aliases: Iterable[str] = (),
    ) -> engine.Decision | None:
        """`handle` on the store's thread, group-committed: events waiting together share
        one transaction (each still all-or-nothing). Returns once the commit is durable,
        so an adapter that acknowledges after awaiting this never acknowledges a loss.
        """
        started = time.perf_counter()  # real time, whatever the bot's clock says
        try:
            return await self.worker.call(
                self.handle, event, inbound_id=inbound_id, extra_actions=tuple(extra_actions),
                aliases=tuple(aliases), grouped=True,
                intent=Intent(event.ref.key, inbound_id, self.clock.now()))
        finally:
            self.metrics.handled(event, time.perf_counter() - started)

    def _count(self, event: InboundEvent, before: Conversation | None,
               after: Conversation | None, history: Sequence[HistoryEvent],
               actions: Sequence[Action], now: float) -> None:
        """The metrics of a commit, once its transaction commits: inside a batch (a group,
        the ticker's slice, a sweep's step) COMMITTED is said before the batch ends, which
        may roll it back (and a failed group runs its events again)."""
        self.store.after_commit(partial(self.metrics.committed, event, before, after,
                                        history, actions, now))

    def _notify(self, decision: engine.Decision, queued: tuple[Action, ...]) -> None:
        conv = decision.conversation
        if conv is not None and conv.deadline is not None:
            self._wake_deadline(conv.deadline)
        if conv is not None and self._team_listeners \
                and any(h.kind == "opened" for h in decision.history):
            for team_listener in self._team_listeners:
                team_listener(conv.team, False)
        if queued:
            self._wake_outbox(queued)

    def _wake_deadline(self, at: float) -> None:
        for listener in self._deadline_listeners:
            self.worker.post(partial(listener, at))

    def _wake_outbox(self, queued: tuple[Action, ...]) -> None:
        for listener in self._outbox_listeners:
            self.worker.post(partial(listener, queued))


_CONTROLS = dict.fromkeys([*range(0x20), 0x7F], " ")


def storable(text: str) -> str:
    """`text` as every store can keep it: control characters as spaces (PostgreSQL's text
    refuses a NUL), a lone surrogate (valid in the platforms' JSON, not in UTF-8) as "?".
    Either would fail the customer's message on every delivery of it."""
    text = text.translate(_CONTROLS)
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _answered_on_press(action: Action) -> bool:
    """A refusal of a button press is answered on the press itself by the adapter: queued,
    it would only take a slot of the team channel's pacing."""
    return isinstance(action, Refused) and action.via == "button"


def preview(text: str, limit: int) -> str:
    """The short card preview: the only message text the store keeps (`storable`)."""
    flat = " ".join(storable(text).split())
    if len(flat) <= limit:
        return flat
    return flat[: max(0, limit - 1)].rstrip() + "…" if limit else ""

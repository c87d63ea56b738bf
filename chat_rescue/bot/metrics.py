"""The bot's metrics for Prometheus, on a registry of its own (one per running bot).

The service, the ticker and the outbox workers call plain methods here as they commit,
fire and deliver; nothing is counted on a scrape. What is "current" (open conversations,
the outbox's depth and its oldest item) starts from one grouped count on the store's
thread (`recount`), follows this process's own commits by their deltas, and is counted
afresh now and then (`RECOUNT`, `OUTBOX_RECOUNT`), because other replicas on the same
store commit too. No label carries a conversation, a channel or a person.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chat_rescue.bot.clock import Clock, SystemClock
from chat_rescue.bot.model import (
    Action,
    CloseReason,
    Conversation,
    HandOff,
    HistoryEvent,
    InboundEvent,
    ShiftEnd,
    State,
    Timer,
    lane_of,
)
from chat_rescue.bot.ports import Census

__all__ = ["OUTBOX_RECOUNT", "RECOUNT", "Metrics", "kind_of", "timer_of"]

RECOUNT = 60.0  # real seconds between counts of the open conversations
OUTBOX_RECOUNT = 10.0  # and of the outbox (small: only what still waits is in it)
RETURN_REASONS = ("timer", "hand_off", "shift_end")
OPEN_STATES = tuple(state.value for state in State if state is not State.CLOSED)
# Seconds: a deadline fires within milliseconds when all is well; minutes mean trouble.
LATENESS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            300.0)
HANDLING = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def kind_of(thing: object) -> str:
    """An event's or action's kind as a label: `CustomerMessage` -> `customer_message`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(thing).__name__).lower()


def timer_of(history: Sequence[HistoryEvent]) -> str:
    """Which timer a fired deadline was, by what its firing recorded (`stale` when nothing
    was due any more: the conversation had moved on)."""
    kinds = {event.kind for event in history}
    if "closed" in kinds:
        return "auto_close"
    if "returned" in kinds:
        return "escalate" if "escalated" in kinds else "first_response"
    if "escalated" in kinds:
        return "accept"
    if "nudged" in kinds:
        return "idle"
    if "reminded" in kinds:
        return "close_reminder"
    return "stale"


def _platform_of(action: Action) -> str:
    return lane_of(action).split(":", 1)[0]


class _Current(Collector):
    """The gauges kept in memory, read on a scrape without touching the store."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.Lock()  # deltas come from the store's thread, scrapes from the loop
        self.platforms: set[str] = set()
        self.open: dict[tuple[str, str], int] = {}
        self.depth: dict[str, int] = {}
        self.oldest: dict[str, float] = {}  # platform -> when its oldest waiting item was queued
        self.overdue: Callable[[], float] = lambda: 0.0

    def collect(self) -> Iterator[Metric]:
        now = self.clock.now()
        with self.lock:
            open_ = dict(self.open)
            depth, oldest = dict(self.depth), dict(self.oldest)
            platforms = sorted(self.platforms | {p for p, _ in open_} | set(depth))
        conversations = GaugeMetricFamily(
            "chat_rescue_open_conversations",
            "Conversations not closed, by state and platform (the store's, counted by this "
            "replica: take max across replicas).", labels=["state", "platform"])
        for platform in platforms:
            for state in OPEN_STATES:
                conversations.add_metric([state, platform], open_.get((platform, state), 0))
        yield conversations
        waiting = GaugeMetricFamily("chat_rescue_outbox_depth",
                                    "Actions waiting to be delivered, by platform.",
                                    labels=["platform"])
        age = GaugeMetricFamily(
            "chat_rescue_outbox_oldest_pending_age_seconds",
            "How long the oldest action still waiting has waited, by platform (0: none).",
            labels=["platform"])
        for platform in platforms:
            waiting.add_metric([platform], depth.get(platform, 0))
            since = oldest.get(platform)
            age.add_metric([platform], max(0.0, now - since) if since is not None else 0.0)
        yield waiting
        yield age
        yield GaugeMetricFamily(
            "chat_rescue_deadline_overdue_seconds",
            "How far past its time the earliest deadline this replica's ticker is due to "
            "fire is (0: nothing due). Grows while the ticker is stuck or dead.",
            value=self.overdue())


GROUP_OUTCOMES = ("one_by_one", "one_refused", "whole")


class Metrics:
    """Every metric of one running bot, on `registry` (with the client's process, platform
    and garbage-collector collectors in it unless `process=False`)."""

    def __init__(self, clock: Clock | None = None, *, process: bool = True) -> None:
        self.registry = registry = CollectorRegistry()
        if process:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)  # registers nothing off CPython
        self._current = _Current(clock or SystemClock())
        registry.register(self._current)
        self.deadlines_fired = Counter(
            "chat_rescue_deadlines_fired", "Deadlines the ticker fired, by timer.",
            ["timer"], registry=registry)
        self.lateness = Histogram(
            "chat_rescue_deadline_lateness_seconds",
            "How long after its deadline each fired deadline fired.",
            buckets=LATENESS, registry=registry)
        self.inbound = Counter(
            "chat_rescue_inbound_events", "Events from the platforms, by platform and kind.",
            ["platform", "kind"], registry=registry)
        self.handling = Histogram(
            "chat_rescue_handling_seconds",
            "From an event's hand-over to its durable commit (or its refusal), by platform.",
            ["platform"], buckets=HANDLING, registry=registry)
        self.deliveries = Counter(
            "chat_rescue_deliveries",
            "Deliveries to the platforms, by platform, method (what was delivered) and "
            "outcome (ok, retried, rate_limited, dead, dropped).",
            ["platform", "method", "outcome"], registry=registry)
        self.nudges = Counter("chat_rescue_nudges", "Owners nudged, by platform.",
                              ["platform"], registry=registry)
        self.returns = Counter(
            "chat_rescue_returns",
            "Conversations returned to the inbox, by platform and reason (timer, hand_off, "
            "shift_end).", ["platform", "reason"], registry=registry)
        self.escalations = Counter("chat_rescue_escalations",
                                   "Operators called in (escalations), by platform.",
                                   ["platform"], registry=registry)
        self.closes = Counter("chat_rescue_closes",
                              "Conversations closed, by platform and reason.",
                              ["platform", "reason"], registry=registry)
        self.group_failures = Counter(
            "chat_rescue_group_failures",
            "Groups of events whose shared transaction failed, by what followed: "
            "one_by_one (run again event by event), one_refused (a group of one event, "
            "refused for what it held), whole (the store out of reach).",
            ["outcome"], registry=registry)
        for outcome in GROUP_OUTCOMES:  # shown at 0 before the first
            self.group_failures.labels(outcome)

    # -- set-up ----------------------------------------------------------------

    def expect(self, platforms: Iterable[str]) -> None:
        """Show these platforms' series (at 0) before anything happened on them, so that
        `rate()` and `increase()` see their first increase."""
        names = list(platforms)
        with self._current.lock:
            self._current.platforms.update(names)
        for timer in (*(timer.value for timer in Timer), "stale"):
            self.deadlines_fired.labels(timer)
        for platform in names:
            self.nudges.labels(platform)
            self.escalations.labels(platform)
            for why in RETURN_REASONS:
                self.returns.labels(platform, why)
            for reason in CloseReason:
                self.closes.labels(platform, reason.value)

    def watch_ticker(self, overdue: Callable[[], float]) -> None:
        """Read `overdue()` (seconds) on each scrape for `chat_rescue_deadline_overdue_seconds`."""
        self._current.overdue = overdue

    def recount(self, store: Census, *, conversations: bool = True) -> None:
        """On the store's thread: count what is open (unless `conversations=False`) and
        what waits in the outbox afresh, replacing what the deltas made of them."""
        open_ = store.open_counts() if conversations else None
        outbox = store.outbox_counts()
        current = self._current
        with current.lock:
            if open_ is not None:
                current.open = dict(open_)
            current.depth = {platform: n for platform, (n, _) in outbox.items()}
            current.oldest = {platform: at for platform, (_, at) in outbox.items()}

    # -- what the service commits ---------------------------------------------------

    def committed(self, event: InboundEvent | None, before: Conversation | None,
                  after: Conversation | None, history: Sequence[HistoryEvent],
                  actions: Sequence[Action], now: float) -> None:
        """A change committed (`after` None: the conversation untouched): move the gauges
        and count its nudges, returns, escalations and closes."""
        self._moved(before, after if after is not None else before)
        for record in history:
            platform = record.ref.platform
            if record.kind == "nudged":
                self.nudges.labels(platform).inc()
            elif record.kind == "returned":
                reason = "shift_end" if record.detail == "shift_end" or isinstance(
                    event, ShiftEnd) else "hand_off" if isinstance(event, HandOff) else "timer"
                self.returns.labels(platform, reason).inc()
            elif record.kind == "escalated":
                self.escalations.labels(platform).inc()
            elif record.kind == "closed":
                self.closes.labels(platform, record.detail or "unknown").inc()
        if actions:
            self.queued(actions, now)

    def _moved(self, before: Conversation | None, after: Conversation | None) -> None:
        was = _open_slot(before)
        now = _open_slot(after)
        if was == now:
            return
        current = self._current
        with current.lock:
            if was is not None:
                current.open[was] = max(0, current.open.get(was, 0) - 1)
            if now is not None:
                current.open[now] = current.open.get(now, 0) + 1

    def queued(self, actions: Sequence[Action], now: float) -> None:
        """Actions were queued (committed) at `now`."""
        current = self._current
        with current.lock:
            for action in actions:
                platform = _platform_of(action)
                current.depth[platform] = current.depth.get(platform, 0) + 1
                current.oldest.setdefault(platform, now)

    # -- what the ticker and the outbox do ----------------------------------------

    def group_failed(self, outcome: str) -> None:
        """A group commit's transaction failed, and then `outcome` (GROUP_OUTCOMES)."""
        self.group_failures.labels(outcome).inc()

    def fired(self, timer: str, late: float) -> None:
        """The ticker fired a deadline of `timer`, `late` seconds after it was due."""
        self.deadlines_fired.labels(timer).inc()
        self.lateness.observe(max(0.0, late))

    def handled(self, event: InboundEvent, seconds: float) -> None:
        """An event from a platform was handled (committed, or found a duplicate)."""
        platform = event.ref.platform
        self.inbound.labels(platform, kind_of(event)).inc()
        self.handling.labels(platform).observe(seconds)

    def delivered(self, platform: str, method: str, outcome: str, n: int = 1) -> None:
        """A delivery (or `n`) ended with `outcome`."""
        self.deliveries.labels(platform, method, outcome).inc(n)

    def left(self, platform: str, n: int = 1) -> None:
        """`n` actions left the outbox (delivered, dropped, dead, superseded)."""
        if n <= 0:
            return
        current = self._current
        with current.lock:
            depth = max(0, current.depth.get(platform, 0) - n)
            current.depth[platform] = depth
            if depth == 0:
                current.oldest.pop(platform, None)


def _open_slot(conv: Conversation | None) -> tuple[str, str] | None:
    if conv is None or conv.state is State.CLOSED:
        return None
    return conv.ref.platform, conv.state.value

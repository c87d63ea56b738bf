"""What the queue page shows: each team's open conversations (who has them, since when,
coloured by how they stand), its newest events and today's first response, read from the
store in one job and turned into the page's JSON.

Only the card preview of a conversation is shown, never other message text: the store
keeps none, and nothing here reads any. Reading is capped per team (`ROWS` longest
waiting, and how many more), so a large team costs the page one bounded query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from chat_rescue.bot.model import Conversation, HistoryEvent, State
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.report import Tallies
from chat_rescue.bot.stats import percentile

ROWS = 200  # conversations shown per team, the longest waiting
EVENTS = 12  # newest history events shown per team
RECENT = 600.0  # seconds of history read for them first (a busy team has enough there)


class Shown(StrEnum):
    """A row's colour on the page."""

    WAITING = "waiting"  # in the inbox, nobody has it
    OVERDUE = "overdue"  # a nudge stands, or operators were called in
    WITH_OPERATOR = "with_operator"  # claimed, or the customer wrote and the owner is on it
    WAITING_ON_CUSTOMER = "waiting_on_customer"  # the operator spoke last


def shown(conv: Conversation) -> Shown:
    """How a conversation stands for the page; overdue as `/rescue status` counts it."""
    if conv.nudged_at is not None or conv.escalations > 0:
        return Shown.OVERDUE
    if conv.state is State.QUEUED or conv.owner is None:
        return Shown.WAITING
    if conv.state is State.WAITING_ON_CUSTOMER:
        return Shown.WAITING_ON_CUSTOMER
    return Shown.WITH_OPERATOR


def since(conv: Conversation) -> float:
    """When the time shown beside a row started: the customer's oldest unanswered message
    (or the queueing), or, when the operator spoke last, that."""
    if conv.state is State.WAITING_ON_CUSTOMER and conv.last_operator_at is not None:
        return conv.last_operator_at
    for start in (conv.waiting_since, conv.queued_at, conv.timer_from or None):
        if start is not None:
            return start
    return conv.opened_at


@dataclass(frozen=True, slots=True)
class Row:
    """One open conversation as the page lists it."""

    key: str
    platform: str
    customer: str
    owner: str | None
    shown: Shown
    state: State
    since: float
    preview: str
    escalations: int


@dataclass(frozen=True, slots=True)
class TeamQueue:
    """One team's part of the page. `within_target` is the share of today's first
    responses no longer than the team's `first_response` (None: no target, or none yet)."""

    team: str
    rows: tuple[Row, ...]
    open: int
    overdue: int
    events: tuple[HistoryEvent, ...]  # newest first
    answered_today: int
    first_response_p50: float | None
    target: float | None
    within_target: float | None

    @property
    def more(self) -> int:
        """Open conversations not listed (past the cap)."""
        return max(0, self.open - len(self.rows))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The page's data at `at`."""

    at: float
    teams: tuple[TeamQueue, ...]

    def people(self) -> set[tuple[str, str]]:
        """(platform, user id) of everybody the page names, to look their names up."""
        found: set[tuple[str, str]] = set()
        for team in self.teams:
            for row in team.rows:
                found.add((row.platform, row.customer))
                if row.owner:
                    found.add((row.platform, row.owner))
            found.update((e.ref.platform, e.actor) for e in team.events if e.actor)
        return found


class QueueStore(Protocol):
    """The store reads a snapshot needs (ports `Teams` and `Reports`)."""

    def teams(self) -> list[str]: ...
    def longest_waiting(self, team: str, limit: int) -> list[Conversation]: ...
    def summary(self, team: str) -> tuple[int, int]: ...
    def history(self, team: str | None, since: float) -> list[HistoryEvent]: ...
    def tallies(self, team: str, since: float, until: float) -> Tallies: ...


def read(store: QueueStore, policy: Callable[[str], Policy], teams: Sequence[str] | None,
         now: float, rows: int = ROWS, events: int = EVENTS) -> Snapshot:
    """The snapshot of `teams` (None: every team); one store job, on the store's thread."""
    chosen = sorted(store.teams()) if teams is None else list(teams)
    return Snapshot(now, tuple(_team(store, team, policy(team), now, rows, events)
                               for team in chosen))


def _team(store: QueueStore, team: str, policy: Policy, now: float, limit: int,
          events: int) -> TeamQueue:
    open_, overdue = store.summary(team)
    # Every poll of every screen is a job on the store's thread, which customers' messages
    # wait behind: today's first replies come counted (one small row each), and the
    # newest events from the last minutes, the whole day only when those are too few.
    midnight = start_of_day(now, policy.schedule.zone)
    waits = [wait for _, _, _, wait in store.tallies(team, midnight, now).first_replies]
    latest = store.history(team, max(midnight, now - RECENT)) if events else []
    if len(latest) < events:
        latest = store.history(team, midnight)
    target = policy.first_response
    within = (sum(w <= target for w in waits) / len(waits)
              if waits and target is not None else None)
    return TeamQueue(
        team=team,
        rows=tuple(_row(conv) for conv in store.longest_waiting(team, limit)),
        open=open_,
        overdue=overdue,
        events=tuple(reversed(latest[-events:])) if events else (),
        answered_today=len(waits),
        first_response_p50=percentile(waits, 50),
        target=target,
        within_target=within,
    )


def _row(conv: Conversation) -> Row:
    return Row(conv.ref.key, conv.ref.platform, conv.customer, conv.owner, shown(conv),
               conv.state, since(conv), conv.preview, conv.escalations)


def start_of_day(now: float, zone: str) -> float:
    """Midnight of `now`'s day in `zone` (the team's), as epoch seconds."""
    local = datetime.fromtimestamp(now, ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


Names = Callable[[str, str], str]  # (platform, user id) -> what to show


def as_json(snapshot: Snapshot, name: Names) -> dict[str, object]:
    """The page's data: times as epoch seconds (the page ticks them itself), people by
    name. Nothing but these fields leaves: no message text besides the preview."""
    return {
        "at": snapshot.at,
        "teams": [{
            "team": team.team,
            "open": team.open,
            "overdue": team.overdue,
            "more": team.more,
            "answered_today": team.answered_today,
            "first_response_p50": team.first_response_p50,
            "first_response_target": team.target,
            "within_target": team.within_target,
            "rows": [{
                "key": row.key,
                "customer": name(row.platform, row.customer),
                "owner": name(row.platform, row.owner) if row.owner else None,
                "shown": row.shown.value,
                "state": row.state.value,
                "since": row.since,
                "preview": row.preview,
                "escalations": row.escalations,
            } for row in team.rows],
            "events": [{
                "kind": event.kind,
                "at": event.at,
                "who": name(event.ref.platform, event.actor) if event.actor else None,
                "detail": event.detail,
            } for event in team.events],
        } for team in snapshot.teams],
    }

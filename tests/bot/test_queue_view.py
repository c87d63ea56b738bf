"""The queue page's snapshot: colours by state, the longest waiting first and capped, today's
first response against the target, the newest events, and no text beyond the preview."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from chat_rescue.bot import queue_view
from chat_rescue.bot.hours import Schedule
from chat_rescue.bot.model import Conversation, ConversationRef, HistoryEvent, State
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.ports import Change
from chat_rescue.bot.queue_view import Shown, as_json, read, shown, start_of_day
from chat_rescue.storage.sqlite import SQLiteStore

NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()
TEAM = "slack:C0TEAM"
POLICY = Policy(first_response=30.0)


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    opened = SQLiteStore("sqlite://")
    yield opened
    opened.close()


def conv(n: int, state: State = State.QUEUED, team: str = TEAM, **fields: object
         ) -> Conversation:
    ref = ConversationRef("slack", "C0HELP", f"17000000{n:02d}.0001")
    base = Conversation(ref, team, f"U0CUST{n}", NOON - 600, state=state,
                        preview=f"order {n} is late", timer_from=NOON - 600)
    return replace(base, **fields)  # type: ignore[arg-type]


def put(store: SQLiteStore, *convs: Conversation, history: tuple[HistoryEvent, ...] = ()
        ) -> None:
    for c in convs:
        store.commit(Change(c), NOON)
    if history:
        store.commit(Change(history=history), NOON)


def reply(n: int, at: float, waited: float, kind: str = "first_reply") -> HistoryEvent:
    return HistoryEvent(conv(n).ref, TEAM, kind, at, "U0ANNA", waited)


@pytest.mark.parametrize(("given", "colour"), [
    (conv(1), Shown.WAITING),
    (conv(1, State.QUEUED, owner=None, queued_at=NOON - 5), Shown.WAITING),
    (conv(1, State.CLAIMED, owner="U0ANNA"), Shown.WITH_OPERATOR),
    (conv(1, State.WAITING_ON_OPERATOR, owner="U0ANNA", waiting_since=NOON), Shown.WITH_OPERATOR),
    (conv(1, State.WAITING_ON_CUSTOMER, owner="U0ANNA"), Shown.WAITING_ON_CUSTOMER),
    (conv(1, State.WAITING_ON_OPERATOR, owner="U0ANNA", nudged_at=NOON), Shown.OVERDUE),
    (conv(1, State.QUEUED, escalations=1), Shown.OVERDUE),
])
def test_each_state_has_its_colour(given: Conversation, colour: Shown) -> None:
    assert shown(given) is colour


def test_rows_list_waiting_customers_longest_first_with_owner_and_since(
        store: SQLiteStore) -> None:
    put(store,
        conv(1, waiting_since=NOON - 60),
        conv(2, State.WAITING_ON_CUSTOMER, owner="U0BOB", last_operator_at=NOON - 500),
        conv(3, State.WAITING_ON_OPERATOR, owner="U0ANNA", waiting_since=NOON - 300,
             nudged_at=NOON - 10),
        conv(4, State.CLOSED),
        conv(5, team="slack:C0ELSE", waiting_since=NOON - 900))
    snapshot = read(store, lambda team: POLICY, [TEAM], NOON)
    [team] = snapshot.teams
    assert [(r.customer, r.owner, r.shown, r.since) for r in team.rows] == [
        ("U0CUST3", "U0ANNA", Shown.OVERDUE, NOON - 300),
        ("U0CUST1", None, Shown.WAITING, NOON - 60),
        ("U0CUST2", "U0BOB", Shown.WAITING_ON_CUSTOMER, NOON - 500),
    ]
    assert (team.open, team.overdue, team.more) == (3, 1, 0)


def test_a_large_team_is_capped_and_says_how_many_more(store: SQLiteStore) -> None:
    put(store, *(conv(n, waiting_since=NOON - n) for n in range(1, 31)))
    [team] = read(store, lambda team: POLICY, [TEAM], NOON, rows=10).teams
    assert len(team.rows) == 10 and team.more == 20
    assert team.rows[0].customer == "U0CUST30"  # the longest waiting


def test_every_team_is_shown_when_none_is_named(store: SQLiteStore) -> None:
    put(store, conv(1), conv(2, team="telegram:-1001"))
    snapshot = read(store, lambda team: POLICY, None, NOON)
    assert [t.team for t in snapshot.teams] == [TEAM, "telegram:-1001"]


def test_todays_first_response_p50_and_share_within_target(store: SQLiteStore) -> None:
    yesterday = start_of_day(NOON, "UTC") - 60
    put(store, conv(1), history=(
        reply(1, yesterday, 999.0),  # not today's
        reply(2, NOON - 50, 10.0), reply(3, NOON - 40, 20.0), reply(4, NOON - 30, 45.0),
        reply(5, NOON - 20, 300.0, kind="reply"),  # a later reply is no first response
    ))
    [team] = read(store, lambda team: POLICY, [TEAM], NOON).teams
    assert team.answered_today == 3
    assert team.first_response_p50 == 20.0
    assert team.within_target == pytest.approx(2 / 3)
    assert team.target == 30.0


def test_today_is_the_teams_own_day(store: SQLiteStore) -> None:
    # 12:00 UTC is 01:00 the next day in Auckland: the morning's replies were "yesterday".
    put(store, conv(1), history=(reply(2, NOON - 3 * 3600, 10.0), reply(3, NOON - 60, 50.0)))
    far = replace(POLICY, schedule=Schedule(zone="Pacific/Auckland"))
    [team] = read(store, lambda team: far, [TEAM], NOON).teams
    assert team.answered_today == 1 and team.first_response_p50 == 50.0


def test_without_a_target_or_replies_there_is_no_share(store: SQLiteStore) -> None:
    put(store, conv(1), history=(reply(2, NOON - 50, 10.0),))
    [team] = read(store, lambda team: replace(POLICY, first_response=None), [TEAM], NOON).teams
    assert team.within_target is None and team.first_response_p50 == 10.0
    [empty] = read(store, lambda team: POLICY, ["slack:C0NONE"], NOON).teams
    assert (empty.rows, empty.answered_today, empty.within_target) == ((), 0, None)


def test_the_newest_events_come_first_and_are_capped(store: SQLiteStore) -> None:
    put(store, conv(1), history=tuple(
        HistoryEvent(conv(1).ref, TEAM, kind, NOON - 100 + i, "U0ANNA")
        for i, kind in enumerate(["opened", "claimed", "nudged", "snoozed", "closed"])))
    [team] = read(store, lambda team: POLICY, [TEAM], NOON, events=3).teams
    assert [e.kind for e in team.events] == ["closed", "snoozed", "nudged"]


def test_the_json_names_people_and_carries_no_text_but_the_preview(store: SQLiteStore) -> None:
    put(store, conv(1, State.CLAIMED, owner="U0ANNA", waiting_since=NOON - 30),
        history=(HistoryEvent(conv(1).ref, TEAM, "claimed", NOON - 20, "U0ANNA"),))
    snapshot = read(store, lambda team: POLICY, [TEAM], NOON)
    assert snapshot.people() == {("slack", "U0CUST1"), ("slack", "U0ANNA")}
    names = {"U0ANNA": "anna", "U0CUST1": "Customer One"}
    data = as_json(snapshot, lambda platform, user: names.get(user, user))
    row = data["teams"][0]["rows"][0]  # type: ignore[index]
    assert (row["customer"], row["owner"], row["shown"]) == ("Customer One", "anna",
                                                             "with_operator")
    assert data["teams"][0]["events"][0]["who"] == "anna"  # type: ignore[index]
    text = json.dumps(data)
    assert "order 1 is late" in text  # the card preview
    assert set(row) == {"key", "customer", "owner", "shown", "state", "since", "preview",
                        "escalations"}


class Watched:
    """The store, and the moments each history read began at."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.since: list[float] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def history(self, team: str | None, since: float) -> list[HistoryEvent]:
        self.since.append(since)
        return self.store.history(team, since)


def test_a_busy_team_reads_minutes_of_history_and_a_quiet_one_its_day(
        store: SQLiteStore) -> None:
    put(store, conv(1), history=tuple(
        HistoryEvent(conv(1).ref, TEAM, "nudged", NOON - 3 * 3600 + i, "U0ANNA")
        for i in range(3)))
    quiet = Watched(store)
    [team] = read(quiet, lambda team: POLICY, [TEAM], NOON).teams  # type: ignore[arg-type]
    assert [e.kind for e in team.events] == ["nudged"] * 3  # hours ago, still today's news
    assert quiet.since == [NOON - queue_view.RECENT, start_of_day(NOON, "UTC")]
    put(store, history=tuple(HistoryEvent(conv(1).ref, TEAM, "snoozed", NOON - 60 + i, "U0ANNA")
                             for i in range(queue_view.EVENTS)))
    busy = Watched(store)
    [team] = read(busy, lambda team: POLICY, [TEAM], NOON).teams  # type: ignore[arg-type]
    assert [e.kind for e in team.events] == ["snoozed"] * queue_view.EVENTS
    assert busy.since == [NOON - queue_view.RECENT]  # the day's rows were not read

"""Figures from history: percentiles, outcomes, rescues, and the table that shows them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from chat_rescue.bot.engine import decide
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.model import (
    Close,
    CloseReason,
    ConversationRef,
    CustomerMessage,
    HistoryEvent,
    OperatorMessage,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.stats import Stats, outcome, percentile, render, summarize

T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 0, 7.0),
        ([7.0], 50, 7.0),
        ([7.0], 100, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 90, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.0),  # order does not matter
        ([float(v) for v in range(1, 11)], 50, 5.0),
        ([float(v) for v in range(1, 11)], 90, 9.0),
        ([float(v) for v in range(1, 11)], 91, 10.0),
        ([float(v) for v in range(1, 11)], 100, 10.0),
        ([float(v) for v in range(1, 11)], 0, 1.0),
        ([5.0, 5.0, 5.0, 100.0], 50, 5.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_percentile_leaves_its_input_alone() -> None:
    values = [3.0, 1.0, 2.0]
    percentile(values, 50)
    assert values == [3.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ([], "not answered yet"),
        (["opened"], "not answered yet"),
        (["opened", "claimed"], "not answered yet"),
        (["opened", "first_reply"], "answered in time"),
        (["opened", "first_reply", "nudged", "reply"], "nudged"),
        (["opened", "first_reply", "nudged", "returned"], "returned to inbox"),
        (["opened", "escalated", "first_reply", "nudged", "returned"], "operators called in"),
        (["opened", "returned", "escalated"], "operators called in"),
    ],
)
def test_outcome_is_the_worst_thing_that_happened(kinds: list[str], expected: str) -> None:
    assert outcome(kinds) == expected


def ev(n: int, kind: str, at: float, value: float | None = None) -> HistoryEvent:
    return HistoryEvent(ConversationRef("slack", "C1", f"t{n}"), "team-a", kind, T0 + at, None,
                        value)


DAY = [
    # 1: answered in time
    ev(1, "opened", 0), ev(1, "claimed", 5, 5), ev(1, "first_reply", 20, 20), ev(1, "closed", 60),
    # 2: nudged, then the owner replies: a rescue
    ev(2, "opened", 0), ev(2, "first_reply", 10, 10), ev(2, "nudged", 400, 300),
    ev(2, "reply", 420, 320), ev(2, "reply", 500, 30), ev(2, "closed", 600),
    # 3: nobody claims, operators called in, then answered: a rescue
    ev(3, "opened", 0), ev(3, "escalated", 120, 120), ev(3, "claimed", 150, 150),
    ev(3, "first_reply", 160, 160),
    # 4: claimed, returned, never answered
    ev(4, "opened", 0), ev(4, "claimed", 3, 3), ev(4, "returned", 33, 33),
    # 5: a reply before any trouble is not a rescue
    ev(5, "opened", 0), ev(5, "first_reply", 40, 40), ev(5, "reply", 100, 50),
    ev(5, "closed", 200), ev(5, "reopened", 300), ev(5, "closed", 400),
]


def test_summarize_counts_what_happened() -> None:
    stats = summarize(DAY)
    assert stats.conversations == 5
    assert stats.outcomes == {
        "answered in time": 2,
        "nudged": 1,
        "operators called in": 1,
        "returned to inbox": 1,
    }
    assert stats.first_response == (20.0, 160.0)  # of 10, 20, 40, 160
    assert stats.reply == (50.0, 320.0)  # of 30, 50, 320
    assert (stats.nudges, stats.returns, stats.escalations) == (1, 1, 1)
    assert stats.rescues == 2  # 2 and 3, each once although 2 was replied to twice
    assert stats.closed == 4


def test_nothing_to_summarize() -> None:
    assert summarize([]) == Stats()


def test_a_rescue_needs_an_answer_after_the_trouble() -> None:
    trouble_only = [ev(1, "opened", 0), ev(1, "first_reply", 10, 10), ev(1, "nudged", 400)]
    assert summarize(trouble_only).rescues == 0
    answered = [*trouble_only, ev(1, "reply", 410, 310)]
    assert summarize(answered).rescues == 1


def test_render_shows_every_figure() -> None:
    table = render(summarize(DAY), "Last 7d:")
    assert table.splitlines() == [
        "Last 7d:",
        "Conversations           5",
        "  answered in time      2",
        "  nudged                1",
        "  operators called in   1",
        "  returned to inbox     1",
        "First response          p50 20s, p90 2m40s",
        "  in working time       p50 20s, p90 2m40s",
        "Reply time              p50 50s, p90 5m20s",
        "  in working time       p50 50s, p90 5m20s",
        "Nudges                  1",
        "Returns to inbox        1",
        "Escalations             1",
        "Rescued                 2",
        "Closed                  4",
        "  at shift end          0 (0% of closes)",
        "  at dialogue end       0",
        "  by operator later     0",
        "  customer silence      4",  # recorded without a reason, by nobody: auto-closed
    ]


def test_render_says_no_data_rather_than_zero() -> None:
    table = render(summarize([ev(1, "opened", 0)]))
    assert "First response          no data" in table
    assert "Reply time              no data" in table
    assert "  not answered yet      1" in table
    assert not table.startswith("\n")


def test_first_response_figures_count_each_reopening() -> None:
    """Rule 9, through the engine: the reply that answers a reopening is a first response."""
    ref = ConversationRef("slack", "C1", "t1")
    conv, history = None, []
    for at, event in [(0, CustomerMessage(ref, T0, "alice", team="team-a")),
                      (10, OperatorMessage(ref, T0 + 10, "ana")), (20, Close(ref, T0 + 20, "ana")),
                      (500, CustomerMessage(ref, T0 + 500, "alice")),
                      (540, OperatorMessage(ref, T0 + 540, "ana"))]:
        decision = decide(conv, event, Policy(), T0 + at)
        conv = decision.conversation or conv
        history += decision.history
    stats = summarize(history)
    assert stats.first_response == (10.0, 40.0)  # the first exchange's and the reopening's
    assert stats.reply == (None, None)


def test_a_rescue_belongs_to_its_own_exchange() -> None:
    nudged_then_closed = [ev(1, "opened", 0), ev(1, "first_reply", 10, 10),
                          ev(1, "nudged", 400, 300), ev(1, "closed", 900)]
    reopened = [ev(1, "reopened", 5000), ev(1, "first_reply", 5030, 30)]
    assert summarize(nudged_then_closed + reopened).rescues == 0


def closed(n: int, at: float, reason: CloseReason | None, actor: str | None = "ana"
           ) -> HistoryEvent:
    return HistoryEvent(ConversationRef("slack", "C1", f"t{n}"), "team-a", "closed", T0 + at,
                        actor, None, reason)


def test_the_share_closed_at_shift_end_counts_every_close_by_its_reason() -> None:
    history = [
        closed(1, 10, CloseReason.AT_SHIFT_END), closed(2, 20, CloseReason.AT_SHIFT_END),
        closed(3, 30, CloseReason.AT_DIALOGUE_END), closed(4, 40, CloseReason.BY_OPERATOR),
        closed(5, 50, None),  # recorded before reasons, closed by somebody: by the operator
        closed(6, 60, None, actor=None),  # recorded before reasons, by nobody: auto-closed
        closed(7, 70, CloseReason.BY_CUSTOMER_SILENCE, actor=None),
        closed(1, 80, CloseReason.AT_SHIFT_END),  # reopened and closed again: two closes
    ]
    stats = summarize(history)
    assert stats.closed == 8
    assert stats.closed_by == {"closed_at_shift_end": 3, "closed_at_dialogue_end": 1,
                               "closed_by_operator": 2, "closed_by_customer_silence": 2}
    assert stats.shift_end_share == 3 / 8
    table = render(stats)
    assert "Closed                  8" in table
    assert "  at shift end          3 (38% of closes)" in table
    assert summarize([]).shift_end_share is None
    assert "at shift end" not in render(summarize([]))


def test_response_times_are_given_in_working_time_beside_wall_time() -> None:
    weekdays = from_environment("mon-fri 09:00-18:00", "Europe/Berlin", "")
    berlin = ZoneInfo("Europe/Berlin")
    friday = datetime(2026, 12, 4, 17, 55, tzinfo=berlin).timestamp()
    monday = datetime(2026, 12, 7, 9, 5, tzinfo=berlin).timestamp()
    ref = ConversationRef("slack", "C1", "t1")
    history = [
        HistoryEvent(ref, "team-a", "first_reply", monday, "ana", monday - friday),
        HistoryEvent(ref, "team-a", "reply", friday + 60, "ana", 30.0),  # all in working time
    ]
    stats = summarize(history, lambda event: weekdays)
    assert stats.first_response == (monday - friday, monday - friday)  # 63 h 10 min
    assert stats.first_response_working == (600.0, 600.0)  # 5 min on Friday, 5 on Monday
    assert stats.reply_working == (30.0, 30.0)
    table = render(stats)
    assert "First response          p50 2d15h10m, p90 2d15h10m" in table
    assert "  in working time       p50 10m, p90 10m" in table
    assert summarize(history).first_response_working == stats.first_response  # always open


def test_a_hand_over_at_shift_end_is_no_return_and_no_rescue() -> None:
    """The sweep hands what is left to the next shift (a `returned` event, detail
    `shift_end`): routine, so neither a return to the inbox nor, once answered, a rescue."""
    handed = replace(ev(1, "returned", 500, 60.0), detail="shift_end")
    day = [ev(1, "opened", 0), ev(1, "first_reply", 10, 10), handed, ev(1, "reply", 900, 400)]
    stats = summarize(day)
    assert (stats.returns, stats.rescues) == (0, 0)
    assert stats.outcomes == {"answered in time": 1}
    timer = [*day[:2], ev(1, "returned", 500, 60.0), day[3]]  # a timer's return: both
    assert (summarize(timer).returns, summarize(timer).rescues) == (1, 1)

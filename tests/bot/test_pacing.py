"""Pacing: calls spaced out, messages kept within a sliding window, room left for the urgent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat_rescue.bot.pacing import PRUNE_AT, UNPACED, Pace, Pacer, uniform

GROUP = Pace(gap=1.0, count=18, period=60.0)


def pacer(pace: Pace = GROUP) -> Pacer:
    return Pacer(lambda place: pace)


def test_nothing_sent_yet_means_now() -> None:
    assert pacer().free_at("group", 100.0) == 100.0


def test_calls_are_spaced_by_the_gap_edits_too() -> None:
    paced = pacer()
    paced.note("group", 100.0, message=False)  # an edit
    assert paced.free_at("group", 100.2) == 101.0
    assert paced.free_at("group", 100.2, message=False) == 101.0
    assert paced.free_at("group", 102.0) == 102.0
    assert paced.free_at("elsewhere", 100.2) == 100.2  # per destination


def test_a_full_window_waits_for_its_oldest_message_to_leave() -> None:
    paced = pacer()
    for n in range(18):
        paced.note("group", 100.0 + n)
    assert paced.free_at("group", 118.0) == 160.0  # the one at 100 leaves the minute
    assert paced.free_at("group", 118.0, message=False) == 118.0  # an edit is no message
    paced.note("group", 160.0)
    assert paced.free_at("group", 161.0) == 161.0  # 101 left by now


def test_spare_leaves_room_in_the_window_for_what_cannot_wait() -> None:
    paced = pacer()
    for n in range(12):
        paced.note("group", 100.0 + n)
    assert paced.free_at("group", 112.0) == 112.0  # a message fits: 13 of 18
    assert paced.free_at("group", 112.0, spare=6) == 160.0  # a rename would leave 5 free
    assert paced.free_at("group", 112.0, spare=5) == 112.0
    assert paced.free_at("group", 112.0, spare=18) == 171.0  # all must have left


def test_unpaced_and_uniform() -> None:
    paced = pacer(UNPACED)
    paced.note("x", 5.0)
    assert paced.free_at("x", 5.0) == 5.0
    assert uniform({"group": GROUP, "chat": Pace(gap=1.0)}, 0.01) == {
        "group": Pace(gap=0.01), "chat": Pace(gap=0.01)}


def test_idle_destinations_are_forgotten() -> None:
    paced = Pacer(lambda place: Pace(gap=1.0))
    for n in range(PRUNE_AT):
        paced.note(f"chat:{n}", float(n) / 1000)
    assert paced.free_at("chat:0", 0.5) == 1.0  # remembered while it matters
    paced.note("chat:last", 10.0)  # one too many: the idle ones (past their gap) go
    assert len(paced._last) == 1
    assert paced.free_at("chat:0", 10.0) == 10.0


@given(st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=60),
       st.integers(min_value=0, max_value=10))
def test_sending_whenever_allowed_never_breaks_the_limit(waits: list[float],
                                                         spare: int) -> None:
    """A sender that always waits for `free_at` keeps to the pace: no two calls closer
    than the gap, never more than `count - spare` messages in any period."""
    pace = Pace(gap=0.5, count=12, period=20.0)
    paced = pacer(pace)
    now, sent = 0.0, []
    for wait in waits:
        now = paced.free_at("g", now + wait, spare=spare)
        paced.note("g", now)
        sent.append(now)
    assert all(b - a >= pace.gap - 1e-9 for a, b in zip(sent, sent[1:], strict=False))
    limit = max(1, pace.count - spare)
    for n, at in enumerate(sent):
        in_window = [t for t in sent[: n + 1] if t > at - pace.period + 1e-9]
        assert len(in_window) <= limit, (at, in_window)


@pytest.mark.parametrize("gap", [0.0, 1.0])
def test_a_note_earlier_than_the_last_does_not_move_the_gap_back(gap: float) -> None:
    paced = pacer(Pace(gap=gap))
    paced.note("x", 10.0)
    paced.note("x", 9.0)  # a call that finished out of order
    assert paced.free_at("x", 9.5) == max(9.5, 10.0 + gap)

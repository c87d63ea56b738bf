"""The report behind `/rescue report`: per-day first responses, shares, rescues, the hour of
the week, the operators, in the team's days and time (working or wall), as history says."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.model import CloseReason, ConversationRef, HistoryEvent
from chat_rescue.bot.report import build, period_start
from chat_rescue.bot.report_text import caption, summary

UTC = ZoneInfo("UTC")
NOW = datetime(2026, 3, 12, 18, 0, tzinfo=UTC).timestamp()  # a Thursday


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def ev(n: int, kind: str, when: float, actor: str | None = None, value: float | None = None,
       detail: str | None = None) -> HistoryEvent:
    return HistoryEvent(ConversationRef("slack", "C1", f"1.{n}"), "t", kind, when, actor, value,
                        detail)


def answered(n: int, opened: str, wait: float, operator: str = "ana") -> list[HistoryEvent]:
    start = at(opened)
    return [ev(n, "opened", start, "cust"), ev(n, "claimed", start + 1, operator, 1.0),
            ev(n, "first_reply", start + wait, operator, wait)]


def test_an_empty_history_has_every_day_and_no_figures() -> None:
    report = build([], team="t", days=7, now=NOW)
    assert [row.day for row in report.days] == [date(2026, 3, d) for d in range(6, 13)]
    assert all(row.p50 is None and row.conversations == 0 for row in report.days)
    assert report.conversations == 0 and report.operators == ()
    assert report.first_response == (None, None) and report.within_target is None
    assert sum(map(sum, report.hour_of_week)) == 0
    assert "No conversations in this period." in summary(report)


def test_one_conversation() -> None:
    report = build(answered(1, "2026-03-11 10:15", 20.0), team="t", days=7, now=NOW,
                   target=30.0)
    wednesday = report.days[5]
    assert wednesday.day == date(2026, 3, 11)
    assert (wednesday.conversations, wednesday.p50, wednesday.p90) == (1, 20.0, 20.0)
    assert wednesday.within_target == 1.0
    assert report.hour_of_week[2][10] == 1 and sum(map(sum, report.hour_of_week)) == 1
    assert [(r.operator, r.conversations, r.first_response_p50) for r in report.operators] \
        == [("ana", 1, 20.0)]


def test_known_percentiles_and_shares_per_day() -> None:
    waits = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]  # p50 50, p90 90 (nearest rank)
    history = [e for n, w in enumerate(waits) for e in answered(n, "2026-03-10 09:00", w)]
    history += answered(99, "2026-03-12 09:00", 300.0, operator="ben")
    report = build(history, team="t", days=3, now=NOW, target=30.0)
    tuesday, wednesday, thursday = report.days
    assert (tuesday.p50, tuesday.p90, tuesday.first_responses) == (50, 90, 10)
    assert tuesday.within_target == 0.3  # 10, 20 and 30 s are within 30 s
    assert wednesday.first_responses == 0 and wednesday.within_target is None
    assert thursday.within_target == 0.0
    assert report.within_target == 3 / 11
    assert report.first_response == (60, 100)
    assert [r.operator for r in report.operators] == ["ana", "ben"]


def test_events_before_the_period_or_after_now_are_left_out() -> None:
    history = answered(1, "2026-03-05 23:59", 10.0) + answered(2, "2026-03-06 00:00", 10.0)
    report = build(history + [ev(3, "opened", NOW + 1)], team="t", days=7, now=NOW)
    assert report.conversations == 1 and report.days[0].conversations == 1


def test_days_and_hours_are_the_teams_local_ones() -> None:
    hours = from_environment("mon-fri 09:00-18:00", "Asia/Tokyo", "")
    # 23:30 UTC on Tuesday is 08:30 on Wednesday in Tokyo.
    history = [ev(1, "opened", at("2026-03-10 23:30"), "cust")]
    report = build(history, team="t", days=3, now=NOW, schedule=hours)
    assert report.zone == "Asia/Tokyo"
    assert report.days[-1].day == date(2026, 3, 13)  # already Friday in Tokyo
    assert report.days[0].day == date(2026, 3, 11) and report.days[0].conversations == 1
    assert report.hour_of_week[2][8] == 1
    assert period_start(3, NOW, "Asia/Tokyo") == at("2026-03-11 00:00", "Asia/Tokyo")


def test_waits_are_working_time_where_the_team_has_hours_and_say_so() -> None:
    # Written at 17:55 on Friday, answered at 09:05 on Monday: 10 working minutes.
    friday, monday = at("2026-03-06 17:55"), at("2026-03-09 09:05")
    history = [ev(1, "opened", friday, "cust"),
               ev(1, "first_reply", monday, "ana", monday - friday)]
    wall = build(history, team="t", days=7, now=NOW)
    assert wall.first_response[0] == monday - friday and not wall.working_time
    assert wall.time_label == "wall time"
    hours = from_environment("mon-fri 09:00-18:00", "UTC", "")
    working = build(history, team="t", days=7, now=NOW, schedule=hours, target=900.0)
    assert working.first_response[0] == 600.0 and working.working_time
    assert working.days[3].within_target == 1.0  # Monday's answer, within 15 working min
    assert "First response (working time): p50 10m" in summary(working)
    assert "(wall time)" in summary(wall)


def test_a_channels_own_hours_count_its_waits() -> None:
    team_hours = from_environment("mon-fri 09:00-18:00", "UTC", "")
    night = from_environment("daily 00:00-24:00", "UTC", "")
    friday, monday = at("2026-03-06 17:55"), at("2026-03-09 09:05")
    history = [ev(1, "first_reply", monday, "ana", monday - friday)]
    report = build(history, team="t", days=7, now=NOW, schedule=team_hours,
                   schedule_of=lambda event: night)
    assert report.first_response[0] == monday - friday


def test_rescues_come_from_the_outcomes_of_notices() -> None:
    wednesday = at("2026-03-11 12:00")
    history = [ev(1, "outcome", wednesday, "ana", 40.0, "nudge:answered"),
               ev(2, "outcome", wednesday, "ben", 10.0, "return:reclaimed"),
               ev(3, "outcome", wednesday, None, 90.0, "escalation:answered"),
               ev(4, "outcome", wednesday, "ana", 60.0, "nudge:answered"),
               ev(5, "outcome", wednesday, "ana", 60.0, "nudge:snoozed"),
               ev(6, "outcome", wednesday, None, 60.0, "reminder:closed")]
    report = build(history, team="t", days=7, now=NOW)
    assert report.days[5].rescues == (2, 1, 1)
    assert report.rescues == (2, 1, 1)
    assert "Rescues: 4 (nudges answered 2, returns reclaimed 1, escalations answered 1)" \
        in summary(report)


def test_one_answer_that_ends_a_return_and_an_escalation_is_one_rescue() -> None:
    wednesday, thursday = at("2026-03-11 12:00"), at("2026-03-12 12:00")
    history = [ev(1, "outcome", wednesday, "ana", 400.0, "return:reclaimed"),  # one claim...
               ev(1, "outcome", wednesday, "ana", 100.0, "escalation:answered"),  # ...ends both
               ev(1, "outcome", thursday, "ben", 30.0, "return:reclaimed"),  # another exchange
               ev(2, "outcome", wednesday, "ben", 50.0, "return:reclaimed")]
    report = build(history, team="t", days=7, now=NOW)
    assert (report.days[5].rescues, report.days[6].rescues) == ((0, 1, 1), (0, 1, 0))
    assert "Rescues: 3 (nudges answered 0, returns reclaimed 2, escalations answered 1)" \
        in summary(report)


def test_operators_nudges_received_and_hand_offs() -> None:
    day = at("2026-03-11 12:00")
    history = [*answered(1, "2026-03-11 09:00", 30.0, "ana"),
               ev(1, "nudged", day, "ana", 300.0),
               ev(1, "nudged", day + 900, "ana", 300.0),
               ev(1, "returned", day + 950, "ana", 350.0),  # the hand-off's return...
               ev(1, "outcome", day + 950, "ana", 50.0, "nudge:handed_off"),  # ...counted once
               *answered(2, "2026-03-11 09:00", 30.0, "ben"),
               ev(2, "returned", day, "ben", 0.0, "shift_end"),  # handed to the next shift
               ev(3, "returned", day, "cat", 400.0),  # a timer's return: no hand-off
               ev(4, "claimed", day, "cat", 3.0)]
    rows = {r.operator: r for r in build(history, team="t", days=7, now=NOW).operators}
    assert (rows["ana"].nudges, rows["ana"].handed_off) == (2, 1)
    assert (rows["ben"].nudges, rows["ben"].handed_off) == (0, 1)
    assert (rows["cat"].conversations, rows["cat"].handed_off, rows["cat"].first_response_p50) \
        == (1, 0, None)


def test_the_share_closed_at_shift_end() -> None:
    day = at("2026-03-11 17:00")
    history = [ev(1, "closed", day, None, None, CloseReason.AT_SHIFT_END),
               ev(2, "closed", day, "ana", None, CloseReason.AT_DIALOGUE_END),
               ev(3, "closed", day, "ana", None, CloseReason.BY_OPERATOR),
               ev(4, "closed", day, None, None, CloseReason.AT_SHIFT_END)]
    report = build(history, team="t", days=7, now=NOW)
    assert report.shift_end_share == 0.5
    assert "Closed at shift end: 50% of 4 closes" in summary(report)


def test_a_reopening_is_a_new_exchange() -> None:
    history = [*answered(1, "2026-03-11 09:00", 30.0),
               ev(1, "reopened", at("2026-03-11 15:00"), "cust"),
               ev(1, "first_reply", at("2026-03-11 15:02"), "ana", 120.0)]
    report = build(history, team="t", days=7, now=NOW)
    assert report.conversations == 2 and report.days[5].first_responses == 2
    assert report.operators[0].conversations == 1  # one conversation, two exchanges


def test_a_caption_is_cut_at_a_line_within_the_limit() -> None:
    text = "\n".join(f"line {n} " + "x" * 40 for n in range(60))
    cut = caption(text)
    assert len(cut) <= 1024 and cut.endswith("…")
    assert text.startswith(cut[:-1]) and cut[:-1].endswith("x")
    assert caption("short") == "short"

"""Replaying a recorded day through the engine with other thresholds (bot/replay.py,
bot/whatif.py): a small day run through the real service and ticker, whose replays are
counted by hand below."""

from __future__ import annotations

import multiprocessing
import random
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chat_rescue import ops as ops_module
from chat_rescue.bot import whatif as whatif_module
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.inputs import Input
from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    HistoryEvent,
    InboundEvent,
    OperatorMessage,
    Snooze,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.replay import reactions, replay
from chat_rescue.bot.service import Service
from chat_rescue.bot.ticker import Ticker
from chat_rescue.bot.tune import sample, tune
from chat_rescue.bot.whatif import Comparison, candidate_policy, compare, render, tally
from chat_rescue.ops import replay_days
from chat_rescue.storage.sqlite import SQLiteStore

T0 = 1_800_000_000.0
POLICY = Policy()  # accept 2m, first_response 30s, idle 5m, escalate 5m, close_reminder 30m
SLOW, RESCUED, CALLED = (ConversationRef("slack", "C1", f"t{n}") for n in (1, 2, 3))


@dataclass
class Day:
    """Events at offsets from T0 through the real service; timers fired by the ticker at
    their deadlines in between, as a running bot fires them."""

    service: Service
    ticker: Ticker
    clock: FakeClock
    store: SQLiteStore

    def at(self, offset: float, event: InboundEvent) -> None:
        self.until(offset)
        self.service.handle(event)

    def until(self, offset: float) -> None:
        while (due := self.store.next_deadline()) is not None and due <= T0 + offset:
            self.clock.t = due
            self.ticker.fire_due(due)
        self.clock.t = T0 + offset


@pytest.fixture
def day() -> Iterator[Day]:
    store = SQLiteStore("sqlite://")
    clock = FakeClock(T0)
    service = Service(store, POLICY, clock)
    yield Day(service, Ticker(store, service, clock), clock, store)
    store.close()


def play_the_day(day: Day) -> None:
    """Three conversations:
    SLOW     answered at 10 s; the customer writes at 100 s; nudged at 400 s; the owner
             answers at 440 s (40 s after the nudge) and closes at 500 s.
    RESCUED  the same until the nudge at 400 s, which nobody answers: returned and
             operators called in at 700 s; ben claims at 750 s, answers at 770 s, closes.
    CALLED   nobody claims it: operators called in at 120 s; ben claims at 150 s.
    """
    t = T0
    for ref in (SLOW, RESCUED):
        day.at(0, CustomerMessage(ref, t, "cust", "where is my order?", "team-a"))
        day.at(10, OperatorMessage(ref, t + 10, "ana"))
        day.at(100, CustomerMessage(ref, t + 100, "cust", "hello?", "team-a"))
    day.at(0, CustomerMessage(CALLED, t, "cust-3", "hi", "team-a"))
    day.at(150, Claim(CALLED, t + 150, "ben"))
    day.at(160, OperatorMessage(CALLED, t + 160, "ben"))
    day.at(200, Close(CALLED, t + 200, "ben"))
    day.at(440, OperatorMessage(SLOW, t + 440, "ana"))
    day.at(500, Close(SLOW, t + 500, "ana"))
    day.at(600, Snooze(RESCUED, t + 600, "ana", notice_id="n1"))  # a stale button: refused
    day.at(750, Claim(RESCUED, t + 750, "ben"))
    day.at(770, OperatorMessage(RESCUED, t + 770, "ben"))
    day.at(800, Close(RESCUED, t + 800, "ben"))
    day.until(3600)


def whatif(day: Day, **changes: float | None) -> Comparison:
    return compare(day.store.inputs("team-a", 0), day.store.history("team-a", 0),
                   lambda item: day.service.policy(item.team, item.event.ref), changes,
                   T0 + 3600, 1, check=True)


def counts(comparison: Comparison) -> dict[str, tuple[int, int, int]]:
    assert comparison.today is not None
    return {name: (t.nudges, t.returns, t.escalations) for name, t in
            (("recorded", comparison.recorded), ("today", comparison.today),
             ("candidate", comparison.candidate))}


def test_the_people_s_events_are_recorded_without_text_or_timers(day: Day) -> None:
    play_the_day(day)
    inputs = day.store.inputs(None, 0)
    kinds = [(type(i.event).__name__, i.refused) for i in inputs if i.key == RESCUED.key]
    assert kinds == [("CustomerMessage", False), ("OperatorMessage", False),
                     ("CustomerMessage", False), ("Snooze", True),  # stale: marked refused
                     ("Claim", False), ("OperatorMessage", False), ("Close", False)]
    assert all(i.event.text == "" for i in inputs if isinstance(i.event, CustomerMessage))
    assert [i.opened for i in inputs if i.key == SLOW.key] == [True, False, False, False, False]
    assert inputs[0] == Input(CustomerMessage(SLOW, T0, "cust", "", "team-a"), "team-a", T0,
                              True)


def test_a_reopening_is_recorded_as_an_opening_with_the_owner_it_keeps(day: Day) -> None:
    day.at(0, CustomerMessage(SLOW, T0, "cust", "hi", "team-a"))
    day.at(10, OperatorMessage(SLOW, T0 + 10, "ana"))
    day.at(20, Close(SLOW, T0 + 20, "ana"))
    day.at(86_400, CustomerMessage(SLOW, T0 + 86_400, "cust", "me again", "team-a"))
    reopened = day.store.inputs(None, 0)[-1]
    assert (reopened.opened, reopened.reopened, reopened.owner) == (True, True, "ana")


def test_a_conversation_reopened_in_the_window_is_replayed_from_its_reopening(
        day: Day) -> None:
    """Telegram keeps one conversation per customer: its first message may be long before
    the window; the exchange that began in it is replayed, from the closed conversation
    with the owner it kept."""
    day.at(0, CustomerMessage(SLOW, T0, "cust", "hi", "team-a"))
    day.at(10, OperatorMessage(SLOW, T0 + 10, "ana"))
    day.at(20, Close(SLOW, T0 + 20, "ana"))
    later = 2 * 86_400
    day.at(later, CustomerMessage(SLOW, T0 + later, "cust", "me again", "team-a"))
    day.until(later + 3600)  # ana never answers: nudged, returned and called in, and on
    since = T0 + later - 60
    comparison = compare(day.store.inputs("team-a", since), day.store.history("team-a", since),
                         lambda item: POLICY, {"idle": 420.0}, T0 + later + 3600, 1,
                         check=True)
    assert comparison.today is not None
    assert (comparison.recorded.conversations, comparison.recorded.nudges,
            comparison.recorded.returns) == (1, 1, 1)
    assert comparison.faithful and comparison.recorded.escalations >= 1
    assert comparison.candidate.nudges == 1 and comparison.recorded.unanswered == 1


def test_a_replay_with_today_s_thresholds_gives_what_was_recorded(day: Day) -> None:
    play_the_day(day)
    comparison = whatif(day, idle=300.0)
    assert counts(comparison) == {name: (2, 1, 2) for name in ("recorded", "today",
                                                               "candidate")}
    assert comparison.faithful and comparison.delayed() == (0, 0.0)
    assert comparison.today is not None
    assert comparison.today.outcomes == comparison.recorded.outcomes == {
        "nudge:answered": 1, "nudge:returned": 1, "return:reclaimed": 1,
        "escalation:answered": 2}
    assert comparison.today.waits == comparison.recorded.waits


def test_a_longer_idle_saves_the_slow_owner_s_nudge_and_delays_the_rescue(day: Day) -> None:
    play_the_day(day)
    comparison = whatif(day, idle=420.0)
    # SLOW: answered at 440 s, before a nudge at 100 + 420 = 520 s. RESCUED: nudged at
    # 520 s, returned and called at 820 s; ben comes 50 s after the call, at 870 s (120 s
    # later than he did), and answers at 890 s. CALLED: as it was.
    assert counts(comparison)["candidate"] == (1, 1, 2)
    assert comparison.delayed() == (1, 120.0)
    assert sorted(comparison.candidate.waits) == [10.0, 10.0, 160.0, 340.0, 790.0]
    assert sorted(comparison.recorded.waits) == [10.0, 10.0, 160.0, 340.0, 670.0]


def test_a_shorter_accept_calls_twice_before_the_claim(day: Day) -> None:
    play_the_day(day)
    # CALLED: called at 60 s and again at 120 s, before ben's claim at 150 s (no later
    # than he came: he reacted 30 s after the call at 120 s). RESCUED: called at 700 s,
    # claimed at 750 s, before another call at 760 s.
    assert counts(whatif(day, accept=60.0))["candidate"] == (2, 1, 3)


def test_without_escalate_the_ignored_nudge_is_never_rescued(day: Day) -> None:
    play_the_day(day)
    comparison = whatif(day, escalate=None)
    # RESCUED is never returned: ben, who came because it was, never comes, and the
    # customer who wrote at 100 s is still waiting at the end.
    assert counts(comparison)["candidate"] == (2, 0, 1)
    assert comparison.candidate.unanswered == 1
    assert comparison.today is not None and comparison.today.unanswered == 0
    # The answer at 770 s never comes: late until the window's end.
    assert comparison.delayed() == (1, 3600.0 - 770.0)
    table = render(comparison, "escalate 5m")
    assert "What if, over the last 1 days: escalate off (today: escalate 5m)" in table
    assert "still waiting" in table


def test_replays_in_several_processes_count_the_same(day: Day,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    play_the_day(day)
    inputs, history = day.store.inputs("team-a", 0), day.store.history("team-a", 0)
    day.store.close()  # a forked worker must not share the connection; nor need it
    forked: list[str] = []
    real = multiprocessing.get_context

    def spied(method: str) -> Any:
        forked.append(method)
        return real(method)

    monkeypatch.setattr(whatif_module.multiprocessing, "get_context", spied)
    alone = compare(inputs, history, lambda item: POLICY, {"idle": 420.0}, T0 + 3600, 1,
                    check=True)
    split = compare(inputs, history, lambda item: POLICY, {"idle": 420.0}, T0 + 3600, 1,
                    check=True, workers=3)
    # The replays ran in worker processes (unless another test left a thread running in
    # this process, when forking is not safe and one process does it all).
    assert forked == (["fork"] if whatif_module.can_fork() else [])
    assert split.recorded == alone.recorded
    for a, b in ((split.today, alone.today), (split.candidate, alone.candidate)):
        assert a is not None and b is not None
        assert (a.conversations, a.nudges, a.returns, a.escalations, a.unanswered, a.outcomes,
                a.answered_at) == (b.conversations, b.nudges, b.returns, b.escalations,
                                   b.unanswered, b.outcomes, b.answered_at)
        assert sorted(a.waits) == sorted(b.waits)


def on_a_file(day: Day, tmp_path: Path) -> tuple[str, SQLiteStore, Service]:
    """The day played, copied to a file another process can open: (its URL, the copy, a
    service on it)."""
    play_the_day(day)
    url = f"sqlite:///{tmp_path}/day.db"
    copy = SQLiteStore(url)
    day.store.conn.backup(copy.conn)
    return url, copy, Service(copy, POLICY, FakeClock(T0 + 3600))


def test_shares_read_and_replayed_in_several_processes_count_the_same(
        day: Day, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, copy, service = on_a_file(day, tmp_path)
    opened = tmp_path / "opened"

    def reopen() -> SQLiteStore:
        with opened.open("a") as marks:  # in a forked worker: a mark each
            marks.write("x")
        return SQLiteStore(url)

    try:
        [(team, alone)] = replay_days(copy, service, "team-a", 1, {"idle": 420.0}, T0 + 3600,
                                      check=True)
        [(_, split)] = replay_days(copy, service, "team-a", 1, {"idle": 420.0}, T0 + 3600,
                                   check=True, workers=3, reopen=reopen)
    finally:
        copy.close()
    # Each worker read its share (unless another test left a thread running in this
    # process, when forking is not safe and this process reads it all).
    forked = whatif_module.can_fork()
    assert team == "team-a"
    assert (opened.read_text() if opened.exists() else "") == ("xxx" if forked else "")
    assert split.recorded.conversations == alone.recorded.conversations == 3
    for a, b in ((split.recorded, alone.recorded), (split.today, alone.today),
                 (split.candidate, alone.candidate)):
        assert a is not None and b is not None
        assert (a.conversations, a.nudges, a.returns, a.escalations, a.unanswered, a.outcomes,
                a.answered_at) == (b.conversations, b.nudges, b.returns, b.escalations,
                                   b.unanswered, b.outcomes, b.answered_at)
        assert sorted(a.waits) == sorted(b.waits)
    assert split.faithful is True


def test_a_replay_process_that_dies_is_noticed_not_waited_for() -> None:
    # In a process of its own: one with no other thread may fork (this one may not, when
    # an earlier test left a thread running).
    code = textwrap.dedent("""
        import os
        from chat_rescue.bot.whatif import forked

        def work(n):
            if n == 1:
                os._exit(1)  # as the out-of-memory killer ends a process
            return n

        print(forked(work, [0, 1]), forked(abs, [-2, 3]))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["None", "[2,", "3]"]
    assert "replaying in this one" in done.stderr


def test_an_interrupted_replay_does_not_wait_for_its_processes() -> None:
    # SIGALRM reaches the parent only (a fork does not inherit an alarm), as a signal sent
    # to it alone would: it stops its replay processes rather than wait out their work.
    code = textwrap.dedent("""
        import multiprocessing, signal, time
        from chat_rescue.bot.whatif import forked

        def work(n):
            time.sleep(30)
            return n

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGALRM, interrupt)
        signal.alarm(1)
        began = time.monotonic()
        try:
            forked(work, [0, 1])
        except KeyboardInterrupt:
            time.sleep(0.5)
            print(round(time.monotonic() - began), len(multiprocessing.active_children()))
        """)
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    took, children = done.stdout.split()
    assert int(took) < 10 and children == "0"
    assert time.monotonic() - began < 20  # not the 30 s the replays would have taken


def test_when_a_replay_process_died_the_days_are_replayed_here(
        day: Day, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, copy, service = on_a_file(day, tmp_path)
    tried: list[int] = []
    replayed: list[bool] = []
    replay_here = ops_module._replayed

    def died(work: object, shares: list[int]) -> None:
        tried.extend(shares)
        return None

    def spied(*args: Any, **kwargs: Any) -> Any:
        replayed.append(len(args) > 9 and args[9] is not None)  # a share (`only`), or all
        return replay_here(*args, **kwargs)

    try:
        [(_, alone)] = replay_days(copy, service, "team-a", 1, {"idle": 420.0}, T0 + 3600)
        monkeypatch.setattr(ops_module.threading, "active_count", lambda: 1)
        monkeypatch.setattr(ops_module, "can_fork", lambda: True)
        monkeypatch.setattr(ops_module, "forked", died)
        monkeypatch.setattr(ops_module, "_replayed", spied)
        [(_, after)] = replay_days(copy, service, "team-a", 1, {"idle": 420.0}, T0 + 3600,
                                   workers=2, reopen=lambda: SQLiteStore(url))
    finally:
        copy.close()
    assert tried == [0, 1]
    assert replayed == [True, True]  # share by share, each no bigger than the one that died
    assert (after.recorded, after.candidate) == (alone.recorded, alone.candidate)


def test_conversations_opened_before_the_window_are_left_out(day: Day) -> None:
    play_the_day(day)
    late = [i for i in day.store.inputs("team-a", T0 + 1)]  # their openings are before
    comparison = compare(late, day.store.history("team-a", T0 + 1),
                         lambda item: POLICY, {"idle": 420.0}, T0 + 3600, 1, check=True)
    assert comparison.today is not None
    assert comparison.today.conversations == comparison.recorded.conversations == 0


def test_tune_suggests_the_longest_idle_that_delays_no_rescue_past_two_minutes(
        day: Day) -> None:
    play_the_day(day)
    answer = tune(day.store.inputs("team-a", 0), day.store.history("team-a", 0),
                  lambda item: POLICY, POLICY, T0 + 3600, 1)
    lines = answer.splitlines()
    assert lines[0] == "What the last 1 days say (3 conversations):"
    idle = lines.index(next(line for line in lines if line.startswith("idle 5m:")))
    assert lines[idle] == ("idle 5m: 2 nudges in 1 days; 1 answered (p50 40s after the nudge: "
                           "the owner was there, only slow), 0 snoozed, 0 handed off, 1 "
                           "ignored → returned.")
    # idle 7m saves SLOW's nudge and brings ben 2 minutes later to RESCUED; idle 10m would
    # bring him 5 minutes later (nudged at 700 s, returned at 1,000 s).
    assert lines[idle + 1] == ("  Suggest idle 7m (would have saved 1 notice(s) and answered "
                               "1 customer(s) up to 2m later).")
    accept = next(line for line in lines if line.startswith("accept 2m:"))
    # CALLED was taken up 30 s after its call, RESCUED 50 s after its.
    assert accept == ("accept 2m: 2 calls for operators in 1 days; 2 answered, p50 30s after "
                      "the call.")
    assert "close_reminder 30m: 0 close reminders" in answer


def test_tune_without_recorded_conversations_says_so(day: Day) -> None:
    answer = tune([], [], lambda item: POLICY, POLICY, T0, 30)
    assert answer.startswith("No conversations recorded in the last 30 days")


def test_a_large_window_is_sampled_evenly_and_the_same_each_time() -> None:
    inputs = [Input(CustomerMessage(ConversationRef("slack", "C", str(n)), T0, "c", "", "t"),
                    "t", T0, True) for n in range(1000)]
    taken, replayed, total = sample(inputs, 100)
    assert total == 1000 and 60 <= replayed <= 140 and len(taken) == replayed
    assert sample(inputs, 100)[0] == taken


def random_day(seed: int, conversations: int = 300) -> tuple[list[Input], list[HistoryEvent]]:
    """People's events of a day with slow answers now and then, and the history the
    built-in thresholds make of them."""
    rng = random.Random(seed)
    timed: list[tuple[float, int, Input]] = []
    for n in range(conversations):
        ref = ConversationRef("slack", f"C{n % 3}", f"t{n}")
        owner, t = f"op{rng.randrange(5)}", T0 + rng.random() * 20_000
        events: list[InboundEvent] = [CustomerMessage(ref, t, f"c{n}", "", "team-a")]
        if rng.random() < 0.5:
            t += rng.expovariate(1 / 60)
            events.append(Claim(ref, t, owner))
        for _ in range(rng.randrange(1, 4)):
            t += rng.expovariate(1 / 200)
            events.append(OperatorMessage(ref, t, owner if rng.random() < 0.8 else "op9"))
            t += rng.expovariate(1 / 1500)  # now and then long enough for a close reminder
            if rng.random() < 0.7:
                events.append(CustomerMessage(ref, t, f"c{n}", "", "team-a"))
        if rng.random() < 0.7:
            t += rng.expovariate(1 / 400)
            events.append(Close(ref, t, owner))
        timed += [(e.at, len(timed) + i, Input(e, "team-a", e.at, i == 0))
                  for i, e in enumerate(events)]
    inputs = [item for _, _, item in sorted(timed, key=lambda x: (x[0], x[1]))]
    history = [h for p in replay(inputs, lambda item: POLICY, T0 + 30_000) for h in p.history]
    return inputs, sorted(history, key=lambda h: h.at)


@pytest.mark.parametrize("changes", [{"idle": 420.0}, {"first_response": 45.0, "accept": 180.0},
                                     {"escalate": None}, {"close_reminder": 3600.0},
                                     {"idle": 200.0}, {"auto_close": 7200.0}])
def test_conversations_no_timer_reached_are_not_replayed_and_count_the_same(
        changes: dict[str, float | None]) -> None:
    inputs, history = random_day(7)
    everything = list(replay(inputs, lambda item: candidate_policy(POLICY, changes),
                             T0 + 30_000, reactions(inputs, history)))
    waiting = [p.key for p in everything if p.last is not None
               and p.last.waiting_since is not None]
    full = tally(((p.key, p.history) for p in everything), waiting)
    short = compare(inputs, history, lambda item: POLICY, changes, T0 + 30_000, 1).candidate
    assert (short.conversations, short.nudges, short.returns, short.escalations,
            short.unanswered, short.outcomes, short.answered_at) == (
        full.conversations, full.nudges, full.returns, full.escalations, full.unanswered,
        full.outcomes, full.answered_at)
    assert sorted(short.waits) == sorted(full.waits)
    recorded = Counter(h.kind for h in history)
    assert recorded["nudged"] and recorded["returned"] and recorded["reminded"]


def test_a_customer_waiting_at_the_end_does_not_stop_a_suggestion(day: Day) -> None:
    play_the_day(day)
    late = ConversationRef("slack", "C1", "t9")
    day.at(3540, CustomerMessage(late, T0 + 3540, "cust-9", "anyone?", "team-a"))
    day.until(3600)
    answer = tune(day.store.inputs("team-a", 0), day.store.history("team-a", 0),
                  lambda item: POLICY, POLICY, T0 + 3600, 1)
    assert "  Suggest idle 7m (would have saved 1 notice(s) and answered 1 customer(s) up " \
           "to 2m later)." in answer.splitlines()


def test_close_reminders_are_counted_and_a_longer_one_saves_them(day: Day) -> None:
    for n in range(3):  # answered, then silence: reminded at 30 minutes; the customer
        ref = ConversationRef("slack", "C2", f"r{n}")  # writes again 40 minutes in
        day.at(n, CustomerMessage(ref, T0 + n, "cust", "hi", "team-a"))
        day.at(10 + n, OperatorMessage(ref, T0 + 10 + n, "ana"))
    for n in range(3):
        ref = ConversationRef("slack", "C2", f"r{n}")
        day.at(2410 + n, CustomerMessage(ref, T0 + 2410 + n, "cust", "thanks", "team-a"))
        day.at(2420 + n, Close(ref, T0 + 2420 + n, "ana"))
    comparison = whatif(day, close_reminder=3600.0)
    assert comparison.recorded.reminders == 3 and comparison.candidate.reminders == 0
    assert "close reminders" in render(comparison, "close_reminder 30m")
    answer = tune(day.store.inputs("team-a", 0), day.store.history("team-a", 0),
                  lambda item: POLICY, POLICY, T0 + 3600, 1)
    assert "close_reminder 30m: 3 close reminders in 1 days; 0 closed, 0 kept open, 3 the " \
           "customer wrote again, 0 the operator wrote." in answer
    assert "  Suggest close_reminder 45m (would have saved 3 notice(s), answering nobody " \
           "later)." in answer

"""The metrics' own rules: which timer a fire was, how gauges follow commits, and that the
deltas agree with a count of the store."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.metrics import Metrics, kind_of, timer_of
from chat_rescue.bot.model import (
    CARD_BUTTON,
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    DeadlineDue,
    HandOff,
    HistoryEvent,
    Nudge,
    OperatorMessage,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.storage.sqlite import SQLiteStore

REF = ConversationRef("slack", "C1", "t1")


def scraped(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def gauge(metrics: Metrics, name: str, **labels: str) -> float:
    return scraped(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize(("kinds", "timer"), [
    (("escalated",), "accept"),
    (("returned",), "first_response"),
    (("nudged",), "idle"),
    (("returned", "escalated"), "escalate"),
    (("reminded",), "close_reminder"),
    (("closed",), "auto_close"),
    ((), "stale"),
    (("outcome",), "stale"),
])
def test_a_fired_deadline_is_named_by_what_it_recorded(kinds: tuple[str, ...],
                                                       timer: str) -> None:
    history = [HistoryEvent(REF, "t", kind, 0.0) for kind in kinds]
    assert timer_of(history) == timer


def test_kinds_are_snake_case() -> None:
    assert kind_of(CustomerMessage(REF, 0.0, "c")) == "customer_message"
    assert kind_of(Nudge(REF, "U1", 1.0, None, "c")) == "nudge"


def make() -> tuple[Service, SQLiteStore, FakeClock, Metrics]:
    store, clock = SQLiteStore("sqlite://"), FakeClock()
    metrics = Metrics(clock, process=False)
    metrics.expect(["slack"])
    return Service(store, Policy(accept=60.0), clock, metrics=metrics), store, clock, metrics


def test_the_gauges_follow_commits_and_agree_with_a_count() -> None:
    service, store, clock, metrics = make()
    refs = [ConversationRef("slack", "C1", f"t{n}") for n in range(6)]
    for ref in refs:
        service.handle(CustomerMessage(ref, clock.now(), "cust", "help"))
    service.handle(Claim(refs[0], clock.now(), "ana"))
    service.handle(OperatorMessage(refs[1], clock.now(), "ben"))
    service.handle(Close(refs[1], clock.now(), "ben"))
    service.handle(HandOff(refs[0], clock.now(), "ana", notice_id=CARD_BUTTON))
    service.handle(Claim(refs[2], clock.now(), "ana"))
    clock.advance(61)
    service.handle(DeadlineDue(refs[3], clock.now()))  # accept: operators called in
    counted = {("slack", state): gauge(metrics, "chat_rescue_open_conversations",
                                       platform="slack", state=state)
               for state in ("queued", "claimed", "waiting_on_operator",
                             "waiting_on_customer")}
    assert {k: n for k, n in counted.items() if n} == store.open_counts()
    assert sum(counted.values()) == 5  # one of six closed
    history = [h.kind for h in store.history(None, 0)]
    # Closed just after the operator's reply: the dialogue had ended.
    assert gauge(metrics, "chat_rescue_closes_total", platform="slack",
                 reason="closed_at_dialogue_end") == history.count("closed") == 1
    assert gauge(metrics, "chat_rescue_returns_total", platform="slack",
                 reason="hand_off") == history.count("returned") == 1
    assert gauge(metrics, "chat_rescue_escalations_total", platform="slack") == 1
    assert gauge(metrics, "chat_rescue_outbox_depth", platform="slack") == \
        store.outbox_size() > 0


def test_the_outbox_age_is_of_its_oldest_item_until_it_empties() -> None:
    service, store, clock, metrics = make()
    service.handle(CustomerMessage(REF, clock.now(), "cust", "help"))  # a card to post
    clock.advance(30)
    assert gauge(metrics, "chat_rescue_outbox_oldest_pending_age_seconds",
                 platform="slack") == 30
    metrics.left("slack", store.outbox_size())
    assert gauge(metrics, "chat_rescue_outbox_depth", platform="slack") == 0
    assert gauge(metrics, "chat_rescue_outbox_oldest_pending_age_seconds",
                 platform="slack") == 0


def test_a_recount_replaces_what_the_deltas_made(tmp_path: object) -> None:
    service, store, clock, metrics = make()
    service.handle(CustomerMessage(REF, clock.now(), "cust", "help"))
    metrics.left("slack", 5)  # another replica delivered it, say: this one cannot tell
    other = Service(store, Policy(), clock)  # another replica's commits, unseen here
    other.handle(CustomerMessage(ConversationRef("slack", "C1", "t2"), clock.now(), "c"))
    clock.advance(10)
    metrics.recount(store)
    assert gauge(metrics, "chat_rescue_open_conversations", platform="slack",
                 state="queued") == 2
    assert gauge(metrics, "chat_rescue_outbox_depth", platform="slack") == 2
    assert gauge(metrics, "chat_rescue_outbox_oldest_pending_age_seconds",
                 platform="slack") == 10


def test_a_failed_group_is_counted_by_what_followed() -> None:
    store = SQLiteStore("sqlite://")
    service = Service(store, Policy(), FakeClock(1_700_000_000.0))
    service.metrics = Metrics(process=False)  # as the runtime gives its own
    for outcome in ("one_by_one", "one_by_one", "whole"):
        service.worker.on_group_failed(outcome)
    found = scraped(service.metrics)
    assert found[("chat_rescue_group_failures_total", (("outcome", "one_by_one"),))] == 2
    assert found[("chat_rescue_group_failures_total", (("outcome", "whole"),))] == 1
    assert found[("chat_rescue_group_failures_total", (("outcome", "one_refused"),))] == 0
    store.close()

"""How the bot reads a team's window for `/rescue tune` (reports/tuning.py): a large one is
sampled by key before anything is decoded, and the answer says so."""

from __future__ import annotations

import pytest

from chat_rescue.bot import tune
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import ConversationRef, CustomerMessage, OperatorMessage
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.reports import tuning
from chat_rescue.storage.sqlite import SQLiteStore

T0 = 1_800_000_000.0


def test_a_window_larger_than_the_sample_is_sampled_evenly_by_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore("sqlite://")
    clock = FakeClock(T0)
    service = Service(store, Policy(), clock)
    for n in range(40):
        ref = ConversationRef("slack", "C1", f"t{n}")
        service.handle(CustomerMessage(ref, T0, f"cust-{n}", "hi", "team-a"))
        service.handle(OperatorMessage(ref, T0 + 5, "ana"))
    clock.t = T0 + 60
    monkeypatch.setattr(tune, "SAMPLE", 10)
    window = tuning.read(service, "team-a")
    keys = {item.key for item in window.inputs}
    assert window.total == 40 and 3 <= len(keys) < 40
    assert {h.ref.key for h in window.history} <= keys  # history of the sample only
    assert tuning.read(service, "team-a").inputs == window.inputs  # the same sample again
    answer = tuning.answer_of(window)
    assert answer.startswith(f"What the last 30 days say ({len(keys)} conversations, an even "
                             "sample of 40):")
    store.close()

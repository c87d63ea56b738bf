"""`chat-rescue whatif` on a recorded sandbox day: the demo's day, played by the real
runtime (ticker, outbox, sweeps, commands), replayed through the engine afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chat_rescue import cli, demo
from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.bot.whatif import compare
from chat_rescue.storage.sqlite import SQLiteStore

SPEED = 4000.0


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    database = tmp_path_factory.mktemp("whatif") / "demo.db"
    asyncio.run(asyncio.wait_for(demo.play(SPEED, lambda line: None, database), timeout=60))
    return database


def test_the_demo_day_replayed_with_its_thresholds_is_what_was_recorded(
        demo_day: Path) -> None:
    store = SQLiteStore(f"sqlite:///{demo_day}")
    try:
        inputs, history = store.inputs(None, 0), store.history(None, 0)
        service = Service(store, Policy(), FakeClock(0))
        until = max(h.at for h in history) + 1
        comparison = compare(inputs, history,
                             lambda item: service.policy(item.team, item.event.ref),
                             {"idle": 420.0}, until, 1, check=True)
    finally:
        store.close()
    recorded, today = comparison.recorded, comparison.today
    assert today is not None
    assert recorded.conversations >= 20 and recorded.nudges > 0 and recorded.returns > 0 \
        and recorded.escalations > 0
    assert (today.nudges, today.returns, today.escalations) == \
        (recorded.nudges, recorded.returns, recorded.escalations)
    # The presses on nudges (snooze, hand off) acted on the replay's own nudges.
    assert today.outcomes == recorded.outcomes
    assert {"nudge:snoozed", "nudge:handed_off"} & set(recorded.outcomes)
    assert sorted(today.waits) == pytest.approx(sorted(recorded.waits), abs=1.0)
    assert comparison.candidate.nudges < recorded.nudges  # idle 7m: fewer nudges


def test_the_command_prints_the_comparison_and_refuses_bad_durations(
        demo_day: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{demo_day}")
    monkeypatch.chdir(demo_day.parent)
    with pytest.raises(SystemExit) as bad:
        cli.main(["whatif", "--idle", "7x"])
    assert bad.value.code == 2
    assert "--idle: '7x' is not a duration" in capsys.readouterr().err
    with pytest.raises(SystemExit) as nothing:
        cli.main(["whatif", "--days", "30"])
    assert nothing.value.code == 2 and "Name at least one" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        cli.main(["whatif", "--idle", "7m", "--first-response", "45s", "--days", "36500",
                  "--check"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert "What if, over the last 36500 days: first_response 45s, idle 7m " \
           "(today: first_response 30s, idle 5m)" in out
    for row in ("nudges", "returns", "escalations", "wait p50", "wait p90"):
        assert row in out
    assert "recorded  replayed  candidate" in out and "differs from the record" not in out

"""`chat-rescue demo`: the scripted day runs through the real stack and shows every rule."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from chat_rescue.demo import play
from chat_rescue.storage.sqlite import SQLiteStore

SPEED = 4000.0  # the day's 6,700 s of support time in under 2 real seconds


async def test_the_demo_day_shows_every_rule(tmp_path: Path) -> None:
    lines: list[str] = []
    database = tmp_path / "demo.db"
    summary = await asyncio.wait_for(play(SPEED, lines.append, database), timeout=15)
    transcript = "\n".join(lines)

    counted = re.search(r"^Conversations\s+(\d+)$", summary, re.MULTILINE)
    assert counted is not None and int(counted.group(1)) >= 20
    assert summary in transcript  # the summary is printed too, after the day
    for figure in ("First response          p50", "Nudges", "Returns to inbox", "Escalations"):
        assert figure in summary

    expected = {
        "a nudge": "are you still with",
        "a return to the inbox": "Back in the inbox",
        "an escalation": "@here nobody has taken",
        "a close reminder": "If the conversation is over, please close it",
        "a refused claim": "Already claimed by",
        "a digest": "conversations need attention",
        "a refused non-admin": "only admins can change rescue settings",
        "a bad duration explained": "'45x' is not a duration",
    }
    missing = [what for what, text in expected.items() if text not in transcript]
    assert missing == []

    auto_closed = [line for line in lines
                   if re.search(r"\bto #\w+\s+We are closing this chat", line)]
    assert auto_closed, "no auto-close notice reached a customer"

    assert reopened_cards(lines), "no card went from closed back to open"

    # Nothing was left undelivered and nothing was given up on.
    store = SQLiteStore(f"sqlite:///{database}")
    try:
        assert store.pending(100) == []
        assert store.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
        keys = {h.ref.key for h in store.history(None, 0)}
        assert len(keys) >= 20
    finally:
        store.close()


def reopened_cards(lines: list[str]) -> set[str]:
    """Cards that were shown closed and later updated to an open status."""
    closed: set[str] = set()
    reopened: set[str] = set()
    for line in lines:
        update = re.search(r"\[card (\d+) updated\] .* - (.+)$", line)
        if update is None:
            continue
        card, status = update.groups()
        if status == "closed":
            closed.add(card)
        elif card in closed:
            reopened.add(card)
    return reopened

"""`chat-rescue demo`: the scripted day runs through the real stack and shows every rule."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from chat_rescue.demo import play
from chat_rescue.sandbox.transcript import after, closed_at_shift_end
from chat_rescue.storage.sqlite import SQLiteStore

SPEED = 4000.0  # the day's 7,300 s of support time in about 2 real seconds
AWAY = ("Thanks for your message. Our team is away right now; we're back Saturday 09:00 "
        "(London time). We'll answer you then.")


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

    # Before the 09:00 opening: three customers write (amir twice), each is told once when
    # the team is back, their cards are posted, and nobody is nudged or called in.
    closed = [line for line in lines if re.match(r"08:\d\d:\d\d ", line)]
    assert [line.split(None, 3)[3] for line in closed if "to #help" in line] == [AWAY] * 3
    assert sum("amir: " in line for line in closed) == 2
    assert len([line for line in closed if re.search(r"\[card \d+\] (amir|bea|cyril) ", line)]) == 3
    assert not [line for line in closed
                if re.search("@here|are you still with|Back in the inbox|silent for", line)]
    assert AWAY not in "\n".join(line for line in lines if line not in closed)

    # Their timers start at the opening: what nobody took is called in as one digest.
    opening = after(lines, "3 conversations need attention:", 3, when="09:02:")
    assert [re.sub(r" for \w+:.*", "", line.split("- ", 1)[1]) for line in opening[1:]] == [
        "@here nobody has taken amir's conversation", "@here nobody has taken bea's "
        "conversation", "@here nobody has taken cyril's conversation"]

    # Ben's early shift ends at 10:30: his sweep card at 10:25, his press, the handover.
    card = after(lines, "@ben, your shift ends today 10:30 (London time). You have 4 open "
                 "conversations:", 6)
    assert card[0].startswith("10:25:")
    assert [re.sub(r"^.* - \[([^]]+)\] (\w+):.*$", r"\1: \2", line) for line in card[1:5]] == [
        "Finished but not closed: pablo", "Finished but not closed: amir",
        "Waiting on the customer: dora", "Customer waiting on us: emil"]
    assert card[5].endswith("[Close all finished (2)] [Hand the rest to the next shift]")
    assert card[6].endswith("What you don't decide by then: finished ones are closed, the "
                            "others go to the next shift.")
    pressed = after(lines, "@ben presses [Close all finished] on the sweep card", 1)
    assert pressed[1].endswith("to @ben      Closed 2 conversations.")
    handover = after(lines, "Handed over from the last shift: 2 conversations, oldest "
                     "waiting first.", 2)
    assert handover[0].startswith("10:30:")
    assert [re.sub(r"^.* - (\w+):.*\(had: @(\w+)\)  \[Claim\]$", r"\1 from \2", line)
            for line in handover[1:]] == ["emil from ben", "dora from ben"]

    shift_end = closed_at_shift_end(summary)
    assert shift_end is not None and shift_end[0] == 2 and shift_end[1] > 0

    # Nothing was left undelivered and nothing was given up on.
    store = SQLiteStore(f"sqlite:///{database}")
    try:
        assert store.pending(100) == []
        assert store.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
        keys = {h.ref.key for h in store.history(None, 0)}
        assert len(keys) >= 20
        at_shift_end = [h.ref.thread for h in store.history(None, 0)
                        if h.kind == "closed" and h.detail == "closed_at_shift_end"]
        assert sorted(at_shift_end) == ["conv-16", "conv-27"]  # pablo's and amir's
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

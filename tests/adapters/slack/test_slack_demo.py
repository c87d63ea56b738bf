"""`chat-rescue demo --platform slack`: the scripted day through slack-bolt and the sandbox."""

from __future__ import annotations

import asyncio
import re

from chat_rescue.sandbox.slack_demo import play_slack

SPEED = 1000.0  # the day's 6,700 s of support time in about 7 real seconds


async def test_the_slack_demo_day_shows_every_rule() -> None:
    lines: list[str] = []
    summary = await asyncio.wait_for(play_slack(SPEED, lines.append), timeout=30)
    transcript = "\n".join(lines)

    counted = re.search(r"^Conversations\s+(\d+)$", summary, re.MULTILINE)
    assert counted is not None and int(counted.group(1)) == 26
    assert summary in transcript
    expected = {
        "an inbox card": "[card 1] @alice in #help",
        "a card kept current": "[card 2 updated] @bruno in #help",
        "a nudge with its buttons": "[Reply now] [Snooze] [Close] [Hand off]",
        "the owner told in the thread": "this conversation went back to the inbox",
        "a return to the inbox": "Back in the inbox",
        "an escalation": "@here nobody has taken",
        "a close reminder": "please close it. [Close] [Keep open]",
        "a refused claim, privately": "Already claimed by @ana.   (only they see it)",
        "a digest": "conversations need attention",
        "a refused non-admin": "only admins can change rescue settings",
        "a bad duration explained": "'45x' is not a duration",
        "the closing message in the customer's thread": "bot in the thread: We are closing",
    }
    missing = [what for what, text in expected.items() if text not in transcript]
    assert missing == []
    assert not re.search(r"<[@#!]", transcript)  # Slack markup is shown as Slack shows it
    assert not re.search(r"\[card [0?]", transcript)  # every card is known by its number

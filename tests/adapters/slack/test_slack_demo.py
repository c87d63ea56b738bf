"""`chat-rescue demo --platform slack`: the scripted day through slack-bolt and the sandbox."""

from __future__ import annotations

import asyncio
import re

from chat_rescue.sandbox.slack_demo import play_slack
from chat_rescue.sandbox.transcript import after, closed_at_shift_end

SPEED = 1000.0  # the day's 7,300 s of support time in about 8 real seconds
AWAY = ("bot in the thread: Thanks for your message. Our team is away right now; we're back "
        "Saturday 09:00 (London time). We'll answer you then.")


async def test_the_slack_demo_day_shows_every_rule() -> None:
    lines: list[str] = []
    summary = await asyncio.wait_for(play_slack(SPEED, lines.append), timeout=30)
    transcript = "\n".join(lines)

    counted = re.search(r"^Conversations\s+(\d+)$", summary, re.MULTILINE)
    assert counted is not None and int(counted.group(1)) == 31
    assert summary in transcript
    expected = {
        "an inbox card": "[card 4] @alice in #help",
        "a card kept current": "[card 5 updated] @bruno in #help",
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
    assert missing == [], transcript  # the day as shown, to see what came instead
    assert not re.search(r"<[@#!]", transcript)  # Slack markup is shown as Slack shows it
    assert not re.search(r"\[card [0?]", transcript)  # every card is known by its number

    # Before the 09:00 opening: each of the three customers is told once in their thread
    # when the team is back (amir wrote twice), and nobody is nudged or called in.
    closed = [line for line in lines if re.match(r"08:\d\d:\d\d ", line)]
    assert [line.split(None, 2)[2] for line in closed if "bot in the thread" in line] == \
        [AWAY] * 3
    assert sum("amir: " in line for line in closed) == 2
    assert not [line for line in closed
                if re.search("@here|are you still with|Back in the inbox|silent for", line)]
    assert transcript.count(AWAY) == 3

    # Their timers start at the opening: what nobody took is called in as one digest.
    opening = after(lines, "@here 3 conversations need attention:", 3, when="09:02:")
    assert [re.sub(r" for \w+:.*", "", line.split("• ", 1)[1]) for line in opening[1:]] == [
        "nobody has taken @amir's conversation", "nobody has taken @bea's conversation",
        "nobody has taken @cyril's conversation"]

    # Ben's early shift ends at 10:30: his sweep card, his press, the handover digest.
    card = after(lines, "@ben, your shift ends today 10:30 (London time). You have 4 open "
                 "conversations:", 1)
    assert card[0][:8] >= "10:25:00"
    assert card[1].endswith("Finished but not closed 2 · Waiting on the customer 1 · "
                            "Customer waiting on us 1")
    pressed = after(lines, "@ben presses [Close all finished (2)] on the sweep card", 5)
    answer = next(line for line in pressed[1:] if "  to @ben  " in line)  # amid card updates
    assert answer.endswith("to @ben      Closed 2 conversations.   (only they see it)")
    handover = after(lines, "Handed over from the last shift: 2 conversations, oldest "
                     "waiting first.", 2)
    assert handover[0][:8] >= "10:30:00"
    assert [re.sub(r"^.*• @(\w+):.*\(had: @(\w+)\)  \[Claim\]$", r"\1 from \2", line)
            for line in handover[1:]] == ["emil from ben", "dora from ben"]
    shift_end = closed_at_shift_end(summary)
    assert shift_end is not None and shift_end[0] == 2 and shift_end[1] > 0

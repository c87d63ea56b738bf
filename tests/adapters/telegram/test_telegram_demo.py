"""The Telegram demo plays the whole scripted day through the real adapter and the sandbox."""

from __future__ import annotations

import re

from chat_rescue.sandbox.telegram_demo import play_telegram
from chat_rescue.sandbox.transcript import after, closed_at_shift_end

AWAY = ("Thanks for your message. Our team is away right now; we're back Saturday 09:00 "
        "(London time). We'll answer you then.")


async def test_the_demo_day_shows_the_group_and_the_customers() -> None:
    lines: list[str] = []
    # Slow enough that the real time a post takes (~10 ms) stays seconds of demo time.
    summary = await play_telegram(speed=1000, write=lines.append)
    transcript = "\n".join(lines)
    assert "(topic created: ⏳ Alice · waiting)" in transcript
    assert "🆕 Bruno is waiting" in transcript  # announced in General (Alice was answered first)
    assert "→ Alice            Hi Alice" in transcript  # the reply reached the customer
    assert "are you still with" in transcript and "[Snooze] [Close] [Hand off]" in transcript
    assert "↩️ Back in the inbox" in transcript and "🚨 Ana nobody has taken" in transcript
    assert "Sorry, only admins can change rescue settings" in transcript
    assert "(topic closed)" in transcript and "(topic reopened)" in transcript
    assert "We are closing this chat for now" in transcript  # auto-close, to the customer
    assert "skipped" not in transcript  # every step found its topic and button
    assert "Conversations           31" in summary and lines[-1] == summary
    # A digest is shown as the group sees it: its title, then a line each.
    digest = next(n for n, line in enumerate(lines) if line.endswith("need attention:"))
    assert lines[digest + 1].split(None, 1)[1].startswith("• ")

    # Before the 09:00 opening: each customer who writes is told once in their private chat
    # when the team is back (Amir wrote twice), and nobody is nudged or called in.
    closed = [line for line in lines if re.match(r"08:\d\d:\d\d ", line)]
    told = [line.split(None, 1)[1] for line in lines if line.endswith(AWAY)]
    assert told == [f"→ {name:<17}{AWAY}" for name in ("Amir", "Bea", "Cyril")]
    assert all(line in closed for line in lines if line.endswith(AWAY))
    assert sum("Amir               → bot:" in line for line in closed) == 2
    assert not [line for line in closed
                if re.search("nobody has taken|are you still with|Back in the inbox", line)]

    # Their timers start at the opening: what nobody took is called in as one digest.
    opening = after(lines, "Ana: 3 conversations need attention:", 4, when="09:02:")
    assert [re.sub(r" for \w+:.*", "", line.split("• ", 1)[1]) for line in opening[1:4]] == [
        "nobody has taken Amir's conversation", "nobody has taken Bea's conversation",
        "nobody has taken Cyril's conversation"]
    assert opening[4].endswith("[Claim Amir] [Claim Bea] [Claim Cyril]")

    # Ben's early shift ends at 10:30: his sweep card in General, his press, the handover.
    card = after(lines, "🧹 Ben, your shift ends today 10:30 (London time). You have 4 open "
                 "conversations:", 10)
    assert card[0][:8] >= "10:25:00"
    assert card[1].endswith("Finished but not closed 2 · Waiting on the customer 1 · "
                            "Customer waiting on us 1")
    numbered = [re.search(r" (\d\. \w+): ", line) for line in card[2:9]]
    assert [found.group(1) for found in numbered if found] == [
        "1. Pablo", "2. Amir", "3. Dora", "4. Emil"]
    assert [line.split(None, 1)[1].strip() for line in card[2:9] if "· " not in line] == [
        "Finished but not closed", "Waiting on the customer", "Customer waiting on us"]
    assert "[Close all finished (2)] [Hand the rest to the next shift]" in card[10]
    pressed = after(lines, "ben in General     presses [Close all finished (2)]", 8)
    answer = next(line for line in pressed[1:] if "→ ben" in line)  # amid topic updates
    assert answer.endswith("→ ben              Closed 2 conversations.   (only they see it)")
    handover = after(lines, "📋 Handed over from the last shift: 2 conversations, oldest "
                     "waiting first.", 3)
    assert handover[0][:8] >= "10:30:00"
    assert [re.sub(r"^.*• (\w+):.*\(had: (\w+)\)$", r"\1 from \2", line)
            for line in handover[1:3]] == ["Emil from Ben", "Dora from Ben"]
    assert handover[3].endswith("[Claim Emil] [Claim Dora]")
    shift_end = closed_at_shift_end(summary)
    assert shift_end is not None and shift_end[0] == 2 and shift_end[1] > 0

"""The Telegram demo plays the whole scripted day through the real adapter and the sandbox."""

from __future__ import annotations

from chat_rescue.sandbox.telegram_demo import play_telegram


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
    assert "Conversations           26" in summary and lines[-1] == summary
    # A digest is shown as the group sees it: its title, then a line each.
    digest = next(n for n, line in enumerate(lines) if line.endswith("need attention:"))
    assert lines[digest + 1].split(None, 1)[1].startswith("• ")

"""The few lines that go with the report's picture (and make up its HTML page's text)."""

from __future__ import annotations

from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.report import Report

CAPTION_LIMIT = 1024  # Telegram's longest photo caption


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return format_duration(seconds) if seconds >= 1 else "0s"


def summary(report: Report) -> str:
    """Conversations, first response p50/p90 against the target, the share within it,
    rescues and the share closed at shift end; waits say whether they are working time."""
    days = len(report.days)
    first = report.days[0].day.isoformat() if report.days else ""
    last = report.days[-1].day.isoformat() if report.days else ""
    lines = [f"Report for the last {days} days ({first} to {last}, {report.zone} days)"]
    if not (report.conversations or report.operators or report.closed or any(report.rescues)
            or report.first_response[0] is not None):
        lines.append("No conversations in this period.")
        return "\n".join(lines)
    p50, p90 = report.first_response
    target = f" (target {_took(report.target)})" if report.target is not None else ""
    lines += [
        f"Conversations: {report.conversations}",
        f"First response ({report.time_label}): p50 {_took(p50)}, p90 {_took(p90)}{target}",
    ]
    if report.within_target is not None:
        lines.append(f"Answered within target: {report.within_target:.0%}")
    nudges, returns, escalations = report.rescues
    lines.append(f"Rescues: {sum(report.rescues)} (nudges answered {nudges}, returns "
                 f"reclaimed {returns}, escalations answered {escalations})")
    share = report.shift_end_share
    if share is not None:
        lines.append(f"Closed at shift end: {share:.0%} of {report.closed} closes")
    return "\n".join(lines)


def caption(text: str, limit: int = CAPTION_LIMIT) -> str:
    """`text` cut to at most `limit` characters at a line end (or a word), with an ellipsis
    when anything was left out."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    end = cut.rfind("\n")
    if end < limit // 2:
        end = cut.rfind(" ")
    return (cut[:end] if end > 0 else cut).rstrip() + "…"

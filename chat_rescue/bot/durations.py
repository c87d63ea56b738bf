"""Durations as people write them: `30s`, `5m`, `1h30m`, `2h`, `500ms`, or `off`."""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:[0-9]{1,9}(?:\.[0-9]{1,6})?(?:ms|s|m|h|d))+")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FORM = "a duration like 30s, 5m, 1h30m, 2h, or off"
SHORTEST = 0.001
LONGEST = 366 * 86400.0
MAX_WRITTEN = 40  # nobody writes a longer duration; refusing early keeps parsing cheap


class DurationError(ValueError):
    """A duration that is not of the form `30s`, `5m`, `1h30m` or `off`."""


def clip(text: str, limit: int = 30) -> str:
    """User input made safe to echo in a reply: no control characters, at most `limit` chars."""
    text = _CONTROL.sub("", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_duration(text: str) -> float | None:
    """Seconds for `text`, or None for `off`; raises DurationError on anything else."""
    written = text.strip().lower()
    if written in ("off", "none", "disabled"):
        return None
    if len(written) > MAX_WRITTEN or not _WHOLE.fullmatch(written):
        raise DurationError(f"'{clip(text)}' is not {FORM}")
    seconds = sum(float(n) * _UNIT[unit] for n, unit in _PART.findall(written))
    if seconds <= 0:
        raise DurationError(f"'{clip(text)}' must be longer than zero (or use off)")
    if seconds < SHORTEST:
        raise DurationError(f"'{clip(text)}' is shorter than 1ms")
    if seconds > LONGEST:
        raise DurationError(f"'{clip(text)}' is longer than a year (use off to disable)")
    return seconds


def format_duration(seconds: float | None) -> str:
    """The inverse of parse_duration, for replies and cards: 90 -> '1m30s'."""
    if seconds is None:
        return "off"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            count, whole = divmod(whole, size)
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"

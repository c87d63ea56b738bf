"""Durations as people write them: `30s`, `5m`, `1h30m`, `2h`, `500ms`, or `off`."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
FORM = "a duration like 30s, 5m, 1h30m, 2h, or off"


class DurationError(ValueError):
    """A duration that is not of the form `30s`, `5m`, `1h30m` or `off`."""


def parse_duration(text: str) -> float | None:
    """Seconds for `text`, or None for `off`; raises DurationError on anything else."""
    written = text.strip().lower()
    if written in ("off", "none", "disabled"):
        return None
    if not written or _PART.sub("", written):
        raise DurationError(f"'{text}' is not {FORM}")
    seconds = sum(float(n) * _UNIT[unit] for n, unit in _PART.findall(written))
    if seconds <= 0:
        raise DurationError(f"'{text}' must be longer than zero (or use off)")
    return seconds


def format_duration(seconds: float | None) -> str:
    """The inverse of parse_duration, for replies and cards: 90 -> '1m30s'."""
    if seconds is None:
        return "off"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            count, whole = divmod(whole, size)
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"

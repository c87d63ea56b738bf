"""Reading a demo's transcript (the lines it printed) and its summary, as the demo tests of
each platform do."""

from __future__ import annotations

import re

_SHIFT_END = re.compile(r"^  at shift end\s+(\d+) \((\d+)% of closes\)$", re.MULTILINE)


def after(lines: list[str], text: str, count: int, when: str = "") -> list[str]:
    """The line that ends with `text` (exactly one does, of those stamped `when…`) and the
    `count` lines after it."""
    found = [n for n, line in enumerate(lines) if line.endswith(text)
             and line.startswith(when)]
    assert len(found) == 1, f"{len(found)} lines end with {text!r}"
    return lines[found[0]:found[0] + count + 1]


def closed_at_shift_end(summary: str) -> tuple[int, int] | None:
    """(closes at shift end, their share of all closes in %) from a summary's table."""
    found = _SHIFT_END.search(summary)
    return (int(found.group(1)), int(found.group(2))) if found else None

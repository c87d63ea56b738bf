"""The rescue policy in force for a conversation, and how overrides stack up.

Precedence: per-channel override > per-team setting > environment > built-in default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from chat_rescue.bot.durations import parse_duration
from chat_rescue.bot.model import Timer

TIMERS = tuple(t.value for t in Timer)


@dataclass(frozen=True, slots=True)
class Policy:
    """Timer lengths in seconds (None = off) and who to call in."""

    accept: float | None = 120.0
    first_response: float | None = 30.0
    idle: float | None = 300.0
    escalate: float | None = 300.0
    close_reminder: float | None = 1800.0
    auto_close: float | None = None
    escalate_to: str = "@here"
    escalate_repeats: int = 2
    closing_message: str = ""

    def timer(self, timer: Timer) -> float | None:
        value: float | None = getattr(self, timer.value)
        return value


SETTING_KEYS = (*TIMERS, "escalate_to")


def apply_overrides(policy: Policy, overrides: Mapping[str, str]) -> Policy:
    """`policy` with stored overrides (as written by `/rescue`) laid on top.

    Unknown keys are ignored so an older database never breaks a newer bot.
    """
    changes: dict[str, Any] = {}
    known = {f.name for f in fields(Policy)}
    for key, written in overrides.items():
        if key not in known:
            continue
        changes[key] = parse_duration(written) if key in TIMERS else written
    return replace(policy, **changes) if changes else policy


def resolve(base: Policy, team: Mapping[str, str], channel: Mapping[str, str]) -> Policy:
    """The policy for one conversation: base, then team settings, then the channel's."""
    return apply_overrides(apply_overrides(base, team), channel)

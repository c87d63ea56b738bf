"""The rescue policy in force for a conversation, and how overrides stack up.

Precedence: per-channel override > per-team setting > environment > built-in default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from chat_rescue.bot import hours_layers, hours_text
from chat_rescue.bot.durations import parse_duration
from chat_rescue.bot.hours import ALWAYS_OPEN, Schedule
from chat_rescue.bot.model import Timer

log = logging.getLogger(__name__)

TIMERS = tuple(t.value for t in Timer)
SWEEP = "sweep"  # a duration setting like the timers, but the team's: before a shift ends
DURATIONS = (*TIMERS, SWEEP)
SWEEP_RULES = ("handover", "keep")
OFF_HOURS_MESSAGE = ("Thanks for your message. Our team is away right now; we're back {back}. "
                     "We'll answer you then.")


@dataclass(frozen=True, slots=True)
class Policy:
    """Timer lengths in seconds (None = off), who to call in, and the working hours the
    timers count in (`schedule`; the default is always open). `sweep`: how long before a
    shift ends its sweep cards go out (None = no sweep); `sweep_default`: what the end of
    the shift does with what nobody decided (`handover` or `keep`)."""

    accept: float | None = 120.0
    first_response: float | None = 30.0
    idle: float | None = 300.0
    escalate: float | None = 300.0
    close_reminder: float | None = 1800.0
    auto_close: float | None = None
    escalate_to: str = "@here"
    escalate_repeats: int = 2
    closing_message: str = ""
    schedule: Schedule = ALWAYS_OPEN
    # Told to a customer who writes while the team is closed; `{back}` is when it opens.
    off_hours_message: str = OFF_HOURS_MESSAGE
    sweep: float | None = 900.0
    sweep_default: str = "handover"

    def timer(self, timer: Timer) -> float | None:
        value: float | None = getattr(self, timer)  # a StrEnum: its own name, no `.value`
        return value


SETTING_KEYS = (*DURATIONS, "escalate_to")
# Stored as text under keys of their own (`hours_text.KEYS`), laid on by `resolve`.
_NOT_STORED = frozenset({"schedule"})
_KNOWN = frozenset(f.name for f in fields(Policy)) - _NOT_STORED


def apply_overrides(policy: Policy, overrides: Mapping[str, str]) -> Policy:
    """`policy` with stored overrides (as written by `/rescue`) laid on top.

    Unknown keys are ignored so an older database never breaks a newer bot.
    """
    changes: dict[str, Any] = {}
    for key, written in overrides.items():
        if key not in _KNOWN:
            continue
        changes[key] = parse_duration(written) if key in DURATIONS else written
    return replace(policy, **changes) if changes else policy


def resolve(base: Policy, team: Mapping[str, str], channel: Mapping[str, str]) -> Policy:
    """The policy for one conversation: base, then team settings, then the channel's."""
    policy = apply_overrides(apply_overrides(base, team), channel)
    schedule = schedule_of(schedule_of(base.schedule, team), channel)
    return policy if schedule == policy.schedule else replace(policy, schedule=schedule)


_REPORTED: set[tuple[str, str]] = set()


def schedule_of(below: Schedule, stored: Mapping[str, str]) -> Schedule:
    """`below` with one scope's stored working hours laid on, key by key (the week day by
    day, the dates date by date: `hours_layers`); a key whose stored text is corrupt
    leaves `below`'s value for that key in force (said once in the log) and the scope's
    other keys still apply, so a bad row never stops the bot."""
    schedule = below
    for key in hours_text.KEYS:
        written = stored.get(key)
        if written is None:
            continue
        try:
            schedule = hours_layers.lay(schedule, {key: written})
        except hours_text.HoursError as bad:
            if (key, written) not in _REPORTED:
                _REPORTED.add((key, written))
                log.warning("stored working hours setting %s %r is not readable (%s); the "
                            "value below it stays in force", key, written, bad)
    return schedule


def unreadable(stored: Mapping[str, str]) -> tuple[str, ...]:
    """The working-hours keys (`hours_text.KEYS`) whose stored text does not read."""
    bad: list[str] = []
    for key in hours_text.KEYS:
        written = stored.get(key)
        if written is None:
            continue
        try:
            hours_layers.lay(ALWAYS_OPEN, {key: written})
        except hours_text.HoursError:
            bad.append(key)
    return tuple(bad)

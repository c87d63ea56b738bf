"""How the policy in force is made: environment, then team, then channel, hours included."""

from __future__ import annotations

import logging

import pytest

from chat_rescue.bot.hours import ALWAYS_OPEN
from chat_rescue.bot.hours_layers import own_settings
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.policy import OFF_HOURS_MESSAGE, Policy, apply_overrides, resolve

WEEKDAYS = from_environment("mon-fri 09:00-18:00", "Europe/Berlin", "")
ENV = Policy(idle=420.0, schedule=WEEKDAYS)


def test_the_built_in_policy_is_always_open_with_a_message_that_says_when_back() -> None:
    assert Policy().schedule is ALWAYS_OPEN
    assert "{back}" in Policy().off_hours_message == OFF_HOURS_MESSAGE


def test_the_hours_stack_up_key_by_key_environment_team_channel() -> None:
    team = {"timezone": "America/New_York", "idle": "10m"}
    channel = {"hours": "sat 10:00-14:00", "holidays": "DE"}
    assert resolve(ENV, {}, {}) is ENV
    on_team = resolve(ENV, team, {})
    assert on_team.schedule == from_environment("mon-fri 09:00-18:00", "America/New_York", "")
    assert on_team.idle == 600.0
    here = resolve(ENV, team, channel)
    assert here.schedule == from_environment("sat 10:00-14:00", "America/New_York", "DE")
    assert here.idle == 600.0
    # and the text written for a schedule reads back as that schedule
    written = {k: v for k, v in own_settings(ALWAYS_OPEN, here.schedule).items() if v}
    assert resolve(Policy(), written, {}).schedule == here.schedule


def test_off_hours_keep_the_environment_unless_the_team_says_otherwise() -> None:
    assert resolve(ENV, {"off_hours_message": "Back {back}!"}, {}).off_hours_message == \
        "Back {back}!"
    assert resolve(ENV, {"hours": "off"}, {}).schedule == ALWAYS_OPEN.__class__(
        zone="Europe/Berlin")


def test_a_stored_key_named_like_the_field_changes_nothing() -> None:
    assert apply_overrides(ENV, {"schedule": "off"}) is ENV


@pytest.mark.parametrize("corrupt", [{"hours": "mon-fry 9-18"}, {"timezone": "Mars/Olympus"},
                                     {"holidays": "XX"}, {"holiday_dates": "2026-13-45"}])
def test_corrupt_stored_hours_leave_the_layer_below_in_force_said_once(
    corrupt: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="chat_rescue.bot.policy"):
        assert resolve(ENV, corrupt, {}).schedule == WEEKDAYS
        team = {"timezone": "UTC"}
        assert resolve(ENV, team, corrupt).schedule == resolve(ENV, team, {}).schedule
        resolve(ENV, corrupt, {})
    warned = [r for r in caplog.records if "not readable" in r.getMessage()]
    assert len(warned) == 1


def test_one_unreadable_stored_key_leaves_only_that_key_below_in_force(
    caplog: pytest.LogCaptureFixture,
) -> None:
    team = {"hours": "sat 10:00-14:00", "timezone": "Venus/Maxwell", "holidays": "DE"}
    with caplog.at_level(logging.WARNING, logger="chat_rescue.bot.policy"):
        assert resolve(ENV, team, {}).schedule == from_environment(
            "sat 10:00-14:00", "Europe/Berlin", "DE")
        resolve(ENV, team, {})
    warned = [r for r in caplog.records if "Venus/Maxwell" in r.getMessage()]
    assert len(warned) == 1

"""`/rescue set sweep …` and `/rescue shift …`: what each input replies and stores, the
sweeps planned again, and bad input (one line, nothing changed) for every form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.commands import USAGE, CommandContext, changes_settings, run
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.model import ConversationRef, CustomerMessage
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.bot.sweeper import Sweeper
from chat_rescue.storage.sqlite import SQLiteStore

BERLIN = ZoneInfo("Europe/Berlin")
TEAM = "slack:C0TEAM"
TEAM_CHANNEL = ConversationRef("slack", "C0TEAM")
INTAKE = ConversationRef("slack", "C0HELP")
ENV = Policy(schedule=from_environment("mon-fri 09:00-18:00", "Europe/Berlin", ""))
SLACK_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
KNOWN = {"U0BEN", "U0CHLOE", "U0DAN"}


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def slack_person(word: str) -> str | None:
    """As the Slack adapter reads members: `<@U0BEN|ben>` (Slack escapes mentions)."""
    found = SLACK_USER.match(word)
    return found[1] if found and found[1] in KNOWN else None


def names(user: str) -> str:
    return {"U0BEN": "@ben", "U0CHLOE": "@chloe", "U0DAN": "@dan"}.get(user, user)


def admin(here: ConversationRef = TEAM_CHANNEL) -> CommandContext:
    return CommandContext(TEAM, here, "U0ANA", is_admin=True, intake=here == INTAKE,
                          person=slack_person, name=names)


def member(here: ConversationRef = TEAM_CHANNEL) -> CommandContext:
    return CommandContext(TEAM, here, "U0BEN", is_admin=False, intake=here == INTAKE,
                          person=slack_person, name=names)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2026-12-04 10:00"))


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    opened = SQLiteStore("sqlite://")
    yield opened
    opened.close()


@pytest.fixture
def service(store: SQLiteStore, clock: FakeClock) -> Service:
    service = Service(store, ENV, clock)
    sweeper = Sweeper(store, service, clock)
    service.handle(CustomerMessage(ConversationRef("slack", "C0HELP", "1.0"), clock.now(),
                                   "alice", "hi", TEAM))
    sweeper.fire_due(clock.now())  # the new team's sweeps are planned
    return service


def stored(store: SQLiteStore) -> dict[str, str]:
    return store.settings(f"team:{TEAM}")


def sweeps(store: SQLiteStore) -> list[tuple[float, float, tuple[str, ...]]]:
    return [(s.sweep_at, s.ends_at, s.shifts) for s in store.sweeps(TEAM)]


def one_line(reply: str) -> bool:
    return bool(reply.strip()) and len(reply.splitlines()) == 1


# --- set sweep ------------------------------------------------------------------------------


def test_set_sweep_changes_the_teams_and_plans_the_sweep_again(service: Service,
                                                               store: SQLiteStore) -> None:
    assert sweeps(store) == [(at("2026-12-04 17:45"), at("2026-12-04 18:00"), ("",))]
    assert run("set sweep 5m", admin(), service) == "sweep is now 5m for the team."
    assert stored(store) == {"sweep": "5m"}
    assert sweeps(store) == [(at("2026-12-04 17:55"), at("2026-12-04 18:00"), ("",))]
    assert run("set SWEEP off", admin(), service) == "sweep is now off for the team."
    assert sweeps(store) == []
    assert "Sweep: off" in run("", member(), service)


def test_changed_team_hours_plan_the_sweep_again(service: Service, store: SQLiteStore) -> None:
    assert sweeps(store) == [(at("2026-12-04 17:45"), at("2026-12-04 18:00"), ("",))]
    run("hours mon-fri 09:00-17:00", admin(), service)
    assert sweeps(store) == [(at("2026-12-04 16:45"), at("2026-12-04 17:00"), ("",))]
    run("holiday 2026-12-04", admin(), service)  # today off: the next shift is Monday's
    assert sweeps(store) == [(at("2026-12-07 16:45"), at("2026-12-07 17:00"), ("",))]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("set sweep 5x", "Usage: /rescue set <timer> <duration>"),
        ("set sweep -5m", "Usage: /rescue set"),
        ("set sweep", USAGE["set"]),
        ("set sweep 5m 10m", USAGE["set"]),
        ("set sweeep 5m", "Unknown timer 'sweeep'"),
    ],
)
def test_bad_sweep_settings_are_explained_and_change_nothing(
        text: str, says: str, service: Service, store: SQLiteStore) -> None:
    before = sweeps(store)
    reply = run(text, admin(), service)
    assert one_line(reply) and says in reply
    assert stored(store) == {} and sweeps(store) == before


def test_the_sweep_is_set_by_admins_for_the_team_only(service: Service,
                                                      store: SQLiteStore) -> None:
    assert run("set sweep 5m", member(), service).startswith("Sorry, only admins")
    assert run("set sweep 5m", admin(INTAKE), service).startswith("The sweep is the team's")
    assert stored(store) == {} and store.settings("channel:slack:C0HELP") == {}
    assert changes_settings("set sweep 5m")


# --- named shifts ---------------------------------------------------------------------------


def test_a_named_shift_is_stored_listed_and_swept_at_its_end(service: Service,
                                                             store: SQLiteStore) -> None:
    assert run("shift", member(), service) == (
        "No named shifts: everybody's shift ends with the team's working hours (Mon–Fri "
        "09:00–18:00 (Europe/Berlin)); the sweep 15m before each end.")
    reply = run("shift late 14:00-22:00 <@U0BEN|ben> <@U0CHLOE|chloe>", admin(), service)
    assert reply == ("Shift late: Daily 14:00–22:00 (Europe/Berlin), @ben, @chloe. Their "
                     "sweep comes at its ends, not the team's.")
    assert stored(store) == {"shift:late": "daily 14:00-22:00 | U0BEN U0CHLOE"}
    assert sweeps(store) == [(at("2026-12-04 17:45"), at("2026-12-04 18:00"), ("",)),
                             (at("2026-12-04 21:45"), at("2026-12-04 22:00"), ("late",))]
    run("shift Early mon-fri 06:00-14:00 <@U0DAN>", admin(), service)
    assert run("shifts", member(), service).splitlines() == [
        "Shift early: Mon–Fri 06:00–14:00 (Europe/Berlin), @dan",
        "Shift late: Daily 14:00–22:00 (Europe/Berlin), @ben, @chloe",
        "Everybody else's shift ends with the team's working hours (Mon–Fri 09:00–18:00 "
        "(Europe/Berlin)); the sweep 15m before each end.",
    ]
    assert "named shifts: early, late" in run("", member(), service)
    # a shift given again replaces it; off removes it
    run("shift late 15:00-23:00 <@U0BEN>", admin(), service)
    assert stored(store)["shift:late"] == "daily 15:00-23:00 | U0BEN"
    assert run("shift late off", admin(), service).startswith("Shift late is removed")
    assert [s[2] for s in sweeps(store)] == [("early",), ("",)]
    assert "late" not in run("shift", member(), service)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("shift Late! 14:00-22:00 <@U0BEN>", "'Late!' is not a shift name"),
        ("shift a-very-long-shift-name-indeed 14:00-22:00 <@U0BEN>", "is not a shift name"),
        ("shift late", "Say the shift's hours and members"),
        ("shift late <@U0BEN>", "Say the shift's hours"),
        ("shift late 14:00-22:00", "Name the shift's members"),
        ("shift late 25:00-26:00 <@U0BEN>", "Usage: /rescue shift"),
        ("shift late 22:00-14:00 <@U0BEN>", "Usage: /rescue shift"),  # 16 h overnight: a typo
        ("shift late mon-fry 14:00-22:00 <@U0BEN>", "is not a day"),
        ("shift late mon-fri <@U0BEN>", "Say the hours for 'mon-fri'"),
        ("shift late 14:00-22:00 Europe/Berlin <@U0BEN>", "Usage: /rescue shift"),
        ("shift late 14:00-22:00 <@U0NOBODY>", "I don't know <@U0NOBODY>"),
        ("shift late 14:00-22:00 @ben", "I don't know @ben"),  # Slack would have escaped it
        ("shift late closed <@U0BEN>", "That leaves no working hours"),
        ("shift late off", "There is no shift late"),
        ("shift late off now", "Usage: /rescue shift"),
    ],
)
def test_bad_shifts_are_explained_and_change_nothing(text: str, says: str, service: Service,
                                                     store: SQLiteStore) -> None:
    before = sweeps(store)
    reply = run(text, admin(), service)
    assert one_line(reply) and says in reply, reply
    assert stored(store) == {} and sweeps(store) == before


def test_shifts_are_changed_by_admins_in_the_team_channel(service: Service,
                                                          store: SQLiteStore) -> None:
    assert run("shift late 14:00-22:00 <@U0BEN>", member(), service).startswith("Sorry")
    assert run("shift late 14:00-22:00 <@U0BEN>", admin(INTAKE), service).startswith(
        "Shifts are the team's")
    assert stored(store) == {}
    assert changes_settings("shift late 14:00-22:00 @ben") and not changes_settings("shift")
    assert run("shift", CommandContext(TEAM, TEAM_CHANNEL, "U0X", is_admin=False,
                                       is_operator=False), service).startswith("Only the")


def test_members_with_control_characters_are_refused(service: Service,
                                                     store: SQLiteStore) -> None:
    plain = CommandContext(TEAM, TEAM_CHANNEL, "U0ANA", is_admin=True)
    reply = run("shift late 14:00-22:00 @be\x07n", plain, service)
    assert one_line(reply) and "I don't know" in reply and stored(store) == {}


def test_a_team_has_at_most_twenty_shifts(service: Service, store: SQLiteStore) -> None:
    for n in range(20):
        run(f"shift s{n} 14:00-22:00 <@U0BEN>", admin(), service)
    reply = run("shift one-more 14:00-22:00 <@U0BEN>", admin(), service)
    assert "at most 20 shifts" in reply
    assert "shift:one-more" not in stored(store)
    assert run("shift s3 15:00-22:00 <@U0BEN>", admin(), service).startswith("Shift s3")

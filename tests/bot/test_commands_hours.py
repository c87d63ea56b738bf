"""`/rescue hours`, `holiday` and `holidays`: what each input replies and stores, who may
change the hours, that deadlines move with them, and that bad input changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.commands import TEAM_ONLY, USAGE, CommandContext, changes_settings, run
from chat_rescue.bot.hours import ALWAYS_OPEN, is_open
from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.model import ConversationRef, CustomerMessage, OperatorMessage, Timer
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.storage.sqlite import SQLiteStore

BERLIN = ZoneInfo("Europe/Berlin")
TEAM = "team-a"
INTAKE = ConversationRef("slack", "C0HELP")
OTHER_INTAKE = ConversationRef("slack", "C0VIP")
TEAM_CHANNEL = ConversationRef("slack", "C0TEAM")
SORRY = "Sorry, only admins can change rescue settings. Nothing was changed."
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def at(text: str) -> float:
    """Berlin time; 4 December 2026 is a Friday."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at("2026-12-04 17:58"))


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    opened = SQLiteStore("sqlite://")
    yield opened
    opened.close()


@pytest.fixture
def service(store: SQLiteStore, clock: FakeClock) -> Service:
    return Service(store, Policy(), clock)


def admin(here: ConversationRef = INTAKE) -> CommandContext:
    return CommandContext(TEAM, here, "U0ANA", is_admin=True, intake=here != TEAM_CHANNEL)


def member(here: ConversationRef = INTAKE) -> CommandContext:
    return CommandContext(TEAM, here, "U0BEN", is_admin=False, intake=here != TEAM_CHANNEL)


def outsider() -> CommandContext:
    return CommandContext(TEAM, INTAKE, "U0CUST", is_admin=False, intake=True,
                          is_operator=False)


def stored(store: SQLiteStore) -> dict[tuple[str, str], str]:
    rows = store.conn.execute("SELECT scope, key, value FROM settings")
    return {(str(s), str(k)): str(v) for s, k, v in rows}


def thread(n: int, here: ConversationRef = INTAKE) -> ConversationRef:
    return ConversationRef(here.platform, here.channel, f"t{n}")


def berlin_weekdays(service: Service) -> None:
    reply = run("hours mon-fri 09:00-18:00 Europe/Berlin", admin(TEAM_CHANNEL), service)
    assert reply.startswith("Working hours for the team:")


# --- reading ------------------------------------------------------------------------------


def test_hours_shows_the_schedule_here_and_whether_the_team_is_open(
    service: Service, clock: FakeClock
) -> None:
    assert run("hours", member(), service) == "Working hours here: Always open\nOpen now."
    berlin_weekdays(service)
    assert run("hours", member(), service) == (
        "Working hours here: Mon–Fri 09:00–18:00 (Europe/Berlin) (team)\n"
        "Open now, until today 18:00 (Berlin time).")
    clock.t = at("2026-12-04 18:30")
    assert run("HOURS", member(), service).splitlines()[1] == \
        "Closed now, back Monday 09:00 (Berlin time)."


def test_status_has_a_line_for_the_hours_once_there_are_some(service: Service) -> None:
    assert "Working hours" not in run("", member(), service)
    berlin_weekdays(service)
    lines = run("", member(), service).splitlines()
    assert lines[2] == ("Working hours: Mon–Fri 09:00–18:00 (Europe/Berlin) (team). "
                        "Open now, until today 18:00 (Berlin time).")
    assert lines[3] == ("Sweep: 15m before each shift ends (what is not decided then is "
                        "closed or handed over)")
    assert lines[4].startswith("Open conversations:")


def test_reading_is_for_the_team_changing_for_admins(service: Service, store: SQLiteStore) -> None:
    assert run("hours", outsider(), service) == TEAM_ONLY
    for text in ("hours off", "hours mon-fri 09:00-18:00", "holiday 2026-12-25", "holidays DE",
                 "hours team", "hours inherit"):
        assert run(text, member(), service) == SORRY
        assert run(text, outsider(), service) == SORRY
    assert stored(store) == {}
    assert service.policy(TEAM, thread(1)).schedule is ALWAYS_OPEN


def test_hours_are_not_changed_from_elsewhere(service: Service, store: SQLiteStore) -> None:
    elsewhere = CommandContext(TEAM, ConversationRef("slack", "C0RANDOM"), "U0ANA",
                               is_admin=True, elsewhere=True)
    assert run("hours mon-fri 09:00-18:00", elsewhere, service).endswith("Nothing was changed.")
    assert stored(store) == {}


@pytest.mark.parametrize(
    ("text", "changes"),
    [("hours", False), ("HOURS", False), ("hours off", True), ("hours mon 9:00-17:00", True),
     ("holiday 2026-12-25", True), ("holiday", True), ("holidays DE", True),
     ("hours team", True), ("hours Inherit", True)],
)
def test_the_adapters_know_which_hours_verbs_change_something(text: str, changes: bool) -> None:
    assert changes_settings(text) is changes


# --- changing -----------------------------------------------------------------------------


def test_the_issues_examples_in_the_team_channel_store_what_differs_for_the_team(
    service: Service, store: SQLiteStore, clock: FakeClock
) -> None:
    team = f"team:{TEAM}"
    assert run("hours mon-fri 09:00-13:00,14:00-18:00 Europe/Berlin", admin(TEAM_CHANNEL),
               service) == ("Working hours for the team: Mon–Fri 09:00–13:00, 14:00–18:00 "
                            "(Europe/Berlin). Open now, until today 18:00 (Berlin time).")
    assert stored(store) == {(team, "hours"): "mon-fri 09:00-13:00,14:00-18:00",
                             (team, "timezone"): "Europe/Berlin"}
    assert run("hours sat 10:00-14:00", admin(TEAM_CHANNEL), service).startswith(
        "Working hours for the team: Mon–Fri 09:00–13:00, 14:00–18:00 · Sat 10:00–14:00 "
        "(Europe/Berlin).")
    assert run("holiday 2026-12-25", admin(TEAM_CHANNEL), service).startswith(
        "Working hours for the team: Mon–Fri 09:00–13:00, 14:00–18:00 · Sat 10:00–14:00 "
        "(Europe/Berlin) · holidays: 2026-12-25.")
    run("holiday 2026-12-24 09:00-13:00", admin(TEAM_CHANNEL), service)
    assert stored(store)[(team, "holiday_dates")] == "2026-12-24 09:00-13:00; 2026-12-25"
    run("holiday remove 2026-12-25", admin(TEAM_CHANNEL), service)
    assert stored(store)[(team, "holiday_dates")] == "2026-12-24 09:00-13:00"
    assert "holidays: DE" in run("holidays DE", admin(TEAM_CHANNEL), service)
    assert stored(store)[(team, "holidays")] == "DE"
    clock.t = at("2026-12-04 20:00")
    assert run("hours daily 08:00-20:00 UTC", admin(TEAM_CHANNEL), service) == (
        "Working hours for the team: Daily 08:00–20:00 (UTC) · holidays: DE · "
        "2026-12-24 09:00–13:00. Open now, until today 20:00 (UTC).")
    assert stored(store)[(team, "hours")] == "daily 08:00-20:00"
    assert (team, "timezone") not in stored(store)  # UTC, as the environment has it
    assert "Open round the clock (UTC)" in run("hours off", admin(TEAM_CHANNEL), service)
    assert (team, "hours") not in stored(store)  # round the clock, as the environment
    assert all(scope == team for scope, _ in stored(store))


def test_in_an_intake_channel_the_change_is_that_channels_and_inherits_the_rest(
    service: Service, store: SQLiteStore
) -> None:
    berlin_weekdays(service)
    reply = run("hours sat 10:00-14:00", admin(), service)
    assert reply == ("Working hours for this channel: Mon–Fri 09:00–18:00 · Sat 10:00–14:00 "
                     "(Europe/Berlin). Open now, until today 18:00 (Berlin time).")
    assert stored(store)[("channel:slack:C0HELP", "hours")] == \
        "sat 10:00-14:00; other days inherited"  # only the day it named
    assert ("channel:slack:C0HELP", "timezone") not in stored(store)  # still the team's
    assert run("hours", member(), service).splitlines()[1] == (
        "Set in this channel: Sat 10:00–14:00; the rest follows the team. "
        "/rescue hours team drops what the channel sets.")
    assert run("hours", member(OTHER_INTAKE), service).splitlines()[0] == \
        "Working hours here: Mon–Fri 09:00–18:00 (Europe/Berlin) (team)"
    # the team moves to another zone: the channel follows, with its own days
    run("hours America/New_York", admin(TEAM_CHANNEL), service)
    assert service.policy(TEAM, thread(1)).schedule == from_environment(
        "mon-fri 09:00-18:00; sat 10:00-14:00", "America/New_York", "")


def test_a_change_to_what_is_in_force_already_stores_nothing(
    service: Service, store: SQLiteStore
) -> None:
    berlin_weekdays(service)
    before = stored(store)
    assert run("hours mon-fri 09:00-18:00", admin(), service) == (
        "Nothing changed: the working hours for this channel are Mon–Fri 09:00–18:00 "
        "(Europe/Berlin).")
    assert stored(store) == before


def test_changed_hours_move_the_open_deadlines_keeping_the_working_time_used(
    service: Service, store: SQLiteStore, clock: FakeClock
) -> None:
    service.handle(CustomerMessage(thread(1), clock.now() - 3600, "cust-1", "hi", TEAM))
    service.handle(OperatorMessage(thread(1), clock.now() - 3600, "ana"))
    service.handle(CustomerMessage(thread(1), clock.now(), "cust-1", "still there?", TEAM))
    service.handle(CustomerMessage(thread(2), clock.now(), "cust-2", "other team", "team-b"))
    assert store.next_deadline() == clock.now() + 120  # team-b's accept, wall time
    idle = store.load(thread(1).key)
    assert idle is not None and idle.deadline == at("2026-12-04 18:03")

    berlin_weekdays(service)

    moved = store.load(thread(1).key)
    assert moved is not None
    assert (moved.deadline, moved.deadline_timer) == (at("2026-12-07 09:03"), Timer.IDLE)
    other = store.load(thread(2).key)
    assert other is not None and other.deadline == clock.now() + 120
    run("hours off", admin(TEAM_CHANNEL), service)
    back = store.load(thread(1).key)
    assert back is not None and back.deadline == at("2026-12-04 18:03")


def test_a_change_in_a_scope_with_an_unreadable_key_drops_it_as_the_reply_says(
    service: Service, store: SQLiteStore
) -> None:
    team = f"team:{TEAM}"
    store.put_setting(team, "hours", "mon-fri 09:00-18:00", "U0ANA", 0.0)
    store.put_setting(team, "timezone", "Pluto/Base", "U0ANA", 0.0)  # corrupt
    # the readable hours stay in force; only the zone falls back (to UTC below)
    assert service.policy(TEAM, thread(1)).schedule == from_environment(
        "mon-fri 09:00-18:00", "UTC", "")
    reply = run("holidays DE", admin(TEAM_CHANNEL), service)
    assert reply.startswith("Working hours for the team: Mon–Fri 09:00–18:00 (UTC) · "
                            "holidays: DE.")
    assert (team, "timezone") not in stored(store)  # UTC below, as the reply says
    assert stored(store)[(team, "holidays")] == "DE"
    assert service.policy(TEAM, thread(1)).schedule == from_environment(
        "mon-fri 09:00-18:00", "UTC", "DE")


# --- bad input ----------------------------------------------------------------------------


MALFORMED = [
    ("hours mon-fry 09:00-18:00", "is not a day"),
    ("hours mon-fri 9-5", "did you mean 05:00-09:00?"),
    ("hours mon-fri 25:00-26:00", "is not a time of day"),
    ("hours mon-fri 09:00", "is not a from-to interval"),
    ("hours mon-fri", "Say the hours for 'mon-fri'"),
    ("hours mon-fri closed", "no working hours"),
    ("hours mon-fri 09:00-09:00", "starts and ends at the same time"),
    ("hours mon-fri 09:00-18:00 Mars/Olympus", "is not a time zone"),
    ("hours Nowhere", "is not a time zone"),
    ("hours mon-fri 09:00-18:00\x1b[2J", ""),
    ("hours " + "mon " * 3000, ""),
    ("holiday", USAGE["holiday"]),
    ("holiday remove", USAGE["holiday"]),
    ("holiday 2026-13-01", "is not a date"),
    ("holiday 25.12.2026", "is not a date"),
    ("holiday 2026-12-24 9-", "is not a time of day"),
    ("holiday remove 2026-12-31", "is not among the dates here"),
    ("holiday remove 2026-12-25 2026-12-26", USAGE["holiday"]),
    ("holidays", USAGE["holidays"]),
    ("holidays XX", "is not a country"),
    ("holidays DE-ZZ", "is not a country"),
    ("holidays DE US", USAGE["holidays"]),
    ("holidays \x07\x00", "is not a country"),
    ("hours team now", USAGE["hours"]),
    ("hours inherit team", USAGE["hours"]),
]


@pytest.mark.parametrize("here", [INTAKE, TEAM_CHANNEL], ids=["intake", "team"])
@pytest.mark.parametrize(("text", "says"), MALFORMED)
def test_bad_input_for_every_hours_verb_gets_one_line_and_changes_nothing(
    text: str, says: str, here: ConversationRef, service: Service, store: SQLiteStore
) -> None:
    berlin_weekdays(service)
    run("holiday 2026-12-25", admin(), service)
    before = stored(store)
    policy = service.policy(TEAM, thread(1, here))

    for ctx in (admin(here), member(here)):  # explained to a non-admin too
        reply = run(text, ctx, service)
        assert len(reply.splitlines()) == 1 and reply.strip(), reply
        assert says in reply
        assert len(reply) < 300 and not CONTROL.search(reply)
        assert not reply.startswith(("Working hours", "Nothing changed"))

    assert stored(store) == before
    assert service.policy(TEAM, thread(1, here)) == policy


def test_changed_hours_keep_the_working_time_a_timer_used_under_the_old_hours(
    store: SQLiteStore, clock: FakeClock
) -> None:
    # auto_close 8h from the operator's word at 17:00 on Friday under Mon-Fri 09-18: one
    # hour used by the close. Round the clock from Saturday 12:00, 7 hours are left: it
    # closes at 19:00 on Saturday, not at once (8 hours after Friday 17:00 have passed).
    service = Service(store, Policy(auto_close=8 * 3600, close_reminder=None), clock)
    berlin_weekdays(service)
    clock.t = at("2026-12-04 16:00")
    service.handle(CustomerMessage(thread(1), clock.now(), "cust-1", "hi", TEAM))
    clock.t = at("2026-12-04 17:00")
    service.handle(OperatorMessage(thread(1), clock.now(), "ana"))
    clock.t = at("2026-12-05 12:00")
    run("hours off", admin(TEAM_CHANNEL), service)
    conv = store.load(thread(1).key)
    assert conv is not None and conv.state.value == "waiting_on_customer"
    assert (conv.deadline, conv.deadline_timer) == (at("2026-12-05 19:00"), Timer.AUTO_CLOSE)


def test_widened_hours_keep_the_working_time_a_close_reminder_used(
    store: SQLiteStore, clock: FakeClock
) -> None:
    # close_reminder 30m from 17:50 on Friday is due 09:20 on Monday; at 09:10 the hours
    # widen to 08:00-18:00: 20 of its 30 minutes are used, so it stays due at 09:20.
    service = Service(store, Policy(close_reminder=1800), clock)
    berlin_weekdays(service)
    clock.t = at("2026-12-04 17:40")
    service.handle(CustomerMessage(thread(1), clock.now(), "cust-1", "hi", TEAM))
    clock.t = at("2026-12-04 17:50")
    service.handle(OperatorMessage(thread(1), clock.now(), "ana"))
    conv = store.load(thread(1).key)
    assert conv is not None and conv.deadline == at("2026-12-07 09:20")
    clock.t = at("2026-12-07 09:10")
    run("hours mon-fri 08:00-18:00", admin(TEAM_CHANNEL), service)
    conv = store.load(thread(1).key)
    assert conv is not None and not conv.reminded
    assert (conv.deadline, conv.deadline_timer) == (at("2026-12-07 09:20"),
                                                    Timer.CLOSE_REMINDER)
    # a second change counts on from the first: 25 of 30 minutes used by 09:15
    clock.t = at("2026-12-07 09:15")
    run("hours off", admin(TEAM_CHANNEL), service)
    conv = store.load(thread(1).key)
    assert conv is not None and conv.deadline == at("2026-12-07 09:20")
    # a new timer counts from its own start again
    clock.t = at("2026-12-07 09:16")
    service.handle(OperatorMessage(thread(1), clock.now(), "ana"))
    conv = store.load(thread(1).key)
    assert conv is not None and conv.deadline == at("2026-12-07 09:46")


# --- a channel's own hours on the team's ---------------------------------------------------

HELP_CHANNEL = "channel:slack:C0HELP"


def hours_on(service: Service, day: str, here: ConversationRef = INTAKE) -> tuple[object, ...]:
    return service.policy(TEAM, thread(1, here)).schedule.hours_on(date.fromisoformat(day))


def test_a_holiday_the_team_adds_after_a_channels_own_reaches_the_channel(
    service: Service, store: SQLiteStore
) -> None:
    berlin_weekdays(service)
    assert run("holiday 2026-12-24 09:00-13:00", admin(), service).startswith(
        "Working hours for this channel: Mon–Fri 09:00–18:00 (Europe/Berlin) · "
        "2026-12-24 09:00–13:00.")
    assert stored(store)[(HELP_CHANNEL, "holiday_dates")] == "2026-12-24 09:00-13:00"
    run("holiday 2026-12-25", admin(TEAM_CHANNEL), service)  # later, in the team channel
    # the channel closes on both dates: its own short day, and the team's holiday
    assert hours_on(service, "2026-12-24") == ((540, 780),)
    assert hours_on(service, "2026-12-25") == ()
    assert not is_open(service.policy(TEAM, thread(1)).schedule, at("2026-12-25 10:00"))
    assert hours_on(service, "2026-12-24", OTHER_INTAKE) == ((540, 1080),)  # only here
    assert run("hours", member(), service).splitlines()[:2] == [
        "Working hours here: Mon–Fri 09:00–18:00 (Europe/Berlin) · holidays: 2026-12-25 · "
        "2026-12-24 09:00–13:00",
        "Set in this channel: 2026-12-24 09:00–13:00; the rest follows the team. "
        "/rescue hours team drops what the channel sets."]
    # and the team's removal of its holiday reaches the channel too
    run("holiday remove 2026-12-25", admin(TEAM_CHANNEL), service)
    assert hours_on(service, "2026-12-25") == ((540, 1080),)


def test_a_channel_removes_a_team_holiday_for_itself_alone(
    service: Service, store: SQLiteStore
) -> None:
    berlin_weekdays(service)
    run("holiday 2026-12-25", admin(TEAM_CHANNEL), service)
    reply = run("holiday remove 2026-12-25", admin(), service)
    assert reply.startswith("Working hours for this channel: Mon–Fri 09:00–18:00 "
                            "(Europe/Berlin). ")
    assert stored(store)[(HELP_CHANNEL, "holiday_dates")] == "2026-12-25 as usual"
    assert hours_on(service, "2026-12-25") == ((540, 1080),)  # a Friday, open as usual
    assert hours_on(service, "2026-12-25", OTHER_INTAKE) == ()  # the team's holiday there
    assert service.team_policy(TEAM).schedule.hours_on(date(2026, 12, 25)) == ()
    assert "Set in this channel: 2026-12-25 as usual;" in run("hours", member(), service)
    # a date the channel does not have is still refused, and nothing changes
    before = stored(store)
    assert "is not among the dates here" in run("holiday remove 2026-12-25", admin(), service)
    assert stored(store) == before
    # setting the team's holiday again in the channel follows the team once more
    run("holiday 2026-12-25", admin(), service)
    assert (HELP_CHANNEL, "holiday_dates") not in stored(store)
    assert hours_on(service, "2026-12-25") == ()


def test_hours_team_in_a_channel_drops_its_own_hours_and_follows_the_team(
    service: Service, store: SQLiteStore, clock: FakeClock
) -> None:
    berlin_weekdays(service)
    for text in ("hours sat 10:00-14:00", "hours Europe/London", "holidays DE",
                 "holiday 2026-12-24"):
        run(text, admin(), service)
    assert {key for scope, key in stored(store) if scope == HELP_CHANNEL} == {
        "hours", "timezone", "holidays", "holiday_dates"}
    assert run("hours team", admin(), service) == (
        "This channel follows the team's working hours again: Mon–Fri 09:00–18:00 "
        "(Europe/Berlin). Open now, until today 18:00 (Berlin time).")
    assert all(scope != HELP_CHANNEL for scope, _ in stored(store))
    assert service.policy(TEAM, thread(1)).schedule == service.team_policy(TEAM).schedule
    assert run("hours", member(), service).splitlines()[0] == \
        "Working hours here: Mon–Fri 09:00–18:00 (Europe/Berlin) (team)"
    # again: nothing of its own to drop
    assert run("HOURS INHERIT", admin(), service) == (
        "This channel follows the team's working hours already: Mon–Fri 09:00–18:00 "
        "(Europe/Berlin). Nothing was changed.")
    # a later change of the team's reaches it
    run("hours sat 10:00-14:00", admin(TEAM_CHANNEL), service)
    assert hours_on(service, "2026-12-05") == ((600, 840),)


def test_following_the_team_again_moves_the_channels_deadlines(
    service: Service, store: SQLiteStore, clock: FakeClock
) -> None:
    berlin_weekdays(service)
    run("hours off", admin(), service)  # this channel: round the clock
    clock.t = at("2026-12-04 17:59")
    service.handle(CustomerMessage(thread(1), clock.now(), "cust", "hi", TEAM))
    queued = store.load(thread(1).key)
    assert queued is not None and queued.deadline == at("2026-12-04 18:01")  # accept 2m
    run("hours team", admin(), service)
    moved = store.load(thread(1).key)
    assert moved is not None  # one minute on Friday, the other when the team opens Monday
    assert (moved.deadline, moved.deadline_timer) == (at("2026-12-07 09:01"), Timer.ACCEPT)


def test_hours_team_in_the_team_channel_says_these_are_the_teams_and_changes_nothing(
    service: Service, store: SQLiteStore
) -> None:
    berlin_weekdays(service)
    run("hours sat 10:00-14:00", admin(), service)
    before = stored(store)
    reply = run("hours team", admin(TEAM_CHANNEL), service)
    assert reply.startswith("These are the team's own working hours (Mon–Fri 09:00–18:00 "
                            "(Europe/Berlin)), so there is nothing here to follow")
    assert reply.endswith("Nothing was changed.")
    assert stored(store) == before


def test_the_status_says_what_the_channel_sets_itself(service: Service) -> None:
    berlin_weekdays(service)
    assert run("", member(), service).splitlines()[2].startswith(
        "Working hours: Mon–Fri 09:00–18:00 (Europe/Berlin) (team). ")
    run("hours sat 10:00-14:00", admin(), service)
    assert run("", member(), service).splitlines()[2] == (
        "Working hours: Mon–Fri 09:00–18:00 · Sat 10:00–14:00 (Europe/Berlin) (this channel: "
        "Sat 10:00–14:00; the rest the team's). Open now, until today 18:00 (Berlin time).")
    assert run("", member(OTHER_INTAKE), service).splitlines()[2].startswith(
        "Working hours: Mon–Fri 09:00–18:00 (Europe/Berlin) (team). ")


def test_values_stored_before_the_layering_read_the_same_and_take_the_teams_new_dates(
    service: Service, store: SQLiteStore
) -> None:
    berlin_weekdays(service)
    run("holiday 2026-12-25", admin(TEAM_CHANNEL), service)
    # what `/rescue hours sat 10:00-14:00` and `/rescue holiday 2026-12-24 09:00-13:00` in
    # the channel stored before: the team's whole week and dates, copied with the channel's
    store.put_setting(HELP_CHANNEL, "hours", "mon-fri 09:00-18:00; sat 10:00-14:00", "U0ANA", 0)
    store.put_setting(HELP_CHANNEL, "holiday_dates", "2026-12-24 09:00-13:00; 2026-12-25",
                      "U0ANA", 0)
    service.settings_changed(TEAM)
    lines = run("hours", member(), service).splitlines()
    assert lines[0] == ("Working hours here: Mon–Fri 09:00–18:00 · Sat 10:00–14:00 "
                        "(Europe/Berlin) · holidays: 2026-12-25 · 2026-12-24 09:00–13:00")
    assert lines[1] == ("Set in this channel: the whole week (Mon–Fri 09:00–18:00 · "
                        "Sat 10:00–14:00), 2026-12-24 09:00–13:00, 2026-12-25 closed; the rest "
                        "follows the team. /rescue hours team drops what the channel sets.")
    # a holiday the team adds now reaches the channel; its whole week stays its own
    run("holiday 2026-12-31", admin(TEAM_CHANNEL), service)
    run("hours mon-fri 08:00-16:00", admin(TEAM_CHANNEL), service)
    assert hours_on(service, "2026-12-31") == ()
    assert hours_on(service, "2026-12-30") == ((540, 1080),)
    # once the channel changes its week, it stores what differs from the team's, day by
    # day: its Saturday set back to the team's (closed) follows the team from then on
    run("hours sat closed", admin(), service)
    assert stored(store)[(HELP_CHANNEL, "hours")] == "mon-fri 09:00-18:00; other days inherited"
    run("hours sat 10:00-12:00", admin(TEAM_CHANNEL), service)
    assert hours_on(service, "2026-12-05") == ((600, 720),)


def test_a_team_change_moves_the_deadlines_in_channels_that_follow_it_only(
    service: Service, store: SQLiteStore, clock: FakeClock
) -> None:
    berlin_weekdays(service)
    run("hours sat 10:00-14:00", admin(), service)  # its weekdays still the team's
    # a whole week of its own, as stored before the layering
    store.put_setting("channel:slack:C0VIP", "hours", "mon-fri 09:00-18:00", "U0ANA", 0)
    service.settings_changed(TEAM)
    for here in (INTAKE, OTHER_INTAKE):
        ref = thread(1, here)
        service.handle(CustomerMessage(ref, clock.now() - 3600, "cust", "hi", TEAM))
        service.handle(OperatorMessage(ref, clock.now() - 3600, "ana"))
        service.handle(CustomerMessage(ref, clock.now(), "cust", "still there?", TEAM))
    # idle 5m from 17:58 on Friday: 2 minutes Friday, the rest at the next opening
    waiting = store.load(thread(1).key)
    assert waiting is not None and waiting.deadline == at("2026-12-05 10:03")  # Saturday
    vip = store.load(thread(1, OTHER_INTAKE).key)
    assert vip is not None and vip.deadline == at("2026-12-07 09:03")  # Monday

    # the team closes that Saturday: the channel's own Saturday is the team's holiday too
    run("holiday 2026-12-05", admin(TEAM_CHANNEL), service)
    moved = store.load(thread(1).key)
    assert moved is not None and moved.deadline == at("2026-12-07 09:03")

    vip = store.load(thread(1, OTHER_INTAKE).key)
    clock.t = at("2026-12-04 18:30")  # closed now; idle used 2 of its 5 minutes
    run("hours mon-fri 09:00-20:00", admin(TEAM_CHANNEL), service)

    moved = store.load(thread(1).key)
    assert moved is not None
    assert (moved.deadline, moved.deadline_timer) == (at("2026-12-04 18:33"), Timer.IDLE)
    untouched = store.load(thread(1, OTHER_INTAKE).key)
    assert untouched == vip  # its own week: the same deadline, not even written again

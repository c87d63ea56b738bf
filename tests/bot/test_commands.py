"""`/rescue`: what each input replies and changes, and that bad input changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.commands import (
    HELP,
    TEAM_ONLY,
    USAGE,
    CommandContext,
    ReportJob,
    answer,
    changes_settings,
    run,
)
from chat_rescue.bot.durations import format_duration
from chat_rescue.bot.model import (
    Close,
    ConversationRef,
    CustomerMessage,
    DeadlineDue,
    Escalate,
    OperatorMessage,
    Timer,
)
from chat_rescue.bot.policy import TIMERS, Policy
from chat_rescue.bot.service import Service
from chat_rescue.storage.sqlite import SQLiteStore

T0 = 1_700_000_000.0
TEAM = "team-a"
INTAKE = ConversationRef("slack", "C0HELP")
OTHER_INTAKE = ConversationRef("slack", "C0VIP")
TEAM_CHANNEL = ConversationRef("slack", "C0TEAM")
ENV = Policy(idle=420.0)  # what the environment (RESCUE_*) set, below team and channel
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    opened = SQLiteStore("sqlite://")
    yield opened
    opened.close()


@pytest.fixture
def service(store: SQLiteStore, clock: FakeClock) -> Service:
    return Service(store, ENV, clock)


def admin(here: ConversationRef = INTAKE, *, team: str = TEAM) -> CommandContext:
    return CommandContext(team, here, "U0ANA", is_admin=True, intake=here != TEAM_CHANNEL)


def member(here: ConversationRef = INTAKE) -> CommandContext:
    return CommandContext(TEAM, here, "U0BEN", is_admin=False, intake=here != TEAM_CHANNEL)


def stored(store: SQLiteStore) -> list[tuple[str, str, str]]:
    rows = store.conn.execute("SELECT scope, key, value FROM settings ORDER BY scope, key")
    return [(str(s), str(k), str(v)) for s, k, v in rows]


def thread(n: int, here: ConversationRef = INTAKE) -> ConversationRef:
    return ConversationRef(here.platform, here.channel, f"t{n}")


def one_line(reply: str) -> bool:
    return bool(reply.strip()) and len(reply.splitlines()) == 1


# --- status and help ----------------------------------------------------------------------


def test_status_shows_every_timer_in_force_and_the_counts(
    service: Service, clock: FakeClock
) -> None:
    reply = run("", admin(), service)
    assert reply == run("status", admin(), service) == run("  STATUS ", admin(), service)
    lines = reply.splitlines()
    assert lines[0] == ("Timers here: accept 2m · first_response 30s · idle 7m · escalate 5m"
                        " · close_reminder 30m · auto_close off")
    assert lines[1] == "Escalate to: escalate_to @here (up to 3 calls)"
    assert lines[2] == "Open conversations: 0, overdue: 0"


def test_status_counts_open_and_overdue_conversations(service: Service, clock: FakeClock) -> None:
    for n in (1, 2, 3):
        service.handle(CustomerMessage(thread(n), clock.now(), f"cust-{n}", "hi", TEAM))
    service.handle(OperatorMessage(thread(2), clock.now(), "ana"))
    service.handle(CustomerMessage(thread(2), clock.now(), "cust-2", "hello?", TEAM))
    service.handle(OperatorMessage(thread(3), clock.now(), "ana"))
    service.handle(Close(thread(3), clock.now(), "ana"))
    clock.advance(ENV.idle or 0)
    service.handle(DeadlineDue(thread(2), clock.now()))  # nudged: overdue
    service.handle(CustomerMessage(thread(4), clock.now(), "cust-4", "other team", "team-b"))
    assert run("status", admin(), service).splitlines()[-1] == "Open conversations: 2, overdue: 1"


def test_help_lists_every_command(service: Service) -> None:
    for text in ("help", "HELP"):
        reply = run(text, member(), service)
        assert reply == HELP
    for verb in ("/rescue set", "/rescue escalate-to", "/rescue stats", "/rescue report",
                 "/rescue help"):
        assert verb in HELP
    for timer in TIMERS:
        assert timer in HELP


# --- set -------------------------------------------------------------------------------


@pytest.mark.parametrize("timer", TIMERS)
def test_an_admin_sets_each_timer_for_this_channel_in_an_intake_channel(
    timer: str, service: Service, store: SQLiteStore
) -> None:
    assert run(f"set {timer} 1h30m", admin(), service) == (
        f"{timer} is now 1h30m for this channel.")
    assert stored(store) == [("channel:slack:C0HELP", timer, "1h30m")]
    assert service.policy(TEAM, thread(1)).timer(Timer(timer)) == 5400
    assert service.policy(TEAM, thread(1, OTHER_INTAKE)).timer(Timer(timer)) == \
        getattr(ENV, timer)
    assert f"{timer} 1h30m (channel)" in run("status", admin(), service)


@pytest.mark.parametrize("timer", TIMERS)
def test_an_admin_sets_each_timer_for_the_team_in_the_team_channel(
    timer: str, service: Service, store: SQLiteStore
) -> None:
    assert run(f"set {timer.upper()} off", admin(TEAM_CHANNEL), service) == (
        f"{timer} is now off for the team.")
    assert stored(store) == [(f"team:{TEAM}", timer, "off")]
    for here in (INTAKE, OTHER_INTAKE):
        assert service.policy(TEAM, thread(1, here)).timer(Timer(timer)) is None
    assert service.policy("team-b", thread(1)).timer(Timer(timer)) == getattr(ENV, timer)
    assert f"{timer} off (team)" in run("status", admin(TEAM_CHANNEL), service)


def test_precedence_is_channel_then_team_then_environment(
    service: Service, store: SQLiteStore
) -> None:
    def idle_in_status(ctx: CommandContext) -> str:
        match = re.search(r"idle [^·]+", run("status", ctx, service))
        assert match is not None
        return match.group(0).strip()

    assert idle_in_status(admin()) == "idle 7m"
    assert run("set idle 10m", admin(TEAM_CHANNEL), service) == "idle is now 10m for the team."
    assert idle_in_status(admin()) == "idle 10m (team)"
    assert run("set idle 2m", admin(), service) == "idle is now 2m for this channel."
    assert idle_in_status(admin()) == "idle 2m (channel)"
    assert idle_in_status(admin(OTHER_INTAKE)) == "idle 10m (team)"
    assert idle_in_status(admin(TEAM_CHANNEL)) == "idle 10m (team)"
    assert idle_in_status(admin(ConversationRef("slack", "C0B"), team="team-b")) == "idle 7m"
    assert service.policy(TEAM, thread(1)).idle == 120
    assert service.policy(TEAM, thread(1, OTHER_INTAKE)).idle == 600
    assert service.policy("team-b", thread(1, ConversationRef("slack", "C0B"))).idle == 420
    # Replacing a value replaces it; `off` is a value too.
    run("set idle off", admin(), service)
    assert idle_in_status(admin()) == "idle off (channel)"
    assert service.policy(TEAM, thread(1)).idle is None


def test_a_channel_follows_the_teams_timer_again(service: Service, store: SQLiteStore,
                                                 clock: FakeClock) -> None:
    run("set idle 10m", admin(TEAM_CHANNEL), service)
    run("set idle 2m", admin(), service)
    service.handle(CustomerMessage(thread(1), clock.now(), "alice", "hi", TEAM))
    service.handle(OperatorMessage(thread(1), clock.now(), "U0BOB"))
    service.handle(CustomerMessage(thread(1), clock.now(), "alice", "and?", TEAM))
    conv = store.load(thread(1).key)
    assert conv is not None and conv.deadline == clock.now() + 120
    assert run("set idle team", admin(), service) == (
        "This channel follows the team's idle again: 10m.")
    assert service.policy(TEAM, thread(1)).idle == 600
    conv = store.load(thread(1).key)
    assert conv is not None and conv.deadline == clock.now() + 600  # the timer moved
    assert run("set idle inherit", admin(), service).endswith("already: 10m. Nothing was changed.")
    assert run("set idle team", admin(TEAM_CHANNEL), service).startswith(
        "This is the team's own idle (10m)")
    assert run("set idle team", member(), service).startswith("Sorry, only admins")
    assert dict((k, v) for _, k, v in stored(store)) == {"idle": "10m"}


def test_durations_are_stored_in_their_plain_form(service: Service, store: SQLiteStore) -> None:
    assert run("set accept 90s", admin(), service) == "accept is now 1m30s for this channel."
    assert run("set escalate 1H", admin(), service) == "escalate is now 1h for this channel."
    assert dict((k, v) for _, k, v in stored(store)) == {"accept": "1m30s", "escalate": "1h"}


@pytest.mark.parametrize("text", ["set idle 10m", "set auto_close off", "escalate-to @bob"])
@pytest.mark.parametrize("here", [INTAKE, TEAM_CHANNEL])
def test_only_admins_change_settings(
    text: str, here: ConversationRef, service: Service, store: SQLiteStore
) -> None:
    reply = run(text, member(here), service)
    assert reply == "Sorry, only admins can change rescue settings. Nothing was changed."
    assert stored(store) == []
    assert service.policy(TEAM, thread(1, here)) == ENV


def test_members_may_read(service: Service) -> None:
    assert run("status", member(), service).startswith("Timers here:")
    assert run("stats", member(), service).startswith("Last 7d:")


def outsider(*, is_admin: bool = False) -> CommandContext:
    return CommandContext(TEAM, INTAKE, "U0CUST", is_admin=is_admin, intake=True,
                          is_operator=False)


@pytest.mark.parametrize("text", ["", "status", "stats", "stats 30d", "help", "frobnicate"])
def test_only_the_support_team_and_admins_may_read(text: str, service: Service) -> None:
    assert run(text, outsider(), service) == TEAM_ONLY
    assert run(text, outsider(is_admin=True), service) != TEAM_ONLY


def test_outsiders_who_try_a_change_are_told_it_needs_an_admin(
    service: Service, store: SQLiteStore
) -> None:
    assert run("set idle 1m", outsider(), service).startswith("Sorry, only admins")
    assert run("set idle 1m", outsider(is_admin=True), service) == \
        "idle is now 1m for this channel."


@pytest.mark.parametrize(
    ("text", "changes"),
    [("set idle 1m", True), ("SET idle", True), ("escalate-to @here", True), ("", False),
     ("status", False), ("stats 7d", False), ("help", False), ("frobnicate", False)],
)
def test_the_verbs_that_change_settings_are_known_before_running(text: str,
                                                                 changes: bool) -> None:
    assert changes_settings(text) is changes


# --- bad input ----------------------------------------------------------------------------


MALFORMED = [
    ("set idle 5x", USAGE["set"], "'5x' is not a duration"),
    ("set foo 5m", USAGE["set"], "Unknown timer 'foo'"),
    ("set idle", USAGE["set"], ""),
    ("set", USAGE["set"], ""),
    ("set idle 5m extra", USAGE["set"], ""),
    ("set idle 0s", USAGE["set"], "longer than zero"),
    ("set idle -5m", USAGE["set"], ""),
    ("set idle 1h30", USAGE["set"], ""),
    ("set idle 5 m", USAGE["set"], ""),
    ("set 5m idle", USAGE["set"], "Unknown timer"),
    ("set idle 5m; DROP TABLE settings", USAGE["set"], ""),
    ("set idle 5m;DROP TABLE settings;--", USAGE["set"], ""),
    ("set idle '); DELETE FROM settings; --", USAGE["set"], ""),
    ("set id\x07le 5m", USAGE["set"], "Unknown timer 'idle'"),
    ("set idle\x005m", USAGE["set"], ""),
    pytest.param("set idle 5m\x1b[2J", USAGE["set"], "", id="set-ansi"),
    pytest.param("set idle " + "9" * 1_000 + "x", USAGE["set"], "", id="set-1k"),
    ("set \u202eidle 5m", USAGE["set"], "Unknown timer"),
    ("set idle 5m\u200f", USAGE["set"], "is not a duration"),
    ("set idle ⏰5m", USAGE["set"], ""),
    ("set 🙂 5m", USAGE["set"], "Unknown timer '🙂'"),
    ("set ادارة 5m", USAGE["set"], "Unknown timer"),
    ("frobnicate", "/rescue help", "Unknown command 'frobnicate'"),
    ("fr\x1bobnicate now", "/rescue help", "Unknown command 'frobnicate'"),
    ("🙂", "/rescue help", "Unknown command"),
    ("x" * 10_000, "/rescue help", "Unknown command"),
    ("status now", USAGE["status"], ""),
    ("stats 7x", USAGE["stats"], "'7x' is not a period"),
    ("stats off", USAGE["stats"], ""),
    ("stats 7d 24h", USAGE["stats"], ""),
    ("stats -7d", USAGE["stats"], ""),
    ("escalate-to", USAGE["escalate-to"], ""),
    ("escalate-to " + "@a" * 5_000, USAGE["escalate-to"], "longer than 200"),
    ("escalate-to " + "x" * 10_000, USAGE["escalate-to"], "longer than 200"),
    ("escalate-to " + "\u202e" * 300, USAGE["escalate-to"], "longer than 200"),
]


@pytest.mark.parametrize("here", [INTAKE, TEAM_CHANNEL], ids=["intake", "team"])
@pytest.mark.parametrize(("text", "usage", "says"), MALFORMED)
def test_bad_input_gets_one_line_and_changes_nothing(
    text: str, usage: str, says: str, here: ConversationRef, service: Service,
    store: SQLiteStore,
) -> None:
    run("set idle 10m", admin(TEAM_CHANNEL), service)
    run("set escalate_to 5m", admin(), service)  # bad too: nothing may have been stored
    run("escalate-to @oncall", admin(), service)
    before = stored(store)
    policy = service.policy(TEAM, thread(1, here))

    reply = run(text, admin(here), service)

    assert one_line(reply), reply
    assert usage in reply
    assert says in reply
    assert len(reply) < 300
    assert not CONTROL.search(reply)
    assert stored(store) == before
    assert service.policy(TEAM, thread(1, here)) == policy


def test_the_settings_before_bad_input_are_what_the_good_commands_stored(
    service: Service, store: SQLiteStore
) -> None:
    run("set idle 10m", admin(TEAM_CHANNEL), service)
    run("set escalate_to 5m", admin(), service)
    run("escalate-to @oncall", admin(), service)
    assert stored(store) == [("channel:slack:C0HELP", "escalate_to", "@oncall"),
                             (f"team:{TEAM}", "idle", "10m")]


def test_a_non_admins_bad_input_is_explained_too(service: Service, store: SQLiteStore) -> None:
    reply = run("set idle 5x", member(), service)
    assert one_line(reply) and USAGE["set"] in reply
    assert stored(store) == []


OVERFLOW = "9" * 400 + "d"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("escalate-to \x07"),
        pytest.param("escalate-to \x00\x01\x02"),
        pytest.param(f"set idle {OVERFLOW}", id="set-overflow"),
        pytest.param(f"stats {OVERFLOW}", id="stats-overflow"),
    ],
)
def test_degenerate_input_is_refused_with_one_line(
    text: str, service: Service, store: SQLiteStore
) -> None:
    reply = run(text, admin(), service)
    assert one_line(reply)
    assert "Usage: /rescue" in reply
    assert stored(store) == []


def test_a_sub_millisecond_duration_does_not_break_the_channel(
    service: Service, store: SQLiteStore, clock: FakeClock
) -> None:
    reply = run("set idle 0.1ms", admin(), service)
    assert one_line(reply)
    assert run("status", admin(), service).startswith("Timers here:")
    service.handle(CustomerMessage(thread(1), clock.now(), "cust-1", "hi", TEAM))


def test_control_characters_never_reach_the_stored_target(
    service: Service, store: SQLiteStore
) -> None:
    reply = run("escalate-to @on\x07call\x1b @bob\x7f", admin(), service)
    assert reply == "escalate_to is now @oncall @bob for this channel."
    assert stored(store) == [("channel:slack:C0HELP", "escalate_to", "@oncall @bob")]


# --- escalate-to ----------------------------------------------------------------------


def escalation_target(service: Service, clock: FakeClock, r: ConversationRef) -> str:
    """Open a conversation in `r`, let it sit unclaimed, return who was called in."""
    service.handle(CustomerMessage(r, clock.now(), "cust", "hi", TEAM))
    clock.advance(ENV.accept or 0)
    decision = service.handle(DeadlineDue(r, clock.now()))
    assert decision is not None
    (escalate,) = [a for a in decision.actions if isinstance(a, Escalate)]
    return escalate.target


def test_escalate_to_is_used_by_later_escalations(service: Service, clock: FakeClock) -> None:
    assert escalation_target(service, clock, thread(1)) == "@here"
    assert run("escalate-to <!subteam^S0LEADS>", admin(TEAM_CHANNEL), service) == (
        "escalate_to is now <!subteam^S0LEADS> for the team.")
    assert run("escalate-to @oncall   @bob", admin(), service) == (
        "escalate_to is now @oncall @bob for this channel.")
    assert escalation_target(service, clock, thread(2)) == "@oncall @bob"
    assert escalation_target(service, clock, thread(3, OTHER_INTAKE)) == "<!subteam^S0LEADS>"
    status = run("status", admin(), service)
    assert "Escalate to: escalate_to @oncall @bob (channel) (up to 3 calls)" in status


def test_a_new_target_applies_to_conversations_already_waiting(
    service: Service, clock: FakeClock
) -> None:
    r = thread(1)
    service.handle(CustomerMessage(r, clock.now(), "cust", "hi", TEAM))
    run("escalate-to @night-shift", admin(), service)
    clock.advance(ENV.accept or 0)
    decision = service.handle(DeadlineDue(r, clock.now()))
    assert decision is not None
    assert [a.target for a in decision.actions if isinstance(a, Escalate)] == ["@night-shift"]


# --- stats ------------------------------------------------------------------------------


def test_stats_give_working_time_by_the_hours_each_conversation_had(
        service: Service, clock: FakeClock) -> None:
    # The team works round the clock; #help only 09-18 in Berlin (T0 is 23:13 there).
    run("hours mon-sun 09:00-18:00 Europe/Berlin", admin(INTAKE), service)
    for n, here in ((1, INTAKE), (2, OTHER_INTAKE)):
        service.handle(CustomerMessage(thread(n, here), clock.now(), f"cust-{n}", "hi", TEAM))
    clock.advance(3600)
    for n, here in ((1, INTAKE), (2, OTHER_INTAKE)):
        service.handle(OperatorMessage(thread(n, here), clock.now(), "ana"))
    service.handle(Close(thread(1), clock.now() + 1, "ana"))
    reply = run("stats", admin(), service)
    assert "First response          p50 1h, p90 1h" in reply
    assert "  in working time       p50 0s, p90 1h" in reply  # #help was closed then
    assert "  at dialogue end       1" in reply


def test_stats_shows_the_figures_of_the_period(service: Service, clock: FakeClock) -> None:
    for n, delay in ((1, 20), (2, 40), (3, 90)):
        service.handle(CustomerMessage(thread(n), clock.now(), f"cust-{n}", "hi", TEAM))
        clock.advance(delay)
        service.handle(OperatorMessage(thread(n), clock.now(), "ana"))
    service.handle(CustomerMessage(thread(1), clock.now(), "cust-1", "and?", TEAM))
    clock.advance(ENV.idle or 0)
    service.handle(DeadlineDue(thread(1), clock.now()))  # nudged
    clock.advance(30)
    service.handle(OperatorMessage(thread(1), clock.now(), "ana"))  # a rescue

    reply = run("stats", admin(), service)
    assert reply.splitlines()[0] == "Last 7d:"
    assert "Conversations           3" in reply
    assert "First response          p50 40s, p90 1m30s" in reply
    assert f"Reply time              p50 {format_duration(ENV.idle + 30)}" in reply  # type: ignore[operator]
    assert "Nudges                  1" in reply
    assert "Rescued                 1" in reply
    assert "nudged                1" in reply
    assert "answered in time      2" in reply

    clock.advance(2 * 86_400)
    assert "Conversations           0" in run("stats 1d", admin(), service)
    assert run("stats 1d", admin(), service).splitlines()[0] == "Last 1d:"
    assert "Conversations           3" in run("stats 7d", admin(), service)
    other_team = CommandContext("team-b", INTAKE, "U0ANA", is_admin=True, intake=True)
    assert "Conversations           0" in run("stats", other_team, service)


def test_settings_are_not_changed_from_a_channel_that_is_neither_team_nor_intake(
    service: Service, store: SQLiteStore,
) -> None:
    random = ConversationRef("slack", "C0RANDOM")
    ctx = CommandContext(TEAM, random, "U0ANA", is_admin=True, elsewhere=True)
    for typed in ("set idle 1m", "escalate-to @here"):
        assert run(typed, ctx, service).endswith("Nothing was changed.")
    assert stored(store) == []
    assert run("", ctx, service).startswith("Timers here:")  # reading is fine anywhere


# --- report ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "days"), [("report", 7), ("report 7d", 7), ("REPORT 30D", 30)])
def test_report_answers_at_once_and_asks_for_the_picture(text: str, days: int,
                                                         service: Service) -> None:
    said = answer(text, member(), service)
    assert said.report == ReportJob(TEAM, days)
    assert said.text == f"Building the report of the last {days} days…"


@pytest.mark.parametrize("text", ["report 7x", "report 14d", "report 7d 30d"])
def test_a_bad_report_period_gets_the_usage_and_no_picture(text: str, service: Service) -> None:
    said = answer(text, member(), service)
    assert said.report is None
    assert len(said.text.splitlines()) == 1 and USAGE["report"] in said.text


def test_only_the_team_gets_a_report(service: Service) -> None:
    stranger = CommandContext(TEAM, INTAKE, "U0CUST", is_admin=False, is_operator=False)
    said = answer("report", stranger, service)
    assert (said.text, said.report) == (TEAM_ONLY, None)
    boss = CommandContext(TEAM, INTAKE, "U0BOSS", is_admin=True, is_operator=False)
    assert answer("report 30d", boss, service).report == ReportJob(TEAM, 30)

"""The `/rescue` command, the same on every platform: parse, authorise, apply, reply.

Adapters say who asked, where, and whether they are an admin; this module does the
rest and returns the reply text (`answer` also a picture to post, for `/rescue report`).
Bad input changes nothing and gets one line that shows the right form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chat_rescue.bot import hours_layers, hours_text
from chat_rescue.bot.durations import (
    FORM,
    DurationError,
    clip,
    format_duration,
    parse_duration,
)
from chat_rescue.bot.hours import Schedule, is_open, shift_end
from chat_rescue.bot.hours_text import HoursError, back_at, describe, local_time
from chat_rescue.bot.model import ConversationRef
from chat_rescue.bot.policy import DURATIONS, SWEEP, TIMERS, unreadable
from chat_rescue.bot.service import Service, channel_scope, team_scope
from chat_rescue.bot.stats import render, summarize
from chat_rescue.bot.sweep import SHIFT_NAME, SHIFT_PREFIX, Shift, shift_setting, shifts_of

MAX_SHIFTS = 20
MAX_MEMBERS = 50
USAGE = {
    "status": "/rescue",
    "set": "/rescue set <timer> <duration> | <timer> team   (timer: " + " | ".join(DURATIONS)
    + ")",
    "escalate-to": "/rescue escalate-to <who>   (e.g. @here, a user group, @alice @bob)",
    "stats": "/rescue stats [7d]",
    "report": "/rescue report [7d|30d]",
    "tune": "/rescue tune",
    **hours_text.USAGE,
    "shift": "/rescue shift [<name> [<days>] <from-to>[,<from-to>] @member … | <name> off]",
    "queue": "/rescue queue",
    "help": "/rescue help",
}

HELP = "\n".join(
    [
        "chat-rescue keeps customers from waiting unanswered.",
        "/rescue                     thresholds in force here, open and overdue counts",
        "/rescue set <timer> <dur>   timer: " + " | ".join(DURATIONS) + f"; dur: {FORM}",
        "/rescue set <timer> team    in an intake channel: follow the team's value again",
        "/rescue escalate-to <who>   who is called in when nobody claims a conversation",
        "/rescue stats [7d]          first-response and reply times, nudges, returns, rescues",
        "/rescue report [7d|30d]     the charts as a picture, posted here (default 7d)",
        "/rescue tune                what 30 days of history say about the timers in force "
        "(admins)",
        "/rescue hours [<days> <from-to> <zone> | off]   working hours here (timers count "
        "only those), e.g. mon-fri 09:00-18:00 Europe/Berlin",
        "/rescue holiday <date> [<from-to>] | holiday remove <date>   close a date "
        "(YYYY-MM-DD) or give it other hours",
        "In an intake channel these change only what you name (days, dates, zone); the "
        "rest follows the team's hours, and `/rescue hours team` follows them wholly again.",
        "/rescue holidays <country>  follow a country's public holidays (DE, US, DE-BY) or off",
        "Outside the working hours a customer who writes is told once when you are back.",
        "/rescue shift late 14:00-22:00 @ben @chloe   a named shift and its members (in the "
        "team's zone; `shift late off` removes it, `shift` lists them)",
        "`sweep` (set sweep 15m) before a shift ends, each operator gets a card to close, "
        "keep or hand over their conversations; the next shift opens with a handover digest.",
        "/rescue queue               a link to this team's live queue page (it expires)",
        "/rescue help                this text",
        "Changing settings needs an admin.",
    ]
)

MAX_TARGET = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The verbs that change something and so need an admin; every other verb only reads
# (and `hours`, which changes the hours when given some).
CHANGING = frozenset({"set", "escalate-to", "holiday", "holidays",
                      "tune"})  # tune changes nothing, but is for admins alone
_LISTING = frozenset({"shift", "shifts"})  # change something only when given arguments
TEAM_ONLY = "Only the support team can use /rescue."


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Who runs the command, where, and with which rights.

    `here` is the channel the command was typed in; `intake` says whether that is a
    customer channel (set changes its override) or the team channel (set changes
    the team default). `elsewhere`: neither, so nothing may be changed from there.
    `is_operator`: one of the support team; the verbs that only read answer operators
    and admins, and tell anybody else `TEAM_ONLY`. `person` reads a member named in a
    command (`@ben`, `<@U0BEN|ben>`) as a user id (None: not known), `name` shows one.
    """

    team: str
    here: ConversationRef
    user: str
    is_admin: bool
    intake: bool = False
    elsewhere: bool = False
    is_operator: bool = True
    person: Callable[[str], str | None] = field(default=lambda word: word.lstrip("@") or None)
    name: Callable[[str], str] = field(default=lambda user: user)


class CommandError(ValueError):
    """Malformed input; the message is the one-line explanation."""


REPORT_DAYS = {"7d": 7, "30d": 30}


@dataclass(frozen=True, slots=True)
class ReportJob:
    """A picture of the team's last `days` days, for the adapter to post where the command
    was typed, after it has answered the command."""

    team: str
    days: int


@dataclass(frozen=True, slots=True)
class TuneJob:
    """`/rescue tune`'s replays of the team's history, for the adapter to run after it has
    answered the command, and to answer with (reports/tuning.py)."""

    team: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply to a command, and what the adapter is to post after it, if anything."""

    text: str
    report: ReportJob | None = None
    tune: TuneJob | None = None


def changes_settings(text: str) -> bool:
    """Whether `/rescue <text>` is a verb that changes something (its author must be an
    admin), known before running it so an adapter asks the platform only then."""
    words = text.split()
    return bool(words) and _changing(words[0].lower(), words[1:])


def _changing(verb: str, args: Sequence[str]) -> bool:
    return verb in CHANGING or (verb in ("hours", *_LISTING) and bool(args))


def run(text: str, ctx: CommandContext, service: Service) -> str:
    """Execute `/rescue <text>` and return the reply."""
    return answer(text, ctx, service).text


def answer(text: str, ctx: CommandContext, service: Service) -> Answer:
    """Execute `/rescue <text>`: the reply, and for `/rescue report` the picture to post."""
    words = text.split()
    try:
        if words and words[0].lower() == "report":
            return _report(words[1:], ctx)
        if words and words[0].lower() == "tune":
            return _tune(words[1:], ctx)
        return Answer(_dispatch(words, ctx, service))
    except CommandError as bad:
        return Answer(str(bad))


def _report(args: list[str], ctx: CommandContext) -> Answer:
    """`/rescue report [7d|30d]`: answered at once; the picture follows."""
    if not (ctx.is_operator or ctx.is_admin):
        return Answer(TEAM_ONLY)
    _arity("report", args, 0, 1)
    written = args[0].lower() if args else "7d"
    if written not in REPORT_DAYS:
        raise CommandError(f"'{clip(args[0])}' is not a report period. "
                           f"Usage: {USAGE['report']}")
    days = REPORT_DAYS[written]
    return Answer(f"Building the report of the last {days} days…", ReportJob(ctx.team, days))


def _tune(args: list[str], ctx: CommandContext) -> Answer:
    """`/rescue tune` (admins): answered at once; what the history says follows."""
    if not ctx.is_admin:
        return Answer("Sorry, only admins can tune the timers. Try /rescue stats.")
    _arity("tune", args, 0, 0)
    return Answer("Replaying the last 30 days with longer timers… the answer follows here.",
                  tune=TuneJob(ctx.team))


def _dispatch(words: list[str], ctx: CommandContext, service: Service) -> str:
    verb = words[0].lower() if words else "status"
    args = words[1:]
    if not _changing(verb, args) and not (ctx.is_operator or ctx.is_admin):
        return TEAM_ONLY
    if verb == "help":
        return HELP
    if verb == "status":
        _arity(verb, args, 0, 0)
        return _status(ctx, service)
    if verb == "queue":
        _arity(verb, args, 0, 0)
        return _queue(ctx, service)
    if verb == "stats":
        _arity(verb, args, 0, 1)
        return _stats(args, ctx, service)
    if verb == "set":
        _arity(verb, args, 2, 2)
        timer, written = args[0].lower(), args[1]
        if timer not in DURATIONS:
            raise CommandError(f"Unknown timer '{clip(args[0])}'. Usage: {USAGE['set']}")
        if written.lower() in hours_text.FOLLOW:
            return _follow_team_timer(ctx, service, timer)
        try:
            seconds = parse_duration(written)
        except DurationError as bad:
            raise CommandError(f"{bad}. Usage: {USAGE['set']}") from None
        if timer == SWEEP and ctx.intake:
            return ("The sweep is the team's, at the end of its shifts: set it in the team "
                    "channel. Nothing was changed.")
        return _change(ctx, service, timer, format_duration(seconds))
    if verb == "escalate-to":
        if not args:
            raise CommandError(f"Say who to call in. Usage: {USAGE['escalate-to']}")
        target = _CONTROL.sub("", " ".join(args)).strip()
        if not target:
            raise CommandError(f"Say who to call in. Usage: {USAGE['escalate-to']}")
        if len(target) > MAX_TARGET:
            raise CommandError(f"That is longer than {MAX_TARGET} characters. "
                               f"Usage: {USAGE['escalate-to']}")
        return _change(ctx, service, "escalate_to", target)
    if verb == "hours" and not args:
        return _hours(ctx, service)
    if verb == "hours" and args[0].lower() in hours_text.FOLLOW:
        _arity(verb, args, 1, 1)
        return _follow_team(ctx, service)
    if verb in _LISTING:
        return _shifts(ctx, service) if not args else _change_shift(args, ctx, service)
    if verb in SCHEDULE_CHANGES:
        below, current = _layers(ctx, service)
        try:
            changed = SCHEDULE_CHANGES[verb](args, current)
        except HoursError as bad:
            raise CommandError(str(bad)) from None
        return _change_schedule(ctx, service, below, current, changed)
    raise CommandError(f"Unknown command '{clip(verb)}'. Try /rescue help.")


def _arity(verb: str, args: list[str], least: int, most: int) -> None:
    if not least <= len(args) <= most:
        raise CommandError(f"Usage: {USAGE[verb]}")


def _scope(ctx: CommandContext) -> tuple[str, str]:
    if ctx.intake:
        return channel_scope(ctx.here), "this channel"
    return team_scope(ctx.team), "the team"


def _refusal(ctx: CommandContext) -> str | None:
    """Why `ctx` may not change settings, if it may not."""
    if not ctx.is_admin:
        return "Sorry, only admins can change rescue settings. Nothing was changed."
    if ctx.elsewhere:
        return ("Settings are changed in the team channel (the team default) or in an "
                "intake channel (that channel). Nothing was changed.")
    return None


def _change(ctx: CommandContext, service: Service, key: str, value: str) -> str:
    refused = _refusal(ctx)
    if refused is not None:
        return refused
    scope, where = _scope(ctx)
    service.store.put_setting(scope, key, value, ctx.user, service.clock.now())
    service.settings_changed(ctx.team)
    return f"{key} is now {value} for {where}."


SCHEDULE_CHANGES: dict[str, Callable[[Sequence[str], Schedule], Schedule]] = {
    "hours": hours_text.change_hours,
    "holiday": hours_text.change_holiday,
    "holidays": hours_text.change_holidays,
}


def _layers(ctx: CommandContext, service: Service) -> tuple[Schedule, Schedule]:
    """(the hours of the scope below the one a change here goes to, the hours in force
    here): an intake channel lies on the team's hours, the team on the environment's."""
    if ctx.intake:
        below = service.team_policy(ctx.team).schedule
        return below, service.policy(ctx.team, ctx.here).schedule
    below = service.base_policy.schedule
    return below, service.team_policy(ctx.team).schedule


def _change_schedule(ctx: CommandContext, service: Service, below: Schedule, old: Schedule,
                     new: Schedule) -> str:
    """Store, for the parts that change, what differs from the scope below (the week day by
    day, the dates date by date: `hours_layers`), so this scope keeps following the rest;
    and move the open conversations' deadlines to the new hours."""
    refused = _refusal(ctx)
    if refused is not None:
        return refused
    scope, where = _scope(ctx)
    stored = service.store.settings(scope)
    # A key stored here that does not read left the value below in force, which is what
    # `old` and the reply show: it is rewritten (or dropped) so the store says so too.
    keys = set(hours_layers.parts_changed(old, new)) | set(unreadable(stored))
    own = hours_layers.own_settings(below, new)
    changes = {key: own[key] for key in hours_text.KEYS
               if key in keys and own[key] != stored.get(key)}
    if not changes:
        return f"Nothing changed: the working hours for {where} are {describe(new)}."
    now = service.clock.now()
    with service.changing_settings(ctx.team):
        for key, value in changes.items():
            if value is None:
                service.store.drop_setting(scope, key)
            else:
                service.store.put_setting(scope, key, value, ctx.user, now)
    return f"Working hours for {where}: {describe(new)}. {_open_now(new, now)}"


def _follow_team(ctx: CommandContext, service: Service) -> str:
    """`/rescue hours team`: an intake channel drops every hours setting of its own and
    follows the team's hours again, today's and later changes alike."""
    refused = _refusal(ctx)
    if refused is not None:
        return refused
    team = service.team_policy(ctx.team).schedule
    if not ctx.intake:
        return (f"These are the team's own working hours ({describe(team)}), so there is "
                "nothing here to follow the team in; in an intake channel, /rescue hours team "
                "drops what that channel sets. Nothing was changed.")
    scope, _ = _scope(ctx)
    own = [key for key in hours_text.KEYS if key in service.store.settings(scope)]
    if not own:
        return (f"This channel follows the team's working hours already: {describe(team)}. "
                "Nothing was changed.")
    now = service.clock.now()
    with service.changing_settings(ctx.team):
        for key in own:
            service.store.drop_setting(scope, key)
    return (f"This channel follows the team's working hours again: {describe(team)}. "
            f"{_open_now(team, now)}")


def _follow_team_timer(ctx: CommandContext, service: Service, timer: str) -> str:
    """`/rescue set <timer> team`: an intake channel drops its own value of the timer and
    follows the team's again."""
    refused = _refusal(ctx)
    if refused is not None:
        return refused
    team = format_duration(getattr(service.team_policy(ctx.team), timer))
    if not ctx.intake:
        return (f"This is the team's own {timer} ({team}); in an intake channel, /rescue set "
                f"{timer} team drops what that channel sets. Nothing was changed.")
    scope, _ = _scope(ctx)
    if timer not in service.store.settings(scope):
        return f"This channel follows the team's {timer} already: {team}. Nothing was changed."
    service.store.drop_setting(scope, timer)
    service.settings_changed(ctx.team)
    return f"This channel follows the team's {timer} again: {team}."


def _open_now(schedule: Schedule, now: float) -> str:
    """`Open now, until today 18:00 (Berlin time).` or `Closed now, back …`."""
    if is_open(schedule, now):
        closing = shift_end(schedule, now)
        until = "" if closing is None else f", until {local_time(schedule, closing, now)}"
        return f"Open now{until}."
    back = back_at(schedule, now)
    return f"Closed now, back {back}." if back else "Closed now, and not open again soon."


def _hours(ctx: CommandContext, service: Service) -> str:
    schedule = service.policy(ctx.team, ctx.here).schedule
    own = _own_hours(ctx, service)
    lines = [f"Working hours here: {describe(schedule)}{'' if own else _team_source(ctx, service)}"]
    if own:
        lines.append(f"Set in this channel: {', '.join(own)}; the rest follows the team. "
                     "/rescue hours team drops what the channel sets.")
    lines.append(_open_now(schedule, service.clock.now()))
    return "\n".join(lines)


def _own_hours(ctx: CommandContext, service: Service) -> list[str]:
    """What an intake channel sets of its hours itself (the parts that read), for people."""
    if not ctx.intake:
        return []
    return hours_layers.describe_own(service.store.settings(channel_scope(ctx.here)))


def _team_source(ctx: CommandContext, service: Service) -> str:
    """` (team)` when the team sets some of its hours, nothing when they are the
    environment's or the built-in default."""
    stored = service.store.settings(team_scope(ctx.team))
    return " (team)" if any(key in stored for key in hours_text.KEYS) else ""


def _status(ctx: CommandContext, service: Service) -> str:
    policy = service.policy(ctx.team, ctx.here)
    team = service.store.settings(team_scope(ctx.team))
    channel = service.store.settings(channel_scope(ctx.here)) if ctx.intake else {}

    def shown(key: str, value: str) -> str:
        source = " (channel)" if key in channel else " (team)" if key in team else ""
        return f"{key} {value}{source}"

    timers = " · ".join(shown(t, format_duration(getattr(policy, t))) for t in TIMERS)
    open_, overdue = service.store.summary(ctx.team)
    calls = policy.escalate_repeats + 1
    lines = [
        f"Timers here: {timers}",
        f"Escalate to: {shown('escalate_to', policy.escalate_to)} (up to {calls} calls)",
    ]
    if not policy.schedule.always_open:
        own = _own_hours(ctx, service)
        source = (f" (this channel: {', '.join(own)}; the rest the team's)" if own else
                  _team_source(ctx, service))
        lines.append(f"Working hours: {describe(policy.schedule)}{source}. "
                     f"{_open_now(policy.schedule, service.clock.now())}")
    shifts = shifts_of(team)
    team_policy = service.team_policy(ctx.team)
    if shifts or not team_policy.schedule.always_open:
        sweep = format_duration(team_policy.sweep) + (" (team)" if SWEEP in team else "")
        rule = "closed or handed over" if team_policy.sweep_default == "handover" else "kept"
        named = f"; named shifts: {', '.join(s.name for s in shifts)}" if shifts else ""
        lines.append("Sweep: off" + named if team_policy.sweep is None else
                     f"Sweep: {sweep} before each shift ends (what is not decided then is "
                     f"{rule}){named}")
    lines.append(f"Open conversations: {open_}, overdue: {overdue}")
    return "\n".join(lines)


def _stats(args: list[str], ctx: CommandContext, service: Service) -> str:
    written = args[0] if args else "7d"
    try:
        period = parse_duration(written)
    except DurationError:
        period = None
    if period is None:
        raise CommandError(f"'{clip(written)}' is not a period like 7d or 24h. "
                           f"Usage: {USAGE['stats']}")
    history = service.store.history(ctx.team, service.clock.now() - period)
    stats = summarize(history, lambda event: service.policy(event.team, event.ref).schedule)
    return render(stats, f"Last {format_duration(period)}:")


def _queue(ctx: CommandContext, service: Service) -> str:
    """`/rescue queue`: a signed link to the team's queue page, or what to configure."""
    links = service.queue_links
    url = links.url(ctx.team, service.clock.now()) if links is not None else None
    if links is None or url is None:
        missing = "PUBLIC_URL (the address this bot is reached at, like " \
            "https://rescue.example.com)" if links is not None else "QUEUE_SECRET"
        return f"The queue page needs {missing}: set it and restart the bot."
    return (f"This team's live queue, for {format_duration(links.ttl)} (read only; anyone "
            f"with the link can look, so keep it in the team): {url}")


def _shifts(ctx: CommandContext, service: Service) -> str:
    """The named shifts and whose sweep follows the team's hours."""
    shifts = shifts_of(service.store.settings(team_scope(ctx.team)))
    policy = service.team_policy(ctx.team)
    hours = describe(policy.schedule)
    sweep = format_duration(policy.sweep)
    when = "no sweep (set sweep off)" if policy.sweep is None else f"the sweep {sweep} before"
    if not shifts:
        return (f"No named shifts: everybody's shift ends with the team's working hours "
                f"({hours}); {when} each end.")
    lines = [f"Shift {shift.name}: {_shift_hours(shift, policy.schedule.zone)}, "
             f"{', '.join(ctx.name(m) for m in shift.members)}" for shift in shifts]
    lines.append(f"Everybody else's shift ends with the team's working hours ({hours}); "
                 f"{when} each end.")
    return "\n".join(lines)


def _shift_hours(shift: Shift, zone: str) -> str:
    """`Daily 14:00–22:00 (Europe/Berlin)`: a shift's hours, in the team's zone."""
    return describe(Schedule(zone=zone, week=shift.week))


def _change_shift(args: Sequence[str], ctx: CommandContext, service: Service) -> str:
    """`/rescue shift <name> [<days>] <from-to> @member …` or `/rescue shift <name> off`."""
    usage = USAGE["shift"]
    name = args[0].lower()
    if not SHIFT_NAME.fullmatch(name):
        raise CommandError(f"'{clip(args[0])}' is not a shift name: use up to 20 letters, "
                           f"digits, - or _, like late. Usage: {usage}")
    rest = list(args[1:])
    if not rest:
        raise CommandError(f"Say the shift's hours and members. Usage: {usage}")
    stored = service.store.settings(team_scope(ctx.team))
    key = f"{SHIFT_PREFIX}{name}"
    if [word.lower() for word in rest] == ["off"]:
        if stored.get(key, "off") == "off":
            raise CommandError(f"There is no shift {name}; /rescue shift lists them.")
        return _store_shift(ctx, service, key, "off", f"Shift {name} is removed: its "
                            "members' shifts end with the team's working hours again.")
    split = next((i for i, word in enumerate(rest) if word.startswith(("@", "<@"))), len(rest))
    written, named = rest[:split], rest[split:]
    if not written:
        raise CommandError(f"Say the shift's hours, like 14:00-22:00 or mon-fri 06:00-14:00. "
                           f"Usage: {usage}")
    if not named:
        raise CommandError(f"Name the shift's members, like @ben @chloe. Usage: {usage}")
    text = " ".join(written)
    if text[:1].isdigit():
        text = f"daily {text}"  # hours alone: every day
    try:
        week = hours_text.parse_week(text)
    except HoursError as bad:
        raise CommandError(f"{bad}. Usage: {usage}") from None
    if week is None:
        raise CommandError(f"To remove the shift, write /rescue shift {name} off")
    if not any(week):
        raise CommandError(f"That leaves no working hours in the week. Usage: {usage}")
    members: list[str] = []
    for word in named:
        member = ctx.person(word)
        if not member or _CONTROL.search(member) or " " in member:
            raise CommandError(f"I don't know {clip(word)}: name people of the team, like "
                               f"@ben (on Telegram, somebody who has written in the group).")
        if member not in members:
            members.append(member)
    if len(members) > MAX_MEMBERS:
        raise CommandError(f"A shift has at most {MAX_MEMBERS} members.")
    others = {shift.name for shift in shifts_of(stored)} - {name}
    if len(others) >= MAX_SHIFTS:
        raise CommandError(f"A team has at most {MAX_SHIFTS} shifts: remove one first.")
    shift = Shift(name, week, tuple(members))
    zone = service.team_policy(ctx.team).schedule.zone
    _, value = shift_setting(shift)
    return _store_shift(ctx, service, key, value,
                        f"Shift {name}: {_shift_hours(shift, zone)}, "
                        f"{', '.join(ctx.name(m) for m in members)}. Their sweep comes at its "
                        "ends, not the team's.")


def _store_shift(ctx: CommandContext, service: Service, key: str, value: str,
                 reply: str) -> str:
    refused = _refusal(ctx)
    if refused is not None:
        return refused
    if ctx.intake:
        return ("Shifts are the team's: set them in the team channel. Nothing was changed.")
    with service.store.batch():
        service.store.put_setting(team_scope(ctx.team), key, value, ctx.user,
                                  service.clock.now())
        service.settings_changed(ctx.team)
    return reply

"""`chat-rescue demo`: a scripted support day at accelerated time, through the real
engine, store, ticker, sweeper and outbox, printing what the team and customers would see.

The day begins while the team is still closed (customers are told when it is back, and
their timers start at the opening) and crosses the end of one operator's shift (the sweep
card before it, the handover digest after it).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chat_rescue.adapters.console import ConsolePlatform
from chat_rescue.bot import commands, texts
from chat_rescue.bot.authority import nudge_id, reminder_id
from chat_rescue.bot.clock import FastClock
from chat_rescue.bot.hours import Schedule
from chat_rescue.bot.model import (
    Claim,
    Close,
    Conversation,
    ConversationRef,
    CustomerMessage,
    HandOff,
    HistoryEvent,
    InboundEvent,
    KeepOpen,
    OperatorMessage,
    Snooze,
)
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.runtime import Runtime
from chat_rescue.bot.service import Service
from chat_rescue.bot.stats import render, summarize
from chat_rescue.bot.sweep import Phase
from chat_rescue.storage.sqlite import SQLiteStore

OPENS = 1_764_406_800.0  # Saturday 29 November 2025, 09:00 in London (UTC): the team opens
DAY_START = OPENS - 600.0  # the day is played from ten minutes before, while still closed
DAY_END = 6700.0  # seconds after the opening: the last reminders and auto-closes are out
# A team's id starts with its platform's name, as on Slack and Telegram: the console's
# outbox delivers the lanes of sweep cards and handover digests by that prefix.
TEAM = "console:#support-team"
ADMINS = {"ana"}
TEAM_CHANNEL = 0  # a step's `conv` when it happens in the team channel itself
TEAM_NAME = "#support-team"


def plan(auto_closed: str = "in #vip") -> str:
    """The opening line's timers and settings (`auto_closed`: where the auto-close applies:
    a Telegram group has no channels, and its setting is the team's)."""
    return ("Timers count working time only: accept 2m, first response 30s, idle 5m, "
            "escalate 5m, close reminder 30m. At 08:50, before the team opens, ana sets its "
            "hours (daily 09:00-18:00, London time), ben's early shift until 10:30 with a "
            f"sweep card 5m before it ends, and auto-close after 45m of silence {auto_closed}.")


# A sweep step's verb -> the button it presses on the operator's sweep card.
SWEEP_LABELS = {"close_all": texts.CLOSE_ALL, "hand_rest": texts.HAND_REST, "close": "Close",
                "keep": "Keep", "hand_off": "Hand off"}

NAMES = (
    "alice bruno carmen dmitri elena farid grace hiro ines jamal kate liam mona nils "
    "olga pablo quinn rosa sam tara uma victor wen xena yusuf zoe amir bea cyril dora emil"
)
# conversation number -> (customer, intake channel)
CUSTOMERS = {
    n: (name, "#vip" if n in (17, 18) else "#help")
    for n, name in enumerate(
        NAMES.split(),
        start=1,
    )
}


@dataclass(frozen=True, slots=True)
class Step:
    """At `at` seconds after the team opens (before it: negative), `who` does `act` in
    conversation `conv` (TEAM_CHANNEL: in the team channel)."""

    at: float
    conv: int
    who: str
    act: str
    text: str = ""


def _day() -> list[Step]:
    s = Step
    steps = [
        # 08:50, before the opening: the lead gives the team its hours, Ben's early shift
        # and a 5-minute sweep, and sets the VIP channel to auto-close after 45 minutes.
        s(-600, TEAM_CHANNEL, "ben", "chats", "Morning! I'm on the early shift, until 10:30."),
        s(-590, TEAM_CHANNEL, "ana", "rescue", "hours daily 09:00-18:00 Europe/London"),
        s(-580, TEAM_CHANNEL, "ana", "rescue", "shift early 09:00-10:30 @ben"),
        s(-570, TEAM_CHANNEL, "ana", "rescue", "set sweep 5m"),
        s(-560, 17, "ben", "rescue", "set auto_close 45m"),
        s(-550, 17, "ana", "rescue", "set auto_close 45x"),
        s(-540, 17, "ana", "rescue", "set auto_close 45m"),
        # 27-29 write while the team is closed: told once when it is back, no call-in;
        # their timers start at the opening, so what nobody takes is one digest at 09:02
        s(-480, 27, "amir", "says", "I was charged twice for order #3310"),
        s(-360, 28, "bea", "says", "Can I still change my order before it ships?"),
        s(-240, 29, "cyril", "says", "My discount code doesn't work"),
        s(-120, 27, "amir", "says", "Hello? Is anyone there?"),
        s(130, 27, "ben", "claims"), s(140, 27, "ben", "replies"),
        s(2700, 27, "amir", "says", "Any news about the refund?"), s(2710, 27, "ben", "replies"),
        s(130, 28, "ben", "claims"), s(150, 28, "ben", "replies"),
        s(360, 28, "bea", "says", "Perfect, thanks!"), s(380, 28, "ben", "closes"),
        s(135, 29, "dev", "claims"), s(145, 29, "dev", "replies"),
        s(400, 29, "cyril", "says", "Works now, thanks!"), s(420, 29, "dev", "closes"),
        # 1-6 answered in time
        s(0, 1, "alice", "says", "Hi, my order #1042 hasn't arrived"),
        s(15, 1, "ana", "replies"), s(120, 1, "alice", "says", "Thanks!"),
        s(150, 1, "ana", "replies"), s(200, 1, "ana", "closes"),
        s(60, 2, "bruno", "says", "Can I change my delivery address?"),
        s(75, 2, "ben", "claims"), s(90, 2, "ben", "replies"), s(400, 2, "ben", "closes"),
        s(180, 3, "carmen", "says", "The app logs me out every hour"),
        s(190, 3, "chloe", "replies"), s(600, 3, "carmen", "says", "Still happening"),
        s(700, 3, "chloe", "replies"), s(800, 3, "chloe", "closes"),
        s(300, 4, "dmitri", "says", "Invoice for March please"),
        s(320, 4, "dev", "reacts :eyes:"), s(340, 4, "dev", "replies"),
        s(420, 5, "elena", "says", "Do you ship to Norway?"),
        s(430, 5, "ana", "replies"), s(500, 5, "ana", "closes"),
        s(480, 6, "farid", "says", "Password reset mail never came"),
        s(485, 6, "ben", "replies"), s(560, 6, "ben", "closes"),
        # 7-8 claimed, not answered in 30s -> returned -> reclaimed (8: a claim race)
        s(600, 7, "grace", "says", "Payment failed twice"), s(610, 7, "dev", "claims"),
        s(680, 7, "chloe", "claims"), s(690, 7, "chloe", "replies"), s(900, 7, "chloe", "closes"),
        s(700, 8, "hiro", "says", "Where do I find my API key?"), s(705, 8, "ben", "claims"),
        s(760, 8, "ana", "claims"), s(760, 8, "chloe", "claims"), s(770, 8, "ana", "replies"),
        s(1000, 8, "ana", "closes"),
        # 9-10 idle -> nudge (9: snooze first)
        s(800, 9, "ines", "says", "Need a refund"), s(810, 9, "ana", "replies"),
        s(900, 9, "ines", "says", "Order #2231"), s(1230, 9, "ana", "snoozes"),
        s(1400, 9, "ana", "replies"), s(1500, 9, "ana", "closes"),
        s(1000, 10, "jamal", "says", "Is the sale still on?"), s(1005, 10, "chloe", "replies"),
        s(1100, 10, "jamal", "says", "And for shoes?"), s(1450, 10, "chloe", "replies"),
        s(1600, 10, "chloe", "closes"),
        # 11-12 idle -> nudge -> nothing -> back to the inbox, operators called in
        s(1300, 11, "kate", "says", "My parcel is damaged"), s(1310, 11, "dev", "replies"),
        s(1400, 11, "kate", "says", "Photos attached"), s(2040, 11, "ben", "claims"),
        s(2055, 11, "ben", "replies"), s(2300, 11, "ben", "closes"),
        s(1500, 12, "liam", "says", "Wrong size delivered"), s(1510, 12, "ben", "replies"),
        s(1600, 12, "liam", "says", "It is an M, I ordered L"), s(2250, 12, "ana", "claims"),
        s(2260, 12, "ana", "replies"), s(2500, 12, "ana", "closes"),
        # 13-14 nobody claims -> operators called in (14: twice)
        s(2000, 13, "mona", "says", "Bulk discount for 50 seats?"), s(2200, 13, "dev", "claims"),
        s(2210, 13, "dev", "replies"), s(2600, 13, "dev", "closes"),
        s(2100, 14, "nils", "says", "Cancel my subscription"), s(2400, 14, "chloe", "replies"),
        s(2700, 14, "chloe", "closes"),
        # 15-16 the customer goes quiet -> close reminder
        s(2500, 15, "olga", "says", "How do I export my data?"), s(2510, 15, "ana", "replies"),
        s(4350, 15, "ana", "keeps open"), s(5000, 15, "olga", "says", "Found it, thanks"),
        s(5010, 15, "ana", "replies"), s(5100, 15, "ana", "closes"),
        s(2600, 16, "pablo", "says", "Gift wrapping available?"), s(2610, 16, "ben", "replies"),
        # (ben lets 16 sit after the reminder: finished but not closed when his shift ends)
        # 17-18 VIP channel: auto-closed after 45 minutes of silence
        s(2700, 17, "quinn", "says", "Upgrade to the annual plan"), s(2710, 17, "chloe", "replies"),
        s(2800, 18, "rosa", "says", "Add a second admin"), s(2805, 18, "dev", "replies"),
        # 19-20 closed, then the customer writes again -> reopened with the same owner
        s(3000, 19, "sam", "says", "Tracking link broken"), s(3010, 19, "ana", "replies"),
        s(3100, 19, "ana", "closes"), s(3600, 19, "sam", "says", "One more thing"),
        s(3620, 19, "ana", "replies"), s(3700, 19, "ana", "closes"),
        s(3200, 20, "tara", "says", "Change my email"), s(3210, 20, "ben", "replies"),
        s(3250, 20, "ben", "closes"), s(4000, 20, "tara", "says", "It didn't work"),
        s(4030, 20, "ben", "replies"), s(4100, 20, "ben", "closes"),
        # 21 nudged, the owner hands off
        s(3300, 21, "uma", "says", "Question about GDPR"), s(3310, 21, "chloe", "replies"),
        s(3400, 21, "uma", "says", "Who is our DPO?"), s(3720, 21, "chloe", "hands off"),
        s(3740, 21, "dev", "claims"), s(3750, 21, "dev", "replies"), s(3900, 21, "dev", "closes"),
        # 30-31 and Ben's early shift ends at 10:30: his sweep card at 10:25 lists 16 and 27
        # (he answered, then let them sit: finished), 30 (waiting on the customer) and 31
        # (the customer waits on him). He closes all finished ones and hands 30 off; 31,
        # undecided, is handed over by the default rule; the handover digest follows.
        s(4600, 30, "dora", "says", "Does the warranty cover water damage?"),
        s(4610, 30, "ben", "replies"),
        s(4700, 31, "emil", "says", "My parcel says delivered but it isn't here"),
        s(4710, 31, "ben", "replies"),
        s(4980, 31, "emil", "says", "The neighbours don't have it either"),
        s(5160, TEAM_CHANNEL, "ben", "sweep", "close_all"),
        s(5200, 30, "ben", "sweep", "hand_off"),
        s(5460, 31, "chloe", "claims"), s(5470, 31, "chloe", "replies"),
        s(5800, 31, "chloe", "closes"),
        s(5480, 30, "dev", "claims"), s(5900, 30, "dora", "says", "Yes, it fell in the sink"),
        s(5930, 30, "dev", "replies"), s(6050, 30, "dev", "closes"),
        # 26
        s(6000, 26, "zoe", "says", "Thanks for the quick help earlier"),
        s(6010, 26, "chloe", "replies"), s(6100, 26, "chloe", "closes"),
        s(2200, 4, "dev", "closes"),
    ]
    # 22-25 four customers at once, answered by dev, who then goes quiet -> digests
    for n in (22, 23, 24, 25):
        taker = "ana" if n < 24 else "chloe"
        steps += [
            s(5600, n, CUSTOMERS[n][0], "says", "Quick question"), s(5610, n, "dev", "replies"),
            s(5700, n, CUSTOMERS[n][0], "says", "Hello?"), s(6400, n, taker, "claims"),
            s(6410, n, taker, "replies"), s(6500, n, taker, "closes"),
        ]
    return sorted(steps, key=lambda step: step.at)


def _ref(step: Step) -> ConversationRef:
    return ConversationRef("console", CUSTOMERS[step.conv][1], f"conv-{step.conv}")


def _event(step: Step, at: float, conv: Conversation | None) -> InboundEvent:
    """What the step does; a button is pressed on the nudge or reminder in front of them."""
    customer, channel = CUSTOMERS[step.conv]
    ref = _ref(step)
    nudge = nudge_id(conv) if conv else ""
    reminder = reminder_id(conv) if conv else ""
    admin = step.who in ADMINS
    match step.act:
        case "says":
            return CustomerMessage(ref, at, customer, step.text, TEAM)
        case "replies":
            return OperatorMessage(ref, at, step.who)
        case "claims":
            return Claim(ref, at, step.who)
        case "reacts :eyes:":
            return Claim(ref, at, step.who, via="reaction")
        case "closes":
            return Close(ref, at, step.who, admin=admin)
        case "snoozes":
            return Snooze(ref, at, step.who, notice_id=nudge, admin=admin)
        case "hands off":
            return HandOff(ref, at, step.who, notice_id=nudge, admin=admin)
        case "keeps open":
            return KeepOpen(ref, at, step.who, notice_id=reminder, admin=admin)
    raise ValueError(f"unknown demo step {step.act!r}")


def _narrate(step: Step) -> tuple[str, str]:
    if step.act == "chats":
        return TEAM_NAME, f"{step.who}: {step.text}"
    if step.act == "sweep":
        return TEAM_NAME, f"@{step.who} presses {sweep_press(step)} on the sweep card"
    customer, channel = CUSTOMERS[step.conv]
    if step.act == "says":
        return channel, f"{customer}: {step.text}"
    if step.act == "replies":
        return channel, f"@{step.who} replies to {customer}"
    return TEAM_NAME, f"@{step.who} {step.act} ({customer})"


def sweep_press(step: Step) -> str:
    """`[Close all finished]`, or `[Hand off] for dora`: the sweep-card button a step presses."""
    label = SWEEP_LABELS[step.text]
    return f"[{label}]" if step.conv == TEAM_CHANNEL else \
        f"[{label}] for {CUSTOMERS[step.conv][0]}"


async def play(speed: float = 500.0, write: Callable[[str], None] = print,
               database: Path | None = None) -> str:
    """Run the day; returns the summary table."""
    with tempfile.TemporaryDirectory() as scratch:
        path = database or Path(scratch) / "demo.db"
        store = SQLiteStore(f"sqlite:///{path}")
        clock = FastClock(DAY_START, speed)
        policy = Policy(closing_message="We are closing this chat for now. Write again any time!")
        service = Service(store, policy, clock)
        console = ConsolePlatform(clock, write)
        runtime = Runtime(service, clock, [console])
        write(f"chat-rescue demo: a support day at ×{speed:g} speed. {plan()}")
        write("Operators ana (admin), ben, chloe, dev work #support-team; customers write in "
              "#help and #vip.\n")
        await runtime.start()
        try:
            for moment in moments(_day()):
                await until(clock, OPENS + moment[0][0].at, runtime)
                with clock.held():  # what the script does at one time happens at once
                    for step in (step for steps in moment for step in steps):
                        _play(step, runtime, store, console, clock.now())
            await until(clock, OPENS + DAY_END, runtime)  # the last auto-closes and reminders
            await runtime.drained()
        finally:
            await runtime.stop()
        summary = render(summarize(store.history(TEAM, 0), worked(service)),
                         "\nSummary of the day")
        store.close()
    write(summary)
    return summary


def worked(service: Service) -> Callable[[HistoryEvent], Schedule]:
    """The working hours each event's conversation had, for the summary's working time."""
    return lambda event: service.policy(event.team, event.ref).schedule


def _play(step: Step, runtime: Runtime, store: SQLiteStore, console: ConsolePlatform,
          now: float) -> None:
    service = runtime.service
    if step.act == "rescue":
        channel = TEAM_NAME if step.conv == TEAM_CHANNEL else CUSTOMERS[step.conv][1]
        ctx = commands.CommandContext(
            TEAM, ConversationRef("console", channel), step.who,
            is_admin=step.who in ADMINS, intake=channel != TEAM_NAME)
        console.say(f"  to @{step.who}", f"/rescue {step.text} -> "
                    + commands.run(step.text, ctx, service))
        return
    console.say(*_narrate(step))
    if step.act == "chats":
        return
    if step.act == "sweep":
        card = sweep_card_of(store, TEAM, step.who)
        key = "" if step.conv == TEAM_CHANNEL else _ref(step).key
        answer = runtime.sweeper.press(card or 0, step.text, key, step.who,
                                       admin=step.who in ADMINS)
        if answer is not None:  # answered on the press, to the presser alone
            console.say(f"  to @{step.who}", answer.text)
        return
    decision = service.handle(_event(step, now, service.store.load(_ref(step).key)))
    refused = decision.refusal if decision is not None else None
    if refused is not None:  # answered on the press, as a platform shows it to the presser
        console.deliver_now(refused)


def sweep_card_of(store: SQLiteStore, team: str, operator: str) -> int | None:
    """The id of `operator`'s card in the team's sweep under way (the one in front of them)."""
    for sweep in store.sweeps(team):
        if sweep.phase is Phase.CARDED:
            for item in store.sweep_items(sweep.id):
                if item.operator == operator and item.card is not None:
                    return item.card
    return None


def moments(steps: list[Step]) -> list[list[list[Step]]]:
    """The day's steps grouped by time, then by conversation (in script order).

    What happens at the same moment in different conversations is played at once, as
    people would: played one after another, a burst of four customers would spread over
    seconds of accelerated time and their timers with it.
    """
    grouped: dict[float, dict[int, list[Step]]] = {}
    for step in steps:
        grouped.setdefault(step.at, {}).setdefault(step.conv, []).append(step)
    return [list(by_conv.values()) for by_conv in grouped.values()]


async def until(clock: FastClock, at: float, runtime: Runtime) -> None:
    """Sleep until `at` on the day's clock, then let the bot catch up on what came due by
    then with the clock paused: the script acts on the day the bot has shown, however
    slow the machine is for the speed."""
    wait = clock.real(at - clock.now())
    if wait > 0:
        await asyncio.sleep(wait)
    with clock.paused():
        await runtime.caught_up()

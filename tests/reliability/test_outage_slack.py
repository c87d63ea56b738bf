"""Outage, Slack: the Web API answers 5xx, then 429 with Retry-After, then hangs, each for
a period, while customers and operators keep writing.

Meanwhile every request Slack sends the bot is acknowledged within 3 s, the timers keep
firing (nudges, returns and escalations are recorded during the outage), and the outbox
queues what cannot be sent. Once Slack is back the outbox drains, per conversation in the
order things were queued, with nothing lost and nothing posted twice (the sandbox's
messages against the store's history).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

from chat_rescue.bot.model import NOTICES
from chat_rescue.bot.ports import Held
from chat_rescue.sandbox.journal import OutboxJournal
from chat_rescue.sandbox.ledger import compare, expected_notices, slack_posts
from chat_rescue.sandbox.slack_world import (
    ANNA,
    BOB,
    CARL,
    HELP,
    TEAM,
    SlackWorld,
    eventually,
    sandbox_settings,
)
from chat_rescue.sandbox.slack_world import furnish as furnish_slack
from chat_rescue.sandbox.testbeds import Kind, SlackTestbed

PHASE = 2.5  # seconds of each kind of outage
PHASES: tuple[Kind, ...] = ("5xx", "429", "hang")
TIMERS = {
    "rescue_first_response": "400ms",
    "rescue_idle": "400ms",
    "rescue_accept": "600ms",
    "rescue_escalate": "800ms",
    "rescue_escalate_repeats": 12,  # calls for help keep coming during the whole outage
    "rescue_close_reminder": "10m",
}
ACK_LIMIT = 3.0
TIMER_EVENTS = ("nudged", "returned", "escalated", "reminded")


class Slack:
    """Slack's side during the outage: sends requests and times each acknowledgement."""

    def __init__(self, world: SlackWorld) -> None:
        self.world = world
        self.acks: list[tuple[str, int, float]] = []  # (what, status, seconds)

    async def timed(self, what: str, request: Any) -> None:
        began = time.monotonic()
        status, _ = await request
        self.acks.append((what, status, time.monotonic() - began))

    async def says(self, text: str, user: str, thread: str | None = None) -> str:
        event = self.world.slack.message_event(HELP, user, text, thread_ts=thread)
        await self.timed("event", self.world.slack.send_event(event))
        return str(event["ts"])

    async def rescue(self, user: str) -> None:
        await self.timed("command", self.world.slack.slash_command("/rescue", "", user, HELP))

    async def claim_click(self, user: str, card: dict[str, Any], key: str) -> None:
        await self.timed("click", self.world.slack.click_button(user, "claim", key, TEAM,
                                                                str(card["ts"])))


def customers(count: int, start: int) -> list[str]:
    return [f"U0CUST{n:03d}" for n in range(start, start + count)]


async def test_outage_slack_acks_keeps_timers_queues_and_drains_in_order(
        tmp_path: Path) -> None:
    async with SlackTestbed() as sandbox:
        furnish_slack(sandbox)
        world = SlackWorld(sandbox, sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db",
                                                     **TIMERS))
        await world.start()
        try:
            figures = await outage_day(world, sandbox)
        finally:
            await world.stop()
    print(figures["report"])
    acks = figures["acks"]
    assert all(status == 200 for _, status, _ in acks), acks
    assert max(seconds for _, _, seconds in acks) < ACK_LIMIT
    during = figures["fired_during"]
    assert during["nudged"] >= 3 and during["returned"] >= 3 and during["escalated"] >= 3
    assert figures["queued_max"] >= figures["queued_before"] + 10
    assert figures["failed_calls"] > 0
    assert figures["drained_after"] is not None, "the outbox did not drain"
    assert figures["outbox_left"] == 0 and figures["dead_letters"] == 0
    assert not figures["out_of_order"], "\n".join(figures["out_of_order"])
    assert not figures["missing"], "\n".join(figures["missing"])
    assert not figures["twice"], "\n".join(figures["twice"])


async def outage_day(world: SlackWorld, sandbox: SlackTestbed) -> dict[str, Any]:
    journal = OutboxJournal().attach(world.bot)
    store = world.bot.store
    slack = Slack(world)
    answered = {c: await world.says("Where is my order?", user=c) for c in customers(3, 1)}
    claimed = {c: await world.says("Refund please", user=c) for c in customers(3, 4)}
    cards = {ts: await world.card_of(ts) for ts in [*answered.values(), *claimed.values()]}
    for ts in answered.values():
        await world.says("Looking into it", thread=ts, user=ANNA)
    await world.bot.runtime.drained()

    queued_before = store.outbox_size()
    for ts in claimed.values():  # claimed just before: first response is due mid-outage
        await world.react(BOB, "eyes", ts)
    began, began_epoch = time.monotonic(), time.time()
    sizes: list[int] = []
    for number, kind in enumerate(PHASES):
        sandbox.outage(kind, PHASE)
        phase_end = began + PHASE * (number + 1)
        step = 0
        while time.monotonic() < phase_end:
            step += 1
            if number == 0 and step == 1:
                for customer, ts in answered.items():  # they write again: idle timers run
                    await slack.says("Any news?", customer, thread=ts)
            if step % 4 == 1 and step < 12:  # new conversations while Slack is down
                await slack.says("Hello?", f"U0NEW{number}{step:02d}")
            if step % 5 == 2:
                await slack.rescue(CARL if step % 2 else BOB)
            if step % 5 == 3:
                ts, card = next(iter(cards.items()))
                await slack.claim_click(CARL, card, f"slack:{HELP}:{ts}")
            if step % 3 == 0:
                customer, ts = list(claimed.items())[step % 3]
                await slack.says("Still waiting", customer, thread=ts)
            sizes.append(store.outbox_size())
            await asyncio.sleep(0.1)
    ended, ended_epoch = time.monotonic(), time.time()
    fired_during = Counter(h.kind for h in store.history(None, began_epoch)
                           if h.kind in TIMER_EVENTS and h.at < ended_epoch)

    drained_at = None
    try:
        await eventually(lambda: journal.drained_at(ended) is not None, timeout=30, poll=0.05)
        drained_at = journal.drained_at(ended)
        await eventually(lambda: store.outbox_size() == 0, timeout=30, poll=0.05)
    except TimeoutError:
        pass
    dead = store.conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    history = store.history(None, 0)
    expected = expected_notices(
        history, lambda h: store.load(h.ref.key).customer)  # type: ignore[union-attr]
    for key in store.conn.execute("SELECT key, customer FROM conversations"):
        expected[(key[1], "card")] = 1
    found = compare(slack_posts(sandbox, TEAM), expected, {}, (*TIMER_EVENTS, "card"))
    failed_calls = sum(1 for call in sandbox.calls if call.failed)
    notices = sum(1 for lane in journal.queued.values() for _, a in lane
                  if isinstance(a, NOTICES))
    acks = slack.acks
    report = (
        f"Slack outage: {' / '.join(PHASES)} for {PHASE:g}s each ({ended - began:.1f}s); "
        f"{len(acks)} requests acknowledged during it, slowest "
        f"{max(s for _, _, s in acks) * 1000:.0f} ms "
        f"({', '.join(f'{w} {max(s for x, _, s in acks if x == w) * 1000:.0f} ms' for w in sorted({w for w, _, _ in acks}))})\n"  # noqa: E501
        f"  timers fired during the outage: {dict(fired_during)}\n"
        f"  outbox: {queued_before} queued before, up to {max(sizes)} during; "
        f"{failed_calls} Web API calls failed; {notices} notices queued in all\n"
        f"  drained {(drained_at - ended) if drained_at else float('nan'):.1f}s after Slack "
        f"was back; in order: {not journal.out_of_order()}; missing {len(found.missing)}, "
        f"posted twice {len(found.unexplained)}, dead letters {dead}")
    return {
        "report": report, "acks": acks, "fired_during": fired_during,
        "queued_before": queued_before, "queued_max": max(sizes),
        "failed_calls": failed_calls,
        "drained_after": None if drained_at is None else drained_at - ended,
        "outbox_left": store.outbox_size(), "dead_letters": dead,
        "out_of_order": journal.out_of_order(), "missing": found.missing,
        "twice": found.unexplained,
    }


FIRST_REQUEST_BUG = (
    "BUG: bolt's single-team authorization calls auth.test on the first request after a "
    "start (adapters/slack/app.py build_app: no `authorize`, so AsyncSingleTeamAuthorization "
    "caches nothing until then; the adapter's own auth.test at start does not prime it). "
    "If the Web API is down at that moment, bolt answers the event 200 with a 'reinstall "
    "the app' body and never runs the listener (5xx/429), or holds the ack for the API "
    "call's timeout (hang).")


async def first_event_during_outage(tmp_path: Path, kind: Kind, seconds: float
                                    ) -> tuple[int, float, bool, int]:
    """Start the bot with Slack up, then take the Web API down and send one event."""
    async with SlackTestbed() as sandbox:
        furnish_slack(sandbox)
        world = SlackWorld(sandbox, sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db"))
        await world.start()
        try:
            sandbox.outage(kind, seconds)
            event = world.slack.message_event(HELP, "U0CUST001", "Is anyone there?")
            began = time.monotonic()
            status, _ = await world.slack.send_event(event)
            took = time.monotonic() - began
            await asyncio.sleep(max(0.0, seconds - took) + 0.5)
            stored = world.conv(str(event["ts"])) is not None
        finally:
            await world.stop()
        return status, took, stored, len(sandbox.calls_to("auth.test"))


async def test_outage_slack_the_first_event_after_a_start_is_kept(tmp_path: Path) -> None:
    status, took, stored, auth_tests = await first_event_during_outage(tmp_path, "5xx", 1.5)
    print(f"first event during a 5xx outage: HTTP {status} in {took * 1000:.0f} ms, "
          f"stored {stored}, auth.test calls {auth_tests}")
    assert status != 200 or stored  # acknowledged means kept


async def test_outage_slack_the_first_event_after_a_start_is_acked_in_time(
        tmp_path: Path) -> None:
    status, took, stored, auth_tests = await first_event_during_outage(tmp_path, "hang", 4.0)
    print(f"first event during a hang: HTTP {status} in {took * 1000:.0f} ms, "
          f"stored {stored}, auth.test calls {auth_tests}")
    assert took < ACK_LIMIT


async def test_outage_slack_the_bot_starts_while_slack_is_down(tmp_path: Path) -> None:
    """Events that arrive before the operator list is known are acknowledged, kept, and
    handled in arrival order at their own time once Slack's Web API answers."""
    async with SlackTestbed() as sandbox:
        furnish_slack(sandbox)
        sandbox.outage("5xx", 2.0)
        world = SlackWorld(sandbox, sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db"))
        try:
            await world.start()
            assert not world.adapter.ready
            ts = await world.says("Is anyone there? " + "x" * 100 + " beyond-the-preview")
            answer = world.slack.message_event(HELP, ANNA, "On it", thread_ts=ts)
            assert (await world.slack.send_event(answer, event_id="EvANSWER"))[0] == 200
            resent = await world.slack.send_event(answer, event_id="EvANSWER", retry_num=1)
            assert resent[0] == 200  # Slack's resend of it: kept once
            reply = await world.rescue("status")
            assert world.conv(ts) is None  # nothing decided while operators are unknown
            held = world.bot.store.held("slack", 100)
            kept = len(held)
            assert all("beyond-the-preview" not in h.body for h in held)  # clipped as stored
            began = time.monotonic()
            await eventually(lambda: world.adapter.ready, timeout=8.0)
            connected_after = time.monotonic() - began
            card = await world.card_of(ts)
            conv = world.conv(ts)
            left = world.bot.store.held("slack", 100)
            opened = [h for h in world.bot.store.history(None, 0) if h.kind == "opened"]
        finally:
            await world.stop()
    print(f"Slack down at start: {kept} events kept, connected {connected_after:.1f}s later")
    assert "try again" in reply
    assert kept == 2 and left == []
    assert conv is not None and conv.owner == ANNA  # the reply was taken after the message
    assert len(opened) == 1
    assert "Is anyone there?" in str(card)


async def test_outage_slack_kept_events_survive_a_store_error_while_taken(
        tmp_path: Path) -> None:
    """The store fails while the kept events are handled: they stay kept, and the
    connection is tried again; nothing acknowledged is dropped."""
    async with SlackTestbed() as sandbox:
        furnish_slack(sandbox)
        sandbox.outage("5xx", 1.5)
        world = SlackWorld(sandbox, sandbox_settings(sandbox, f"sqlite:///{tmp_path}/t.db"))
        try:
            await world.start()
            ts = await world.says("Is anyone there?")
            store = world.bot.store
            real_held, failures = store.held, []

            def flaky_held(platform: str, limit: int) -> list[Held]:
                if not failures:
                    failures.append("database is locked")
                    raise sqlite3.OperationalError("database is locked")
                return real_held(platform, limit)

            store.held = flaky_held  # type: ignore[method-assign]
            await eventually(lambda: world.adapter.ready, timeout=12.0)
            await world.card_of(ts)
            left = real_held("slack", 10)
        finally:
            await world.stop()
    assert failures == ["database is locked"] and left == []

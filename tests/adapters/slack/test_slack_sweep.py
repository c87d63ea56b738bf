"""The sweep end to end through slack-bolt and the sandbox: a card per operator before the
shift ends, Close all finished closes exactly the finished ones, only the card's operator
(or an admin) decides, a press after the end changes nothing, and the next shift opens
with the handover digest, each conversation with Claim."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from chat_rescue.bot.clock import ShiftedClock
from chat_rescue.bot.model import State
from chat_rescue.bot.settings import Settings
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_world import (
    ANNA,
    BOB,
    CARL,
    OTHER,
    TEAM,
    SlackWorld,
    button,
    buttons,
    eventually,
)

BERLIN = ZoneInfo("Europe/Berlin")
HOURS = {"rescue_hours": "mon-fri 09:00-18:00", "rescue_timezone": "Europe/Berlin",
         "rescue_idle": "1h", "rescue_close_reminder": "30m", "rescue_accept": "1h"}


def at(text: str) -> float:
    """Berlin time; 4 December 2026 is a Friday."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def sweep_cards(world: SlackWorld, channel: str = TEAM) -> list[dict[str, Any]]:
    return [m for m in world.sandbox.messages(channel) if "your shift ends" in str(m["text"])]


def told(world: SlackWorld, user: str) -> list[str]:
    return [str(e["text"]) for e in world.sandbox.ephemerals if e["user"] == user]


async def jump(world: SlackWorld, clock: ShiftedClock, when: str) -> None:
    clock.jump_to(at(when))
    world.bot.runtime.ticker.wake()


async def press(world: SlackWorld, user: str, card: dict[str, Any], action_id: str,
                key: str = "", channel: str = TEAM) -> None:
    value = str(button(card, action_id).get("value", "")).partition("|")[0]
    value = f"{value}|{key}" if key else value
    status, _ = await world.slack.click_button(user, action_id, value, channel,
                                               str(card["ts"]))
    assert status == 200


async def a_friday(world: SlackWorld, clock: ShiftedClock) -> dict[str, str]:
    """Bob has a finished conversation and one whose customer waits; Carl one waiting on
    the customer; one nobody has."""
    ts = {name: await world.says(f"{name}: my question") for name in ("done", "asking")}
    ts["carls"] = await world.says("carls: my question", user=OTHER)
    for name, who in (("done", BOB), ("asking", BOB), ("carls", CARL)):
        await world.card_of(ts[name])
        await world.says("Let me help", thread=ts[name], user=who)
    await eventually(lambda: all(world.conv(t).state is State.WAITING_ON_CUSTOMER
                                 for t in ts.values()))
    await jump(world, clock, "2026-12-04 17:44")
    await world.says("thanks, and one more thing", thread=ts["asking"])
    await world.says("Here it is", thread=ts["carls"], user=CARL)
    ts["nobody"] = await world.says("nobody: hello?", user=OTHER)
    await eventually(lambda: world.conv(ts["asking"]).state is State.WAITING_ON_OPERATOR
                     and world.conv(ts["nobody"]) is not None)
    return ts


async def test_a_sweep_card_closes_exactly_the_finished_ones_and_the_next_shift_gets_the_rest(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    clock = ShiftedClock(at("2026-12-04 17:00"))
    world = SlackWorld(sandbox, settings_for(**HOURS), clock=clock)
    await world.start()
    try:
        ts = await a_friday(world, clock)
        await jump(world, clock, "2026-12-04 17:44:59.5")
        cards = await eventually(lambda: len(sweep_cards(world)) == 2 and sweep_cards(world),
                                 timeout=5)
        bobs = next(c for c in cards if f"<@{BOB}>" in c["text"])
        carls = next(c for c in cards if f"<@{CARL}>" in c["text"])
        assert bobs["text"].startswith(f"<@{BOB}>, your shift ends today 18:00 (Berlin "
                                       "time). You have 2 open conversations:")
        assert "Finished but not closed 1 · Customer waiting on us 1 · Nobody has it 1" \
            in bobs["text"]
        assert buttons(bobs) == ["sweep_close_all", "sweep_hand_rest",
                                 "sweep_close", "sweep_keep", "sweep_hand_off",
                                 "sweep_close", "sweep_keep", "sweep_hand_off"]
        assert button(bobs, "sweep_close_all")["text"]["text"] == "Close all finished (1)"
        assert buttons(carls)[0] == "sweep_hand_rest"  # nothing of Carl's is finished

        # Carl may not decide for Bob; Bob closes all his finished ones: exactly one.
        await press(world, CARL, bobs, "sweep_close_all")
        await eventually(lambda: told(world, CARL))
        assert told(world, CARL) == [f"Only <@{BOB}>, whose sweep card it is, or an admin "
                                     "can decide here: nothing changed."]
        await press(world, BOB, bobs, "sweep_close_all")
        await eventually(lambda: world.conv(ts["done"]).state is State.CLOSED)
        await eventually(lambda: told(world, BOB) == ["Closed 1 conversation."])
        assert world.conv(ts["asking"]).state is State.WAITING_ON_OPERATOR
        assert world.conv(ts["carls"]).state is State.WAITING_ON_CUSTOMER
        closes = [h.detail for h in world.bot.store.history(None, 0) if h.kind == "closed"]
        assert closes == ["closed_at_shift_end"]
        shown = await eventually(lambda: "pressed *Close all finished (1)*" in str(
            sandbox.message(TEAM, bobs["ts"])) and sandbox.message(TEAM, bobs["ts"]))
        assert "sweep_close_all" not in buttons(shown)

        # The shift ends: what nobody decided goes to the next shift.
        await jump(world, clock, "2026-12-04 17:59:59.5")
        await eventually(lambda: world.conv(ts["carls"]).state is State.QUEUED, timeout=5)
        assert world.conv(ts["asking"]).state is State.QUEUED
        assert world.conv(ts["asking"]).owner is None
        await press(world, BOB, bobs, "sweep_keep", world.conv(ts["asking"]).ref.key)
        await eventually(lambda: len(told(world, BOB)) == 2)
        assert told(world, BOB)[1] == "That shift has ended: its sweep is over, and nothing " \
            "changed."

        # Monday: the next shift opens with the handover digest, oldest waiting first.
        await jump(world, clock, "2026-12-07 08:59:59.5")
        digest = await eventually(lambda: next(
            (m for m in world.team_posts() if "Handed over" in str(m["text"])), None),
            timeout=5)
        lines = str(digest["text"]).splitlines()
        assert lines[0] == ("Handed over from the last shift: 3 conversations, oldest "
                            "waiting first.")
        # asking (waiting since 17:44), nobody (a moment later), carls (in the inbox since
        # 18:00, its customer waiting on nobody)
        assert [line.split(":")[0] for line in lines[1:]] == [
            "• <@U0CUSTOMER>", f"• <@{OTHER}>", f"• <@{OTHER}>"]
        assert f"(had: <@{BOB}>)" in lines[1] and "(nobody had it)" in lines[2]
        assert f"(had: <@{CARL}>)" in lines[3]
        assert buttons(digest) == ["claim", "claim", "claim"]
        await world.click(ANNA, "claim", digest)
        await eventually(lambda: world.conv(ts["asking"]).owner == ANNA)
    finally:
        await world.stop()


async def test_sweep_cards_go_to_each_operators_direct_messages_when_asked(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    clock = ShiftedClock(at("2026-12-04 17:00"))
    world = SlackWorld(sandbox, settings_for(**HOURS, rescue_sweep_dm=True), clock=clock)
    await world.start()
    try:
        ts = await a_friday(world, clock)
        await jump(world, clock, "2026-12-04 17:44:59.5")
        dm = sandbox.dm_channel(BOB)
        [card] = await eventually(lambda: sweep_cards(world, dm), timeout=5)
        assert sweep_cards(world) == []  # nothing in the team channel
        await press(world, BOB, card, "sweep_hand_off", world.conv(ts["done"]).ref.key, dm)
        await eventually(lambda: told(world, BOB) == [
            "It goes to the next shift when yours ends today 18:00 (Berlin time)."])
        await jump(world, clock, "2026-12-04 17:59:59.5")
        await eventually(lambda: world.conv(ts["done"]).state is State.QUEUED, timeout=5)
    finally:
        await world.stop()


async def test_rescue_shift_and_set_sweep_in_slack(
    sandbox: SlackSandbox, settings_for: Callable[..., Settings]
) -> None:
    clock = ShiftedClock(at("2026-12-04 10:00"))
    world = SlackWorld(sandbox, settings_for(**HOURS), clock=clock)
    await world.start()
    try:
        async def rescue(text: str, user: str = ANNA) -> str:
            reply: str = json.loads(await world.rescue(text, user=user, channel=TEAM))["text"]
            return reply

        # Slack sends the mentions of a command with escaping on as <@U…|name>.
        assert await rescue(f"shift late 14:00-22:00 <@{BOB}|bob> <@{CARL}|carl>") == (
            f"Shift late: Daily 14:00–22:00 (Europe/Berlin), <@{BOB}>, <@{CARL}>. Their "
            "sweep comes at its ends, not the team's.")
        assert world.bot.store.settings(f"team:slack:{TEAM}") == {
            "shift:late": f"daily 14:00-22:00 | {BOB} {CARL}"}
        assert (await rescue("shift")).startswith(f"Shift late: Daily 14:00–22:00 "
                                                  f"(Europe/Berlin), <@{BOB}>, <@{CARL}>")
        assert (await rescue("shift late 14:00-22:00 @bob")).startswith("I don't know @bob")
        assert (await rescue("shift early 6-14 <@U0BOB>", user=BOB)).startswith("Sorry, only")
        assert await rescue("set sweep 5m") == "sweep is now 5m for the team."
        assert "Usage: /rescue set" in await rescue("set sweep 5x")
        status = await rescue("")
        assert "Sweep: 5m (team) before each shift ends" in status and "late" in status
    finally:
        await world.stop()

"""Who may press what, end to end through slack-bolt and the sandbox (DESIGN §1 rule 8)."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable

from chat_rescue.bot.model import State
from chat_rescue.sandbox.slack_world import (
    ANNA,
    BOB,
    CARL,
    HELP,
    OTHER,
    TEAM,
    SlackWorld,
    button,
    eventually,
)

World = Callable[..., Awaitable[SlackWorld]]
Json = dict[str, object]


async def nudged(world: SlackWorld, owner: str) -> tuple[str, Json]:
    """`owner` answered, the customer wrote again and waited: the nudge in the thread."""
    ts = await world.says("Hi, my order #1042 hasn't arrived")
    card = await world.card_of(ts)
    await world.says("On it!", thread=ts, user=owner)
    await eventually(lambda: world.conv(ts).state is State.WAITING_ON_CUSTOMER)
    await world.says("Order #2231, any news?", thread=ts)
    nudge = (await eventually(lambda: world.thread(str(card["ts"]))))[0]
    return ts, nudge


def told(world: SlackWorld, who: str) -> list[str]:
    """What only `who` was shown (ephemeral answers), oldest first."""
    return [str(e["text"]) for e in world.sandbox.ephemerals if e["user"] == who]


async def settled(world: SlackWorld) -> None:
    await world.bot.runtime.drained()


async def test_yesterdays_hand_off_leaves_todays_owner_alone(world_for: World) -> None:
    """Anna's nudge went unanswered and the conversation went back to the inbox; Bob took
    it and answered. Anna presses Hand off on her old nudge: nothing changes, she is told."""
    world = await world_for(rescue_escalate="300ms")
    ts, old_nudge = await nudged(world, ANNA)
    returned = await eventually(lambda: [m for m in world.team_posts()
                                         if str(m["text"]).startswith("Back in the inbox")])
    await world.click(BOB, "claim", returned[0])
    await world.says("Sorry for the wait, here is the tracking link", thread=ts, user=BOB)
    await eventually(lambda: world.conv(ts).owner == BOB
                     and world.conv(ts).state is State.WAITING_ON_CUSTOMER)
    await settled(world)
    before, history = world.conv(ts), world.bot.store.history(f"slack:{TEAM}", 0)

    await world.click(ANNA, "hand_off", old_nudge)
    answer = await eventually(lambda: told(world, ANNA))
    assert answer == ["That button belongs to an earlier nudge or reminder: nothing changed. "
                      f"<@{BOB}> has the conversation now."]
    await settled(world)
    assert world.conv(ts) == before  # still Bob's, answered, not a single field changed
    assert world.bot.store.history(f"slack:{TEAM}", 0) == history


async def test_snooze_by_somebody_else_is_refused(world: SlackWorld) -> None:
    ts, nudge = await nudged(world, BOB)
    await world.click(CARL, "snooze", nudge)
    answer = await eventually(lambda: told(world, CARL))
    assert answer == [f"Only <@{BOB}>, who has this conversation, or an admin can do that."]
    await settled(world)
    conv = world.conv(ts)
    assert not conv.snoozed and conv.nudged_at is not None and conv.owner == BOB
    assert world.sandbox.calls_to("users.info")  # Carl is no owner: is he an admin?


async def test_an_admin_may_hand_off_for_the_owner(world: SlackWorld) -> None:
    ts, nudge = await nudged(world, BOB)
    await world.click(ANNA, "hand_off", nudge)  # Anna is a workspace admin
    await eventually(lambda: world.conv(ts).state is State.QUEUED)
    notice = await eventually(lambda: [m for m in world.team_posts()
                                       if str(m["text"]).startswith("Back in the inbox")])
    assert f"handed off by <@{ANNA}>" in str(notice[0]["text"])
    assert told(world, ANNA) == []


async def test_the_owners_own_press_asks_slack_nothing(world: SlackWorld) -> None:
    ts, nudge = await nudged(world, BOB)
    asked = len(world.sandbox.calls_to("users.info"))
    await world.click(BOB, "snooze", nudge)
    await eventually(lambda: world.conv(ts).snoozed)
    assert len(world.sandbox.calls_to("users.info")) == asked


async def test_claim_is_for_operators(world: SlackWorld) -> None:
    ts = await world.says("Payment failed twice")
    card = await world.card_of(ts)
    await world.click(OTHER, "claim", copy.deepcopy(card))  # not in the team channel
    answer = await eventually(lambda: told(world, OTHER))
    assert answer == ["Only the team's operators can do that."]
    assert world.conv(ts).owner is None
    await world.click(CARL, "claim", card)
    await eventually(lambda: world.conv(ts).owner == CARL)
    assert told(world, CARL) == []


async def test_a_nudge_button_from_before_notice_ids_is_stale(world: SlackWorld) -> None:
    ts, nudge = await nudged(world, BOB)
    old = copy.deepcopy(nudge)
    button(old, "snooze")["value"] = f"slack:{HELP}:{ts}"  # how buttons looked before
    await world.click(BOB, "snooze", old)
    answer = await eventually(lambda: told(world, BOB))
    assert answer[0].startswith("That button belongs to an earlier nudge or reminder")
    assert not world.conv(ts).snoozed


async def test_a_check_mark_by_somebody_else_is_refused_privately(world: SlackWorld) -> None:
    ts, _ = await nudged(world, BOB)
    await world.react(CARL, "white_check_mark", ts)
    sent = await eventually(lambda: world.sandbox.calls_to("chat.postEphemeral"))
    answer = sent[0].params  # a reaction has no response_url: the outbox posts it
    assert answer["user"] == CARL and answer["channel"] == TEAM
    assert answer["text"] == f"Only <@{BOB}>, who has this conversation, or an admin can do that."
    assert world.conv(ts).state is State.WAITING_ON_OPERATOR

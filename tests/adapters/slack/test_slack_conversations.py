"""End to end through slack-bolt and the sandbox: cards, claims, rescues, close and reopen."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable

import pytest

from chat_rescue.bot.model import State
from chat_rescue.sandbox.slack import WORKSPACE_URL
from chat_rescue.sandbox.slack_world import (
    ANNA,
    BOB,
    CARL,
    CUSTOMER,
    HELP,
    TEAM,
    SlackWorld,
    button,
    buttons,
    eventually,
)

World = Callable[..., Awaitable[SlackWorld]]


def status_of(world: SlackWorld, card: dict[str, object]) -> str:
    """The card's status line as it stands in Slack now."""
    stored = world.sandbox.message(TEAM, str(card["ts"]))
    assert stored is not None
    context = next(b for b in stored["blocks"] if b["type"] == "context")
    return str(context["elements"][0]["text"])


async def answered_by(world: SlackWorld, operator: str) -> str:
    """A conversation that `operator` has answered; returns its ts."""
    ts = await world.says("Hi, my order #1042 hasn't arrived")
    await world.card_of(ts)
    await world.says("On it!", thread=ts, user=operator)
    await eventually(lambda: world.conv(ts).state is State.WAITING_ON_CUSTOMER)
    return ts


async def test_a_customer_message_opens_a_conversation_with_an_inbox_card(
    world: SlackWorld,
) -> None:
    ts = await world.says("Hi, my order #1042 hasn't arrived")
    card = await world.card_of(ts)
    conv = world.conv(ts)
    assert conv.state is State.QUEUED and conv.customer == CUSTOMER
    assert conv.team == f"slack:{TEAM}"
    assert card["thread_ts"] is None  # top level in the team channel
    shown = str(card["blocks"])
    assert f"<@{CUSTOMER}>" in shown and f"<#{HELP}>" in shown
    assert "my order #1042" in shown and "waiting for an operator" in shown
    assert buttons(card) == ["claim"]
    assert button(card, "claim")["value"] == f"slack:{HELP}:{ts}"


async def test_the_card_shows_the_customer_text_as_slack_sent_it(world: SlackWorld) -> None:
    # Slack's wire text for: Is 2 < 3 & 4 > 1? @here ask @bob (a mention Slack converted)
    ts = await world.says(f"Is 2 &lt; 3 &amp; 4 &gt; 1? <!here> ask <@{BOB}>")
    card = await world.card_of(ts)
    quote = str(card["blocks"][0]["text"]["text"]).split("\n>", 1)[1]
    assert quote == f"Is 2 &lt; 3 &amp; 4 &gt; 1? @\u2060here ask <@{BOB}>"


async def test_follow_ups_in_the_thread_belong_to_the_same_conversation(
    world: SlackWorld,
) -> None:
    ts = await world.says("Hello?")
    await world.card_of(ts)
    before = world.conv(ts).last_customer_at
    await world.says("Anyone there?", thread=ts)
    await eventually(lambda: world.conv(ts).last_customer_at != before)
    await world.bot.runtime.drained()
    assert len(world.team_posts()) == 1


async def test_claim_by_button_updates_the_card(world: SlackWorld) -> None:
    ts = await world.says("Payment failed twice")
    card = await world.card_of(ts)
    await world.click(ANNA, "claim", card)
    await eventually(lambda: world.conv(ts).owner == ANNA)
    assert world.conv(ts).state is State.CLAIMED
    await eventually(lambda: f"claimed by <@{ANNA}>" in status_of(world, card))
    assert buttons(world.sandbox.message(TEAM, card["ts"])) == []


async def test_a_second_claim_is_refused_privately(world: SlackWorld) -> None:
    ts = await world.says("Payment failed twice")
    card = await world.card_of(ts)
    seen_by_bob = copy.deepcopy(card)  # Bob's screen still shows the Claim button
    await world.click(ANNA, "claim", card)
    await eventually(lambda: world.conv(ts).owner == ANNA)
    await world.click(BOB, "claim", seen_by_bob)
    refusal = await eventually(lambda: world.sandbox.ephemerals)
    assert refusal[0]["user"] == BOB and refusal[0]["channel"] == TEAM
    assert refusal[0]["text"] == f"Already claimed by <@{ANNA}>."
    assert world.conv(ts).owner == ANNA


async def test_claim_by_eyes_reaction_on_the_customer_message(world: SlackWorld) -> None:
    ts = await world.says("Invoice for March please")
    await world.card_of(ts)
    await world.react(CUSTOMER, "eyes", ts)  # customers cannot claim
    await world.react(BOB, "thumbsup", ts)  # other reactions mean nothing
    await world.react(BOB, "eyes", ts)
    await eventually(lambda: world.conv(ts).owner == BOB)
    history = world.bot.store.history(f"slack:{TEAM}", 0)
    assert [(h.kind, h.actor) for h in history if h.kind == "claimed"] == [("claimed", BOB)]


async def test_claim_by_eyes_reaction_on_the_inbox_card(world: SlackWorld) -> None:
    ts = await world.says("Invoice for March please")
    card = await world.card_of(ts)
    await world.react(CARL, "eyes", str(card["ts"]), channel=TEAM)
    await eventually(lambda: world.conv(ts).owner == CARL)


async def test_eyes_and_check_mark_count_on_any_message_of_the_thread(
    world: SlackWorld,
) -> None:
    ts = await world.says("My parcel is lost")
    await world.card_of(ts)
    follow_up = await world.says("It was due on Monday", thread=ts)
    await world.react(BOB, "eyes", follow_up)
    await eventually(lambda: world.conv(ts).owner == BOB)
    reply = await world.says("Looking into it", thread=ts, user=BOB)
    await eventually(lambda: world.conv(ts).state is State.WAITING_ON_CUSTOMER)
    await world.react(BOB, "white_check_mark", reply)
    await eventually(lambda: world.conv(ts).state is State.CLOSED)
    history = world.bot.store.history(f"slack:{TEAM}", 0)
    assert [(h.kind, h.actor) for h in history if h.kind in ("claimed", "closed")] == [
        ("claimed", BOB), ("closed", BOB)]


async def test_claim_and_close_reactions_that_lead_nowhere_are_logged(
    world: SlackWorld, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="chat_rescue.adapters.slack")
    announcement = await world.says("We close at 6 today", user=ANNA)  # nobody's conversation
    await world.react(BOB, "white_check_mark", announcement)
    chatter = world.slack.message_event(TEAM, ANNA, "coffee?")
    await world.slack.send_event(chatter)
    await world.react(BOB, "eyes", str(chatter["ts"]), channel=TEAM)
    await world.react(BOB, "eyes", "1700000000.000001", channel="C0RANDOM")
    await world.react(BOB, "tada", announcement)  # any other reaction is just a reaction
    said = [r.getMessage() for r in caplog.records
            if r.levelname == "INFO" and "reaction" in r.getMessage()]
    assert len(said) == 3, said
    assert announcement in said[0] and "no conversation" in said[0]
    assert str(chatter["ts"]) in said[1] and "inbox card" in said[1]
    assert "C0RANDOM" in said[2]
    assert world.conv(announcement) is None


async def test_claim_by_replying_in_the_thread(world: SlackWorld) -> None:
    ts = await world.says("Do you ship to Norway?")
    card = await world.card_of(ts)
    await world.says("We do!", thread=ts, user=BOB)
    await eventually(lambda: world.conv(ts).state is State.WAITING_ON_CUSTOMER)
    assert world.conv(ts).owner == BOB and world.conv(ts).first_reply_at is not None
    await eventually(lambda: status_of(world, card).startswith(f"with <@{BOB}>"))


async def test_no_first_response_returns_the_conversation_to_the_inbox(
    world: SlackWorld,
) -> None:
    ts = await world.says("Where do I find my API key?")
    card = await world.card_of(ts)
    await world.click(ANNA, "claim", card)
    await eventually(lambda: world.conv(ts).owner == ANNA)

    # 300 ms later nobody has answered: unassigned, owner told, team asked.
    await eventually(lambda: world.conv(ts).state is State.QUEUED)
    assert world.conv(ts).owner is None
    told = await eventually(lambda: world.thread(str(card["ts"])))
    assert f"<@{ANNA}>" in told[0]["text"] and "back to the inbox" in told[0]["text"]
    assert "no first response within 300ms" in told[0]["text"]
    notice = (await eventually(lambda: world.team_posts()[1:]))[0]
    assert notice["text"].startswith("Back in the inbox")
    assert button(notice, "claim")["value"] == f"slack:{HELP}:{ts}"
    await eventually(lambda: "waiting for an operator" in status_of(world, card))
    assert buttons(world.sandbox.message(TEAM, card["ts"])) == ["claim"]

    # Anyone can take it from the notice; the notice then says who did.
    await world.says("It's me again", thread=ts)
    await world.click(BOB, "claim", notice)
    await eventually(lambda: world.conv(ts).owner == BOB)
    marked = await eventually(lambda: not buttons(world.sandbox.message(TEAM, notice["ts"]))
                              and world.sandbox.message(TEAM, notice["ts"]))
    assert f"<@{BOB}> pressed *Claim*" in str(marked["blocks"])


async def nudged(world: SlackWorld, owner: str = BOB) -> tuple[str, dict[str, object]]:
    """An answered conversation where the customer wrote again and waits: the nudge."""
    ts = await answered_by(world, owner)
    card = await world.card_of(ts)
    await world.says("Order #2231, any news?", thread=ts)
    nudge = (await eventually(lambda: world.thread(str(card["ts"]))))[0]
    return ts, nudge


async def test_idle_owner_is_nudged_in_the_operator_thread(world: SlackWorld) -> None:
    ts, nudge = await nudged(world)
    assert f"<@{BOB}>" in str(nudge["text"]) and "are you still with" in str(nudge["text"])
    assert buttons(nudge) == ["reply_now", "snooze", "close", "hand_off"]
    link = button(nudge, "reply_now")["url"]
    assert link == f"{WORKSPACE_URL}archives/{HELP}/p{ts.replace('.', '')}"
    assert world.conv(ts).nudged_at is not None


async def test_reply_now_is_a_link_and_changes_nothing(world: SlackWorld) -> None:
    ts, nudge = await nudged(world)
    version = world.conv(ts).version
    await world.click(BOB, "reply_now", nudge)
    await world.says("marker", thread=ts, user=CUSTOMER)
    await eventually(lambda: world.conv(ts).version > version)
    assert world.conv(ts).state is State.WAITING_ON_OPERATOR and world.conv(ts).owner == BOB


async def test_snooze_restarts_the_idle_timer_once(world: SlackWorld) -> None:
    ts, nudge = await nudged(world)
    four = buttons(nudge)
    await world.click(BOB, "snooze", nudge)
    await eventually(lambda: world.conv(ts).snoozed)
    marked = world.sandbox.message(TEAM, str(nudge["ts"]))
    await eventually(lambda: f"<@{BOB}> pressed *Snooze*" in str(marked["blocks"]))
    assert buttons(marked) == []
    # the timer ran again: a second nudge, and it cannot be snoozed a second time
    card_ts = world.conv(ts).card
    second = (await eventually(lambda: world.thread(card_ts)[1:]))[0]
    assert "are you still with" in second["text"]
    await world.click(BOB, "snooze", second)
    told = await eventually(lambda: world.sandbox.ephemerals)
    assert told[-1]["user"] == BOB and told[-1]["thread_ts"] == card_ts  # where he pressed
    assert told[-1]["text"] == "Snoozed once already: reply, close it or hand it off."
    assert buttons(world.sandbox.message(TEAM, second["ts"])) == four
    assert world.conv(ts).nudged_at is not None


@pytest.mark.parametrize("pressed", ["close", "hand_off"])
async def test_nudge_buttons_do_what_they_say(world: SlackWorld, pressed: str) -> None:
    ts, nudge = await nudged(world)
    await world.click(BOB, pressed, nudge)
    if pressed == "close":
        await eventually(lambda: world.conv(ts).state is State.CLOSED)
        card = await world.card_of(ts)
        await eventually(lambda: status_of(world, card).startswith("closed"))
    else:
        await eventually(lambda: world.conv(ts).state is State.QUEUED)
        assert world.conv(ts).owner is None
        notice = await eventually(lambda: [m for m in world.team_posts()
                                           if m["text"].startswith("Back in the inbox")])
        assert f"handed off by <@{BOB}>" in notice[0]["text"]
        assert buttons(notice[0]) == ["claim"]


async def test_unclaimed_conversations_call_in_the_escalation_target(world_for: World) -> None:
    world = await world_for(rescue_accept="300ms", rescue_escalate_to="@here S0OPS U0CARL")
    ts = await world.says("Bulk discount for 50 seats?")
    await world.card_of(ts)
    call = (await eventually(lambda: world.team_posts()[1:]))[0]
    assert call["text"].startswith("<!here> <!subteam^S0OPS> <@U0CARL> nobody has taken")
    assert "Bulk discount for 50 seats?" in call["text"]
    assert button(call, "claim")["value"] == f"slack:{HELP}:{ts}"
    await world.click(CARL, "claim", call)
    await eventually(lambda: world.conv(ts).owner == CARL)


async def test_close_reminder_offers_close_and_keep_open(world_for: World) -> None:
    world = await world_for(rescue_close_reminder="300ms")
    ts = await answered_by(world, ANNA)
    card = await world.card_of(ts)
    reminder = (await eventually(lambda: world.thread(str(card["ts"]))))[0]
    assert f"<@{ANNA}>" in reminder["text"] and "please close it" in reminder["text"]
    assert buttons(reminder) == ["close", "keep_open"]

    await world.click(ANNA, "keep_open", reminder)
    await eventually(lambda: not world.conv(ts).reminded)
    second = (await eventually(lambda: world.thread(str(card["ts"]))[1:]))[0]
    await world.click(ANNA, "close", second)
    await eventually(lambda: world.conv(ts).state is State.CLOSED)


async def test_close_by_check_mark_reaction_and_reopen(world: SlackWorld) -> None:
    ts = await answered_by(world, ANNA)
    card = await world.card_of(ts)
    await world.react(ANNA, "white_check_mark", ts)
    await eventually(lambda: world.conv(ts).state is State.CLOSED)
    await eventually(lambda: status_of(world, card).startswith("closed"))

    await world.says("One more thing", thread=ts)
    await eventually(lambda: world.conv(ts).state is State.WAITING_ON_OPERATOR)
    assert world.conv(ts).owner == ANNA
    await eventually(lambda: status_of(world, card).startswith(f"with <@{ANNA}>"))
    history = [h.kind for h in world.bot.store.history(f"slack:{TEAM}", 0)]
    assert history.count("closed") == 1 and history.count("reopened") == 1


async def test_a_thread_broadcast_is_a_reply(world: SlackWorld) -> None:
    ts = await answered_by(world, ANNA)
    await world.says("Still broken", thread=ts, subtype="thread_broadcast")
    await eventually(lambda: world.conv(ts).state is State.WAITING_ON_OPERATOR)

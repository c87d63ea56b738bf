"""Two Slack replicas on one PostgreSQL database: Slack tells one of them of a join or a
leave in the team channel, and the other follows it at once."""

from __future__ import annotations

from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_world import (
    CARL,
    CUSTOMER,
    TEAM,
    SlackWorld,
    eventually,
    sandbox_settings,
)

DORA = "U0DORA"
FAST = {"rescue_first_response": "10m", "rescue_idle": "10m", "rescue_accept": "10m",
        "rescue_escalate": "10m", "rescue_close_reminder": "10m"}


def opened(world: SlackWorld) -> int:
    return sum(h.kind == "opened" for h in world.bot.store.history(f"slack:{TEAM}", 0))


async def test_a_join_or_leave_told_to_one_replica_reaches_the_other(
        sandbox: SlackSandbox, postgres_url: str) -> None:
    settings = sandbox_settings(sandbox, postgres_url, **FAST)
    told, other = SlackWorld(sandbox, settings), SlackWorld(sandbox, settings)
    await told.start()
    await other.start()
    try:
        sandbox.add_user(DORA, "dora")
        await told.slack.send_event(told.slack.member_joined(TEAM, DORA))
        await eventually(lambda: DORA in other.adapter.workspace.operators, timeout=2.0)
        ts = await other.says("Gift wrapping available?")
        await other.card_of(ts)
        await other.says("Yes!", thread=ts, user=DORA)  # an operator's reply: she claims
        await eventually(lambda: (conv := other.conv(ts)) is not None and conv.owner == DORA)

        await told.slack.send_event(told.slack.member_left(TEAM, CARL))
        await eventually(lambda: CARL not in other.adapter.workspace.operators, timeout=2.0)
        await other.says("I left the support team", user=CARL)  # a customer now
        await eventually(lambda: opened(other) == 2)
        assert other.conv(ts) is not None and other.conv(ts).customer == CUSTOMER
    finally:
        await other.stop()
        await told.stop()


async def test_a_replica_started_later_keeps_slacks_listing(
        sandbox: SlackSandbox, postgres_url: str) -> None:
    """A stored change older than a replica's connection is in Slack's listing already: a
    leave stored before a rejoin must not take the member away from a later replica."""
    settings = sandbox_settings(sandbox, postgres_url, **FAST)
    first = SlackWorld(sandbox, settings)
    await first.start()
    try:
        await first.slack.send_event(first.slack.member_left(TEAM, CARL))
        await eventually(lambda: CARL not in first.adapter.workspace.operators)
        team = sandbox.channel(TEAM)
        assert team is not None
        team.members.append(CARL)  # back, while no replica heard of it
        later = SlackWorld(sandbox, settings)
        await later.start()
        try:
            assert CARL in later.adapter.workspace.operators
        finally:
            await later.stop()
    finally:
        await first.stop()

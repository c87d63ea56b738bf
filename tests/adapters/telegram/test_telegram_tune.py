"""`/rescue tune` in the support group: the reply at once, then what the history says, in
the topic (or General) where it was asked; only the group's administrators may."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chat_rescue.sandbox.telegram_support import (
    ALICE,
    ANA,
    BEN,
    GROUP,
    SupportGroup,
    eventually,
)

World = Callable[..., Awaitable[SupportGroup]]


def said(group: SupportGroup) -> list[str]:
    return [str(m.get("text")) for m in group.general()]


async def test_the_creator_gets_the_answer_in_general(world: World) -> None:
    group = await world()
    group.sandbox.group_message(GROUP, ANA, "/rescue tune")
    await eventually(lambda: [t for t in said(group) if t.startswith("No conversations")],
                     timeout=30)  # nothing recorded yet: said so
    group.sandbox.private_message(ALICE, "Hello, where is my order?")
    await group.topic()
    group.sandbox.group_message(GROUP, ANA, "/rescue tune")
    (answer,) = await eventually(
        lambda: [t for t in said(group) if t.startswith("What the last 30 days")], timeout=30)
    assert "Replaying the last 30 days with longer timers… the answer follows here." \
        in said(group)
    assert answer.startswith("What the last 30 days say (1 conversations):")
    assert "\nidle " in answer and "Keep " in answer


async def test_an_operator_who_is_not_an_administrator_is_refused(world: World) -> None:
    group = await world()
    group.sandbox.group_message(GROUP, BEN, "/rescue tune")
    refusal = "Sorry, only admins can tune the timers. Try /rescue stats."
    await eventually(lambda: refusal in said(group), timeout=10)
    await group.bot.runtime.drained()
    assert not [t for t in said(group) if t.startswith("What the last")]

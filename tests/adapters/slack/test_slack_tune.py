"""`/rescue tune` on Slack: answered at once, then what the history says about each timer,
as an ephemeral message to the admin who asked; others are told it is for admins."""

from __future__ import annotations

import json

from chat_rescue.sandbox.slack_world import ANNA, BOB, TEAM, SlackWorld, eventually


async def test_an_admin_gets_the_history_s_answer_privately(world: SlackWorld) -> None:
    ts = await world.says("My order is late")
    await world.card_of(ts)
    reply = json.loads(await world.rescue("tune", user=ANNA, channel=TEAM))
    assert reply["text"] == ("Replaying the last 30 days with longer timers… the answer "
                             "follows here.")

    def answered() -> list[dict[str, object]]:
        return [e for e in world.sandbox.ephemerals
                if e["user"] == ANNA and str(e["text"]).startswith("What the last 30 days")]

    (answer,) = await eventually(answered, timeout=30)
    text = str(answer["text"])
    assert answer["channel"] == TEAM
    assert answer["via"] == "response_url"  # it reaches them wherever they typed it
    # The sandbox world's timers: idle 300ms, accept 10m.
    assert "(1 conversations)" in text and "\nidle 300ms: 0 nudges in 30 days; 0 answered, " \
        "0 snoozed" in text
    assert "accept 10m: 0 calls for operators in 30 days; 0 answered." in text
    assert "Keep idle 300ms: a longer one saves nothing here." in text
    assert world.sandbox.messages(TEAM)[-1].get("text") != text  # nobody else sees it


async def test_an_operator_who_is_not_an_admin_is_told_so(world: SlackWorld) -> None:
    said = json.loads(await world.rescue("tune", user=BOB, channel=TEAM))["text"]
    assert said == "Sorry, only admins can tune the timers. Try /rescue stats."
    wrong = json.loads(await world.rescue("tune 30d", user=ANNA, channel=TEAM))["text"]
    assert wrong == "Usage: /rescue tune"
    await world.bot.runtime.drained()
    assert [e for e in world.sandbox.ephemerals if "What the last" in str(e["text"])] == []

"""Slack wording: mentions, escaping, and which buttons each message carries (no network)."""

from __future__ import annotations

import pytest

from chat_rescue.adapters.slack import blocks
from chat_rescue.adapters.slack.mentions import escalation_target, escape, shown_preview
from chat_rescue.bot.model import (
    CloseReminder,
    Conversation,
    ConversationRef,
    Escalate,
    HandoverDigest,
    HandoverLine,
    Nudge,
    ReturnToInbox,
    State,
    SweepCard,
    SweepLine,
)

REF = ConversationRef("slack", "C0HELP", "1700000000.000100")


@pytest.mark.parametrize(
    ("written", "mentioned"),
    [
        ("@here", "<!here>"),
        ("@channel", "<!channel>"),
        ("<!here>", "<!here>"),
        ("S0OPS", "<!subteam^S0OPS>"),
        ("<!subteam^S0OPS|@ops>", "<!subteam^S0OPS>"),
        ("U0ANNA", "<@U0ANNA>"),
        ("@U0ANNA", "<@U0ANNA>"),
        ("<@U0ANNA|anna>", "<@U0ANNA>"),
        ("@here S0OPS U0ANNA W0BOB", "<!here> <!subteam^S0OPS> <@U0ANNA> <@W0BOB>"),
        ("@alice <script>", "@alice &lt;script&gt;"),
    ],
)
def test_escalation_targets_become_mentions(written: str, mentioned: str) -> None:
    assert escalation_target(written) == mentioned


def test_bot_text_is_escaped_for_display() -> None:
    assert escape("a < b & <!channel>") == "a &lt; b &amp; &lt;!channel&gt;"


WJ = "\u2060"  # the word joiner that keeps a shown @here from being a mention


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        # Slack sends text escaped once: shown as sent, not escaped a second time
        ("a &lt; b &amp;&amp; c &gt; d", "a &lt; b &amp;&amp; c &gt; d"),
        ("typed &amp;lt; literally", "typed &amp;lt; literally"),
        ("&lt;!channel&gt; typed as text", "&lt;!channel&gt; typed as text"),
        # people, channels and links as Slack formats them
        ("ask <@U0BOB> or <@W0ANNA|anna>", "ask <@U0BOB> or <@W0ANNA|anna>"),
        ("see <#C0HELP|help>", "see <#C0HELP|help>"),
        ("<https://x.example/a?b=1&amp;c=2|the page> and <mailto:a@x.example>",
         "<https://x.example/a?b=1&amp;c=2|the page> and <mailto:a@x.example>"),
        # nobody is called in by a preview
        ("<!channel> help", f"@{WJ}channel help"),
        ("<!here|here> <!everyone> <!group>", f"@{WJ}here @{WJ}everyone @{WJ}group"),
        ("<!subteam^S0OPS|@ops> please", f"@{WJ}ops please"),
        ("<!subteam^S0OPS>", f"@{WJ}group"),
        ("@here and @channel typed plainly", f"@{WJ}here and @{WJ}channel typed plainly"),
        ("<!date^1700000000^{date}|14 Nov &amp; later>", "14 Nov &amp; later"),
        # what Slack would not send is shown literally
        ("<@not an id> <javascript:alert(1)|x>",
         "&lt;@not an id&gt; &lt;javascript:alert(1)|x&gt;"),
        ("stray & and > and <", "stray &amp; and &gt; and &lt;"),
        # clipped by the preview length: a half entity is left out, not shown broken
        ("my order &am…", "my order …"),
        ("a &lt…", "a …"),
        ("ask <@U0B…", "ask …"),
        ("see <https://x.example/long-pa…", "see …"),
        ("<!chan…", "…"),
        ("done &amp;…", "done &amp;…"),
    ],
)
def test_previews_are_shown_as_slack_sent_them(sent: str, shown: str) -> None:
    assert shown_preview(sent) == shown


def test_cards_and_notices_show_the_preview_once_escaped_and_calling_nobody() -> None:
    sent = "2 &lt; 3 <!here> ask <@U0BOB>"
    shown = f"2 &lt; 3 @{WJ}here ask <@U0BOB>"
    conv = Conversation(REF, "slack:C0TEAM", "U0C", 0.0, preview=sent, waiting_since=0.0)
    assert blocks.card(conv).blocks[0]["text"]["text"].endswith(f"\n>{shown}")
    escalated = blocks.escalated(Escalate(REF, "@here", 120.0, 1, "U0D", sent))
    assert escalated.text.endswith(f'"{shown}"')
    assert escalated.text.count("<!here>") == 1  # the escalation target, not the preview


@pytest.mark.parametrize(
    ("conv", "status", "claim"),
    [
        (Conversation(REF, "t", "U0C", 0.0, waiting_since=0.0), "waiting for an operator", True),
        (Conversation(REF, "t", "U0C", 0.0, state=State.CLAIMED, owner="U0A", waiting_since=0.0),
         "claimed by <@U0A> · customer waiting since <!date^0^{time}|00:00 UTC>", False),
        (Conversation(REF, "t", "U0C", 0.0, state=State.WAITING_ON_CUSTOMER, owner="U0A"),
         "with <@U0A>", False),
        (Conversation(REF, "t", "U0C", 0.0, state=State.CLOSED, owner="U0A"), "closed", False),
    ],
)
def test_cards_show_status_waiting_time_and_claim_only_when_unowned(
    conv: Conversation, status: str, claim: bool
) -> None:
    card = blocks.card(conv)
    assert status in str(card.blocks)
    has_claim = any(b["type"] == "actions" for b in card.blocks)
    assert has_claim is claim


def test_notices_mention_people_and_carry_their_buttons() -> None:
    nudge = blocks.nudge(Nudge(REF, "U0A", 300.0, "1.0", "U0C"), "https://x/p1")
    assert nudge.text == "<@U0A>, are you still with <@U0C>? They have waited 5m."
    assert [e["action_id"] for e in nudge.blocks[1]["elements"]] == [
        "reply_now", "snooze", "close", "hand_off"]
    without_link = blocks.nudge(Nudge(REF, "U0A", 300.0), None)
    assert [e["action_id"] for e in without_link.blocks[1]["elements"]] == [
        "snooze", "close", "hand_off"]
    handed = ReturnToInbox(REF, "U0A", 60.0, "handed off by U0A", "U0C", "hi")
    assert "handed off by <@U0A>" in blocks.returned(handed).text
    assert blocks.told_owner(handed).startswith("<@U0A>, this conversation went back")
    reminder = blocks.close_reminder(CloseReminder(REF, "U0A", 1800.0, None, "U0C"))
    assert reminder.text.startswith("<@U0A>, <@U0C> has been silent for 30m")


def test_a_digest_lists_every_notice_with_the_buttons_it_has_alone() -> None:
    notices = (
        ReturnToInbox(REF, "U0A", 60.0, "no first response within 30s", "U0C", "hi"),
        Escalate(REF, "@here", 120.0, 1, "U0D", "hello"),
        Nudge(REF, "U0B", 300.0, None, "U0E"),
        CloseReminder(REF, "U0B", 1800.0, None, "U0F"),
    )
    digest = blocks.digest(notices)
    # Who the escalation calls in is named once, in the title; its line does not repeat it.
    assert digest.text.splitlines()[0] == "<!here> 4 conversations need attention:"
    assert digest.text.count("<!here>") == 1
    assert len(digest.text.splitlines()) == 5
    assert "(<@U0A>)" in digest.text and "<!here>" in digest.text and "<@U0B>," in digest.text
    shown = [(b["type"], b.get("accessory", {}).get("action_id"),
              [e["action_id"] for e in b.get("elements", [])]) for b in digest.blocks[1:]]
    assert shown == [
        ("section", "claim", []), ("section", "claim", []),
        ("section", None, []), ("actions", None, ["snooze", "close", "hand_off"]),
        ("section", None, []), ("actions", None, ["close", "keep_open"]),
    ]
    ids = [b.get("block_id") for b in digest.blocks[1:]]
    assert len(set(ids)) == len(ids)  # a click names the block it came from


def test_pressing_a_notice_button_replaces_the_buttons_with_who_pressed() -> None:
    nudge = blocks.nudge(Nudge(REF, "U0A", 300.0), None)
    click = {"user": {"id": "U0A"},
             "actions": [{"block_id": "nudge_actions", "action_id": "snooze",
                          "text": {"text": "Snooze"}}]}
    pressed = blocks.pressed(nudge.blocks, click)
    assert pressed is not None and pressed[0] == nudge.blocks[0]
    assert pressed[1]["type"] == "context" and "<@U0A> pressed *Snooze*" in str(pressed[1])
    on_card = {**click, "actions": [{"block_id": "card_actions", "action_id": "claim"}]}
    assert blocks.pressed(nudge.blocks, on_card) is None


def sweep_card(lines: int, finished: int = 1) -> SweepCard:
    groups = ["finished"] * finished + ["customer_waiting"] * (lines - finished)
    return SweepCard("slack:C0TEAM", "slack:C0TEAM@1", 7, "U0ANNA", 2000.0, 1000.0,
                     "today 18:00 (Berlin time)",
                     tuple(SweepLine(f"slack:C0HELP:{n}.0", "U0CUST", "<!here> help *me*",
                                     group, 1000.0 - 60 * n)
                           for n, group in enumerate(groups)), unowned=2)


def test_a_sweep_card_lists_each_group_with_its_buttons() -> None:
    [message] = blocks.sweep_card(sweep_card(3))
    texts_ = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    assert texts_[0] == ("*<@U0ANNA>, your shift ends today 18:00 (Berlin time). You have 3 "
                         "open conversations:*")
    assert texts_[1:] == [
        "*Finished but not closed*", "• <@U0CUST>: “@\u2060here help *me*” · silent 1s",
        "*Customer waiting on us*", "• <@U0CUST>: “@\u2060here help *me*” · waiting 1m",
        "• <@U0CUST>: “@\u2060here help *me*” · waiting 2m"]
    assert "Finished but not closed 1 · Customer waiting on us 2 · Nobody has it 2" \
        in message.text
    assert message.blocks[-1]["elements"][0]["text"].endswith(
        "2 conversations in the inbox nobody has: they go to the next shift.")
    values = [e["value"] for b in message.blocks if b["type"] == "actions"
              for e in b["elements"]]
    assert values[:2] == ["7", "7"] and values[2:5] == ["7|slack:C0HELP:0.0"] * 3


@pytest.mark.parametrize("count", [1, 20, 21, 60])
def test_a_long_sweep_card_is_split_within_slacks_50_blocks(count: int) -> None:
    messages = blocks.sweep_card(sweep_card(count, finished=count // 2))
    assert len(messages) == -(-count // blocks.SWEEP_LINES)
    assert all(len(m.blocks) <= blocks.MAX_BLOCKS for m in messages)
    keys = [e["value"] for m in messages for b in m.blocks if b.get("block_id", "").endswith(
        "_actions") for e in b["elements"] if e["action_id"] == blocks.SWEEP_CLOSE]
    assert len(keys) == count == len(set(keys))  # every conversation once, with its buttons
    ids = [b["block_id"] for m in messages for b in m.blocks if "block_id" in b]
    assert len(ids) == len(set(ids))
    assert sum(blocks.SWEEP_CLOSE_ALL in [e["action_id"] for b in m.blocks
                                          if b["type"] == "actions" for e in b["elements"]]
               for m in messages) == (1 if count // 2 else 0)


def test_a_long_handover_digest_is_split_with_claim_on_each() -> None:
    lines = tuple(HandoverLine(f"slack:C0HELP:{n}.0", "U0CUST", "hi", 100.0 + n,
                               "U0BOB" if n % 2 else None) for n in range(100))
    messages = blocks.handover(HandoverDigest("slack:C0TEAM", "s", 50.0, 3700.0, lines))
    assert len(messages) == 3 and all(len(m.blocks) <= blocks.MAX_BLOCKS for m in messages)
    claims = [b["accessory"]["value"] for m in messages for b in m.blocks if "accessory" in b]
    assert claims == [line.key for line in lines]
    assert messages[0].text.splitlines()[1] == "• <@U0CUST>: “hi” · since 1h ago (nobody had it)"
    assert messages[0].text.splitlines()[2].endswith("(had: <@U0BOB>)")
    assert messages[1].text.startswith("Handed over from the last shift: 100 conversations, "
                                       "oldest waiting first. (continued, 2 of 3)")

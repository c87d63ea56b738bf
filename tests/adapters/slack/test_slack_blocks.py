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
    Nudge,
    ReturnToInbox,
    State,
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

"""Outbox actions to JSON and back, including rows stored by earlier versions."""

from __future__ import annotations

import json

import pytest

from chat_rescue.bot.codec import decode_action, encode_action
from chat_rescue.bot.model import (
    Action,
    CloseReminder,
    ConversationRef,
    HandoverDigest,
    HandoverLine,
    Nudge,
    OffHoursNotice,
    Refusal,
    Refused,
    Relay,
    ReturnToInbox,
    SweepCard,
    SweepLine,
)

REF = ConversationRef("slack", "C0HELP", "1700000000.000100")


@pytest.mark.parametrize("action", [
    Nudge(REF, "U0ANNA", 300.0, "1700.1", "U0CUST", notice_id="n1700000000100"),
    CloseReminder(REF, "U0ANNA", 1800.0, None, "U0CUST", notice_id="r1700000000100"),
    ReturnToInbox(REF, "U0ANNA", 0.0, "handed off by U0ANNA", "U0CUST", "hi", None,
                  waiting=False),
    Refused(REF, "U0BOB", Refusal.NOT_YOURS, "U0ANNA", via="reaction"),
    OffHoursNotice(REF, "We're away; back Monday 09:00 (Berlin time).", 1_796_626_800.0),
    SweepCard("slack:C0TEAM", "slack:C0TEAM@1796418000", 7, "U0ANNA", 1_796_418_000.0,
              1_796_417_100.0, "today 18:00 (Berlin time)",
              (SweepLine(REF.key, "U0CUST", "hi «there»", "finished", 1_796_410_000.0),
               SweepLine("slack:C0HELP:2.0", "U0OTHER", "", "customer_waiting", 1.5)),
              unowned=2, rule="keep"),
    SweepCard("telegram:-100123", "telegram:-100123@1", 8, "8", 1.0, 0.5),
    HandoverDigest("slack:C0TEAM", "slack:C0TEAM@1796418000", 1_796_418_000.0, 1_796_450_000.0,
                   (HandoverLine(REF.key, "U0CUST", "hi", 1_796_410_000.0, "U0ANNA"),
                    HandoverLine("slack:C0HELP:2.0", "U0OTHER", "", 1.0))),
])
def test_actions_round_trip(action: Action) -> None:
    decoded = decode_action(*encode_action(action))
    assert decoded == action
    if isinstance(decoded, Refused):
        assert decoded.reason is Refusal.NOT_YOURS


def _stored(fields: dict[str, object]) -> str:
    return json.dumps({"ref": {"platform": "slack", "channel": "C0HELP",
                               "thread": "1700000000.000100"}, **fields})


def test_rows_stored_before_notice_ids_still_decode() -> None:
    nudge = decode_action("Nudge", _stored({"owner": "U0ANNA", "waited": 300.0, "card": None,
                                            "customer": "U0CUST"}))
    assert isinstance(nudge, Nudge) and nudge.notice_id == ""
    reminder = decode_action("CloseReminder", _stored({"owner": "U0ANNA", "silent_for": 1800.0,
                                                       "card": None, "customer": ""}))
    assert isinstance(reminder, CloseReminder) and reminder.notice_id == ""
    returned = decode_action("ReturnToInbox", _stored({
        "previous_owner": "U0ANNA", "waited": 40.0, "reason": "no first response within 30s",
        "customer": "", "preview": "", "card": None}))
    assert isinstance(returned, ReturnToInbox) and returned.waiting


def test_a_queued_claim_refused_of_an_earlier_version_is_a_refusal() -> None:
    old = decode_action("ClaimRefused", _stored({"operator": "U0BOB", "owner": "U0ANNA"}))
    # Still delivered after the upgrade: nothing answered it on a press.
    assert old == Refused(REF, "U0BOB", Refusal.CLAIMED, "U0ANNA", via="queued")


TELEGRAM = ConversationRef("telegram", "42", "")


def test_a_relay_of_an_edit_keeps_its_mark() -> None:
    edit = Relay(TELEGRAM, True, "-1001234567890", "13", edited=True)
    assert decode_action(*encode_action(edit)) == edit
    plain = Relay(TELEGRAM, False, "42", "7")
    assert decode_action(*encode_action(plain)) == plain


def test_a_relay_stored_before_edits_were_relayed_still_decodes() -> None:
    stored = ('{"ref":{"platform":"telegram","channel":"42","thread":""},'
              '"to_customer":false,"from_chat":"42","message_id":"7"}')
    assert decode_action("Relay", stored) == Relay(TELEGRAM, False, "42", "7", edited=False)


def test_a_conversation_keeps_its_rebased_timers_and_older_ones_decode_without() -> None:
    import dataclasses

    from chat_rescue.bot.codec import conversation_from_dict
    from chat_rescue.bot.model import Conversation

    conv = Conversation(REF, "team-a", "U0CUST", 1700.0, timer_from=1700.0, rebased_at=1800.0,
                        timer_used=60.0, quiet_used=0.0)
    assert conversation_from_dict(dataclasses.asdict(conv)) == conv
    older = dataclasses.asdict(conv)
    for name in ("rebased_at", "timer_used", "quiet_used"):
        del older[name]
    assert conversation_from_dict(older) == dataclasses.replace(
        conv, rebased_at=None, timer_used=None, quiet_used=None)

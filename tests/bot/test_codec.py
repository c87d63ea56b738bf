"""codec.py: actions survive the outbox's JSON, including rows stored by earlier versions."""

from __future__ import annotations

from chat_rescue.bot.codec import decode_action, encode_action
from chat_rescue.bot.model import ConversationRef, Relay

REF = ConversationRef("telegram", "42", "")


def test_a_relay_of_an_edit_keeps_its_mark() -> None:
    edit = Relay(REF, True, "-1001234567890", "13", edited=True)
    assert decode_action(*encode_action(edit)) == edit
    plain = Relay(REF, False, "42", "7")
    assert decode_action(*encode_action(plain)) == plain


def test_a_relay_stored_before_edits_were_relayed_still_decodes() -> None:
    stored = ('{"ref":{"platform":"telegram","channel":"42","thread":""},'
              '"to_customer":false,"from_chat":"42","message_id":"7"}')
    assert decode_action("Relay", stored) == Relay(REF, False, "42", "7", edited=False)

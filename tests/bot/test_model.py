"""The model's fast constructors give the values the dataclass itself would."""

from __future__ import annotations

import dataclasses

import pytest

from chat_rescue.bot.inputs import decode as decode_input
from chat_rescue.bot.inputs import encode as encode_input
from chat_rescue.bot.model import (
    Conversation,
    ConversationRef,
    CustomerMessage,
    State,
    Timer,
    build,
    evolve,
)
from chat_rescue.storage.rows import conversation_of, row_of

CONV = Conversation(ConversationRef("slack", "C0HELP", "1700000000.000100"), "team-a",
                    "U0CUST", 1_700_000_000.0, state=State.CLAIMED, owner="U0ANNA",
                    deadline=1_700_000_300.0, deadline_timer=Timer.FIRST_RESPONSE, version=4)


def test_evolve_gives_what_replace_gives_and_leaves_the_original() -> None:
    changed = evolve(CONV, owner="U0BOB", state=State.WAITING_ON_OPERATOR, version=5)
    assert changed == dataclasses.replace(CONV, owner="U0BOB",
                                          state=State.WAITING_ON_OPERATOR, version=5)
    assert type(changed) is Conversation
    assert hash(changed) == hash(dataclasses.replace(changed))
    assert CONV.owner == "U0ANNA" and CONV.version == 4
    assert repr(changed).startswith("Conversation(ref=ConversationRef(")


def test_a_built_conversation_is_frozen() -> None:
    built = evolve(CONV, owner="U0BOB")
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.owner = "U0EVE"  # type: ignore[misc]
    assert built.owner == "U0BOB"


def test_evolve_refuses_a_field_it_does_not_know() -> None:
    with pytest.raises(KeyError):
        evolve(CONV, ownr="U0BOB")


def test_build_takes_every_field_in_order() -> None:
    values = [getattr(CONV, f.name) for f in dataclasses.fields(Conversation)]
    assert build(values) == CONV
    with pytest.raises(TypeError):
        build(values[:-1] + [1, 2])  # one too many


def test_a_row_reads_back_as_the_conversation_it_was() -> None:
    assert conversation_of((CONV.ref.key, *row_of(CONV))) == CONV
    closed = evolve(CONV, state=State.CLOSED, deadline=None, deadline_timer=None,
                    snoozed=True)
    row = list(row_of(closed))
    row[[f.name for f in dataclasses.fields(Conversation)].index("snoozed") - 1] = 1
    assert conversation_of((CONV.ref.key, *row)) == closed  # SQLite's booleans as 1/0


def test_recorded_events_json_wrote_and_orjson_refuses_still_read() -> None:
    # A name with a lone surrogate, taken before names were cleaned, was written as its
    # escape; orjson refuses it, and the row is read by json instead.
    data = '{"at":1700000000.5,"customer":"Ana \\ud83d","team":"team-a","_opened":true}'
    item = decode_input("slack:C0HELP:1.0", "team-a", 1_700_000_001.0, "customer", data)
    assert isinstance(item.event, CustomerMessage) and item.opened
    assert item.event.customer == "Ana \ud83d" and item.event.at == 1_700_000_000.5
    again = decode_input(*encode_input(item))
    assert again == item

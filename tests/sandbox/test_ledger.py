"""The crash ledger counts a notice re-sent after a kill as a repeat, even in a digest."""

from __future__ import annotations

from chat_rescue.sandbox.ledger import _notices, compare


def customer(line: str) -> str | None:
    return "Cust004" if "Cust004" in line else None


def test_a_notice_resent_inside_a_digest_after_a_kill_is_the_same_post() -> None:
    alone = '🚨 7 nobody has taken Cust004\'s conversation for 1s: "Order 4"'
    digest = ("3 conversations need attention:\n"
              '• 7 nobody has taken Cust004\'s conversation for 1s: "Order 4"\n'
              "• 7 nobody has taken Cust005's conversation for 1s: \"Order 5\"")
    posts = _notices("telegram", alone, 10.0, customer) + _notices("telegram", digest, 30.0,
                                                                   customer)
    expected = {("Cust004", "escalated"): 1}
    killed_between = compare(posts, expected, {"telegram": [20.0]}, ["escalated"])
    assert killed_between.unexplained == [] and len(killed_between.explained) == 1
    no_kill = compare(posts, expected, {"telegram": []}, ["escalated"])
    assert len(no_kill.unexplained) == 1  # the same post twice in one life is a real repeat


def test_a_slack_digest_lines_owner_suffix_does_not_make_it_another_post() -> None:
    alone = ("Back in the inbox (no first response within 30s): <@U0C> has waited 31s. "
             "Who takes it?")
    posts = _notices("slack", alone, 1.0, lambda line: "U0C") + _notices(
        "slack", f"3 conversations need attention:\n• {alone} (<@U0A>)", 3.0, lambda line: "U0C")
    found = compare(posts, {("U0C", "returned"): 1}, {"slack": [2.0]}, ["returned"])
    assert found.unexplained == [] and len(found.explained) == 1

"""The crash ledger counts a notice re-sent after a kill as a repeat, even in a digest."""

from __future__ import annotations

from chat_rescue.sandbox.ledger import Death, Post, _notices, compare, life_of


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


def test_a_survivor_repeating_what_the_killed_replica_had_in_flight_is_the_next_life() -> None:
    # r2 is killed at position 10; its copy lands at 11 (in flight), r1 takes the lease
    # over at once and copies again at 12, before r2's requests have all landed (15).
    def post(position: float, by: str) -> Post:
        return Post("telegram", "relay_in", "2019", "2019:10", position, position, by=by)

    life = {"telegram": [Death(10.0, "r2", 15.0)]}
    found = compare([post(11.0, "r2"), post(12.0, "r1")], {("2019", "relay_in"): 1}, life,
                    ["relay_in"])
    assert found.unexplained == [] and [p.position for p in found.explained] == [12.0]
    assert [life_of(post(11.0, "r2"), life), life_of(post(16.0, "r2"), life)] == [0, 1]
    # The survivor posting the same thing twice after the kill is a real repeat.
    twice = compare([post(11.0, "r1"), post(12.0, "r1")], {("2019", "relay_in"): 1}, life,
                    ["relay_in"])
    assert len(twice.unexplained) == 1 and "by r1" in twice.unexplained[0]

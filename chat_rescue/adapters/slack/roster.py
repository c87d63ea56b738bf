"""The operators as every replica knows them: the team channel's members.

Slack tells one replica of a `member_joined_channel` / `member_left_channel`, so each
join and leave is stored (settings scope `slack-team:<channel>`, a user's last change
with its time). A replica's operators are the members Slack listed when it connected,
changed by what was stored since. A stored change announces itself to the other
replicas on PostgreSQL (like any settings write), which then read the roster again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chat_rescue.bot.ports import Store

JOINED, LEFT = "joined", "left"
BY = "slack"  # the settings row's `updated_by`


def scope(channel: str) -> str:
    """The settings scope that holds the team channel's joins and leaves."""
    return f"slack-team:{channel}"


def change(value: str) -> tuple[bool, float] | None:
    """A stored change: (joined, at); None for a value this release cannot read."""
    word, _, at = value.partition(" ")
    if word not in (JOINED, LEFT):
        return None
    try:
        return word == JOINED, float(at)
    except ValueError:
        return None


@dataclass(frozen=True)
class Roster:
    """The team channel's members as Slack listed them at `since` (before the listing was
    asked for, so nothing stored while it was under way is missed)."""

    members: frozenset[str]
    since: float

    def operators(self, stored: Mapping[str, str]) -> frozenset[str]:
        """The members, with each change stored since `since` applied: the listing
        already shows an older one."""
        joined: set[str] = set()
        left: set[str] = set()
        for user, value in stored.items():
            found = change(value)
            if found is not None and found[1] >= self.since:
                (joined if found[0] else left).add(user)
        return (self.members | joined) - left


def record(store: Store, channel: str, user: str, joined: bool, at: float) -> None:
    """Store a join or leave unless a later change of that user's is stored (a Slack
    retry, or a kept event handled late, must not undo it)."""
    known = change(store.settings(scope(channel)).get(user, ""))
    if known is not None and known[1] > at:
        return
    store.put_setting(scope(channel), user, f"{JOINED if joined else LEFT} {at!r}", BY, at)

"""What the Telegram adapter keeps in memory: names seen in updates and small marks.

Nothing here is needed for correctness after a restart: names fall back to the user
id, and the marks only spare duplicate notes and API calls. Only the replica that polls
sees updates, so operators' names are kept in the store too (`NAMES_SCOPE`), where the
other replicas look up a name they do not know (at most every `RELOAD` seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from telegram import User

MAX_NAMES = 10_000
ANONYMOUS_ADMIN = "anonymous admin"
NAMES_SCOPE = "telegram-names"  # settings scope: operator's user id -> display name
RELOAD = 1.0  # seconds between looks at the stored names for one this replica lacks


@dataclass
class Memory:
    """Operator display names and per-conversation marks, shared by inbound and delivery."""

    names: dict[str, str] = field(default_factory=dict)
    usernames: dict[str, str] = field(default_factory=dict)  # lower-case @username -> user id
    # conversation keys whose customer blocked the bot (until they write again).
    blocked: set[str] = field(default_factory=set)
    # topic id -> the name we last gave it, and whether we last closed it.
    topic_names: dict[int, str] = field(default_factory=dict)
    topic_closed: dict[int, bool] = field(default_factory=dict)
    # card message id -> what we last made it show (text and buttons).
    cards: dict[int, str] = field(default_factory=dict)
    # The names the replicas stored (`NAMES_SCOPE`), and the clock that spaces the looks.
    stored: Callable[[], Mapping[str, str]] | None = None
    monotonic: Callable[[], float] = time.monotonic
    _looked_at: float | None = None

    def remember(self, user: User | None) -> bool:
        """Note a user's display name (from any update); True when it is new or changed
        (worth storing for the other replicas)."""
        if user is None or user.is_bot:
            return False
        known = self.names.get(str(user.id))
        if len(self.names) >= MAX_NAMES and known is None:
            self.names.pop(next(iter(self.names)))
        self.names[str(user.id)] = user.full_name
        if user.username:
            if len(self.usernames) >= MAX_NAMES and user.username.lower() not in self.usernames:
                self.usernames.pop(next(iter(self.usernames)))
            self.usernames[user.username.lower()] = str(user.id)
        return known != user.full_name

    def person(self, written: str) -> str | None:
        """The user id a command names: `@username` of somebody seen, or a numeric id."""
        word = written.removeprefix("@")
        if word.isdigit():
            return word
        return self.usernames.get(word.lower())

    def shown_on_card(self, card: int, shown: str) -> None:
        """Note what a card now shows (the oldest notes go first, as for names)."""
        if len(self.cards) >= MAX_NAMES and card not in self.cards:
            self.cards.pop(next(iter(self.cards)))
        self.cards[card] = shown

    def name(self, user_id: str) -> str:
        """The display name of a user id, or the id when we have not seen them.

        A chat id (negative) as an operator is the support group's anonymous administrators.
        """
        if user_id.startswith("-"):
            return ANONYMOUS_ADMIN
        if user_id not in self.names and self.stored is not None:
            now = self.monotonic()
            if self._looked_at is None or now - self._looked_at >= RELOAD:
                self._looked_at = now
                for known, name in self.stored().items():
                    if len(self.names) < MAX_NAMES or known in self.names:
                        self.names[known] = name
        return self.names.get(user_id, user_id)

"""What the Telegram adapter keeps in memory: names seen in updates and small marks.

Nothing here is needed for correctness after a restart: names fall back to the user
id, and the marks only spare duplicate notes and API calls. Only the replica that polls
sees updates, so operators' names are kept in the store too (`NAMES_SCOPE`), from where
every replica learns them before it delivers (at most every `RELOAD` seconds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from telegram import User

from chat_rescue.adapters.telegram.shown import CARD, CLOSED, NAME

MAX_NAMES = 10_000
ANONYMOUS_ADMIN = "anonymous admin"
NAMES_SCOPE = "telegram-names"  # settings scope: operator's user id -> display name
RELOAD = 1.0  # seconds between a replica's looks at the stored names
RELOAD_UNKNOWN = 0.05  # the same, for an action that names somebody it does not know
# The fields by which an action (or the conversation of a card) names an operator.
NAMING = frozenset({"owner", "previous_owner", "operator", "by", "whose"})


@dataclass
class Memory:
    """Operator display names and per-conversation marks, shared by inbound and delivery."""

    names: dict[str, str] = field(default_factory=dict)
    usernames: dict[str, str] = field(default_factory=dict)  # lower-case @username -> user id
    # conversation keys whose customer blocked the bot (until they write again).
    blocked: set[str] = field(default_factory=set)
    # topic id -> the name it was last given, and whether it was last closed (by any
    # replica, as far as this one last read: `shown.py`).
    topic_names: dict[int, str] = field(default_factory=dict)
    topic_closed: dict[int, bool] = field(default_factory=dict)
    # card message id -> what it was last made to show (a digest of text and buttons).
    cards: dict[int, str] = field(default_factory=dict)
    # conversation key -> its topic, as last seen (pacing's estimate of a copy's messages).
    topics: dict[str, int] = field(default_factory=dict)

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

    def note_topic(self, key: str, topic: int) -> None:
        """Note a conversation's topic (the oldest notes go first, as for names)."""
        if len(self.topics) >= MAX_NAMES and key not in self.topics:
            self.topics.pop(next(iter(self.topics)))
        self.topics[key] = topic

    def shown_on_card(self, card: int, shown: str) -> None:
        """Note what a card now shows (the oldest notes go first, as for names)."""
        if len(self.cards) >= MAX_NAMES and card not in self.cards:
            self.cards.pop(next(iter(self.cards)))
        self.cards[card] = shown

    def take(self, topic: int, marks: Mapping[str, str]) -> None:
        """What a topic and its cards show as stored (`shown.py`), whichever replica made
        them show it: these marks then replace this replica's own."""
        if NAME in marks:
            self.topic_names[topic] = marks[NAME]
        if CLOSED in marks:
            self.topic_closed[topic] = marks[CLOSED] == "1"
        for key, value in marks.items():
            card = key.removeprefix(CARD)
            if key.startswith(CARD) and card.isdigit():
                self.shown_on_card(int(card), value)

    def name(self, user_id: str) -> str:
        """The display name of a user id, or the id when we have not seen them.

        A chat id (negative) as an operator is the support group's anonymous administrators.
        """
        if user_id.startswith("-"):
            return ANONYMOUS_ADMIN
        return self.names.get(user_id, user_id)

    def unknown_in(self, action: object) -> bool:
        """Whether `action` names an operator (by user id) this replica has no name for."""
        seen: list[object] = [action]
        while seen:
            value = seen.pop()
            if isinstance(value, tuple | list):
                seen.extend(value)
            elif dataclasses.is_dataclass(value) and not isinstance(value, type):
                for item in dataclasses.fields(value):
                    inner = getattr(value, item.name)
                    if item.name in NAMING and isinstance(inner, str):
                        if inner.isdigit() and inner not in self.names:
                            return True
                    elif dataclasses.is_dataclass(inner) or isinstance(inner, tuple | list):
                        seen.append(inner)
        return False

    def learn(self, stored: Mapping[str, str]) -> None:
        """Names the replicas stored (`NAMES_SCOPE`): the poller's, newer than what this
        replica saw (an operator renamed)."""
        for known, name in stored.items():
            if known in self.names or len(self.names) < MAX_NAMES:
                self.names[known] = name

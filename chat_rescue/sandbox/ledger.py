"""What the bot posted, read back from the sandboxes' records, per conversation and kind.

Reliability tests compare these posts with the store's history (one nudge per 'nudged'
event, one inbox notice per 'returned', ...) and find re-deliveries: the same post made
again in a later life of the bot process. A post's `position` orders it among the
platform's records (the Telegram call index, the Slack message ts) so that it can be
placed between the kills a test recorded (`life`). A kill is a `Death` where several
processes serve the platforms: what the killed one had in flight lands in the records just
after its kill and still belongs to the life it ended, while the survivors may take its
leases over (and repeat the post) at once.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chat_rescue.bot.model import HistoryEvent
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.telegram import TelegramSandbox

# Notice kinds, named after the history event each one reports, and how their lines read.
NOTICE_PHRASES = (
    ("nudged", "are you still with"),
    ("returned", "Back in the inbox ("),
    ("told_owner", "this conversation went back to the inbox"),
    ("escalated", "nobody has taken"),
    ("reminded", "has been silent for"),
)
DIGEST_MARK = "conversations need attention:"
TIMER_EVENTS = ("nudged", "returned", "escalated", "reminded")
# A notice the outbox dropped (its reason had gone by its turn) is recorded as
# `notice_dropped` with its action's name: the event it will not be posted for.
DROPPED = {"Nudge": "nudged", "ReturnToInbox": "returned", "Escalate": "escalated",
           "CloseReminder": "reminded"}
# Where the customer's mention stands in each Slack notice (owners are mentioned too).
_SLACK_CUSTOMER = tuple(re.compile(pattern) for pattern in (
    r"are you still with <@([UW][A-Z0-9]+)>",
    r"\): <@([UW][A-Z0-9]+)> has waited",
    r"nobody has taken <@([UW][A-Z0-9]+)>",
    r"<@([UW][A-Z0-9]+)> has been silent",
))
_SLACK_CARD = re.compile(r"^<@([UW][A-Z0-9]+)> in <#")


@dataclass(frozen=True, slots=True)
class Post:
    """One thing the bot made on a platform: a notice line, a card, a topic, a relay."""

    platform: str
    kind: str
    conversation: str  # the customer token the test maps to its conversation
    text: str  # what makes two posts "the same post"
    position: float  # order among the platform's records
    message: float  # position of the message holding it (a digest holds several lines)
    digest: bool = False
    by: str = ""  # which process made it, where the sandbox tells ("" when it does not)


@dataclass(frozen=True, slots=True)
class Death:
    """One process of several killed: where the platform's records stood at the kill, and
    once the requests it had in flight had landed (`landed`). Its own posts up to then
    belong to the life it ended; every other process's posts after `position` to the next."""

    position: float
    process: str
    landed: float


def notice_kind(line: str) -> str | None:
    """The history event a notice line reports, if it is one."""
    return next((kind for kind, phrase in NOTICE_PHRASES if phrase in line), None)


def lines_of(text: str) -> tuple[list[str], bool]:
    """The notice lines of a message: each bullet of a digest, or the message itself."""
    if DIGEST_MARK in text.split("\n", 1)[0]:
        return [line.removeprefix("• ") for line in text.split("\n")[1:]], True
    return [text], False


def slack_posts(sandbox: SlackSandbox, team_channel: str) -> list[Post]:
    """Cards and notices the bot posted in the team channel (top level and threads).

    Customers are their Slack user ids; a line in a card's thread that names no customer
    (the note to the previous owner) belongs to the card's customer.
    """
    posts: list[Post] = []
    for top in sandbox.messages(team_channel):
        if top.get("bot_id") != sandbox.bot_id:
            continue
        text = str(top.get("text") or "")
        card = _SLACK_CARD.match(text)
        customer = card.group(1) if card else None
        position = float(top["ts"])
        if card:
            posts.append(Post("slack", "card", card.group(1), "card", position, position))
        else:
            posts += _notices("slack", text, position, _slack_customer)
        for reply in sandbox.messages(team_channel, str(top["ts"])):
            if reply.get("bot_id") != sandbox.bot_id:
                continue
            at = float(reply["ts"])
            posts += _notices("slack", str(reply.get("text") or ""), at, _slack_customer,
                              default=customer)
    by = {float(ts): caller for ts, caller in sandbox.posted_by.items()}
    return [replace(post, by=by.get(post.position, "")) for post in posts]


def telegram_posts(sandbox: TelegramSandbox, group: int, names: Mapping[str, str],
                   operators: Mapping[str, str] | None = None) -> list[Post]:
    """Topics, cards, announcements, notices and relays, from the calls the bot made
    (minus those the sandbox refused, when it records them: `TelegramTestbed`).

    `names` maps each customer's display name to the token used for them (their user id
    as text); relays are named by their source message, `<chat>:<message id>`.
    `operators` maps operators' display names to their ids: the bot learns names from
    updates and forgets them on a restart (then it mentions the id), so a notice sent
    again after a kill may name the owner differently.
    """
    topics = {t.thread_id: _name_in(t.name, names) for t in sandbox.topics(group)}

    def customer_in(line: str) -> str | None:
        return _name_in(line, names)

    refused = getattr(sandbox, "refused", {})
    posts: list[Post] = []
    for index, call in enumerate(sandbox.calls):
        if index in refused:
            continue  # answered with an error: nothing was made
        method, params = call.method.lower(), call.params
        at = float(index)
        if method == "createforumtopic":
            who = _name_in(str(params.get("name", "")), names)
            if who:
                posts.append(Post("telegram", "topic", who, "topic", at, at))
        elif method == "copymessage":
            source = f"{params.get('from_chat_id')}:{params.get('message_id')}"
            to_group = int(params.get("chat_id", 0)) == group
            who = str(params.get("from_chat_id") if to_group else params.get("chat_id"))
            kind = "relay_in" if to_group else "relay_out"
            posts.append(Post("telegram", kind, who, source, at, at))
        elif method == "sendmessage" and int(params.get("chat_id", 0)) == group:
            text = re.sub(r"<[^>]*>", "", str(params.get("text", "")))
            for name, user_id in (operators or {}).items():
                text = text.replace(name, user_id)
            thread = params.get("message_thread_id")
            owner = topics.get(int(thread)) if thread is not None else None
            if thread is not None and " wrote to the bot\n" in text:
                who = customer_in(text.split("\n", 1)[0])
                if who:
                    posts.append(Post("telegram", "card", who, "card", at, at))
            elif thread is None and text.startswith("🆕"):
                who = customer_in(text)
                if who:
                    posts.append(Post("telegram", "announce", who, text, at, at))
            else:
                posts += _notices("telegram", text, at, customer_in, default=owner)
    callers = getattr(sandbox, "callers", None)
    if callers:
        posts = [replace(post, by=callers[int(post.position)][0]) for post in posts]
    return posts


def expected_notices(history: Iterable[HistoryEvent],
                     who: Callable[[HistoryEvent], str]) -> Counter[tuple[str, str]]:
    """(customer, kind) -> how many notices the history calls for: one per timer event,
    less those the outbox dropped."""
    wanted: Counter[tuple[str, str]] = Counter()
    for event in history:
        if event.kind in TIMER_EVENTS:
            wanted[(who(event), event.kind)] += 1
        elif event.kind == "notice_dropped" and event.actor in DROPPED:
            wanted[(who(event), DROPPED[event.actor])] -= 1
    return wanted


def announced(posts: Iterable[Post], customer: str) -> int:
    """Telegram announces a conversation in General once, unless it was answered before
    its card went out: the announcements to expect, given those made."""
    return min(1, sum(1 for p in posts if p.kind == "announce" and p.conversation == customer))


@dataclass
class Redeliveries:
    """Posts beyond what the history accounts for, explained by kills or not."""

    explained: list[Post] = field(default_factory=list)  # again in a later life: the window
    unexplained: list[str] = field(default_factory=list)  # in the same life, or lost posts
    missing: list[str] = field(default_factory=list)  # fewer posts than history events


def compare(posts: Iterable[Post], expected: Mapping[tuple[str, str], int],
            life: Lives, kinds: Iterable[str],
            window: Mapping[tuple[str, str], int] | None = None) -> Redeliveries:
    """Posts of `kinds` against `expected[(conversation, kind)]` counts.

    Extra posts are explained when an identical post was made in an earlier life of the
    process (a kill between the platform call and the outbox row being settled);
    `life[platform]` is the list of positions at which the bot was killed. Up to
    `window[key]` more are explained too: notices in flight at a kill that the next life
    found no longer true and dropped (`maybe_posted`).
    """
    wanted = set(kinds)
    grouped: dict[tuple[str, str], list[Post]] = defaultdict(list)
    for post in posts:
        if post.kind in wanted:
            grouped[(post.conversation, post.kind)].append(post)
    found = Redeliveries()
    for key in sorted(set(grouped) | {k for k in expected if k[1] in wanted}):
        made = sorted(grouped.get(key, []), key=lambda p: p.position)
        excess = len(made) - expected.get(key, 0)
        if excess < 0:
            found.missing.append(f"{key}: {len(made)} posted, {expected.get(key, 0)} expected")
            continue
        again = [post for i, post in enumerate(made)
                 if any(earlier.text == post.text
                        and life_of(earlier, life) < life_of(post, life)
                        for earlier in made[:i])]
        # What the window covers first (a post made just before a kill, then dropped),
        # and only the rest must be repeats of an earlier life's identical post.
        excess = max(0, excess - (window or {}).get(key, 0))
        found.explained += again[:excess]
        if len(again) < excess:
            found.unexplained.append(
                f"{key}: {len(made)} posted, {expected.get(key, 0)} expected, only "
                f"{len(again)} repeated after a kill: "
                + ", ".join(f"{p.text!r}@{p.position:.6f}/life {life_of(p, life)}"
                            + (f" by {p.by}" if p.by else "") for p in made))
    return found


def repeated_actions(posts: Iterable[Post], repeats: Iterable[Post],
                     life: Lives) -> dict[tuple[str, int], set[Any]]:
    """The actions behind `repeats` (posts made again after a kill: `compare`'s
    `explained`), by platform and by the kill that interrupted them, i.e. the life of the
    first post: a digest is one action, every other post belongs to its conversation's one
    in-flight action. The window allows one action per outbox worker per kill."""
    by_text: dict[tuple[str, str, str, str], list[Post]] = defaultdict(list)
    for post in posts:
        by_text[(post.platform, post.conversation, post.kind, post.text)].append(post)
    repeated: dict[tuple[str, int], set[Any]] = defaultdict(set)
    for post in repeats:
        earlier = [p for p in by_text[(post.platform, post.conversation, post.kind, post.text)]
                   if life_of(p, life) < life_of(post, life)]
        first = min(earlier, key=lambda p: p.position)
        action = ("digest", first.message) if first.digest else ("conversation",
                                                                  first.conversation)
        repeated[(post.platform, life_of(first, life))].add(action)
    return repeated


Lives = Mapping[str, Sequence[float | Death]]


def life_of(post: Post, life: Lives) -> int:
    """How many kills happened before the post: 0 for the first process."""
    return sum(1 for kill in life.get(post.platform, ()) if _after(post, kill))


def _after(post: Post, kill: float | Death) -> bool:
    if not isinstance(kill, Death):
        return kill <= post.position
    if post.by == kill.process:
        return kill.landed <= post.position  # in flight at its death: its own life's
    return kill.position <= post.position


def _slack_customer(line: str) -> str | None:
    for pattern in _SLACK_CUSTOMER:
        if found := pattern.search(line):
            return found.group(1)
    return None


def _name_in(text: str, names: Mapping[str, str]) -> str | None:
    # Longest names first, so "Cust01" does not claim "Cust012"'s lines.
    for name in sorted(names, key=len, reverse=True):
        if name in text:
            return names[name]
    return None


def _notices(platform: str, text: str, at: float, customer_in: Callable[[str], str | None],
             default: str | None = None) -> list[Post]:
    lines, digest = lines_of(text)
    posts = []
    for line in lines:
        kind = notice_kind(line)
        if kind is None:
            continue
        who = customer_in(line) or default
        if who:
            posts.append(Post(platform, kind, who, same_notice(line), at, at, digest))
    return posts


_MARK = re.compile(r"^[^\w<@]+\s")  # a status emoji before a notice ("🚨 ", "↩️ ")
_OWNER = re.compile(r" \([^()]*\)$")  # a digest line's "(previous owner)"


def same_notice(line: str) -> str:
    """A notice as the same post whether sent alone or as a digest line: a notice re-sent
    after a kill may be folded into a digest the second time."""
    return _OWNER.sub("", _MARK.sub("", line))

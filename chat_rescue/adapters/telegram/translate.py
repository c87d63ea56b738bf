"""Telegram updates -> what they mean for chat-rescue, through one translator table.

Pure: no I/O. The store is reached only through the `resolve` function of the
Context (topic id -> conversation key). Commands that need the network (an admin
check, a reply) come out as `Command` for `inbound.py` to carry out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from telegram import CallbackQuery, ChatMemberUpdated, Message, Update

from chat_rescue.adapters.telegram.keyboards import parse_callback, parse_sweep
from chat_rescue.bot.model import (
    Claim,
    Close,
    ConversationRef,
    CustomerMessage,
    HandOff,
    KeepOpen,
    OperatorMessage,
    Relay,
    Snooze,
)

PLATFORM = "telegram"
NOTE_PREFIX = "//"
# What copyMessage can carry; service messages (topic created, pinned, …) are never relayed.
RELAYABLE = ("text", "photo", "document", "voice", "sticker", "video", "audio", "animation",
             "video_note", "location", "venue", "contact", "dice")  # fmt: skip
ADMIN_STATUSES = frozenset({"creator", "administrator"})
GREETINGS = ("start", "help")  # the only commands a customer sends to the bot itself
ANONYMOUS_ADMIN_BOT = 1087968824  # GroupAnonymousBot: the sender of anonymous admins' posts

ButtonEvent = Claim | Close | Snooze | HandOff | KeepOpen


@dataclass(frozen=True, slots=True)
class Context:
    """What translation needs besides the update: where the team works, and the time."""

    support_chat_id: int
    now: float
    resolve: Callable[[str], str | None]
    bot_username: str = ""
    team_chat_id: int = 0  # the configured group, which names the team (even once moved)

    @property
    def team(self) -> str:
        return f"{PLATFORM}:{self.team_chat_id or self.support_chat_id}"


@dataclass(frozen=True, slots=True)
class Relayed:
    """A message to copy across: the customer wrote, or an operator replied in the topic."""

    event: CustomerMessage | OperatorMessage
    relay: Relay


@dataclass(frozen=True, slots=True)
class Edited:
    """A message was edited: copy it across again, marked as an edit. No turn of the
    conversation (no claim, no reply, no timer moves)."""

    relay: Relay


@dataclass(frozen=True, slots=True)
class Act:
    """A rescue event with nothing to copy: a button press or `/close`."""

    event: ButtonEvent
    query_id: str | None = None


@dataclass(frozen=True, slots=True)
class SweepAct:
    """A press on a sweep card: the card (its id in the store), what (`sweeper.VERBS`), for
    which conversation ("" for the one-tap buttons), by whom."""

    card: int
    verb: str
    key: str
    who: str
    query_id: str


@dataclass(frozen=True, slots=True)
class Command:
    """A bot command that needs the network to answer (`/start`, `/rescue`, `/close` astray)."""

    name: str
    args: str
    chat_id: int
    message_id: int
    user: str
    thread_id: int | None = None
    private: bool = False


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """The bot's own membership changed: in the support group, or a customer blocked it."""

    chat_id: int
    private: bool
    status: str
    can_manage_topics: bool = False

    @property
    def usable(self) -> bool:
        """In the support group: may the bot still create and manage topics?"""
        return self.status == "creator" or (
            self.status == "administrator" and self.can_manage_topics)


@dataclass(frozen=True, slots=True)
class Moved:
    """The support group became a supergroup: its id is `chat_id` from now on."""

    chat_id: int


@dataclass(frozen=True, slots=True)
class Ignored:
    """Nothing to do (a note, a service message, another chat); a pressed button is answered.

    `notable` ones are logged at INFO, not DEBUG: they may be a message somebody meant us
    to carry (an operator writing in a topic the bot does not know).
    """

    reason: str
    query_id: str | None = None
    notable: bool = False


Intent = Relayed | Edited | Act | SweepAct | Command | MembershipChanged | Moved | Ignored


def customer_ref(chat_id: int | str) -> ConversationRef:
    """One conversation per customer: their private chat."""
    return ConversationRef(PLATFORM, str(chat_id), "")


def topic_alias(topic_id: int) -> str:
    """The alias that leads from a forum topic to its conversation."""
    return f"{PLATFORM}:topic:{topic_id}"


def translate(update: Update, ctx: Context) -> Intent:
    """What one update means; unknown kinds, and fields of a type Telegram never sends
    (python-telegram-bot passes them through unchecked), are ignored with a reason.
    """
    for kind, translator in _TRANSLATORS:
        payload = getattr(update, kind)
        if payload is not None:
            try:
                intent = translator(payload, ctx)
            except (AttributeError, TypeError, ValueError) as unreadable:
                return Ignored(f"unreadable {kind}: {type(unreadable).__name__}")
            if isinstance(intent, Relayed) and not isinstance(
                    getattr(intent.event, "text", ""), str):
                return Ignored(f"unreadable {kind}: text is not a string")
            return intent
    return Ignored("update kind not used")


# --- messages -----------------------------------------------------------------------------


def _message(message: Message, ctx: Context, *, edited: bool = False) -> Intent:
    if message.migrate_to_chat_id and message.chat.id == ctx.support_chat_id:
        return Moved(int(message.migrate_to_chat_id))
    if message.migrate_from_chat_id and message.migrate_from_chat_id == ctx.support_chat_id:
        return Moved(message.chat.id)
    sender = _sender(message, ctx)
    if sender is None:
        return Ignored("sent by a bot or anonymously")
    if edited and message.location is not None:
        return Ignored("a live location moved")  # sent again and again while it is shared
    private = message.chat.type == "private"
    if not private and (message.text or message.caption or "").startswith(NOTE_PREFIX):
        return Ignored("internal note")
    if private:
        return _from_customer(message, ctx, edited)
    command = _command(message, ctx)
    if command is not None and not command[0]:
        return Ignored("a command for another bot")
    if message.chat.id != ctx.support_chat_id:
        return Ignored("not the support group")
    thread_id = message.message_thread_id if message.is_topic_message else None
    key = ctx.resolve(topic_alias(thread_id)) if thread_id is not None else None
    if command is not None:
        name, args = command
        if edited:
            return Ignored("an edited command")
        if name == "close" and key is not None:
            return Act(Close(ConversationRef.parse(key), ctx.now, sender, via="command"))
        return Command(name, args, message.chat.id, message.message_id, sender, thread_id)
    if key is None:
        return Ignored("not in a customer's topic", notable=thread_id is not None)
    if not _relayable(message):
        return Ignored("nothing to copy")
    ref = ConversationRef.parse(key)
    relay = Relay(ref, True, str(message.chat.id), str(message.message_id), edited=edited)
    if edited:
        return Edited(relay)
    return Relayed(OperatorMessage(ref, ctx.now, sender), relay)


def _edited_message(message: Message, ctx: Context) -> Intent:
    return _message(message, ctx, edited=True)


def _from_customer(message: Message, ctx: Context, edited: bool) -> Intent:
    """Everything a customer writes is for the team, commands too ("/refund …"), except a
    bare /start or /help: those are for the bot, which greets them."""
    command = _command(message, ctx)
    if command is not None and command[0] in GREETINGS and not command[1]:
        if edited:
            return Ignored("an edited command")
        return Command(command[0], "", message.chat.id, message.message_id,
                       str(message.chat.id), private=True)
    if not _relayable(message):
        return Ignored("nothing to copy")
    ref = customer_ref(message.chat.id)
    relay = Relay(ref, False, str(message.chat.id), str(message.message_id), edited=edited)
    if edited:
        return Edited(relay)
    user = message.from_user
    name = user.full_name if user is not None else ""
    return Relayed(CustomerMessage(ref, ctx.now, name, _preview(message), ctx.team), relay)


def _sender(message: Message, ctx: Context) -> str | None:
    """Who wrote, as a user id; None for bots (our own messages above all).

    An administrator posting anonymously writes as GroupAnonymousBot with the support group
    as `sender_chat`: the bot cannot tell such administrators apart, so they are one
    operator, the group's own id.
    """
    user = message.from_user
    if user is None:
        return None
    if not user.is_bot:
        return str(user.id)
    chat = message.sender_chat
    if user.id == ANONYMOUS_ADMIN_BOT and chat is not None \
            and chat.id == ctx.support_chat_id == message.chat.id:
        return str(ctx.support_chat_id)
    return None


def _command(message: Message, ctx: Context) -> tuple[str, str] | None:
    """(command, arguments) when the message starts with a bot command; the command is ""
    when it is addressed to another bot (`/rescue@other_bot`)."""
    entity = next(iter(message.entities), None)
    text = message.text or ""
    if entity is None or entity.type != "bot_command" or entity.offset != 0:
        return None
    word = text[1:entity.length]
    name, _, addressee = word.partition("@")
    if addressee and addressee.lower() != ctx.bot_username.lower():
        return "", ""
    return name.lower(), text[entity.length:].strip()


def _relayable(message: Message) -> bool:
    return any(getattr(message, kind) for kind in RELAYABLE)


def _preview(message: Message) -> str:
    """The words for the card; media without a caption show their kind."""
    if message.text or message.caption:
        return message.text or message.caption or ""
    kind = next((kind for kind in RELAYABLE if getattr(message, kind)), "message")
    return f"[{kind.replace('_', ' ')}]"


# --- buttons and membership ---------------------------------------------------------------

# Whoever can press a button in the support group is one of its members: an operator.
# Whether they are an admin is asked of Telegram only when it matters (`inbound.py`).
_BUTTONS: dict[str, Callable[[ConversationRef, float, str, str], ButtonEvent]] = {
    "claim": lambda ref, at, who, notice: Claim(ref, at, who, via="button"),
    "close": lambda ref, at, who, notice: Close(ref, at, who, via="button", notice_id=notice),
    "snooze": lambda ref, at, who, notice: Snooze(ref, at, who, notice_id=notice),
    "handoff": lambda ref, at, who, notice: HandOff(ref, at, who, notice_id=notice),
    "keep": lambda ref, at, who, notice: KeepOpen(ref, at, who, notice_id=notice),
}


def _callback(query: CallbackQuery, ctx: Context) -> Intent:
    sweep = parse_sweep(query.data)
    parsed = parse_callback(query.data)
    if parsed is None and sweep is None:
        return Ignored("not our button", query.id)
    if query.message is None or query.message.chat.id != ctx.support_chat_id:
        return Ignored("button outside the support group", query.id)
    if sweep is not None:
        card, verb, key = sweep
        return SweepAct(card, verb, key, str(query.from_user.id), query.id)
    assert parsed is not None
    verb, key, notice_id = parsed
    event = _BUTTONS[verb](ConversationRef.parse(key), ctx.now, str(query.from_user.id),
                           notice_id)
    return Act(event, query.id)


def _membership(change: ChatMemberUpdated, ctx: Context) -> Intent:
    member = change.new_chat_member
    private = change.chat.type == "private"
    if not private and change.chat.id != ctx.support_chat_id:
        return Ignored("membership in another chat")
    manage = bool(getattr(member, "can_manage_topics", False))
    return MembershipChanged(change.chat.id, private, member.status, manage)


_TRANSLATORS: tuple[tuple[str, Callable[..., Intent]], ...] = (
    ("message", _message),
    ("edited_message", _edited_message),
    ("callback_query", _callback),
    ("my_chat_member", _membership),
)

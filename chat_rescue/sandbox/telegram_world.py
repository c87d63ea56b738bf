"""What the Telegram sandbox knows: users, chats, forum topics, messages, files and updates.

Plain synchronous state in the Bot API's JSON shapes; `telegram_api.py` carries out the Bot API
methods on it and `telegram.py` serves it over HTTP.
Tests set the world up (`add_user`, `add_forum_group`), play users (`private_message`,
`group_message`, `callback_query`, ...) and read back what the bot did (`messages`, `topics`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

JSON = dict[str, Any]

SANDBOX_TOKEN = "123456:SANDBOX"
BOT_USERNAME = "rescue_sandbox_bot"
GENERAL_TOPIC_ID = 1
DEFAULT_ICON_COLOR = 7322096
LONG_POLL_MAX_TIMEOUT = 50
# Update types delivered only to bots that ask for them in allowed_updates.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
SERVICE_KEYS = frozenset(
    {"forum_topic_created", "forum_topic_edited", "forum_topic_closed", "forum_topic_reopened",
     "migrate_to_chat_id", "migrate_from_chat_id"}
)
MEDIA_KINDS = ("photo", "document", "voice", "sticker", "video", "audio", "animation")
COPYABLE_KEYS = ("text", "entities", "caption", "caption_entities", *MEDIA_KINDS)
STATUSES = frozenset({"creator", "administrator", "member", "left", "kicked"})
# The `from` of what an administrator posts anonymously ("Remain anonymous" in their rights).
GROUP_ANONYMOUS_BOT: JSON = {
    "id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
ADMIN_RIGHTS: JSON = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_pin_messages": True,
    "can_manage_topics": True,
}
GIFT_TYPES: JSON = {
    "unlimited_gifts": True,
    "limited_gifts": True,
    "unique_gifts": True,
    "premium_subscription": True,
    "gifts_from_channels": True,
}


class ApiError(Exception):
    """A Bot API error answer: HTTP status, description and optional `parameters`."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> JSON:
        """The JSON body Telegram sends with this error."""
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    """A 400 error worded like Telegram's: "Bad Request: <reason>"."""
    return ApiError(400, f"Bad Request: {reason}")


@dataclass(frozen=True)
class TopicState:
    """A forum topic as the sandbox holds it."""

    thread_id: int
    name: str
    icon_color: int = DEFAULT_ICON_COLOR
    icon_custom_emoji_id: str | None = None
    closed: bool = False

    def to_json(self) -> JSON:
        """The Bot API ForumTopic object."""
        topic: JSON = {
            "message_thread_id": self.thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            topic["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return topic


@dataclass(frozen=True)
class StoredFile:
    """A file the sandbox can hand out through getFile and the file download URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes


@dataclass
class Chat:
    """A private chat or a (forum) supergroup with its members, topics and messages."""

    id: int
    type: str
    title: str | None = None
    user_id: int | None = None
    is_forum: bool = False
    started: bool = False
    members: dict[int, str] = field(default_factory=dict)
    topics: dict[int, TopicState] = field(default_factory=dict)
    messages: dict[int, JSON] = field(default_factory=dict)
    last_message_id: int = 0


def update_type(update: Mapping[str, Any]) -> str:
    """The update's kind: the one key besides update_id ("message", "callback_query", ...)."""
    return next((key for key in update if key != "update_id"), "")


def thread_of(message: Mapping[str, Any]) -> int | None:
    """The forum topic a message lives in; None for General, private chats and plain groups."""
    return message.get("message_thread_id") if message.get("is_topic_message") else None


def is_service(message: Mapping[str, Any]) -> bool:
    """True for service messages (topic created/edited/closed/reopened)."""
    return any(key in message for key in SERVICE_KEYS)


def text_content(text: str) -> JSON:
    """A text message body; a leading /command gets its bot_command entity as Telegram adds."""
    content: JSON = {"text": text}
    if text.startswith("/") and len(text) > 1:
        command = text.split()[0]
        content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return content


class TelegramWorld:
    """Users, chats, topics, messages, files and the queue of unconfirmed updates."""

    def __init__(
        self,
        token: str = SANDBOX_TOKEN,
        *,
        bot_username: str = BOT_USERNAME,
        clock: Callable[[], float] = time.time,
        first_update_id: int = 100,
    ) -> None:
        self.token = token
        self.bot_user: JSON = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": "Rescue Sandbox",
            "username": bot_username,
        }
        self.clock = clock
        self.users: dict[int, JSON] = {}
        self.chats: dict[int, Chat] = {}
        self.moved: dict[int, int] = {}  # old group id -> the supergroup it became
        self.files: dict[str, StoredFile] = {}
        self.blocked: set[int] = set()
        self.updates: list[JSON] = []
        self.allowed_updates: frozenset[str] | None = None
        self.callback_queries: dict[str, JSON] = {}
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._next_update_id = first_update_id
        self._serial = itertools.count(1)

    @property
    def bot_id(self) -> int:
        """The bot's user id (the token's numeric prefix)."""
        return int(self.bot_user["id"])

    def now(self) -> int:
        """Unix time from the injected clock, as Telegram dates are."""
        return int(self.clock())

    # -- world setup ---------------------------------------------------------------------------

    def add_user(
        self, user_id: int, first_name: str, username: str | None = None, *, started: bool = False
    ) -> JSON:
        """Register a user; `started=True` means they already opened a private chat with the bot."""
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        self.users[user_id] = user
        chat = self.chats.setdefault(user_id, Chat(id=user_id, type="private", user_id=user_id))
        chat.started = chat.started or started
        return user

    def add_group(
        self,
        chat_id: int,
        title: str,
        *,
        is_forum: bool = False,
        admins: Mapping[int, str] | None = None,
        bot_is_admin: bool = True,
    ) -> Chat:
        """Register a supergroup with its admins ({user_id: "creator" | "administrator"})."""
        chat = Chat(id=chat_id, type="supergroup", title=title, is_forum=is_forum)
        chat.members[self.bot_id] = "administrator" if bot_is_admin else "member"
        self.chats[chat_id] = chat
        for user_id, status in (admins or {}).items():
            self.set_member(chat_id, user_id, status)
        return chat

    def add_forum_group(
        self,
        chat_id: int,
        title: str,
        admins: Mapping[int, str] | None = None,
        bot_is_admin: bool = True,
    ) -> Chat:
        """Register a forum supergroup (topics enabled); General is its implicit topic 1."""
        return self.add_group(
            chat_id, title, is_forum=True, admins=admins, bot_is_admin=bot_is_admin
        )

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """Set a user's (or the bot's) group status: creator/administrator/member/left/kicked."""
        if status not in STATUSES:
            raise ValueError(f"unsupported member status {status!r}")
        if user_id != self.bot_id and user_id not in self.users:
            self.add_user(user_id, f"User {user_id}")
        self._group(chat_id).members[user_id] = status

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """An administrator deletes a forum topic by hand; its messages go with it."""
        chat = self._group(chat_id)
        del chat.topics[thread_id]
        chat.messages = {mid: m for mid, m in chat.messages.items()
                         if m.get("message_thread_id") != thread_id}

    def block_user(self, user_id: int) -> None:
        """The user blocks the bot: every send to their private chat answers 403."""
        self.blocked.add(user_id)

    def unblock_user(self, user_id: int) -> None:
        """The user unblocks the bot."""
        self.blocked.discard(user_id)

    def reset_update_ids(self, next_update_id: int) -> None:
        """Restart update numbering, as Telegram does after a long silence."""
        self._next_update_id = next_update_id

    # -- playing users: update injection -------------------------------------------------------

    def inject(self, update: Mapping[str, Any]) -> JSON:
        """Queue a raw update (update_id assigned when missing); messages in it are remembered."""
        queued = dict(update)
        if "update_id" in queued:
            self._next_update_id = max(self._next_update_id, int(queued["update_id"]) + 1)
        else:
            queued = {"update_id": self._take_update_id(), **queued}
        for key in ("message", "edited_message"):
            if isinstance(queued.get(key), Mapping):
                self._remember(queued[key])
        if isinstance(query := queued.get("callback_query"), Mapping):
            self.callback_queries[str(query["id"])] = dict(query)
        return self.queue_update(queued)

    def private_message(
        self,
        user_id: int,
        text: str | None = None,
        *,
        photo: bool = False,
        document: bool = False,
        voice: bool = False,
        sticker: bool = False,
        caption: str | None = None,
        update_id: int | None = None,
    ) -> JSON:
        """The user writes to the bot in private; writing (re)starts and unblocks the chat."""
        user = self.users.get(user_id) or self.add_user(user_id, f"User {user_id}")
        chat = self.chats[user_id]
        chat.started = True
        self.blocked.discard(user_id)
        content: JSON = text_content(text) if text is not None else {}
        for kind, wanted in (
            ("photo", photo),
            ("document", document),
            ("voice", voice),
            ("sticker", sticker),
        ):
            if wanted:
                content[kind] = self.media_json(kind, self.store_file(kind).file_id)
        if caption is not None:
            content["caption"] = caption
        if not content:
            raise ValueError("a private message needs text, media or a caption")
        message = self.new_message(chat, user, content)
        return self._queue_new({"message": message}, update_id)

    def group_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        thread_id: int | None = None,
        reply_to: Mapping[str, Any] | int | None = None,
        *,
        update_id: int | None = None,
    ) -> JSON:
        """A user writes in a group, in forum topic `thread_id` (None: General / no topic)."""
        chat = self._group(chat_id)
        if thread_id is not None and thread_id not in chat.topics:
            raise ValueError(f"chat {chat_id} has no topic {thread_id}")
        user = self.users.get(user_id) or self.add_user(user_id, f"User {user_id}")
        chat.members.setdefault(user_id, "member")
        if isinstance(reply_to, int):
            reply_to = self._existing(chat, reply_to)
        message = self.new_message(
            chat, user, text_content(text), thread_id=thread_id, reply_to=reply_to
        )
        return self._queue_new({"message": message}, update_id)

    def anonymous_admin_message(
        self, chat_id: int, text: str, thread_id: int | None = None, *,
        signature: str | None = None, update_id: int | None = None,
    ) -> JSON:
        """An administrator who remains anonymous writes in a group: the message comes from
        GroupAnonymousBot with the group itself as `sender_chat` (and their custom title as
        `author_signature`, if they have one)."""
        chat = self._group(chat_id)
        if thread_id is not None and thread_id not in chat.topics:
            raise ValueError(f"chat {chat_id} has no topic {thread_id}")
        content: JSON = {"sender_chat": self.chat_json(chat), **text_content(text)}
        if signature:
            content["author_signature"] = signature
        message = self.new_message(chat, GROUP_ANONYMOUS_BOT, content, thread_id=thread_id)
        return self._queue_new({"message": message}, update_id)

    def edit_message(
        self, chat_id: int, message_id: int, text: str, *, update_id: int | None = None
    ) -> JSON:
        """Its author edits a message: its text (or a media message's caption) is replaced
        where it is stored, so copies made from now on show the edit, and an
        `edited_message` update is queued."""
        chat = self.chats[chat_id]
        old = self._existing(chat, message_id)
        kept = {k: v for k, v in old.items()
                if k not in ("text", "entities", "caption", "caption_entities")}
        changes = text_content(text) if "text" in old else {"caption": text}
        edited = {**kept, **changes, "edit_date": self.now()}
        chat.messages[message_id] = edited
        return self._queue_new({"edited_message": edited}, update_id)

    def callback_query(
        self,
        user_id: int,
        message: Mapping[str, Any],
        data: str,
        *,
        update_id: int | None = None,
    ) -> JSON:
        """The user presses an inline button carrying `data` on `message`."""
        user = self.users.get(user_id) or self.add_user(user_id, f"User {user_id}")
        query_id = str(4_000_000_000 + next(self._serial))
        query: JSON = {
            "id": query_id,
            "from": user,
            "message": dict(message),
            "chat_instance": str(-abs(int(message["chat"]["id"]))),
            "data": data,
        }
        self.callback_queries[query_id] = query
        return self._queue_new({"callback_query": query}, update_id)

    def my_chat_member(
        self,
        chat_id: int,
        old_status: str,
        new_status: str,
        *,
        by_user_id: int | None = None,
        update_id: int | None = None,
    ) -> JSON:
        """The bot's membership changes: added to or promoted in a group, or blocked in private."""
        chat = self.chat(chat_id)
        if chat.type == "private":
            if new_status == "kicked":
                self.block_user(chat_id)
            else:
                self.unblock_user(chat_id)
                chat.started = True
            by_user_id = chat_id
        else:
            self.set_member(chat_id, self.bot_id, new_status)
            by_user_id = by_user_id or next(
                (uid for uid, status in chat.members.items() if status == "creator"), chat_id
            )
        actor = self.users.get(by_user_id) or self.add_user(by_user_id, f"User {by_user_id}")
        change: JSON = {
            "chat": self.chat_json(chat),
            "from": actor,
            "date": self.now(),
            "old_chat_member": self.member_json(self.bot_user, old_status),
            "new_chat_member": self.member_json(self.bot_user, new_status),
        }
        return self._queue_new({"my_chat_member": change}, update_id)

    # -- reading back what happened ------------------------------------------------------------

    def messages(self, chat_id: int, thread_id: int | None = None) -> list[JSON]:
        """Messages the bot sent to (chat, topic), oldest first; None is General / no topic."""
        return [
            message
            for message in self.history(chat_id, thread_id)
            if message["from"]["id"] == self.bot_id and not is_service(message)
        ]

    def history(self, chat_id: int, thread_id: int | None = None) -> list[JSON]:
        """Every message in (chat, topic): users', the bot's and service messages."""
        chat = self.chats.get(chat_id)
        if chat is None:
            return []
        return [m for m in chat.messages.values() if thread_of(m) == thread_id]

    def message(self, chat_id: int, message_id: int) -> JSON | None:
        """One stored message, or None."""
        chat = self.chats.get(chat_id)
        return chat.messages.get(message_id) if chat else None

    def topics(self, chat_id: int) -> list[TopicState]:
        """The forum topics of a group, by thread id."""
        return sorted(self._group(chat_id).topics.values(), key=lambda topic: topic.thread_id)

    def my_commands(
        self, scope: Mapping[str, Any] | None = None, language_code: str = ""
    ) -> list[JSON]:
        """The command list set for a BotCommandScope (default scope when None)."""
        return list(self._commands.get((scope_key(scope), language_code), []))

    def set_my_commands(
        self, commands: list[JSON], scope: Mapping[str, Any] | None, language_code: str
    ) -> None:
        """Record (or, with an empty list, delete) the commands for a scope and language."""
        key = (scope_key(scope), language_code)
        if commands:
            self._commands[key] = commands
        else:
            self._commands.pop(key, None)

    # -- the update queue ----------------------------------------------------------------------

    def queue_update(self, update: JSON) -> JSON:
        """Queue an update unless allowed_updates filters its type out; returns it either way."""
        kind = update_type(update)
        wanted = (
            kind not in OPT_IN_UPDATES
            if self.allowed_updates is None
            else kind in self.allowed_updates
        )
        if wanted:
            self.updates.append(update)
            self.on_update_queued()
        return update

    def on_update_queued(self) -> None:
        """Hook for the server: an update is waiting."""

    def set_allowed_updates(self, allowed: Iterable[str]) -> None:
        """Apply allowed_updates for updates created from now on; empty means the default set."""
        kinds = frozenset(allowed)
        self.allowed_updates = kinds or None

    def take_updates(self, offset: int, limit: int) -> list[JSON]:
        """Confirm the updates getUpdates' `offset` confirms and return up to `limit` pending."""
        if offset < 0:
            del self.updates[: max(0, len(self.updates) + offset)]
        elif offset > 0 and self.updates:
            newest = max(int(update["update_id"]) for update in self.updates)
            # Like the real server, an offset past the queue (ids restarted lower) is ignored.
            if offset <= newest + 1:
                self.updates = [u for u in self.updates if int(u["update_id"]) >= offset]
        return self.updates[:limit]

    def drop_update(self, update: JSON) -> None:
        """Forget one delivered update (webhook delivery succeeded)."""
        self.updates = [queued for queued in self.updates if queued is not update]

    # -- shapes and lookups used by the Bot API methods ----------------------------------------

    def migrate(self, chat_id: int, new_id: int) -> None:
        """The group becomes a supergroup with a new id, as Telegram does it: calls to the
        old id are answered 400 with `migrate_to_chat_id`."""
        chat = self.chats.pop(chat_id)
        old = self.chat_json(chat)
        chat.id = new_id
        self.chats[new_id] = chat
        self.moved[chat_id] = new_id
        # What the bot is told: a service message in each chat, the old and the new.
        creator = next((uid for uid, status in chat.members.items() if status == "creator"),
                       new_id)
        by = self.users.get(creator) or self.add_user(creator, f"User {creator}")
        self._queue_new({"message": {"message_id": 1, "from": by, "chat": old,
                                     "date": self.now(), "migrate_to_chat_id": new_id}}, None)
        moved = self.new_message(chat, by, {"migrate_from_chat_id": chat_id})
        self._queue_new({"message": moved}, None)

    def chat(self, chat_id: int | str) -> Chat:
        """A chat the bot can see, or 400 "chat not found"."""
        if isinstance(chat_id, int) and chat_id in self.moved:
            raise ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                           {"migrate_to_chat_id": self.moved[chat_id]})
        chat = self.chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise bad_request("chat not found")
        if chat.type != "private" and chat.members.get(self.bot_id) in ("left", "kicked"):
            raise bad_request("chat not found")
        return chat

    def chat_json(self, chat: Chat) -> JSON:
        """The Bot API Chat object."""
        if chat.type == "private":
            user = self.users[chat.id]
            shape: JSON = {"id": chat.id, "type": "private", "first_name": user["first_name"]}
            if "username" in user:
                shape["username"] = user["username"]
            return shape
        shape = {"id": chat.id, "type": chat.type, "title": chat.title}
        if chat.is_forum:
            shape["is_forum"] = True
        return shape

    def chat_full_info(self, chat: Chat) -> JSON:
        """The Bot API ChatFullInfo object (getChat)."""
        return {
            **self.chat_json(chat),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": dict(GIFT_TYPES),
        }

    def member_json(self, user: JSON, status: str) -> JSON:
        """The Bot API ChatMember object for a status."""
        member: JSON = {"user": user, "status": status}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(ADMIN_RIGHTS)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def user_json(self, user_id: int) -> JSON:
        """A known user (the bot included), or 400 "user not found"."""
        if user_id == self.bot_id:
            return self.bot_user
        if user_id not in self.users:
            raise bad_request("user not found")
        return self.users[user_id]

    def new_message(
        self,
        chat: Chat,
        sender: JSON,
        content: Mapping[str, Any],
        *,
        thread_id: int | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Store a new message with Telegram's thread and reply quirks, and return it."""
        if thread_id is None and reply_to is not None and reply_to.get("is_topic_message"):
            thread_id = reply_to["message_thread_id"]  # a reply lands in the replied-to topic
        chat.last_message_id += 1
        message: JSON = {
            "message_id": chat.last_message_id,
            "from": sender,
            "chat": self.chat_json(chat),
            "date": self.now(),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
            # In a topic, a message that is no explicit reply answers the topic's first message.
            reply_to = reply_to or chat.messages.get(thread_id)
        elif reply_to is not None and chat.type == "supergroup":
            # The General-topic quirk: a reply carries a thread id that is not a topic.
            message["message_thread_id"] = reply_to.get("message_thread_id", reply_to["message_id"])
        if reply_to is not None:
            message["reply_to_message"] = {
                key: value for key, value in reply_to.items() if key != "reply_to_message"
            }
        message.update(content)
        chat.messages[message["message_id"]] = message
        return message

    def store_file(
        self, kind: str, content: bytes | None = None, file_id: str | None = None
    ) -> StoredFile:
        """Register a file (uploaded bytes, or placeholder bytes) under a file_id."""
        if file_id is not None and file_id in self.files:
            return self.files[file_id]
        serial = next(self._serial)
        file_id = file_id or f"sandbox-{kind}-{serial}"
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=f"u{serial}",
            file_path=f"{kind}s/file_{serial}",
            content=content if content is not None else f"{kind} {serial}".encode(),
        )
        self.files[file_id] = stored
        return stored

    def media_json(self, kind: str, file_id: str, file_name: str | None = None) -> Any:
        """The Bot API object for a media field (photo is a list of PhotoSize)."""
        stored = self.store_file(kind, file_id=file_id)
        base: JSON = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
        }
        if kind == "photo":
            thumb = {
                **base,
                "file_id": f"{file_id}-s",
                "file_unique_id": f"{base['file_unique_id']}s",
            }
            return [{**thumb, "width": 90, "height": 68}, {**base, "width": 800, "height": 600}]
        if kind == "sticker":
            shape = {"type": "regular", "width": 512, "height": 512, "emoji": "👍"}
            return {**base, **shape, "is_animated": False, "is_video": False}
        if kind in ("voice", "audio", "video", "animation"):
            base["duration"] = 3
            if kind in ("video", "animation"):
                base.update(width=640, height=480)
        if kind in ("document", "audio", "animation") or file_name:
            base["file_name"] = file_name or f"{kind}.bin"
        return base

    # -- internals -----------------------------------------------------------------------------

    def _take_update_id(self) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        return update_id

    def _queue_new(self, body: JSON, update_id: int | None) -> JSON:
        if update_id is not None:
            self._next_update_id = max(self._next_update_id, update_id + 1)
        else:
            update_id = self._take_update_id()
        return self.queue_update({"update_id": update_id, **body})

    def _group(self, chat_id: int) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None or chat.type == "private":
            raise ValueError(f"no group {chat_id} in the sandbox; add it first")
        return chat

    def _existing(self, chat: Chat, message_id: int) -> JSON:
        if message_id not in chat.messages:
            raise ValueError(f"chat {chat.id} has no message {message_id}")
        return chat.messages[message_id]

    def _remember(self, message: Mapping[str, Any]) -> None:
        shape = message["chat"]
        chat_id = int(shape["id"])
        chat = self.chats.get(chat_id)
        if chat is None:
            if shape.get("type") == "private":
                sender = message.get("from") or {"id": chat_id, "first_name": f"User {chat_id}"}
                self.users.setdefault(chat_id, {"is_bot": False, **sender})
            chat = Chat(
                id=chat_id,
                type=str(shape.get("type", "supergroup")),
                title=shape.get("title"),
                user_id=chat_id if shape.get("type") == "private" else None,
                is_forum=bool(shape.get("is_forum")),
            )
            self.chats[chat_id] = chat
        chat.started = chat.started or chat.type == "private"
        message_id = int(message["message_id"])
        chat.messages[message_id] = dict(message)
        chat.last_message_id = max(chat.last_message_id, message_id)


def scope_key(scope: Mapping[str, Any] | None) -> str:
    """A stable key for a BotCommandScope object; None is the default scope."""
    items = sorted((scope or {"type": "default"}).items())
    return ",".join(f"{key}={value}" for key, value in items)


def replace_topic(chat: Chat, thread_id: int, **changes: Any) -> TopicState:
    """Store a changed copy of a topic and return it."""
    topic = replace(chat.topics[thread_id], **changes)
    chat.topics[thread_id] = topic
    return topic

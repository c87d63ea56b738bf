"""The Bot API methods of the Telegram sandbox, carried out on a `TelegramWorld`.

Sending, copying, editing and deleting messages, forum topics, members, callback answers,
commands and files, each answering like Telegram does, errors and quirks included. Updates,
webhooks and HTTP live in `telegram.py`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chat_rescue.sandbox.telegram_world import (
    COPYABLE_KEYS,
    DEFAULT_ICON_COLOR,
    JSON,
    MEDIA_KINDS,
    ApiError,
    Chat,
    TelegramWorld,
    TopicState,
    bad_request,
    is_service,
    replace_topic,
)

CHAT_ACTIONS = frozenset(
    {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
     "upload_document", "choose_sticker", "find_location", "record_video_note",
     "upload_video_note"}
)  # fmt: skip
COMMAND_PATTERN = re.compile(r"[a-z0-9_]{1,32}")
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
CAPTION_LIMIT = 1024  # characters of a media message's caption, after entities are parsed
ICON_EMOJI = ("💬", "✅", "❗", "⚡", "🔥", "👀", "❓", "📝")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content: bytes


def _plain(text: str, parse_mode: str | None) -> str:
    """The text a user sees: HTML markup removed (Markdown is kept as sent)."""
    if parse_mode and parse_mode.upper() == "HTML":
        return html.unescape(re.sub(r"<[^>]*>", "", text))
    return text


class Params:
    """Typed access to one request's parameters; a bad or missing one is a 400 like Telegram's."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def has(self, name: str) -> bool:
        """True when the parameter was sent."""
        return self.raw.get(name) is not None

    def opt_int(self, name: str) -> int | None:
        """An optional integer parameter."""
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            raise bad_request(f"invalid {name} specified")
        if isinstance(value, int | float):
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            raise bad_request(f"invalid {name} specified") from None

    def opt_float(self, name: str) -> float | None:
        """An optional number (the sandbox also takes fractional long-poll timeouts)."""
        value = self.raw.get(name)
        if value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def req_int(self, name: str) -> int:
        """A required integer parameter."""
        value = self.opt_int(name)
        if value is None:
            raise bad_request(f"{name} is empty")
        return value

    def chat_id(self, name: str = "chat_id") -> int | str:
        """A chat id: an integer, or an @username string."""
        value = self.raw.get(name)
        if isinstance(value, str) and value.startswith("@"):
            return value
        return self.req_int(name)

    def opt_str(self, name: str) -> str | None:
        """An optional text parameter."""
        value = self.raw.get(name)
        return None if value is None else str(value)

    def req_str(self, name: str) -> str:
        """A required, non-empty text parameter."""
        value = self.opt_str(name)
        if not value:
            raise bad_request(f"{name} is empty")
        return value

    def flag(self, name: str) -> bool:
        """A boolean parameter (absent is False)."""
        value = self.raw.get(name)
        return value is True or str(value).lower() in ("true", "1")

    def obj(self, name: str) -> Any:
        """A JSON-serialized parameter (object or array); JSON bodies may inline it."""
        value = self.raw.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value


Handler = Callable[[Params], Any]


class BotApi:
    """Bot API methods (all but getUpdates and webhooks) acting on one world."""

    def __init__(self, world: TelegramWorld) -> None:
        self.world = world

    def methods(self) -> dict[str, Handler]:
        """Handlers by lower-cased method name (Telegram matches names case-insensitively)."""
        return {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            **{f"send{kind}": self._media_sender(kind) for kind in MEDIA_KINDS},
            "copymessage": self._copy_message,
            "forwardmessage": self._forward_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "createforumtopic": self._create_forum_topic,
            "editforumtopic": self._edit_forum_topic,
            "closeforumtopic": self._topic_closer(closed=True),
            "reopenforumtopic": self._topic_closer(closed=False),
            "deleteforumtopic": self._delete_forum_topic,
            "getforumtopiciconstickers": self._icon_stickers,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
            "getchatadministrators": self._get_chat_administrators,
            "getchatmembercount": self._get_chat_member_count,
            "answercallbackquery": self._answer_callback_query,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "sendchataction": self._send_chat_action,
            "getfile": self._get_file,
        }

    def _get_me(self, _: Params) -> JSON:
        return {
            **self.world.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _get_chat(self, params: Params) -> JSON:
        return self.world.chat_full_info(self._chat(params))

    # -- sending -------------------------------------------------------------------------------

    def _chat(self, params: Params, name: str = "chat_id") -> Chat:
        return self.world.chat(params.chat_id(name))

    def _writable_chat(self, params: Params) -> Chat:
        chat = self._chat(params)
        if chat.type == "private":
            if chat.id in self.world.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if not chat.started:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat

    def _thread(self, chat: Chat, params: Params) -> int | None:
        thread_id = params.opt_int("message_thread_id")
        if thread_id is None:
            return None
        # General (1) is no topic to send to: omit message_thread_id to post there.
        topic = chat.topics.get(thread_id) if chat.is_forum else None
        if topic is None:
            raise bad_request("message thread not found")
        if topic.closed:
            raise bad_request("TOPIC_CLOSED")
        return thread_id

    def _reply_to(self, chat: Chat, params: Params) -> JSON | None:
        reply = params.obj("reply_parameters") or {}
        message_id = reply.get("message_id") or params.opt_int("reply_to_message_id")
        if message_id is None:
            return None
        target = chat.messages.get(int(message_id))
        if target is None and not reply.get("allow_sending_without_reply"):
            raise bad_request("message to be replied not found")
        return target

    def _markup(self, params: Params) -> JSON:
        markup = params.obj("reply_markup")
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            return {}  # only inline keyboards show up in Message objects
        for row in markup["inline_keyboard"]:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
        return {"reply_markup": markup}

    def _deliver(self, params: Params, content: JSON) -> JSON:
        chat = self._writable_chat(params)
        thread_id = self._thread(chat, params)
        reply_to = self._reply_to(chat, params)
        content = {**content, **self._markup(params)}
        return self.world.new_message(
            chat, self.world.bot_user, content, thread_id=thread_id, reply_to=reply_to
        )

    def _text(self, params: Params, name: str) -> str | None:
        raw = params.opt_str(name)
        return None if raw is None else _plain(raw, params.opt_str("parse_mode"))

    def _send_message(self, params: Params) -> JSON:
        text = self._text(params, "text")
        if not text or not text.strip():
            raise bad_request("message text is empty")
        if len(text) > 4096:
            raise bad_request("message is too long")
        content: JSON = {"text": text}
        if params.has("entities"):
            content["entities"] = params.obj("entities")
        return self._deliver(params, content)

    def _media_sender(self, kind: str) -> Handler:
        def send(params: Params) -> JSON:
            value = params.raw.get(kind)
            if isinstance(value, str) and value.startswith("attach://"):
                value = params.raw.get(value.removeprefix("attach://"))
            if isinstance(value, UploadedFile):
                stored = self.world.store_file(kind, content=value.content)
                media = self.world.media_json(kind, stored.file_id, value.filename)
            elif isinstance(value, str | int) and str(value):
                media = self.world.media_json(kind, str(value))
            else:
                raise bad_request(f"there is no {kind} in the request")
            content: JSON = {kind: media}
            caption = self._text(params, "caption")
            if caption is not None and len(caption) > CAPTION_LIMIT:
                raise bad_request("message caption is too long")
            if caption:
                content["caption"] = caption
            return self._deliver(params, content)

        return send

    def _source(self, params: Params, verb: str, done: str) -> JSON:
        source_chat = self._chat(params, "from_chat_id")
        message = source_chat.messages.get(params.req_int("message_id"))
        if message is None:
            raise bad_request(f"message to {verb} not found")
        if is_service(message):
            raise bad_request(f"message can't be {done}")
        return message

    def _copy_message(self, params: Params) -> JSON:
        source = self._source(params, "copy", "copied")
        content = {key: source[key] for key in COPYABLE_KEYS if key in source}
        caption = self._text(params, "caption")
        if caption is not None and "text" not in content:
            content["caption"] = caption
        copy = self._deliver(params, content)
        return {"message_id": copy["message_id"]}

    def _forward_message(self, params: Params) -> JSON:
        source = self._source(params, "forward", "forwarded")
        content = {key: source[key] for key in COPYABLE_KEYS if key in source}
        content["forward_origin"] = source.get("forward_origin") or {
            "type": "user",
            "sender_user": source["from"],
            "date": source["date"],
        }
        return self._deliver(params, content)

    # -- editing and deleting ------------------------------------------------------------------

    def _own_message(self, params: Params, verb: str) -> tuple[Chat, JSON]:
        if params.has("inline_message_id"):
            raise bad_request("inline messages are not supported by the sandbox")
        chat = self._chat(params)
        message = chat.messages.get(params.req_int("message_id"))
        if message is None:
            raise bad_request(f"message to {verb} not found")
        if message["from"]["id"] != self.world.bot_id or is_service(message):
            raise bad_request(f"message can't be {verb}ed")
        return chat, message

    def _store_edit(self, chat: Chat, message: JSON, changes: JSON) -> JSON:
        # Telegram drops the inline keyboard when an edit does not send one again.
        edited = {k: v for k, v in message.items() if k != "reply_markup"}
        edited.update(changes, edit_date=self.world.now())
        unchanged = {k: v for k, v in edited.items() if k != "edit_date"}
        if unchanged == {k: v for k, v in message.items() if k != "edit_date"}:
            raise bad_request(NOT_MODIFIED)
        chat.messages[message["message_id"]] = edited
        return edited

    def _edit_message_text(self, params: Params) -> JSON:
        chat, message = self._own_message(params, "edit")
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        text = self._text(params, "text")
        if not text:
            raise bad_request("message text is empty")
        changes: JSON = {"text": text, **self._markup(params)}
        if params.has("entities"):
            changes["entities"] = params.obj("entities")
        return self._store_edit(chat, message, changes)

    def _edit_message_reply_markup(self, params: Params) -> JSON:
        chat, message = self._own_message(params, "edit")
        return self._store_edit(chat, message, self._markup(params))

    def _delete_message(self, params: Params) -> bool:
        chat = self._chat(params)
        message_id = params.req_int("message_id")
        message = chat.messages.get(message_id)
        if message is None:
            raise bad_request("message to delete not found")
        not_ours = message["from"]["id"] != self.world.bot_id
        bot_status = chat.members.get(self.world.bot_id)
        if "forum_topic_created" in message or (
            not_ours and chat.type != "private" and bot_status not in ("creator", "administrator")
        ):
            raise bad_request("message can't be deleted")
        del chat.messages[message_id]
        return True

    # -- forum topics --------------------------------------------------------------------------

    def _forum(self, params: Params, action: str = "manage topics") -> Chat:
        chat = self._chat(params)
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        if chat.members.get(self.world.bot_id) not in ("creator", "administrator"):
            raise bad_request(f"not enough rights to {action}")
        return chat

    def _topic(self, chat: Chat, params: Params) -> TopicState:
        topic = chat.topics.get(params.req_int("message_thread_id"))
        if topic is None:
            raise bad_request("message thread not found")
        return topic

    def _service(self, chat: Chat, thread_id: int, content: JSON) -> None:
        self.world.new_message(chat, self.world.bot_user, content, thread_id=thread_id)

    def _create_forum_topic(self, params: Params) -> JSON:
        chat = self._forum(params, "create a topic")
        name = params.req_str("name")
        if len(name) > 128:
            raise bad_request("TOPIC_TITLE_INVALID")
        thread_id = chat.last_message_id + 1
        topic = TopicState(
            thread_id=thread_id,
            name=name,
            icon_color=params.opt_int("icon_color") or DEFAULT_ICON_COLOR,
            icon_custom_emoji_id=params.opt_str("icon_custom_emoji_id") or None,
        )
        chat.topics[thread_id] = topic
        created = {k: v for k, v in topic.to_json().items() if k != "message_thread_id"}
        self._service(chat, thread_id, {"forum_topic_created": created})
        return topic.to_json()

    def _edit_forum_topic(self, params: Params) -> bool:
        chat = self._forum(params)
        topic = self._topic(chat, params)
        changes: JSON = {}
        name = params.opt_str("name")
        if name and name != topic.name:
            changes["name"] = name
        icon = params.opt_str("icon_custom_emoji_id")
        if icon is not None and (icon or None) != topic.icon_custom_emoji_id:
            changes["icon_custom_emoji_id"] = icon or None
        if not changes:
            raise bad_request("TOPIC_NOT_MODIFIED")
        replace_topic(chat, topic.thread_id, **changes)
        edited = {k: v or "" for k, v in changes.items()}
        self._service(chat, topic.thread_id, {"forum_topic_edited": edited})
        return True

    def _topic_closer(self, *, closed: bool) -> Handler:
        def set_closed(params: Params) -> bool:
            chat = self._forum(params)
            topic = self._topic(chat, params)
            if topic.closed == closed:
                raise bad_request("TOPIC_NOT_MODIFIED")
            replace_topic(chat, topic.thread_id, closed=closed)
            event = "forum_topic_closed" if closed else "forum_topic_reopened"
            self._service(chat, topic.thread_id, {event: {}})
            return True

        return set_closed

    def _delete_forum_topic(self, params: Params) -> bool:
        chat = self._forum(params)
        topic = self._topic(chat, params)
        del chat.topics[topic.thread_id]
        chat.messages = {
            mid: m
            for mid, m in chat.messages.items()
            if m.get("message_thread_id") != topic.thread_id
        }
        return True

    def _icon_stickers(self, _: Params) -> list[JSON]:
        return [
            {
                "file_id": f"sandbox-topic-icon-{index}",
                "file_unique_id": f"topic-icon-{index}",
                "type": "custom_emoji",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": emoji,
                "custom_emoji_id": str(5_000_000_000_000_000_000 + index),
            }
            for index, emoji in enumerate(ICON_EMOJI)
        ]

    # -- members, callbacks, commands, files ---------------------------------------------------

    def _get_chat_member(self, params: Params) -> JSON:
        chat = self._chat(params)
        user_id = params.req_int("user_id")
        user = self.world.user_json(user_id)
        if chat.type == "private":
            status = "member" if user_id in (chat.id, self.world.bot_id) else "left"
        else:
            status = chat.members.get(user_id, "left")
        return self.world.member_json(user, status)

    def _get_chat_member_count(self, params: Params) -> int:
        chat = self._chat(params)
        return 2 if chat.type == "private" else len(chat.members)

    def _get_chat_administrators(self, params: Params) -> list[JSON]:
        chat = self._chat(params)
        if chat.type == "private":
            raise bad_request("there are no administrators in the private chat")
        return [
            self.world.member_json(self.world.user_json(user_id), status)
            for user_id, status in chat.members.items()
            if status in ("creator", "administrator")
        ]

    def _answer_callback_query(self, params: Params) -> bool:
        if self.world.callback_queries.pop(params.req_str("callback_query_id"), None) is None:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        return True

    def _set_my_commands(self, params: Params) -> bool:
        commands = params.obj("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not COMMAND_PATTERN.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("command description must be 1-256 characters")
        self.world.set_my_commands(
            commands, params.obj("scope"), params.opt_str("language_code") or ""
        )
        return True

    def _get_my_commands(self, params: Params) -> list[JSON]:
        return self.world.my_commands(params.obj("scope"), params.opt_str("language_code") or "")

    def _delete_my_commands(self, params: Params) -> bool:
        self.world.set_my_commands([], params.obj("scope"), params.opt_str("language_code") or "")
        return True

    def _send_chat_action(self, params: Params) -> bool:
        chat = self._writable_chat(params)
        self._thread(chat, params)
        if params.opt_str("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _get_file(self, params: Params) -> JSON:
        stored = self.world.files.get(params.req_str("file_id"))
        if stored is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

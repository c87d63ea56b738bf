"""The Telegram support-group bot: private chats relayed to forum topics."""

from chat_rescue.adapters.telegram.adapter import TelegramAdapter

__all__ = ["TelegramAdapter"]

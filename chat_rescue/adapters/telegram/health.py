"""What can cut the bot off: lost rights in the support group, customers who blocked it."""

from __future__ import annotations

import logging

from telegram import Bot
from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError

from chat_rescue.adapters.telegram.memory import Memory
from chat_rescue.bot.model import ConversationRef, HistoryEvent
from chat_rescue.bot.ports import Change
from chat_rescue.bot.service import Service

log = logging.getLogger(__name__)
BLOCKED = "customer_blocked"


def lost_rights(status: str) -> str:
    """The plain-words problem when the bot cannot manage the support group's topics."""
    if status in ("left", "kicked"):
        return ("the bot was removed from the support group; add it back as an administrator "
                "with the Manage Topics right")
    if status == "administrator":
        return ("the bot is an administrator of the support group but lacks the Manage Topics "
                "right; new conversations cannot get topics until it is given back")
    return ("the bot is no longer an administrator of the support group; new conversations "
            "cannot get topics and replies cannot be relayed until it is made an administrator "
            "with the Manage Topics right again")


def mark_blocked(service: Service, memory: Memory, ref: ConversationRef, now: float) -> bool:
    """Record (once until they write again) that a customer blocked the bot; True if new."""
    if ref.key in memory.blocked:
        return False
    memory.blocked.add(ref.key)
    conv = service.store.load(ref.key)
    if conv is not None:
        service.store.commit(Change(history=(HistoryEvent(ref, conv.team, BLOCKED, now),)), now)
    log.warning("Telegram: customer %s blocked the bot; messages to them are dropped", ref.channel)
    return True


async def check(bot: Bot, support_chat_id: str, token: str) -> list[str]:
    """Reach the Bot API once: the token works, the group is a forum the bot may manage."""
    try:
        me = await bot.get_me()
    except InvalidToken:
        return ["Telegram rejected TELEGRAM_BOT_TOKEN: get a valid token from @BotFather"]
    except TelegramError as failed:
        return [f"cannot reach the Telegram Bot API: {_scrub(failed, token)}"]
    if not support_chat_id.lstrip("-").isdigit():
        return ["TELEGRAM_SUPPORT_CHAT_ID must be the support group's numeric id (-100…)"]
    group = int(support_chat_id)
    try:
        chat = await bot.get_chat(group)
        member = await bot.get_chat_member(group, me.id)
    except (BadRequest, Forbidden):
        return [f"the bot cannot see the support group {group}: check TELEGRAM_SUPPORT_CHAT_ID "
                "and add the bot to the group"]
    except TelegramError as failed:
        return [f"cannot reach the support group: {_scrub(failed, token)}"]
    problems = []
    if not chat.is_forum:
        problems.append("the support group has no topics: turn Topics on in the group's settings")
    manage = bool(getattr(member, "can_manage_topics", False))
    if not (member.status == "creator" or (member.status == "administrator" and manage)):
        problems.append(lost_rights(member.status))
    return problems


def _scrub(error: Exception, token: str) -> str:
    """An error's text without the token (URLs in errors may carry it)."""
    text = str(error)
    return text.replace(token, "<token>") if token else text

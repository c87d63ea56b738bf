"""Who may press what (DESIGN §1 rule 8), and which nudge or reminder a button belongs to.

Pure, like the engine that asks it. The adapters supply the facts on each press: is the
presser one of the team's operators, an admin, and which notice the button came with.
"""

from __future__ import annotations

from dataclasses import replace

from chat_rescue.bot.model import (
    CARD_BUTTON,
    Claim,
    Close,
    Conversation,
    HandOff,
    InboundEvent,
    KeepOpen,
    Press,
    Refusal,
    Refused,
    Snooze,
    State,
)

PRESSES = (Claim, Close, Snooze, HandOff, KeepOpen)
ADMIN_PRESSES = (Close, Snooze, HandOff, KeepOpen)  # what an admin may press for the owner


def _stamp(at: float) -> str:
    return str(round(at * 1000))  # milliseconds: short enough for Telegram's 64 bytes


def nudge_id(conv: Conversation) -> str:
    """The id of the conversation's current nudge ("" when none is current): the time it
    was sent. Snoozing, answering or a return ends it; the next nudge has another."""
    if conv.state is State.WAITING_ON_OPERATOR and conv.nudged_at is not None:
        return "n" + _stamp(conv.nudged_at)
    return ""


def reminder_id(conv: Conversation) -> str:
    """The id of the current close reminder ("" when none is current): the start of the
    silence it is about, which a word from anyone or *Keep open* ends."""
    if conv.state is State.WAITING_ON_CUSTOMER and conv.reminded:
        return "r" + _stamp(conv.timer_from)
    return ""


def presser(event: Press) -> str:
    return event.operator if isinstance(event, Claim) else event.by


def current(conv: Conversation, event: Press) -> bool:
    """Whether the button still belongs to the conversation as it stands: a nudge's or a
    reminder's buttons only while that notice is the current one. Snooze, Hand off and
    Keep open without an id (buttons from before ids) are never current."""
    notice = getattr(event, "notice_id", "")
    if isinstance(event, Snooze):
        return bool(notice) and notice == nudge_id(conv)
    if isinstance(event, KeepOpen):
        return bool(notice) and notice == reminder_id(conv)
    if isinstance(event, HandOff):
        return notice == CARD_BUTTON or (bool(notice) and notice == nudge_id(conv))
    if isinstance(event, Close) and notice not in ("", CARD_BUTTON):
        return notice in (nudge_id(conv), reminder_id(conv))
    return True


def refusal(conv: Conversation, event: Press) -> Refused | None:
    """Why `event` may not act on `conv`, or None when it may (or has nothing to act on).

    Claim: the team's operators. Snooze, Hand off, Keep open: the owner or an admin.
    Close: the owner, an admin, or any operator while nobody owns the conversation.
    """
    who = presser(event)

    def refused(reason: Refusal) -> Refused:
        owner = conv.owner if conv.state is not State.CLOSED else None
        return Refused(conv.ref, who, reason, owner, getattr(event, "via", "button"))

    if not current(conv, event):
        return refused(Refusal.STALE)
    if conv.state is State.CLOSED:
        return None  # closing twice, claiming a closed one: nothing to do, nothing to refuse
    if isinstance(event, Claim):
        if not event.on_team:
            return refused(Refusal.NOT_ON_TEAM)
        return refused(Refusal.CLAIMED) if conv.owner not in (None, who) else None
    if who == conv.owner or event.admin:
        return None
    if conv.owner is None:  # any operator may close it; there is nothing else to own
        return refused(Refusal.NOT_ON_TEAM) if isinstance(event, Close) and not event.on_team \
            else None
    return refused(Refusal.NOT_YOURS)


def needs_admin(conv: Conversation | None, event: InboundEvent) -> bool:
    """Whether deciding `event` depends on the presser being an admin, so that adapters
    ask the platform only then: not for the owner's presses, a stale button, or a Claim."""
    if conv is None or not isinstance(event, ADMIN_PRESSES) or event.admin:
        return False
    return refusal(conv, event) is not None and refusal(conv, replace(event, admin=True)) is None

"""The console platform: delivers actions as readable transcript lines (the demo's view)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chat_rescue.bot import texts
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.engine import card_status
from chat_rescue.bot.model import (
    TO_CUSTOMER,
    Action,
    CloseNotice,
    CloseReminder,
    Digest,
    Escalate,
    HandoverDigest,
    Nudge,
    OffHoursNotice,
    PostCard,
    Refused,
    Relay,
    ReturnToInbox,
    SweepCard,
    UpdateCard,
)
from chat_rescue.bot.outbox import Posted

TEAM = "#support-team"


class ConsolePlatform:
    """Prints what the team channel and the customers would see."""

    name = "console"

    def __init__(self, clock: Clock, write: Callable[[str], None] = print) -> None:
        self.clock = clock
        self.write = write
        self.cards = 0
        self.lines: list[str] = []
        self._handlers: dict[type, Callable[[Any], Posted | None]] = {
            PostCard: self._post_card,
            UpdateCard: self._update_card,
            Nudge: self._nudge,
            ReturnToInbox: self._returned,
            Escalate: self._escalate,
            CloseReminder: self._close_reminder,
            CloseNotice: self._close_notice,
            OffHoursNotice: self._off_hours_notice,
            Refused: self._refused,
            Digest: self._digest,
            Relay: lambda action: None,
            SweepCard: self._sweep_card,
            HandoverDigest: self._handover,
        }

    async def deliver(self, action: Action) -> Posted | None:
        handler = self._handlers.get(type(action))
        if handler is None:
            raise TypeError(f"console cannot deliver {type(action).__name__}")
        return handler(action)

    def destination(self, action: Action) -> str:
        return f"customer:{action.ref.channel}" if isinstance(action, TO_CUSTOMER) else TEAM

    def free_at(self, action: Action, now: float) -> float:
        return now  # a transcript takes any pace

    def say(self, where: str, text: str) -> None:
        """One transcript line, stamped with the (demo) clock."""
        stamp = datetime.fromtimestamp(self.clock.now(), UTC).strftime("%H:%M:%S")
        line = f"{stamp}  {where:<14} {text}"
        self.lines.append(line)
        self.write(line)

    def _post_card(self, action: PostCard) -> Posted:
        self.cards += 1
        conv = action.conversation
        card = f"card-{self.cards}"
        self.say(TEAM, f"[card {self.cards}] {texts.card_title(conv)}: \"{conv.preview}\" "
                       f"- {card_status(conv)}  [Claim]")
        return Posted(card)

    def _update_card(self, action: UpdateCard) -> None:
        conv = action.conversation
        number = (conv.card or "card-?").removeprefix("card-")
        self.say(TEAM, f"[card {number} updated] {texts.card_title(conv)} - {card_status(conv)}")

    def _nudge(self, action: Nudge) -> None:
        self.say("  thread", texts.nudge(action, "@" + action.owner)
                 + "  [Reply now] [Snooze] [Close] [Hand off]")

    def _returned(self, action: ReturnToInbox) -> None:
        if action.previous_owner:
            self.say("  thread", texts.returned_to_owner(action, "@" + action.previous_owner))
        self.say(TEAM, texts.returned(action) + "  [Claim]")

    def _escalate(self, action: Escalate) -> None:
        self.say(TEAM, texts.escalated(action, action.target) + "  [Claim]")

    def _close_reminder(self, action: CloseReminder) -> None:
        self.say("  thread", texts.close_reminder(action, "@" + (action.owner or "owner"))
                 + "  [Close] [Keep open]")

    def _close_notice(self, action: CloseNotice) -> None:
        self.say(f"to {action.ref.channel}", texts.close_notice(action))

    def _off_hours_notice(self, action: OffHoursNotice) -> None:
        self.say(f"to {action.ref.channel}", texts.off_hours_notice(action))

    def deliver_now(self, action: Refused) -> None:
        """Show a refusal at once, as a platform answers a press (it is never queued)."""
        self._refused(action)

    def _refused(self, action: Refused) -> None:
        self.say(f"  to @{action.who}", texts.refused(action, "@" + (action.owner or "")))

    def _digest(self, action: Digest) -> None:
        self.say(TEAM, texts.digest_title(len(action.notices)))
        for notice in action.notices:
            self.say(TEAM, "  - " + texts.describe(notice))

    def _sweep_card(self, action: SweepCard) -> None:
        self.say(TEAM, texts.sweep_title(action, "@" + action.operator))
        for line in action.lines:
            text = texts.sweep_line(line, action.drawn_at, line.customer, line.preview)
            self.say(TEAM, f"  - [{texts.GROUP_TITLES.get(line.group, line.group)}] {text}  "
                           "[Close] [Keep] [Hand off]")
        self.say(TEAM, f"  [{texts.close_all_label(action)}] [{texts.HAND_REST}]")
        # What happens at the end to what is left, as Slack's and Telegram's cards say.
        footer = " ".join(filter(None, [texts.sweep_rule(action), texts.sweep_unowned(action)]))
        if footer:
            self.say(TEAM, "  " + footer)

    def _handover(self, action: HandoverDigest) -> None:
        self.say(TEAM, texts.handover_title(action))
        for line in action.lines:
            owner = "@" + line.previous_owner if line.previous_owner else ""
            self.say(TEAM, "  - " + texts.handover_line(line, action.drawn_at, line.customer,
                                                        line.preview, owner) + "  [Claim]")

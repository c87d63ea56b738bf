"""What a bot's stored history must look like, and what it calls for on the platforms.

`audit` replays each conversation's history: valid transitions, no timer that fired twice
in one period, and the stored state is where the history leads. `expected_posts` counts
the posts the history (and the Telegram updates the store processed) call for, per
customer and kind, for `ledger.compare`. Used by the reliability tests that run the bot
as a child process (`bot_process.BotProcess`) with sub-second `Timers`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chat_rescue.sandbox.ledger import DROPPED, TIMER_EVENTS, Post, announced
from chat_rescue.sandbox.store_view import Event

POSTED_KINDS = (*TIMER_EVENTS, "card", "topic", "announce", "relay_in", "relay_out")


@dataclass(frozen=True, slots=True)
class Timers:
    """Sub-second rescue timers (seconds), and the environment that sets them."""

    first_response: float = 0.4
    idle: float = 0.4
    accept: float = 0.6
    escalate: float = 0.8
    close_reminder: float = 1.0
    escalate_repeats: int = 2

    def env(self) -> dict[str, str]:
        def ms(seconds: float) -> str:
            return f"{round(seconds * 1000)}ms"

        return {
            "RESCUE_FIRST_RESPONSE": ms(self.first_response),
            "RESCUE_IDLE": ms(self.idle),
            "RESCUE_ACCEPT": ms(self.accept),
            "RESCUE_ESCALATE": ms(self.escalate),
            "RESCUE_CLOSE_REMINDER": ms(self.close_reminder),
            "RESCUE_AUTO_CLOSE": "off",
            "RESCUE_ESCALATE_REPEATS": str(self.escalate_repeats),
        }


def logged_errors(log: Path) -> list[str]:
    """ERROR and CRITICAL lines and tracebacks in a bot's log."""
    return [line for line in log.read_text(errors="replace").splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]


def token(key: str, row: Mapping[str, Any]) -> str:
    """The customer token the ledger uses: the Slack user id, the Telegram user id."""
    return str(row["customer"]) if key.startswith("slack:") else key.split(":")[1]


def audit(rows: Mapping[str, Mapping[str, Any]], history: Mapping[str, list[Event]],
          timers: Timers) -> list[str]:
    """Replay each conversation's history: valid transitions, no repeat within one period,
    and the stored state is where the history leads."""
    problems: list[str] = []
    for key, row in rows.items():
        events = history.get(key, [])
        phase, owner, nudged, reminded = "", None, False, False
        escalations, last_escalation, last_reminder = 0, None, None
        for kind, at, actor in events:
            where = f"{key}: {kind} at {at:.3f} after {phase or 'nothing'}"
            if kind == "opened":
                if phase:
                    problems.append(f"{where}: opened twice")
                phase, owner, escalations, last_escalation = "queued", None, 0, None
            elif kind == "claimed":
                if phase != "queued":
                    problems.append(f"{where}: claim of an owned conversation")
                phase, owner, nudged, reminded = "owned", actor, False, False
                escalations, last_escalation = 0, None
            elif kind in ("first_reply", "reply"):
                if phase != "owned":
                    problems.append(f"{where}: reply without an owner")
                nudged, reminded, escalations, last_escalation = False, False, 0, None
            elif kind == "nudged":
                if phase != "owned" or nudged:
                    problems.append(f"{where}: nudged twice in one idle period"
                                    if nudged else f"{where}: nudge without an owner")
                nudged = True
            elif kind == "reminded":
                # An operator's second message starts a new silence without an event of its
                # own, so two reminders need not have a reply between them; a reminder
                # fired twice for one silence would come sooner than the timer allows.
                if phase != "owned":
                    problems.append(f"{where}: reminder without an owner")
                if last_reminder is not None \
                        and at - last_reminder < timers.close_reminder - 0.05:
                    problems.append(f"{where}: reminded again after {at - last_reminder:.3f}s")
                reminded, last_reminder = True, at
            elif kind == "returned":
                if phase != "owned":
                    problems.append(f"{where}: returned twice / without an owner")
                phase, owner, nudged, reminded = "queued", None, False, False
                escalations, last_escalation = 0, None
            elif kind == "escalated":
                escalations += 1
                if phase != "queued":
                    problems.append(f"{where}: escalation of an owned conversation")
                if escalations > timers.escalate_repeats + 1:
                    problems.append(f"{where}: escalation {escalations} in one period")
                if last_escalation is not None and at - last_escalation < timers.accept - 0.05:
                    problems.append(f"{where}: escalated again after {at - last_escalation:.3f}s")
                last_escalation = at
            elif kind == "snoozed":
                nudged = False
            elif kind == "closed":
                if phase == "closed":
                    problems.append(f"{where}: closed twice")
                phase = "closed"
            elif kind == "reopened":
                if phase != "closed":
                    problems.append(f"{where}: reopened while open")
                phase = "owned" if owner else "queued"
                nudged, reminded, escalations, last_escalation = False, False, 0, None
        state = row["state"]
        expected_phase = {"closed": "closed", "queued": "queued"}.get(state, "owned")
        if phase != expected_phase or (phase == "owned" and owner != row["owner"]):
            problems.append(f"{key}: history leads to {phase}/{owner}, stored {state}/"
                            f"{row['owner']}: {[e[0] for e in events]}")
        if state == "queued" and row["escalations"] != escalations:
            problems.append(f"{key}: {row['escalations']} escalations stored, {escalations} "
                            "in the history of this period")
        if row["nudged_at"] is not None and not nudged:
            problems.append(f"{key}: stored as nudged, no nudge in this idle period")
        if row["reminded"] and not reminded:
            problems.append(f"{key}: stored as reminded, no reminder in this silence")
    return problems


def expected_posts(rows: Mapping[str, Mapping[str, Any]], history: Mapping[str, list[Event]],
                   telegram_updates: Mapping[int, tuple[str, str]], inbound: set[str],
                   group: int, posts: Iterable[Post] = ()) -> Counter[tuple[str, str]]:
    """(customer, kind) -> how many posts the store's history and inbound ids call for.

    `telegram_updates` maps each update id the test queued to (conversation key, relay
    source `<chat>:<message id>`, or "" for a button press); those the store processed
    (their inbound id is in `inbound`) call for one copy each.
    """
    wanted: Counter[tuple[str, str]] = Counter()
    made = list(posts)
    for key, row in rows.items():
        who = token(key, row)
        owner: str | None = None
        for kind, _, actor in history.get(key, []):
            if kind in TIMER_EVENTS:
                wanted[(who, kind)] += 1
            elif kind == "notice_dropped" and actor in DROPPED:
                # Its reason had gone by its turn (answered, claimed, replaced): not posted.
                wanted[(who, DROPPED[actor])] -= 1
            elif kind == "reopened" and owner is None:
                wanted[(who, "returned")] += 1  # back in the inbox: "reopened by the customer"
            if kind == "claimed":
                owner = actor
            elif kind == "returned":
                owner = None
        wanted[(who, "card")] = 1
        if key.startswith("telegram:"):
            wanted[(who, "topic")] = 1
            # Announced in General unless answered before its card went out.
            wanted[(who, "announce")] = announced(made, who)
    for update_id, (key, source) in telegram_updates.items():
        if source and f"telegram:{update_id}" in inbound:
            kind = "relay_out" if source.startswith(f"{group}:") else "relay_in"
            wanted[(key.split(":")[1], kind)] += 1
    return wanted

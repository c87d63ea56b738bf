"""The sweep before a shift ends, carried out: plans each team's sweeps, takes each step
when it is due, and applies presses on sweep cards.

A sweep is a row in the store (`sweep.Sweep`: the team and the instant its shifts end)
whose `due` the ticker claims like a conversation's deadline. Its steps:

1. `sweep` before the end: sort the team's open conversations (`sweep.group_of`), record
   them, and queue one card per operator whose shift ends then;
2. at the end: apply each operator's choices and the default rule (`sweep.fate`) through
   the engine (`ShiftEnd`, `Close`: the conversation's version guards each), then plan the
   team's next sweeps;
3. when somebody is next at work: queue the handover digest of what is still in the inbox.

A step is taken in slices (at most SLICE conversations, or a few operators' cards), each
one transaction that first moves the sweep on from the version it was read at (with a
cursor: where the step stands), so a restart (even `kill -9`) neither skips a slice (it
is still due) nor repeats one (moved on with its work, or not at all), and the event loop
is never held for more than one. Cards are delivered by the outbox like every action: at
least once, never after the shift's end. A sweep whose cards are out is called off when
the hours or `sweep` change so that its end no longer comes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Protocol

from chat_rescue.bot import texts
from chat_rescue.bot.clock import Clock
from chat_rescue.bot.hours_text import local_time
from chat_rescue.bot.model import (
    Close,
    Conversation,
    HandoverDigest,
    ShiftEnd,
    State,
    SweepCard,
    SweepLine,
)
from chat_rescue.bot.ports import (
    Batching,
    Change,
    Conversations,
    Outcome,
    ScopeSettings,
    SweepCards,
    SweepPlans,
    Teams,
)
from chat_rescue.bot.service import Service, team_scope
from chat_rescue.bot.sweep import (
    GROUPS,
    Choice,
    Fate,
    Group,
    Phase,
    Rule,
    Shift,
    Sweep,
    SweepItem,
    covers,
    ends_anybody,
    fate,
    group_of,
    opening_after,
    plan,
    shifts_of,
    since_of,
)

log = logging.getLogger(__name__)

RETRY_FAILED = 30.0  # seconds before a sweep step whose handling raised is tried again
SLICE = 200  # conversations a sweep's steps take per wake-up of the ticker (~25 ms)
VERBS = ("close_all", "hand_rest", "close", "keep", "hand_off")


@dataclass(frozen=True, slots=True)
class Answer:
    """What a press on a sweep card did, for the presser alone; `refused`: nothing, and
    why (the shift has ended, not their card: then `whose` is the card's operator, for the
    platform to name in `texts.not_your_card`)."""

    text: str
    changed: bool = False
    refused: bool = False
    whose: str | None = None


class SweeperStore(SweepPlans, SweepCards, Teams, ScopeSettings, Conversations, Batching,
                   Protocol):
    """What the sweeper asks of the store: the sweeps' ports, the teams' open conversations
    and shifts, and a press's inbound id committed with what it did."""


class Sweeper:
    """Plans, carries out and answers the sweeps of every team in the store."""

    def __init__(self, store: SweeperStore, service: Service, clock: Clock) -> None:
        self.store = store
        self.service = service
        self.clock = clock
        self._planned: set[str] = set()  # teams whose sweeps were planned by this process
        self._pending: set[str] = set()  # teams to plan at the ticker's next wake-up
        service.on_team(self._team_changed)

    def start(self) -> None:
        """Plan every team's sweeps at the ticker's first wake-up (the hours may have
        changed while the bot was down; a sweep under way goes on as it was)."""
        self._pending.update(self.store.teams())

    def _team_changed(self, team: str, changed: bool) -> None:
        if changed:  # its settings: plan again now, in the transaction that changed them
            self.plan(team, self.clock.now())
        elif team not in self._planned and team not in self._pending:
            self._pending.add(team)  # a team new to this process: at the next wake-up
            self.service.scheduled(self.clock.now())

    # -- planning -------------------------------------------------------------------------

    def shifts(self, team: str) -> tuple[Shift, ...]:
        return shifts_of(self.store.settings(team_scope(team)))

    def plan(self, team: str, now: float) -> list[Sweep]:
        """Store the team's next sweeps as the settings say now (calling off one whose
        cards are out for an end that no longer comes); returns them."""
        sweeps = plan(team, self.service.team_policy(team), self.shifts(team), now)
        self.store.plan_sweeps(team, sweeps, now)
        self._planned.add(team)
        self._pending.discard(team)
        for sweep in sweeps:
            self.service.scheduled(sweep.sweep_at)
        return sweeps

    # -- the steps ------------------------------------------------------------------------

    def fire_due(self, now: float) -> int:
        """Take due steps, slices of at most SLICE conversations in all (each slice its own
        transaction), then plan the teams waiting for it; returns how many sweeps were
        taken up (moved on, lost to another process, or failed and postponed). A
        step with more left stays due: the ticker comes back for the next slice after
        letting other work in."""
        # Due steps first: planning from `now` forgets planned sweeps it would not plan
        # again, and one whose end passed while the bot was down must still be carried out.
        moved: set[str] = set()
        budget = SLICE
        while budget > 0:
            sweep: Sweep | None = None
            try:
                # Claimed inside the transaction that takes the slice (the step's own batch
                # joins it): on PostgreSQL another replica's sweeper passes over it.
                with self.store.batch():
                    due = self.store.due_sweeps(now, 1)
                    if not due:
                        break
                    sweep = due[0]
                    used = self.advance(sweep, now, budget)
            except Exception:
                if sweep is None:
                    raise  # the store itself failed: the ticker's supervisor retries
                # One broken sweep must not stop the timers, nor spin: its step moves on
                # (in the store, so a restart agrees) and is tried again.
                log.exception("sweep %s failed at %s; trying again in %gs", sweep.id,
                              sweep.phase, RETRY_FAILED)
                self.store.postpone_sweep(sweep.id, now + RETRY_FAILED)
                used = 1
            moved.add(sweep.id)
            budget -= max(1, used)
        for team in sorted(self._pending):
            try:
                with self.store.batch():
                    self.plan(team, now)
            except Exception:
                log.exception("could not plan the sweeps of %s; trying again later", team)
        return len(moved)

    def advance(self, sweep: Sweep, now: float, limit: int = SLICE) -> int:
        """Take the next slice of the sweep's step (it is due): at most `limit`
        conversations; returns how many were taken."""
        before = (Phase.PLANNED, Phase.SORTING, Phase.DRAWING)  # the cards not all out yet
        if sweep.phase in before and now < sweep.ends_at:
            if sweep.phase is Phase.DRAWING:
                return self._draw(sweep, now, limit)
            return self._sort(sweep, now, limit)
        if sweep.phase in (*before, Phase.CARDED, Phase.ENDING):
            # A sweep whose cards came due only after the end (the bot was down): the end's
            # rule all the same, without cards nobody could press any more.
            return self._end(sweep, now, limit)
        if sweep.phase is Phase.HANDED:
            self._handover(sweep, now)
        return 1

    def _slice(self, sweep: Sweep, step: Phase, limit: int) -> tuple[list[Conversation], bool]:
        """The next of the team's open conversations for `step` (from the first, unless it
        is the step under way), and whether they are its last."""
        after = sweep.cursor if sweep.phase is step else ""
        found = self.store.open_conversations(sweep.team, after, limit)
        return found, len(found) < limit

    def _group(self, conv: Conversation, now: float) -> Group | None:
        return group_of(conv, self.service.policy(conv.team, conv.ref), now)

    def _sort(self, sweep: Sweep, now: float, limit: int) -> int:
        """Step 1, a slice at a time: sort the team's open conversations, recording each
        of an operator whose shift ends (and each nobody has) with its line."""
        with self.store.batch():
            convs, last = self._slice(sweep, Phase.SORTING, limit)
            first = sweep.phase is Phase.PLANNED
            shifts = self.shifts(sweep.team)
            schedule = self.service.team_policy(sweep.team).schedule
            found: list[tuple[Conversation, Group]] = []
            for conv in convs:
                group = self._group(conv, now)
                owner = conv.owner
                if group is None or owner is not None and not covers(
                        owner, sweep.shifts, shifts, schedule, sweep.ends_at):
                    continue
                found.append((conv, group))
            unowned = sum(1 for conv, _ in found if conv.owner is None)
            moved = replace(sweep, cursor="" if last else convs[-1].ref.key,
                            drawn_at=now if first else sweep.drawn_at,
                            unowned=unowned + (0 if first else sweep.unowned))
            if not self.store.advance_sweep(moved, Phase.DRAWING if last else Phase.SORTING):
                return 0  # another process took this slice
            cards = {operator: card for card, operator in self.store.sweep_cards(sweep.id)}
            items: list[SweepItem] = []
            for conv, group in found:
                card = None
                if conv.owner is not None:
                    card = cards.get(conv.owner) or self.store.add_sweep_card(sweep.id,
                                                                              conv.owner)
                    cards[conv.owner] = card
                items.append(SweepItem(sweep.id, conv.ref.key, conv.owner, card, group,
                                       customer=conv.customer, preview=conv.preview,
                                       since=since_of(conv, group)))
            self.store.put_sweep_items(items)
        return max(1, len(convs))

    def _draw(self, sweep: Sweep, now: float, limit: int) -> int:
        """Step 1, then: queue the cards, an operator's at a time, as many as make a slice;
        with the last, the shift's end is what comes next."""
        with self.store.batch():
            policy = self.service.team_policy(sweep.team)
            ends = local_time(policy.schedule, sweep.ends_at, now)
            done = int(sweep.cursor or 0)
            waiting = [(card, who) for card, who in self.store.sweep_cards(sweep.id)
                       if card > done]
            cards: list[SweepCard] = []
            lines_taken = 0
            for card, operator in waiting:
                owned = self.store.sweep_items(sweep.id, card=card)
                owned.sort(key=lambda item: (GROUPS.index(item.group), item.since))
                lines = tuple(SweepLine(item.conversation, item.customer, item.preview,
                                        item.group.value, item.since) for item in owned)
                cards.append(SweepCard(sweep.team, sweep.id, card, operator, sweep.ends_at,
                                       sweep.drawn_at or now, ends, lines, sweep.unowned,
                                       _rule(policy.sweep_default)))
                lines_taken += len(lines)
                if lines_taken >= limit:
                    break
            last = len(cards) == len(waiting)
            moved = replace(sweep, cursor="" if last else str(cards[-1].card))
            if not self.store.advance_sweep(moved, Phase.CARDED if last else Phase.DRAWING):
                return 0
            if cards:
                self.service.queue(cards)
        if last:
            log.info("sweep %s: %d cards drawn", sweep.id, len(self.store.sweep_cards(sweep.id)))
            self.service.scheduled(sweep.ends_at)
        return max(1, lines_taken)

    def _end(self, sweep: Sweep, now: float, limit: int) -> int:
        """Step 2, a slice at a time: what each operator decided, else the default rule
        (one its owner took after the cards were drawn is undecided too); with the last
        slice, the team's next sweeps. A conversation whose handling fails is logged and
        left as it is: one broken row never holds up the team's sweeps."""
        with self.store.batch():
            policy = self.service.team_policy(sweep.team)
            if policy.sweep is None and sweep.phase is not Phase.ENDING:
                # `sweep off` since (an end missed while the bot was down): nothing swept.
                self.store.advance_sweep(sweep, Phase.CALLED_OFF)
                return 1
            shifts = self.shifts(sweep.team)
            convs, last = self._slice(sweep, Phase.ENDING, limit)
            opens = opening_after(policy.schedule, shifts, now) if last else sweep.opens_at
            # Nobody ever at work again: no digest to wait for.
            phase = Phase.ENDING if not last else Phase.HANDED if opens is not None \
                else Phase.DONE
            moved = replace(sweep, opens_at=opens, cursor="" if last else convs[-1].ref.key)
            if not self.store.advance_sweep(moved, phase):
                return 0
            rule = Rule(_rule(policy.sweep_default))
            known = {item.conversation: item
                     for item in self.store.sweep_items(sweep.id, [c.ref.key for c in convs])}
            recorded: list[SweepItem] = []
            ending: list[tuple[ShiftEnd, Conversation]] = []
            seam = not ends_anybody(sweep.shifts, shifts, policy.schedule, sweep.ends_at)
            for conv in convs:
                group = self._group(conv, now)
                item = known.get(conv.ref.key)
                if group is Group.UNOWNED:
                    if seam:  # nobody goes home: no digest of the inbox for anybody
                        continue
                    recorded.append(SweepItem(sweep.id, conv.ref.key, None, None, group,
                                              fate=Fate.UNOWNED))
                    continue
                if group is None or conv.owner is None or not covers(
                        conv.owner, sweep.shifts, shifts, policy.schedule, sweep.ends_at):
                    continue
                mine = item is not None and item.operator == conv.owner
                choice = item.choice if item is not None and mine else None
                result = fate(group, choice, rule)
                if result in (Fate.CLOSE, Fate.HAND_OVER):
                    ending.append((ShiftEnd(conv.ref, now, conv.owner,
                                            close=result is Fate.CLOSE), conv))
                recorded.append(SweepItem(
                    sweep.id, conv.ref.key, conv.owner, item.card if item and mine else None,
                    group, choice, result, conv.customer, conv.preview, since_of(conv, group)))
            failed = self._end_all(sweep, ending)
            recorded = [item for item in recorded if item.conversation not in failed]
            self.store.put_sweep_items(recorded)
            if last:
                self.plan(sweep.team, now)
        # Per slice (a count of the whole sweep would read every item again, on the loop).
        log.info("sweep %s: the shift ended%s; %s", sweep.id, "" if last else " (a slice)",
                 ", ".join(f"{n} {f}" for f, n in _count(recorded).items()) or "nothing open")
        if last and opens is not None:
            self.service.scheduled(opens)
        return max(1, len(convs))

    def _end_all(self, sweep: Sweep, ending: list[tuple[ShiftEnd, Conversation]]) -> set[str]:
        """Close or hand over a slice's conversations, committed together; a conversation
        whose handling fails is logged and left as it is (one broken row never holds up
        the team's sweeps). Returns the keys of those that failed."""
        try:
            self.service.handle_all(ending)
            return set()
        except Exception:
            log.warning("sweep %s: a slice failed together; each on its own", sweep.id)
        failed: set[str] = set()
        for event, conv in ending:
            try:
                self.service.handle(event, read=conv)
            except Exception:
                log.exception("sweep %s: could not end the shift of %s; left as it is",
                              sweep.id, conv.ref.key)
                failed.add(conv.ref.key)
        return failed

    def _handover(self, sweep: Sweep, now: float) -> None:
        """Step 3: the next shift opens with what was handed over and is still unclaimed."""
        with self.store.batch():
            if not self.store.advance_sweep(sweep, Phase.DONE):
                return
            lines = self.store.sweep_inbox(sweep.id)
            if lines:
                self.service.queue([HandoverDigest(sweep.team, sweep.id, sweep.ends_at, now,
                                                   tuple(lines))])

    # -- presses on a card ----------------------------------------------------------------

    def card_operator(self, card: int) -> str | None:
        """Whose card it is (None for a card the store does not know)."""
        found = self.store.sweep_card(card)
        return found[1] if found else None

    def press(self, card: int, verb: str, key: str, by: str, *, admin: bool = False,
              inbound_id: str | None = None) -> Answer | None:
        """Apply a press on a sweep card: the card's operator or an admin, before the shift
        ends; None when `inbound_id` was processed before. Closes go through the engine
        (closed at shift end); Keep and Hand off are choices the shift's end carries out."""
        now = self.clock.now()
        with self.store.batch():
            # Recorded even when refused: a redelivered press is answered once, and what
            # the platform was told is handled is in the store.
            if inbound_id is not None and self.store.commit(
                    Change(inbound_id=inbound_id), now) is Outcome.DUPLICATE:
                return None
            found = self.store.sweep_card(card)
            if found is None or verb not in VERBS:
                return Answer(texts.SWEEP_UNKNOWN, refused=True)
            sweep_id, operator = found
            sweep = self.store.sweep(sweep_id)
            if sweep is not None and sweep.phase is Phase.CALLED_OFF:
                return Answer(texts.SWEEP_CALLED_OFF, refused=True)
            if sweep is None or sweep.phase not in (Phase.DRAWING, Phase.CARDED) \
                    or now >= sweep.ends_at:
                return Answer(texts.SWEEP_OVER, refused=True)
            if by != operator and not admin:
                return Answer(texts.not_your_card(operator), refused=True, whose=operator)
            items = self.store.sweep_items(sweep_id, card=card)
            return self._apply(sweep, operator, items, verb, key, by, admin, now)

    def _apply(self, sweep: Sweep, operator: str, items: list[SweepItem], verb: str, key: str,
               by: str, admin: bool, now: float) -> Answer:
        chosen: list[SweepItem] = []

        def still_mine(item: SweepItem) -> Conversation | None:
            conv = self.store.load(item.conversation)
            ok = conv is not None and conv.state is not State.CLOSED and conv.owner == operator
            return conv if ok else None

        def close(item: SweepItem, conv: Conversation) -> None:
            self.service.handle(Close(conv.ref, now, by, via="sweep", admin=admin))
            chosen.append(replace(item, choice=Choice.CLOSE))

        when = local_time(self.service.team_policy(sweep.team).schedule, sweep.ends_at, now)
        if verb == "close_all":
            moved = 0
            for item in items:
                if item.group is not Group.FINISHED or item.choice is not None:
                    continue
                conv = still_mine(item)
                if conv is not None and self._group(conv, now) is Group.FINISHED:
                    close(item, conv)
                else:
                    moved += 1
            self.store.put_sweep_items(chosen)
            return Answer(_closed_all(len(chosen), moved), changed=bool(chosen))
        if verb == "hand_rest":
            for item in items:
                if item.group is not Group.FINISHED and item.choice is None and still_mine(item):
                    chosen.append(replace(item, choice=Choice.HAND_OFF))
            self.store.put_sweep_items(chosen)
            if not chosen:
                return Answer("Nothing left to hand over: each has been decided.")
            return Answer(f"{_count_of(len(chosen))} go to the next shift when yours ends "
                          f"{when}.", changed=True)
        line = next((item for item in items if item.conversation == key), None)
        if line is None:
            return Answer(texts.NOT_ON_CARD, refused=True)
        conv = still_mine(line)
        if conv is None:
            return Answer(texts.MOVED_ON, refused=True)
        if verb == "close":
            if line.group is not Group.CUSTOMER_WAITING and \
                    self._group(conv, now) is Group.CUSTOMER_WAITING:
                return Answer(texts.WROTE_SINCE, refused=True)  # never closed on unseen
            close(line, conv)
            answer = "Closed."
        elif verb == "keep":
            chosen.append(replace(line, choice=Choice.KEEP))
            answer = "Kept: it stays with you after your shift."
        else:
            chosen.append(replace(line, choice=Choice.HAND_OFF))
            answer = f"It goes to the next shift when yours ends {when}."
        self.store.put_sweep_items(chosen)
        return Answer(answer, changed=True)


def _rule(written: str) -> str:
    return written if written in tuple(Rule) else Rule.HANDOVER.value


def _count(items: list[SweepItem]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        if item.fate is not None:
            counts[item.fate.value] += 1
    return dict(counts)


def _count_of(n: int) -> str:
    return f"{n} conversation" + ("" if n == 1 else "s")


def _closed_all(closed: int, moved: int) -> str:
    if not closed and not moved:
        return "Nothing left to close: no finished conversation is undecided."
    text = f"Closed {_count_of(closed)}." if closed else "Closed none."
    if moved:
        text += (f" {moved} {'is' if moved == 1 else 'are'} no longer finished (the customer "
                 "wrote, or somebody else has it) and stay open.")
    return text


"""Recorded history replayed through the real engine with other thresholds.

The people's events (`bot/inputs.py`) are fed to `engine.decide` in the order they came,
each conversation on its own, with the timers fired where the candidate policy has them
come due. What the people did stays as it was, with two exceptions that follow from what
they reacted to:

* A press on a nudge's or reminder's button belongs to the notice it came with. In the
  replay it acts on the notice standing then, if one stands (it was pressed on that
  notice); with none standing it changes nothing, as a stale button does.
* An operator who took a conversation up after it was returned to the inbox or operators
  were called in (a *rescue*) reacted to that call. When the replay makes the call later,
  they take it up that much later; when earlier, at the time they did (nobody answers a
  call faster than they answered). Without the call they do not come at all: the
  conversation waits on whoever has it. An operator answering a conversation they still
  have answers when they did.

A replay applies one policy per conversation to the whole window: thresholds or working
hours changed within it are not replayed (the hours in force count throughout).
Conversations opened before the window (or before inputs were recorded) are left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from heapq import heappop, heappush

from chat_rescue.bot import engine
from chat_rescue.bot.authority import nudge_id, reminder_id
from chat_rescue.bot.inputs import Input
from chat_rescue.bot.model import (
    CARD_BUTTON,
    Claim,
    Close,
    Conversation,
    DeadlineDue,
    HandOff,
    HistoryEvent,
    InboundEvent,
    KeepOpen,
    OperatorMessage,
    Snooze,
)
from chat_rescue.bot.policy import Policy

# What a call for operators is, in history: the rescues an operator reacts to.
CALLS = frozenset({"returned", "escalated"})
_TAKES = (Claim, OperatorMessage)


@dataclass(frozen=True, slots=True)
class Played:
    """One conversation as the replay left it: its history, and its state at the end."""

    key: str
    history: tuple[HistoryEvent, ...]
    last: Conversation | None


@dataclass(slots=True)
class _Reaction:
    """A take-up that followed a call in the recorded day: `delay` after the call."""

    item: Input
    delay: float


@dataclass(slots=True)
class _Conversation:
    """The replay of one conversation: what is to come, in time order."""

    policy: Policy
    until: float
    conv: Conversation | None = None
    history: list[HistoryEvent] = field(default_factory=list)
    held: list[_Reaction] = field(default_factory=list)  # waiting for the replay's call
    queue: list[tuple[float, int, Input]] = field(default_factory=list)
    seq: int = 0

    def push(self, at: float, item: Input) -> None:
        self.seq += 1
        heappush(self.queue, (at, self.seq, item))

    def run(self, before: float | None = None) -> None:
        """Replay what is queued and the timers that come due, up to the window's end (or
        up to, not including, `before`); what would come after stays queued."""
        end = self.until if before is None else min(self.until, before)
        while True:
            deadline = self.conv.deadline if self.conv is not None else None
            upcoming = self.queue[0][0] if self.queue else None
            if upcoming is not None and (upcoming > end or (before is not None
                                                            and upcoming >= before)):
                upcoming = None
            if deadline is not None and (deadline > end or (before is not None
                                                            and deadline >= before)):
                deadline = None
            if deadline is not None and (upcoming is None or deadline <= upcoming):
                assert self.conv is not None
                self._decide(DeadlineDue(self.conv.ref, deadline), deadline)
                continue
            if upcoming is None:
                return
            at, _, item = heappop(self.queue)
            self._decide(_rebound(item.event, self.conv), at)

    def _decide(self, event: InboundEvent, now: float) -> None:
        before = self.conv
        decision = engine.decide(before, event, self.policy, now)
        if decision.conversation is not None:
            self.conv = decision.conversation
        if not decision.history:
            return
        self.history += decision.history
        if self.held and any(h.kind in CALLS for h in decision.history):
            held, self.held = self.held, []
            for reaction in held:  # the call came: they take it up as long after as they did
                self.push(max(reaction.item.at, now + reaction.delay), reaction.item)

    def react(self, reaction: _Reaction, last_call: float | None) -> None:
        """A recorded take-up at its time: now, later, or once the replay calls too."""
        item, conv = reaction.item, self.conv
        actor = item.event.operator  # type: ignore[union-attr]
        if conv is not None and conv.owner == actor:
            self.push(item.at, item)  # their own conversation: they answer when they did
        elif last_call is not None:
            self.push(max(item.at, last_call + reaction.delay), item)
        else:
            self.held.append(reaction)


def _rebound(event: InboundEvent, conv: Conversation | None) -> InboundEvent:
    """A press acts on the notice standing now, as it did on the one standing then."""
    if conv is None or not isinstance(event, Snooze | HandOff | KeepOpen | Close):
        return event
    notice = event.notice_id
    if notice in ("", CARD_BUTTON):
        return event
    standing = nudge_id(conv) if notice.startswith("n") else reminder_id(conv)
    return replace(event, notice_id=standing or notice)


def reactions(inputs: Sequence[Input], history: Iterable[HistoryEvent]) -> dict[int, float]:
    """Which recorded take-ups answered a call (a return or a call for operators), as
    {index in `inputs`: seconds after the call}: the first Claim or operator message of
    the conversation after each call, timed from the latest call before it."""
    calls: dict[str, list[float]] = defaultdict(list)
    for event in history:
        if event.kind in CALLS:
            calls[event.ref.key].append(event.at)
    found: dict[int, float] = {}
    answered: dict[str, float] = {}  # the latest call each conversation had answered
    for index, item in enumerate(inputs):
        if not isinstance(item.event, _TAKES):
            continue
        times = calls.get(item.key)
        if not times:
            continue
        latest = max((t for t in times if t <= item.at), default=None)
        if latest is None or answered.get(item.key) == latest:
            continue
        answered[item.key] = latest
        found[index] = item.at - latest
    return found


def replay(inputs: Sequence[Input], policy_of: Callable[[Input], Policy], until: float,
           answers: dict[int, float] | None = None) -> Iterator[Played]:
    """Replay each conversation that `inputs` opens, under the policy `policy_of` gives
    its opening input, up to `until`. `answers`: the take-ups that answered a call
    (`reactions`); without them, every event comes at its recorded time."""
    by_key: dict[str, list[tuple[int, Input]]] = defaultdict(list)
    for index, item in enumerate(inputs):
        by_key[item.key].append((index, item))
    answers = answers or {}
    for key, items in by_key.items():
        if not items[0][1].opened:
            continue  # opened before the window: its state then is not known
        yield _play(key, items, policy_of(items[0][1]), until, answers)


def _play(key: str, items: list[tuple[int, Input]], policy: Policy, until: float,
          answers: dict[int, float]) -> Played:
    state = _Conversation(policy, until)
    for index, item in items:
        delay = answers.get(index)
        if delay is None:
            state.push(item.at, item)
            continue
        # Everything before this take-up happens first, so the replay's calls are known.
        state.run(before=item.at)
        state.react(_Reaction(item, delay), _last_call(state))
    state.run()
    return Played(key, tuple(state.history), state.conv)


def _last_call(state: _Conversation) -> float | None:
    """When the replay last called for operators, if nobody has taken it since."""
    conv = state.conv
    if conv is None or conv.owner is not None:
        return None
    for event in reversed(state.history):
        if event.kind in CALLS:
            return event.at
        if event.kind in ("claimed", "closed", "opened", "reopened"):
            return None
    return None

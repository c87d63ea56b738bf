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
  they take it up that much later, and the rest of the conversation comes that much later
  with them; when earlier, at the time they did (nobody answers a call faster than they
  answered). Without the call they do not come at all, nor does the rest: the customer
  waits on whoever has it. An operator answering a conversation they still have answers
  when they did.

A replay applies one policy per conversation to the whole window: thresholds or working
hours changed within it are not replayed (the hours in force count throughout).
A conversation is replayed from its first exchange that began in the window (its first
message, or a reopening: Telegram keeps one conversation per customer for life); those
begun before the window (or before events were recorded) are left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from chat_rescue.bot import engine
from chat_rescue.bot.authority import nudge_id, reminder_id
from chat_rescue.bot.inputs import Input
from chat_rescue.bot.model import (
    CARD_BUTTON,
    Claim,
    Close,
    Conversation,
    CustomerMessage,
    DeadlineDue,
    HandOff,
    HistoryEvent,
    InboundEvent,
    KeepOpen,
    OperatorMessage,
    Snooze,
    State,
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
class _Conversation:
    """The replay of one conversation so far."""

    policy: Policy
    until: float
    conv: Conversation | None = None
    history: list[HistoryEvent] = field(default_factory=list)

    def advance(self, before: float | None = None, *, to_call: bool = False) -> bool:
        """Fire the timers that come due before `before` (or up to the window's end);
        with `to_call`, stop after the first that calls for operators. Returns whether
        one did."""
        while self.conv is not None and self.conv.deadline is not None:
            due = self.conv.deadline
            if due > self.until or (before is not None and due >= before):
                return False
            history = self.decide(DeadlineDue(self.conv.ref, due), due)
            if to_call and any(h.kind in CALLS for h in history):
                return True
        return False

    def decide(self, event: InboundEvent, now: float) -> tuple[HistoryEvent, ...]:
        decision = engine.decide(self.conv, event, self.policy, now)
        if decision.conversation is not None:
            self.conv = decision.conversation
        self.history += decision.history
        return decision.history

    def take_up(self, item: Input, at: float, delay: float) -> float | None:
        """When an operator who took the conversation up `delay` after a call does so in
        the replay: at `at` if they have it or the replay called in time; else as long
        after the replay's call, which may come later still (None: it never comes)."""
        actor = item.event.operator  # type: ignore[union-attr]
        if self.conv is not None and self.conv.owner == actor:
            return at
        called = self.last_call()
        if called is None:
            if not self.advance(to_call=True):
                return None
            called = self.last_call()
            assert called is not None
        return max(at, called + delay)

    def last_call(self) -> float | None:
        """When the replay last called for operators, if nobody has taken it since."""
        if self.conv is None or self.conv.owner is not None:
            return None
        for event in reversed(self.history):
            if event.kind in CALLS:
                return event.at
            if event.kind in ("claimed", "closed", "opened", "reopened"):
                return None
        return None


def _rebound(item: Input, event: InboundEvent, conv: Conversation | None) -> InboundEvent:
    """A press acts on the notice standing now, as it did on the one standing then. One
    that changed nothing then keeps its notice: stale then, it is current now only if that
    very notice stands (a longer timer kept it)."""
    if conv is None or item.refused or not isinstance(event, Snooze | HandOff | KeepOpen | Close):
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
           answers: dict[int, float] | None = None,
           only: Callable[[str], bool] | None = None) -> Iterator[Played]:
    """Replay each conversation that `inputs` opens, under the policy `policy_of` gives
    its opening input, up to `until`. `answers`: the take-ups that answered a call
    (`reactions`); without them, every event comes at its recorded time. `only`: the
    conversation keys to replay (all by default)."""
    by_key: dict[str, list[tuple[int, Input]]] = defaultdict(list)
    for index, item in enumerate(inputs):
        if only is None or only(item.key):
            by_key[item.key].append((index, item))
    answers = answers or {}
    for key, items in by_key.items():
        start = next((n for n, (_, item) in enumerate(items) if item.opened), None)
        if start is None:
            continue  # its exchanges began before the window: their state then is unknown
        yield _play(key, items[start:], policy_of(items[start][1]), until, answers)


def first_openings(inputs: Iterable[Input]) -> dict[str, float]:
    """When each conversation's first exchange in `inputs` began (the customer's message's
    own time): where its replay starts, and its record with it."""
    found: dict[str, float] = {}
    for item in inputs:
        if item.opened and item.key not in found:
            found[item.key] = item.event.at
    return found


def _reopening(item: Input) -> Conversation | None:
    """The closed conversation a reopening found (None for a first message): closed, with
    the owner it keeps; what else it held the reopening starts afresh."""
    if not item.reopened:
        return None
    event = item.event
    assert isinstance(event, CustomerMessage)
    return Conversation(event.ref, item.team, event.customer, event.at, state=State.CLOSED,
                        owner=item.owner, timer_from=item.at)


def _play(key: str, items: list[tuple[int, Input]], policy: Policy, until: float,
          answers: dict[int, float]) -> Played:
    state = _Conversation(policy, until, _reopening(items[0][1]))
    late = 0.0  # how much later than recorded the rest of the conversation comes
    for index, item in items:
        at = item.at + late
        delay = answers.get(index)
        if delay is not None:
            state.advance(before=at)
            taken = state.take_up(item, at, delay)
            if taken is None:
                break  # the call it answered never comes: the rest does not happen
            late, at = late + taken - at, taken
        state.advance(before=at)
        if at > until:
            break
        event = item.event
        if late:
            event = replace(event, at=event.at + late)
        state.decide(_rebound(item, event, state.conv), at)
    state.advance()
    return Played(key, tuple(state.history), state.conv)

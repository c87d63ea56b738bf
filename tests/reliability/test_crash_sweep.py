"""Crash: the real `chat-rescue run` process is SIGKILLed during the sweep before a shift
ends, on Slack and Telegram at once, and restarted each time.

The bot is a child process (`python -m chat_rescue.sandbox.paced_run`, i.e. `ops.run`
with the sandbox pacing) whose wall clock is moved (`SANDBOX_CLOCK_OFFSET`) so that the
team's shift (Mon–Fri 09:00–18:00, Berlin) ends seconds after it starts; `sweep` is 6 s.
It is killed as the cards go out, right after the operators press *Close all finished*,
as the shift ends, and right after the restarts that catch up; the last life begins on
the Monday morning, when the handover digest is due, and is killed around then too.

Afterwards, from the store and the sandboxes' records:

- each step of the sweep happened once: the sweep is done and the next one planned; every
  conversation that was open at the end is closed at shift end or handed over, exactly
  once (no close repeated, no second hand-over), as its sweep item says;
- Close all finished closed only conversations that were finished;
- every operator's card reached the platform, and the handover digest too, each repeated
  at most once per kill (the outbox's at-least-once window), never lost;
- nothing acknowledged was lost: every confirmed Telegram update and every Slack event
  answered 200 is in the store;
- the bot logged no error in any life.

The seed is printed; set CRASH_SEED to replay a run's choices (timing still varies).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from chat_rescue.adapters.slack.blocks import SWEEP_CLOSE_ALL
from chat_rescue.sandbox.bot_process import BotProcess
from chat_rescue.sandbox.replay import logged_errors
from chat_rescue.sandbox.slack_world import BOB, CARL, HELP, SECRET, TEAM
from chat_rescue.sandbox.slack_world import furnish as furnish_slack
from chat_rescue.sandbox.telegram_support import BEN, CHLOE, GROUP, free_port
from chat_rescue.sandbox.telegram_support import furnish as furnish_telegram
from chat_rescue.sandbox.testbeds import RecordingEventsClient, SlackTestbed, TelegramTestbed
from chat_rescue.sandbox.traffic import sandbox_env

SEED = int(os.environ.get("CRASH_SEED", "20261204"))
BERLIN = ZoneInfo("Europe/Berlin")
ENDS = datetime(2026, 12, 4, 18, 0, tzinfo=BERLIN).timestamp()  # a Friday
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=BERLIN).timestamp()
LEAD = 16.0  # seconds of the shift left when the first life starts
SWEEP = 6.0
CUSTOMERS = 10  # per platform
ENV = {
    "RESCUE_HOURS": "mon-fri 09:00-18:00", "RESCUE_TIMEZONE": "Europe/Berlin",
    "RESCUE_SWEEP": "6s", "RESCUE_CLOSE_REMINDER": "3s", "RESCUE_ACCEPT": "1h",
    "RESCUE_FIRST_RESPONSE": "1h", "RESCUE_IDLE": "1h", "RESCUE_ESCALATE": "1h",
    "RESCUE_AUTO_CLOSE": "off",
}
SLACK_TEAM, TELEGRAM_TEAM = f"slack:{TEAM}", f"telegram:{GROUP}"


@dataclass
class SweepRun:
    seed: int
    kills: list[tuple[str, float]]  # (moment, bot time of the kill)
    exit_code: int
    rows: dict[str, dict[str, Any]]
    history: list[tuple[str, str, str | None, str | None]]  # key, kind, actor, detail
    items: list[dict[str, Any]]
    sweeps: list[dict[str, Any]]
    inbound: set[str]
    slack_cards: Counter[str]  # sweep card id -> posts
    telegram_cards: Counter[str]
    slack_digests: int
    telegram_digests: int
    slack_acked: list[tuple[str, float]]  # (inbound id, when acknowledged)
    telegram_confirmed: dict[int, float]
    telegram_updates: list[int]
    errors: list[str]
    log_tail: str
    closes_pressed: list[str] = field(default_factory=list)


class Bot:
    """The child process, on the Friday clock or the Monday one."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.env = env
        self.workdir = workdir
        self.process: BotProcess | None = None
        self.offset = 0.0
        self.kills: list[tuple[str, float]] = []

    async def start(self, offset: float) -> None:
        self.offset = offset
        env = {**self.env, "SANDBOX_CLOCK_OFFSET": repr(offset)}
        self.process = BotProcess(env, self.port, self.workdir, self.workdir / "bot.log")
        await self.process.start()

    def now(self) -> float:
        """The bot's wall clock."""
        return time.time() + self.offset

    async def until(self, moment: float) -> None:
        """Sleep until the bot's clock reads `moment`."""
        await asyncio.sleep(max(0.0, moment - self.now()))

    async def kill(self, why: str) -> None:
        assert self.process is not None
        self.kills.append((why, self.now()))
        await self.process.kill()
        await asyncio.sleep(0.2)  # what the dead process had on the wire lands

    async def stop(self) -> int:
        assert self.process is not None
        return await self.process.stop()

    def log_tail(self) -> str:
        return self.process.log_tail() if self.process else ""


def slack_card(message: dict[str, Any]) -> str:
    """The sweep card's id a Slack message shows (its buttons carry it)."""
    values = [e.get("value", "") for b in message.get("blocks") or []
              if b.get("type") == "actions" for e in b["elements"]]
    return str(values[0]).partition("|")[0] if values else ""


def telegram_card(message: dict[str, Any]) -> str:
    """The sweep card's id a Telegram message shows (`sw<verb>:<card>…`)."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    data = [str(b.get("callback_data", "")) for row in rows for b in row]
    return data[0].partition(":")[2].partition("|")[0] if data else ""


def cards(messages: list[dict[str, Any]], card_of: Any) -> Counter[str]:
    return Counter(card_of(m) for m in messages if "your shift ends" in str(m.get("text")))


async def slack_send(client: RecordingEventsClient, event: dict[str, Any],
                     acked: list[tuple[str, float]], event_id: str) -> None:
    """An event as Slack delivers it: again until acknowledged."""
    for _ in range(200):
        try:
            status, _ = await client.send_event(event, event_id=event_id)
        except Exception:  # the bot is down: Slack retries
            status = 0
        if status == 200:
            acked.append((f"slack:{event_id}", time.monotonic()))
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"Slack event {event_id} never acknowledged")


async def sweep_run(workdir: Path, seed: int) -> SweepRun:
    rng = random.Random(seed)
    async with SlackTestbed() as slack_box, TelegramTestbed() as telegram_box:
        furnish_slack(slack_box)
        furnish_telegram(telegram_box)
        database = workdir / "sweep.db"
        bot = Bot(sandbox_env(database, slack_box, telegram_box, **ENV), workdir)
        friday = ENDS - LEAD - time.time()
        await bot.start(friday)
        client = RecordingEventsClient(f"http://127.0.0.1:{bot.port}/slack/events", SECRET,
                                       sandbox=slack_box)
        acked: list[tuple[str, float]] = []
        updates: list[int] = []
        ids = iter(range(1, 10_000))

        def event_id() -> str:
            return f"EvSWEEP{next(ids):05d}"

        try:
            # Customers write; Bob and Carl (Slack), Ben and Chloe (Telegram) answer most.
            roots: list[str] = []
            for n in range(CUSTOMERS):
                event = client.message_event(HELP, f"U0CUST{n:03d}", f"order {n}?")
                roots.append(str(event["ts"]))
                await slack_send(client, event, acked, event_id())
                user = 3000 + n
                telegram_box.add_user(user, f"Cust{n:02d}")
                updates.append(int(telegram_box.private_message(user, f"order {n}?")
                                   ["update_id"]))
            await asyncio.sleep(1.0)  # the cards and topics are made
            view = sqlite3.connect(database, timeout=5)
            for n in range(CUSTOMERS - 2):  # two nobody takes
                await slack_send(client, client.message_event(
                    HELP, (BOB, CARL)[n % 2], "here you are", thread_ts=roots[n]), acked,
                    event_id())
                card = view.execute("SELECT card FROM conversations WHERE key = ?",
                                    (f"telegram:{3000 + n}:",)).fetchone()
                if card and card[0]:
                    topic = int(str(card[0]).partition(":")[0])
                    updates.append(int(telegram_box.group_message(
                        GROUP, (BEN, CHLOE)[n % 2], "here you are", thread_id=topic)
                        ["update_id"]))
            await bot.until(ENDS - SWEEP - 3.5)
            for n in (1, 2):  # their customers write again: waiting on us
                await slack_send(client, client.message_event(
                    HELP, f"U0CUST{n:03d}", "one more thing", thread_ts=roots[n]), acked,
                    event_id())
                updates.append(int(telegram_box.private_message(3000 + n, "one more thing")
                                   ["update_id"]))
            await bot.until(ENDS - SWEEP - 1.5)
            for n in (3, 4):  # a last word: waiting on the customer, finished by the end
                await slack_send(client, client.message_event(
                    HELP, (BOB, CARL)[n % 2], "anything else?", thread_ts=roots[n]), acked,
                    event_id())
                topic = int(str(view.execute("SELECT card FROM conversations WHERE key = ?",
                                             (f"telegram:{3000 + n}:",)).fetchone()[0])
                            .partition(":")[0])
                updates.append(int(telegram_box.group_message(
                    GROUP, (BEN, CHLOE)[n % 2], "anything else?", thread_id=topic)
                    ["update_id"]))

            # The cards go out: killed as they do.
            await bot.until(ENDS - SWEEP + rng.uniform(-0.05, 0.4))
            await bot.kill("as the cards go out")
            await bot.start(friday)
            await bot.until(ENDS - SWEEP + 2.5)
            slack_cards = [m for m in slack_box.messages(TEAM)
                           if "your shift ends" in str(m.get("text"))]
            telegram_cards = [m for m in telegram_box.messages(GROUP, None)
                              if "your shift ends" in str(m.get("text"))]
            pressed: list[str] = []
            for card in {slack_card(c): c for c in slack_cards}.values():
                value = next((e["value"] for b in card.get("blocks") or []
                              if b.get("type") == "actions" for e in b["elements"]
                              if e["action_id"] == SWEEP_CLOSE_ALL), None)
                if value is not None:
                    operator = BOB if f"<@{BOB}>" in card["text"] else CARL
                    status, _ = await client.click_button(operator, SWEEP_CLOSE_ALL, value,
                                                          TEAM, str(card["ts"]))
                    if status == 200:
                        pressed.append(f"slack:action:{client.last_ts}")
            answered = len(telegram_box.calls_to("answerCallbackQuery"))
            presses = 0
            for card in {telegram_card(c): c for c in telegram_cards}.values():
                rows = card.get("reply_markup", {}).get("inline_keyboard", [])
                data = next((b["callback_data"] for row in rows for b in row
                             if b["text"].startswith("Close all finished")), None)
                if data is not None:
                    # the card's operator, named (or, after a restart, by id) at its top
                    operator = BEN if card["text"].startswith(("🧹 Ben,", f"🧹 {BEN},")) \
                        else CHLOE
                    updates.append(int(telegram_box.callback_query(operator, card, data)
                                       ["update_id"]))
                    presses += 1
            # Slack answered each click after its commit; Telegram's presses are carried out
            # once the bot answers them. The kill comes right after that, amid what they
            # queued (on a slow machine, a kill before it lets the shift end refuse them).
            for _ in range(100):
                if len(telegram_box.calls_to("answerCallbackQuery")) >= answered + presses:
                    break
                await asyncio.sleep(0.03)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await bot.kill("right after Close all finished")
            await bot.start(friday)

            # The shift ends: killed about then, and again right after the restart.
            await bot.until(ENDS + rng.uniform(-0.1, 0.3))
            await bot.kill("as the shift ends")
            await bot.start(friday)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await bot.kill("while the end is caught up")
            await bot.start(friday)
            await bot.until(ENDS + 2.0)
            await bot.stop()

            # Monday morning: the next shift's digest, killed about when it is due.
            monday = MONDAY - 1.5 - time.time()
            await bot.start(monday)
            await bot.until(MONDAY + rng.uniform(-0.1, 0.3))
            await bot.kill("as the next shift opens")
            await bot.start(monday)
            await bot.until(MONDAY + 3.0)
            for _ in range(100):  # up to 10 s for what is queued to go out
                if not (view.execute("SELECT count(*) FROM outbox").fetchone()[0]
                        or telegram_box.updates):
                    break
                await asyncio.sleep(0.1)
        finally:
            exit_code = await bot.stop()
            await client.close()
        view.row_factory = sqlite3.Row
        rows = {str(r["key"]): dict(r) for r in view.execute("SELECT * FROM conversations")}
        history = [(str(r["conversation"]), str(r["kind"]), r["actor"], r["detail"])
                   for r in view.execute("SELECT * FROM history ORDER BY id")]
        items = [dict(r) for r in view.execute("SELECT * FROM sweep_items")]
        sweeps = [dict(r) for r in view.execute("SELECT * FROM sweeps ORDER BY ends_at")]
        inbound = {str(r[0]) for r in view.execute("SELECT id FROM inbound")}
        view.close()
        return SweepRun(
            seed, bot.kills, exit_code, rows, history, items, sweeps, inbound,
            cards(slack_box.messages(TEAM), slack_card),
            cards(telegram_box.messages(GROUP, None), telegram_card),
            sum("Handed over" in str(m.get("text")) for m in slack_box.messages(TEAM)),
            sum("Handed over" in str(m.get("text"))
                for m in telegram_box.messages(GROUP, None)),
            acked, dict(telegram_box.confirmed), updates,
            logged_errors(workdir / "bot.log"), bot.log_tail(), pressed)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SweepRun]:
    result = await sweep_run(tmp_path_factory.mktemp("sweep"), SEED)
    kinds = Counter((key.split(":")[0], kind, detail) for key, kind, _, detail in result.history
                    if kind in ("closed", "returned"))
    print(f"sweep crash run: seed {result.seed}, {len(result.kills)} SIGKILLs "
          f"({', '.join(f'{why} at {at - ENDS:+.2f}s' for why, at in result.kills)}); "
          f"{len(result.rows)} conversations; {dict(kinds)}; cards posted: Slack "
          f"{sum(result.slack_cards.values())} of {len(result.slack_cards)}, Telegram "
          f"{sum(result.telegram_cards.values())} of {len(result.telegram_cards)}; digests "
          f"Slack {result.slack_digests}, Telegram {result.telegram_digests}; closed by Close "
          f"all finished: {sum(i['choice'] == 'close' for i in result.items)}, by the rule: "
          f"{sum(i['fate'] == 'closed' for i in result.items)}")
    yield result


def ended(run: SweepRun, team: str) -> dict[str, Any]:
    return next(s for s in run.sweeps if s["team"] == team and s["ends_at"] == ENDS)


@pytest.mark.parametrize("team", [SLACK_TEAM, TELEGRAM_TEAM])
def test_each_step_of_the_sweep_happened_and_the_next_is_planned(run: SweepRun,
                                                                team: str) -> None:
    assert run.exit_code == 0, run.log_tail
    assert len(run.kills) == 5
    assert ended(run, team)["phase"] == "done" and ended(run, team)["due"] is None
    later = [s for s in run.sweeps if s["team"] == team and s["ends_at"] > ENDS]
    assert [s["phase"] for s in later] == ["planned"]


@pytest.mark.parametrize("platform", ["slack", "telegram"])
def test_every_conversation_open_at_the_end_was_closed_or_handed_over_once(
        run: SweepRun, platform: str) -> None:
    keys = [key for key in run.rows if key.startswith(f"{platform}:")]
    assert len(keys) == CUSTOMERS
    team = SLACK_TEAM if platform == "slack" else TELEGRAM_TEAM
    fates = {i["conversation"]: i for i in run.items if i["sweep"] == ended(run, team)["id"]}
    for key in keys:
        closed = [d for k, kind, _, d in run.history if k == key and kind == "closed"]
        handed = [d for k, kind, _, d in run.history if k == key and kind == "returned"]
        state, owner = run.rows[key]["state"], run.rows[key]["owner"]
        assert len(closed) <= 1 and len(handed) <= 1, (key, closed, handed)  # never twice
        item = fates[key]
        if closed:
            assert closed == ["closed_at_shift_end"] and state == "closed"
            assert item["choice"] == "close" or item["fate"] == "closed", item
        elif item["fate"] == "handed_over":
            assert handed == ["shift_end"] and state == "queued" and owner is None
        else:
            assert item["fate"] == "unowned" and state == "queued" and owner is None
            assert not handed
    closes = sum(1 for k, kind, _, _ in run.history if k in keys and kind == "closed")
    assert closes >= 1  # the run did close some at shift end


@pytest.mark.parametrize("platform", ["slack", "telegram"])
def test_close_all_finished_closed_only_finished_ones(run: SweepRun, platform: str) -> None:
    pressed = [i for i in run.items if i["conversation"].startswith(f"{platform}:")
               and i["choice"] == "close"]
    assert pressed, "no Close all finished was carried out"
    assert all(i["grp"] == "finished" for i in pressed)
    # Those with a last word just before the cards: finished only by the end, closed by
    # the rule (the group recorded is the one the end found).
    by_rule = [i for i in run.items if i["conversation"].startswith(f"{platform}:")
               and i["fate"] == "closed"]
    assert by_rule and all(i["grp"] == "finished" and i["choice"] is None for i in by_rule)


def test_every_card_and_digest_arrived_repeated_at_most_once_per_kill(run: SweepRun) -> None:
    assert len(run.slack_cards) == 2 and len(run.telegram_cards) == 2  # two operators each
    repeats = sum(n - 1 for n in run.slack_cards.values()) + \
        sum(n - 1 for n in run.telegram_cards.values())
    assert repeats <= 2  # the kill as the cards went out: one in flight per platform
    assert 1 <= run.slack_digests <= 2 and 1 <= run.telegram_digests <= 2


def test_nothing_acknowledged_was_lost(run: SweepRun) -> None:
    lost = [inbound for inbound, _ in run.slack_acked if inbound not in run.inbound]
    assert not lost, f"acknowledged with 200 but not in the store: {lost}"
    confirmed = [u for u in run.telegram_updates if u in run.telegram_confirmed
                 and f"telegram:{u}" not in run.inbound]
    assert not confirmed, f"confirmed to Telegram but not in the store: {confirmed}"


def test_the_bot_logged_no_error(run: SweepRun) -> None:
    assert not run.errors, "\n".join(run.errors)

"""GET /metrics on a running bot: what sandbox traffic shows there, the names and labels
Prometheus gets, the bearer token, and the dashboard and alert rules in deploy/ naming
only metrics a real scrape has."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chat_rescue.bot.settings import Settings
from chat_rescue.sandbox.hostile import raw_get
from chat_rescue.sandbox.telegram import TelegramSandbox
from chat_rescue.sandbox.telegram_support import (
    ALICE,
    GROUP,
    SupportGroup,
    eventually,
    furnish,
    sandbox_settings,
)
from chat_rescue.server import Bot

ROOT = Path(__file__).resolve().parents[1]
# The client library's default collectors: the process's own, named by the library.
DEFAULT_PREFIXES = ("process_", "python_")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # as tests/adapters/telegram/conftest.py


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as sandbox:
        furnish(sandbox)
        yield sandbox


async def scrape(port: int, token: str | None = None) -> tuple[int, str, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as answer:
        return answer.status, await answer.text(), dict(answer.headers)


def samples(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_sandbox_traffic_shows_in_the_scrape(sandbox: TelegramSandbox,
                                                  tmp_path: Path) -> None:
    settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/m.db", rescue_accept="300ms",
                                rescue_escalate_repeats=0, rescue_first_response="10m",
                                rescue_idle="10m", rescue_close_reminder="10m")
    group = SupportGroup(sandbox, settings)
    await group.start()
    try:
        sandbox.fail_next("copyMessage", 429, retry_after=1)
        sandbox.private_message(ALICE, "Hello, my order is late")
        thread = await group.topic()
        # The accept timer fires once (no repeats): the operators are called in.
        await eventually(lambda: group.history("escalated"), timeout=5)
        await eventually(lambda: len(group.copies(thread)) == 1, timeout=5)
        await group.drained()
        status, text, headers = await scrape(group.bot.port)
    finally:
        await group.stop()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    found = samples(text)
    tg = {"platform": "telegram"}
    assert value(found, "chat_rescue_inbound_events_total", kind="customer_message", **tg) == 1
    assert value(found, "chat_rescue_handling_seconds_count", **tg) == 1
    assert value(found, "chat_rescue_open_conversations", state="queued", **tg) == 1
    assert value(found, "chat_rescue_open_conversations", state="claimed", **tg) == 0
    assert value(found, "chat_rescue_deadlines_fired_total", timer="accept") == 1
    assert value(found, "chat_rescue_deadline_lateness_seconds_count") == 1
    assert value(found, "chat_rescue_escalations_total", **tg) == 1
    assert value(found, "chat_rescue_deliveries_total", method="relay", outcome="rate_limited",
                 **tg) == 1
    assert value(found, "chat_rescue_deliveries_total", method="relay", outcome="ok", **tg) == 1
    assert value(found, "chat_rescue_deliveries_total", method="post_card", outcome="ok",
                 **tg) == 1
    assert value(found, "chat_rescue_deliveries_total", method="escalate", outcome="ok",
                 **tg) == 1
    assert value(found, "chat_rescue_outbox_depth", **tg) == 0  # all of it went out
    assert value(found, "chat_rescue_outbox_oldest_pending_age_seconds", **tg) == 0
    assert value(found, "chat_rescue_deadline_overdue_seconds") == 0
    assert value(found, "process_cpu_seconds_total") > 0  # the process's own collectors

    ids = {str(ALICE), str(GROUP), str(thread)}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith(("chat_rescue_", *DEFAULT_PREFIXES)), family.name
        if family.type == "counter":
            assert any(s.name == f"{family.name}_total" for s in family.samples), family.name
        if not family.name.startswith("chat_rescue_"):
            continue
        for sample in family.samples:
            for name, label in sample.labels.items():
                if name == "le":  # a histogram's bucket bound
                    continue
                # A conversation key is platform:channel:thread; ids are long numbers.
                assert ":" not in label and label not in ids, (sample.name, label)
                assert not re.search(r"\d{4,}", label), (sample.name, label)


def bare_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/b.db",  # type: ignore[call-arg]
                    host="127.0.0.1", port=0, **overrides)


async def test_a_token_is_asked_for_when_set(tmp_path: Path) -> None:
    bot = Bot(bare_settings(tmp_path, metrics_token="s3cret"), adapters=[])
    await bot.start()
    try:
        for token in (None, "wrong", "S3CRET", "s3cret2"):
            status, text, headers = await scrape(bot.port, token)
            assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
            assert "chat_rescue_" not in text
        status, text, _ = await scrape(bot.port, "s3cret")
        assert status == 200 and "chat_rescue_open_conversations" in text
        for header in (b"Bearer s3cr\xe9t", b"Bearer \xff\xfe", b"\xc3"):  # not UTF-8
            assert await raw_get(bot.port, b"/metrics", b"Authorization: " + header
                                 + b"\r\n") == 401, header
    finally:
        await bot.stop()


async def test_the_scrape_is_open_without_a_token(tmp_path: Path) -> None:
    bot = Bot(bare_settings(tmp_path, metrics_token=""), adapters=[])  # as copied from .env
    await bot.start()
    try:
        status, text, _ = await scrape(bot.port)
        assert status == 200 and "chat_rescue_deadline_overdue_seconds" in text
    finally:
        await bot.stop()


def named_in(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (ours and the default collectors')."""
    return set(re.findall(r"\b((?:chat_rescue|process|python)_[a-z_]+)\b", expression))


def dashboard_and_alert_metrics() -> set[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/chat-rescue.json").read_text())
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            names |= named_in(target["expr"])
    rules = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    exprs = re.findall(r"^\s*expr:\s*(.+)$", rules, flags=re.MULTILINE)
    assert len(exprs) == 3
    for expr in exprs:
        names |= named_in(expr)
    return names


async def test_the_dashboard_and_the_alerts_read_only_metrics_a_scrape_has(
        sandbox: TelegramSandbox, tmp_path: Path) -> None:
    wanted = dashboard_and_alert_metrics()
    assert len(wanted) >= 10
    group = SupportGroup(sandbox, sandbox_settings(sandbox, f"sqlite:///{tmp_path}/d.db"))
    await group.start()
    try:
        sandbox.private_message(ALICE, "Hello")  # so that labelled series have samples
        await group.topic()
        await group.drained()
        _, text, _ = await scrape(group.bot.port)
    finally:
        await group.stop()
    scraped = {s.name for family in text_string_to_metric_families(text)
               for s in family.samples}
    assert wanted - scraped == set()

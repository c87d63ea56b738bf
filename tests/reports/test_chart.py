"""The report's picture: a PNG that opens, under 200 KB, not blank, for an empty period, one
conversation and 100,000; drawn without pyplot; the HTML page embeds it."""

from __future__ import annotations

import base64
import io
import random
import re
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from PIL import Image

from chat_rescue.bot.model import ConversationRef, HistoryEvent
from chat_rescue.bot.report import Report, build
from chat_rescue.reports import chart, making, page

NOW = datetime(2026, 3, 12, 18, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def opened(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def assert_legible(png: bytes) -> Image.Image:
    """Opens, fits the limit, phone-shaped, and shows more than a background."""
    assert len(png) <= chart.MAX_BYTES
    image = opened(png)
    width, height = image.size
    assert 600 <= width <= 1200 and height > width
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None
    white = sum(count for count, rgb in colours if rgb == (255, 255, 255))
    assert white < 0.97 * width * height, "blank"
    return image


def distinct(image: Image.Image, *wanted: str) -> set[str]:
    """Which of the `wanted` colours (#rrggbb) are painted somewhere in the image."""
    seen = {rgb for _, rgb in image.getcolors(maxcolors=1 << 20) or []}
    return {c for c in wanted if tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) in seen}


def history(conversations: int, seed: int = 1) -> list[HistoryEvent]:
    rng = random.Random(seed)
    events = []
    for n in range(conversations):
        start = NOW - rng.random() * 29 * 86400  # within the 30 local days
        ref = ConversationRef("slack", "C1", f"1.{n}")
        operator = f"U{rng.randrange(30)}"
        wait = rng.expovariate(1 / 40)
        events += [HistoryEvent(ref, "t", "opened", start, "cust"),
                   HistoryEvent(ref, "t", "claimed", start + 1, operator, 1.0),
                   HistoryEvent(ref, "t", "first_reply", start + wait, operator, wait)]
        if n % 10 == 0:
            events.append(HistoryEvent(ref, "t", "outcome", start + 400, operator, 50.0,
                                       "nudge:answered"))
    return sorted(events, key=lambda e: e.at)


def test_an_empty_period_renders() -> None:
    png = chart.render(build([], team="support", days=7, now=NOW, target=30.0))
    assert_legible(png)


def test_one_conversation_renders_its_lines_and_target() -> None:
    image = assert_legible(chart.render(build(history(1), team="t", days=30, now=NOW,
                                              target=30.0)))
    assert distinct(image, chart.P50, chart.P90, chart.TARGET) == {
        chart.P50, chart.P90, chart.TARGET}


def test_100000_conversations_render_within_the_limit() -> None:
    report = build(history(100_000), team="t", days=30, now=NOW, target=30.0)
    assert report.conversations == 100_000
    image = assert_legible(chart.render(report))
    assert distinct(image, chart.P50, chart.P90, chart.TARGET, chart.RESCUE_COLOURS[0]) == {
        chart.P50, chart.P90, chart.TARGET, chart.RESCUE_COLOURS[0]}


def test_many_operators_and_long_names_still_fit() -> None:
    events = [HistoryEvent(ConversationRef("slack", "C1", f"1.{n}"), "t", "claimed", NOW - 60,
                           f"operator-with-a-very-long-name-{n}" * 3, 1.0) for n in range(200)]
    assert_legible(chart.render(build(events, team="t" * 200, days=30, now=NOW)))


def test_drawing_never_loads_pyplot() -> None:
    chart.render(build(history(5), team="t", days=7, now=NOW))
    assert "matplotlib.pyplot" not in sys.modules


def test_the_html_page_embeds_the_picture_and_the_summary() -> None:
    report: Report = build(history(20), team="<support>", days=7, now=NOW, target=30.0)
    picture = making.Picture(chart.render(report), "Conversations: 20 & more", report)
    text = page.page([picture])
    assert "&lt;support&gt;" in text and "Conversations: 20 &amp; more" in text
    assert "http" not in text.replace('name="viewport"', "")  # nothing fetched
    found = re.search(r'src="data:image/png;base64,([^"]+)"', text)
    assert found is not None
    assert base64.b64decode(found.group(1)) == picture.png


async def test_the_bot_reads_on_the_store_thread_and_names_the_operators() -> None:
    from chat_rescue.bot.clock import FakeClock
    from chat_rescue.bot.model import CustomerMessage, OperatorMessage
    from chat_rescue.bot.policy import Policy
    from chat_rescue.bot.service import Service
    from chat_rescue.storage.sqlite import SQLiteStore

    service = Service(SQLiteStore("sqlite://"), Policy(first_response=30.0), FakeClock(NOW))
    ref = ConversationRef("telegram", "42", "")
    await service.submit(CustomerMessage(ref, NOW - 60, "42", "Hello", "telegram:-100"))
    await service.submit(OperatorMessage(ref, NOW - 45, "7001"))
    picture = await making.make(service, "telegram:-100", 7, lambda user: {"7001": "Ana"}[user])
    assert [(r.operator, r.first_response_p50) for r in picture.report.operators] == \
        [("Ana", 15.0)]
    assert picture.report.target == 30.0 and "Conversations: 1" in picture.text
    assert_legible(picture.png)

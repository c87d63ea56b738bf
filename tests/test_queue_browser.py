"""The queue page in a real headless Chromium, against a bot on the Slack sandbox with
sub-second timers: the signed link from `/rescue queue` loads the page with the sandbox's
conversations; a new customer message shows up and a timer's nudge turns a row overdue,
both without a reload; a request without a valid link is refused; a screenshot is kept.

Without Chromium and its chromedriver the test is skipped with one line, except under CI,
where it fails (`.ci/run` installs them as root).
"""

from __future__ import annotations

import asyncio
import html
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chat_rescue.bot.model import State
from chat_rescue.sandbox import browser
from chat_rescue.sandbox.slack import SlackSandbox
from chat_rescue.sandbox.slack_world import (
    ANNA,
    BOB,
    SlackWorld,
    eventually,
    furnish,
    sandbox_settings,
)
from chat_rescue.sandbox.telegram_support import free_port

WAIT = 30.0  # seconds the browser may take for each step on a loaded machine
TIMERS = {"rescue_accept": "10m", "rescue_first_response": "10m", "rescue_idle": "300ms",
          "rescue_escalate": "10m", "rescue_close_reminder": "10m"}


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A headless Chromium session (Selenium), quit after the test."""
    found = browser.find()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        found = None
    if found is None:
        if under_ci():
            pytest.fail("Chromium or chromedriver (or selenium) not found, and under CI the "
                        "browser test may not be skipped")
        pytest.skip(browser.MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = found.binary
    for flag in browser.options_for(found):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(found.driver), options=options)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SlackWorld]:
    async with SlackSandbox() as sandbox:
        furnish(sandbox)
        port = free_port()
        settings = sandbox_settings(sandbox, f"sqlite:///{tmp_path}/q.db", port=port,
                                    public_url=f"http://127.0.0.1:{port}", **TIMERS)
        world = SlackWorld(sandbox, settings)
        await world.start()
        try:
            yield world
        finally:
            await world.stop()


async def until(driver: Any, check: Callable[[Any], Any], timeout: float = WAIT) -> Any:
    """The driver's own wait-for, off the event loop (the bot runs on it meanwhile). The
    page redraws its rows on every poll: a row found just before a redraw is stale, and
    is looked for again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    waiting = WebDriverWait(driver, timeout, poll_frequency=0.2,
                            ignored_exceptions=(StaleElementReferenceException,))
    return await asyncio.to_thread(waiting.until, check)


def row(driver: Any, key: str) -> Any:
    """The row of a conversation (None while it is not on the page)."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f'tr[data-key="{key}"]')
    return found[0] if found else None


def shown(driver: Any, key: str) -> str | None:
    found = row(driver, key)
    return found.get_attribute("data-shown") if found is not None else None


async def test_the_queue_page_lives_in_a_real_browser(world: SlackWorld, chromium: Any,
                                                      tmp_path: Path) -> None:
    # The sandbox's conversations: one in the inbox, one Anna answered.
    waiting = await world.says("Hi, my order #1042 hasn't arrived")
    answered = await world.says("Can I change my delivery address?")
    await world.card_of(waiting)
    await world.card_of(answered)
    await world.says("Sure, which one?", thread=answered, user=ANNA)
    await eventually(lambda: world.conv(answered).state is State.WAITING_ON_CUSTOMER)

    reply = await world.rescue("queue", user=BOB)
    found = re.search(r"(http://127\.0\.0\.1:\d+/queue\?\S+?)\"", reply)
    assert found is not None, reply
    link = html.unescape(found[1])

    await asyncio.to_thread(chromium.get, link)
    key = world.conv(waiting).ref.key
    other = world.conv(answered).ref.key
    await until(chromium, lambda d: row(d, key) is not None and row(d, other) is not None)
    # Read through `until` too: a row may be redrawn between finding and reading it.
    assert await until(chromium, lambda d: shown(d, key) == "waiting"
                       and shown(d, other) == "waiting_on_customer")
    first = await until(chromium, lambda d: row(d, key).text)
    assert "order #1042" in first and "nobody" in first
    assert "anna" in await until(chromium, lambda d: row(d, other).text)  # owner, by name
    chromium.execute_script("window.notReloaded = true")
    # The waiting time ticks in the browser, between polls too.
    ticking = await until(chromium, lambda d: row(d, key).find_element(
        "css selector", "[data-since]").text)
    await until(chromium, lambda d: row(d, key).find_element(
        "css selector", "[data-since]").text != ticking)

    # A new customer message appears without a reload.
    fresh = await world.says("Hello? Is anyone there about my refund")
    await world.card_of(fresh)
    fresh_key = world.conv(fresh).ref.key
    await until(chromium, lambda d: row(d, fresh_key) is not None)
    assert "refund" in await until(chromium, lambda d: row(d, fresh_key).text)
    assert await until(chromium, lambda d: shown(d, fresh_key) == "waiting")

    # The customer writes again; the idle timer fires; its nudge turns the row overdue.
    await world.says("The new address is on my account", thread=answered)
    await eventually(lambda: world.conv(answered).nudged_at is not None, timeout=WAIT)
    await until(chromium, lambda d: shown(d, other) == "overdue")
    assert "overdue" in await until(chromium, lambda d: row(d, other).text)
    assert "The new address" not in chromium.page_source  # no text beyond the preview
    assert chromium.execute_script("return window.notReloaded") is True

    path = tmp_path / "queue.png"
    assert await asyncio.to_thread(chromium.save_screenshot, str(path))
    picture = path.read_bytes()
    assert picture[:8] == b"\x89PNG\r\n\x1a\n" and len(picture) > 10_000, len(picture)
    print(f"screenshot {path.name}: {len(picture)} bytes")

    # Without a valid link: refused, in the browser too.
    statuses = await asyncio.to_thread(chromium.execute_async_script, """
        const done = arguments[arguments.length - 1];
        const tampered = location.search.replace(/sig=[0-9a-f]/, "sig=x");
        Promise.all(["/queue/data", "/queue/data" + tampered, "/queue"].map(
            (path) => fetch(path).then((answer) => answer.status))).then(done);
    """)
    assert statuses == [401, 403, 401]
    pushed_back = re.sub(r"exp=(\d+)", lambda m: f"exp={int(m[1]) + 86400}", link)
    await asyncio.to_thread(chromium.get, pushed_back)
    assert "not valid" in chromium.find_element("tag name", "body").text

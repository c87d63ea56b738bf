"""A headless Chromium for the queue page's browser test: the distribution's `chromium`
driven over its own `chromedriver` (Selenium), found on the machine, never downloaded."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

MISSING = ("Chromium not found: the queue page's browser test is skipped; install "
           "chromium and chromium-driver (.ci/run does, as root)")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")


@dataclass(frozen=True, slots=True)
class Chromium:
    """The browser's binary and the chromedriver of the same build."""

    binary: str
    driver: str


def find() -> Chromium | None:
    """The machine's Chromium and chromedriver, or None when either is missing."""
    binary = next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = next(filter(None, (shutil.which(d) or (d if Path(d).is_file() else None)
                                for d in DRIVERS)), None)
    return Chromium(binary, driver) if binary and driver else None


def options_for(chromium: Chromium) -> list[str]:
    """Command-line flags: headless, a fixed window, and no sandbox when run as root
    (Chromium refuses to start as root with its sandbox)."""
    flags = ["--headless=new", "--window-size=1280,900", "--disable-dev-shm-usage",
             "--disable-gpu", "--no-first-run", "--disable-extensions"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")
    return flags

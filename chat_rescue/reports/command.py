"""`chat-rescue report --days N --out report.png|report.html [--team T]`: the charts for
people who are not in the chat, from the database DATABASE_URL names."""

from __future__ import annotations

import sys
from pathlib import Path

from chat_rescue.bot.clock import SystemClock
from chat_rescue.bot.service import Service

MAX_DAYS = 366
FORMATS = (".png", ".html")


def problem(days: int, out: str) -> str | None:
    """Why these arguments cannot make a report (one line), if they cannot."""
    if not 1 <= days <= MAX_DAYS:
        return f"--days must be a whole number of days from 1 to {MAX_DAYS}, not {days}"
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        return (f"--out must end in .png or .html (the picture, or a page with it "
                f"embedded), not '{suffix or out}'")
    return None


def report(days: int, out: str, team: str | None) -> int:
    """Write the report; 0 when written, 2 for bad arguments or a database that cannot be
    read, 1 when there is nothing to read."""
    bad = problem(days, out)
    if bad is not None:
        print(f"chat-rescue report: {bad}", file=sys.stderr)
        return 2
    from chat_rescue.ops import load_settings
    from chat_rescue.reports import making, page
    from chat_rescue.storage.factory import database_file, open_store, where_is
    from chat_rescue.storage.versions import SchemaTooNew

    settings = load_settings()
    if settings is None:
        return 2
    file = database_file(settings.database_url)
    if file is not None and not file.exists():
        print(f"No database at {file} yet: the bot creates it when it first runs.",
              file=sys.stderr)
        return 1
    try:
        store = open_store(settings.database_url)
    except SchemaTooNew as newer:
        print(f"{where_is(settings.database_url)}: {newer}", file=sys.stderr)
        return 2
    try:
        service = Service(store, settings.base_policy(), SystemClock())
        teams = [team] if team is not None else sorted(store.teams()) or ["(no team yet)"]
        if len(teams) > 1 and out.lower().endswith(".png"):
            print(f"chat-rescue report: several teams ({', '.join(teams)}): name one with "
                  "--team, or write .html for all of them", file=sys.stderr)
            return 2
        pictures = []
        for name in teams:
            print(f"reading {days} days of history of {name}…", file=sys.stderr, flush=True)
            inputs = making.read(service, name, days)
            print(f"drawing the report ({len(inputs.tallies.first_replies):,} first "
                  "responses)…",
                  file=sys.stderr, flush=True)
            pictures.append(making.draw(inputs))
    finally:
        store.close()
    path = Path(out)
    if path.suffix.lower() == ".png":
        path.write_bytes(pictures[0].png)
    else:
        path.write_text(page.page(pictures), encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)", file=sys.stderr)
    return 0

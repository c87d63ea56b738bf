"""`chat-rescue report` as a user runs it: a PNG or an HTML page from the database, a clear
line and exit 2 for bad arguments, and a progress line on stderr."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import Claim, ConversationRef, CustomerMessage, OperatorMessage
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.storage.sqlite import SQLiteStore


def chat_rescue(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`chat-rescue ARGS` in `workdir` (no .env there) with only `env` configured."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "TELEGRAM_", "RESCUE_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-c", "from chat_rescue.cli import main; main()", *args],
        cwd=workdir, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def filled(db: Path, teams: tuple[str, ...] = ("support",)) -> str:
    now = time.time() - 3600
    service = Service(SQLiteStore(f"sqlite:///{db}"), Policy(), FakeClock(now))
    for n in range(6):
        ref = ConversationRef("slack", "C1", f"1.{n}")
        team = teams[n % len(teams)]
        service.handle(CustomerMessage(ref, now + n, f"U{n}", "Hello", team))
        service.handle(Claim(ref, now + n + 5, "ana", via="button"))
        service.handle(OperatorMessage(ref, now + n + 20, "ana"))
    service.store.close()
    return f"sqlite:///{db}"


def test_a_png_of_the_last_30_days(tmp_path: Path) -> None:
    url = filled(tmp_path / "r.db")
    done = chat_rescue(tmp_path, "report", "--days", "30", "--out", "report.png",
                       DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    assert "reading 30 days of history of support" in done.stderr
    assert "wrote report.png" in done.stderr
    png = (tmp_path / "report.png").read_bytes()
    assert len(png) <= 200_000
    assert Image.open(io.BytesIO(png)).size[0] >= 600


def test_an_html_page_with_every_team(tmp_path: Path) -> None:
    url = filled(tmp_path / "r.db", teams=("support", "billing"))
    done = chat_rescue(tmp_path, "report", "--days", "7", "--out", "week.html",
                       DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "week.html").read_text(encoding="utf-8")
    assert "<h2>billing</h2>" in text and "<h2>support</h2>" in text
    assert "Conversations: 3" in text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 2
    Image.open(io.BytesIO(base64.b64decode(images[0]))).verify()
    only = chat_rescue(tmp_path, "report", "--out", "one.png", "--team", "billing",
                       DATABASE_URL=url)
    assert only.returncode == 0, only.stderr


def test_several_teams_in_one_png_ask_for_one(tmp_path: Path) -> None:
    url = filled(tmp_path / "r.db", teams=("support", "billing"))
    done = chat_rescue(tmp_path, "report", "--out", "r.png", DATABASE_URL=url)
    assert done.returncode == 2 and "--team" in done.stderr
    assert not (tmp_path / "r.png").exists()


def test_an_empty_database_gives_an_empty_report(tmp_path: Path) -> None:
    SQLiteStore(f"sqlite:///{tmp_path}/e.db").close()
    done = chat_rescue(tmp_path, "report", "--out", "e.html", DATABASE_URL=f"sqlite:///{tmp_path}/e.db")
    assert done.returncode == 0, done.stderr
    assert "No conversations in this period." in (tmp_path / "e.html").read_text()


def test_bad_arguments_say_why_in_one_line_and_write_nothing(tmp_path: Path) -> None:
    url = filled(tmp_path / "r.db")
    for args, said in [(("--days", "0", "--out", "r.png"), "--days must be"),
                       (("--days", "x", "--out", "r.png"), "invalid int value"),
                       (("--days", "7", "--out", "r.pdf"), "--out must end in .png or .html"),
                       (("--days", "7",), "--out")]:
        done = chat_rescue(tmp_path, "report", *args, DATABASE_URL=url)
        assert done.returncode == 2, args
        assert said in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.db"]


def test_no_database_yet_says_so_and_creates_none(tmp_path: Path) -> None:
    done = chat_rescue(tmp_path, "report", "--out", "r.png", DATABASE_URL=f"sqlite:///{tmp_path}/n.db")
    assert done.returncode == 1 and "No database" in done.stderr
    assert not (tmp_path / "n.db").exists() and not (tmp_path / "r.png").exists()

"""The `chat-rescue` command as a user runs it: run, check and stats without a platform."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import Claim, ConversationRef, CustomerMessage, OperatorMessage
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.storage.postgres_schema import MIGRATIONS
from chat_rescue.storage.sqlite import SQLiteStore


def chat_rescue(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`chat-rescue ARGS` in `workdir` (no .env there) with only `env` configured."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "TELEGRAM_", "RESCUE_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-c", "from chat_rescue.cli import main; main()", *args],
        cwd=workdir, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_run_without_a_platform_says_what_to_set_and_fails(tmp_path: Path) -> None:
    done = chat_rescue(tmp_path, "run", DATABASE_URL=f"sqlite:///{tmp_path}/r.db")
    assert done.returncode != 0
    for variable in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TELEGRAM_BOT_TOKEN",
                     "TELEGRAM_SUPPORT_CHAT_ID", "chat-rescue demo"):
        assert variable in done.stdout + done.stderr


def test_check_without_a_platform_fails_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    done = chat_rescue(tmp_path, "check", DATABASE_URL=f"sqlite:///{db}")
    assert done.returncode == 1
    assert "No platform is configured" in done.stdout
    assert "will be created at the first start" in done.stdout
    assert not db.exists()


def test_check_without_a_platform_names_what_to_set_as_run_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    checked = chat_rescue(tmp_path, "check", DATABASE_URL=url)
    ran = chat_rescue(tmp_path, "run", DATABASE_URL=url)
    advice = [line.strip() for line in ran.stderr.splitlines() if line.strip()]
    assert len(advice) >= 4
    shown = [line.strip() for line in checked.stdout.splitlines()]
    for line in advice:
        assert any(line in seen for seen in shown), line
    for variable in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TELEGRAM_BOT_TOKEN",
                     "TELEGRAM_SUPPORT_CHAT_ID", "chat-rescue demo"):
        assert variable in checked.stdout


def test_check_names_each_invalid_variable(tmp_path: Path) -> None:
    done = chat_rescue(tmp_path, "check", RESCUE_IDLE="5 minutes", PORT="a lot")
    assert done.returncode == 2
    assert "RESCUE_IDLE" in done.stderr and "PORT" in done.stderr


def test_stats_without_a_database_says_so_and_creates_none(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    done = chat_rescue(tmp_path, "stats", DATABASE_URL=f"sqlite:///{db}")
    assert done.returncode == 0
    assert "No database" in done.stdout
    assert not db.exists()


def test_stats_prints_each_teams_figures_from_the_history(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    now = time.time() - 3600
    clock = FakeClock(now)
    service = Service(SQLiteStore(f"sqlite:///{db}"), Policy(), clock)
    for n, team in enumerate(["support", "support", "billing"]):
        ref = ConversationRef("slack", "C1", f"1.{n}")
        service.handle(CustomerMessage(ref, now, f"U{n}", "Hello", team))
        service.handle(Claim(ref, now + 5, "ana", via="button"))
        service.handle(OperatorMessage(ref, now + 20 + n, "ana"))
    service.store.close()
    done = chat_rescue(tmp_path, "stats", DATABASE_URL=f"sqlite:///{db}")
    assert done.returncode == 0, done.stderr
    assert "Team billing" in done.stdout and "Team support" in done.stdout
    support = done.stdout[done.stdout.index("Team support"):]
    assert "Conversations           2" in support
    assert "First response          p50 20s" in support
    only = chat_rescue(tmp_path, "stats", "--team", "billing", DATABASE_URL=f"sqlite:///{db}")
    assert "Team billing" in only.stdout and "Team support" not in only.stdout


def test_stats_count_working_time_by_the_configured_hours(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    now = time.time() - 3600
    clock = FakeClock(now)
    service = Service(SQLiteStore(f"sqlite:///{db}"), Policy(), clock)
    ref = ConversationRef("slack", "C1", "1.0")
    service.handle(CustomerMessage(ref, now, "U1", "Hello", "support"))
    service.handle(OperatorMessage(ref, now + 600, "ana"))
    service.store.close()
    # Working hours on a day three days from now: the last hour was no working time.
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(time.gmtime().tm_wday + 3) % 7]
    done = chat_rescue(tmp_path, "stats", DATABASE_URL=f"sqlite:///{db}",
                       RESCUE_HOURS=f"{day} 10:00-11:00 UTC")
    assert done.returncode == 0, done.stderr
    assert "First response          p50 10m, p90 10m" in done.stdout
    assert "  in working time       p50 0s, p90 0s" in done.stdout


def test_check_reports_the_postgresql_server_and_schema(tmp_path: Path,
                                                        postgres_url: str) -> None:
    done = chat_rescue(tmp_path, "check", DATABASE_URL=postgres_url)
    assert done.returncode == 1  # no platform
    (said,) = [line for line in done.stdout.splitlines() if line.startswith("database:")]
    assert said.startswith("database: ok, PostgreSQL ")
    assert said.endswith(f": 0 conversations, schema {len(MIGRATIONS)}")


def test_check_says_when_postgresql_cannot_be_reached(tmp_path: Path) -> None:
    done = chat_rescue(tmp_path, "check", DATABASE_URL="postgresql://bot:s3cret@127.0.0.1:1/db")
    assert "- DATABASE_URL: cannot use PostgreSQL at 127.0.0.1:1/db" in done.stdout
    assert "s3cret" not in done.stdout + done.stderr


def test_stats_reads_a_postgresql_database(tmp_path: Path, postgres_url: str) -> None:
    from chat_rescue.storage.postgres import PostgresStore

    now = time.time() - 3600
    service = Service(PostgresStore(postgres_url), Policy(), FakeClock(now))
    ref = ConversationRef("slack", "C1", "1.0")
    service.handle(CustomerMessage(ref, now, "U0", "Hello", "support"))
    service.handle(OperatorMessage(ref, now + 20, "ana"))
    service.store.close()
    done = chat_rescue(tmp_path, "stats", DATABASE_URL=postgres_url)
    assert done.returncode == 0, done.stderr
    assert "Team support" in done.stdout and "Conversations           1" in done.stdout

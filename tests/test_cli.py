"""The `chat-rescue` command as a user runs it: run, check and stats without a platform,
migrate, the guard against a newer schema, and copy-db."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from chat_rescue.bot.clock import FakeClock
from chat_rescue.bot.model import Claim, ConversationRef, CustomerMessage, OperatorMessage
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.service import Service
from chat_rescue.sandbox.populated import CONVERSATIONS, populate
from chat_rescue.sandbox.postgres import Databases
from chat_rescue.storage.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from chat_rescue.storage.schema import MIGRATIONS
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
    assert said.endswith(f": 0 conversations, schema {len(PG_MIGRATIONS)}")


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


# --- migrate and the schema guard -------------------------------------------------------

SLACK = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s", "SLACK_TEAM_CHANNEL": "C0T",
         "SLACK_INTAKE_CHANNELS": "C0H"}


def test_migrate_creates_the_schema_says_each_step_then_that_nothing_was_left(
        tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    done = chat_rescue(tmp_path, "migrate", DATABASE_URL=f"sqlite:///{db}")
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stdout.splitlines() if "migration" in line]
    assert steps == [f"{db}: migration {n} applied" for n in range(1, len(MIGRATIONS) + 1)]
    assert f"{db}: migrated from schema 0 to {len(MIGRATIONS)} in " in done.stdout
    again = chat_rescue(tmp_path, "migrate", DATABASE_URL=f"sqlite:///{db}")
    assert again.returncode == 0
    assert again.stdout.splitlines()[-1] == f"{db}: already at schema {len(MIGRATIONS)}"


def test_migrate_brings_a_postgresql_database_up_to_date(tmp_path: Path,
                                                         postgres_databases: Databases) -> None:
    url = postgres_databases.fresh(migrated=False)
    done = chat_rescue(tmp_path, "migrate", DATABASE_URL=url)
    assert done.returncode == 0, done.stderr
    where = f"PostgreSQL at {urlsplit(url).hostname}:{urlsplit(url).port}{urlsplit(url).path}"
    assert f"{where}: migration 1 applied" in done.stdout
    assert f"{where}: migrated from schema 0 to {len(PG_MIGRATIONS)}" in done.stdout
    again = chat_rescue(tmp_path, "migrate", DATABASE_URL=url)
    assert again.stdout.splitlines()[-1] == f"{where}: already at schema {len(PG_MIGRATIONS)}"


def test_migrate_says_when_postgresql_cannot_be_reached(tmp_path: Path) -> None:
    done = chat_rescue(tmp_path, "migrate", DATABASE_URL="postgresql://bot:s3cret@127.0.0.1:1/db")
    assert done.returncode == 1
    assert done.stderr.startswith("DATABASE_URL: cannot use PostgreSQL at 127.0.0.1:1/db (")
    assert "Traceback" not in done.stderr
    assert "s3cret" not in done.stdout + done.stderr


def newer_sqlite(db: Path) -> bytes:
    SQLiteStore(f"sqlite:///{db}").close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    return db.read_bytes()


def test_run_refuses_a_schema_newer_than_it_knows_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    before = newer_sqlite(db)
    done = chat_rescue(tmp_path, "run", DATABASE_URL=f"sqlite:///{db}", **SLACK)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"chat-rescue will not start: {db}: schema version {len(MIGRATIONS) + 1} was written by "
        f"a newer chat-rescue; this one knows up to {len(MIGRATIONS)}. Run that release or a "
        "newer one (going back to this one needs a backup taken before the upgrade)"]
    assert db.read_bytes() == before
    for command in ("migrate", "stats"):
        refused = chat_rescue(tmp_path, command, DATABASE_URL=f"sqlite:///{db}")
        assert refused.returncode == 2, command
        assert f"schema version {len(MIGRATIONS) + 1} was written by a newer" in refused.stderr
    assert db.read_bytes() == before
    checked = chat_rescue(tmp_path, "check", DATABASE_URL=f"sqlite:///{db}", **SLACK)
    assert f"- DATABASE_URL: {db}: schema version {len(MIGRATIONS) + 1} was written by a " \
           "newer chat-rescue" in checked.stdout


def test_run_refuses_a_postgresql_schema_newer_than_it_knows(tmp_path: Path,
                                                             postgres_url: str) -> None:
    newer = len(PG_MIGRATIONS) + 1
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s, 0)", (newer,))
    done = chat_rescue(tmp_path, "run", DATABASE_URL=postgres_url, **SLACK)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("chat-rescue will not start: PostgreSQL at ")
    assert f": schema version {newer} was written by a newer chat-rescue; this one knows up " \
           f"to {len(PG_MIGRATIONS)}." in line
    with psycopg.connect(postgres_url) as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")] \
            == [*range(1, newer)] + [newer]
    checked = chat_rescue(tmp_path, "check", DATABASE_URL=postgres_url)
    assert f"schema version {newer} was written by a newer chat-rescue" in checked.stdout


# --- copy-db --------------------------------------------------------------------------


def test_copy_db_moves_a_store_into_postgresql_and_prints_each_tables_rows(
        tmp_path: Path, postgres_databases: Databases) -> None:
    db = tmp_path / "day.db"
    store = SQLiteStore(f"sqlite:///{db}")
    populate(store)
    store.close()
    with sqlite3.connect(db) as conn:
        expected = {table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE "
                                                 "type = 'table' AND name NOT LIKE 'sqlite_%'")}
    target = postgres_databases.fresh(migrated=False)
    done = chat_rescue(tmp_path, "copy-db", f"sqlite:///{db}", target)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.endswith(": migration 1 applied") for line in lines)  # migrated first
    printed = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in lines
               if line.startswith("  ") and line.endswith(" rows")}
    assert printed == expected and printed["conversations"] == CONVERSATIONS
    assert re.fullmatch(rf"copied {sum(expected.values()):,} rows in \d+\.\d s; every table's "
                        "count matches the source's", lines[-1])
    again = chat_rescue(tmp_path, "copy-db", f"sqlite:///{db}", target)
    assert again.returncode == 2
    assert again.stderr.startswith("copy-db refused, nothing written: PostgreSQL at ")
    assert "is not empty (aliases 40, conversations 40," in again.stderr
    replaced = chat_rescue(tmp_path, "copy-db", f"sqlite:///{db}", target, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.splitlines()[-1].startswith(f"copied {sum(expected.values()):,} rows")


def test_copy_db_refuses_what_would_go_wrong(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    SQLiteStore(f"sqlite:///{db}").close()
    onto_itself = chat_rescue(tmp_path, "copy-db", f"sqlite:///{db}", f"sqlite:///{db}")
    assert onto_itself.returncode == 2
    assert "the source and the destination are the same database" in onto_itself.stderr
    missing = chat_rescue(tmp_path, "copy-db", f"sqlite:///{tmp_path}/none.db",
                          f"sqlite:///{tmp_path}/b.db")
    assert missing.returncode == 1
    assert f"there is no database at {tmp_path}/none.db" in missing.stderr
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "b.db").exists()
    unreachable = chat_rescue(tmp_path, "copy-db", f"sqlite:///{db}",
                              "postgresql://bot:s3cret@127.0.0.1:1/db")
    assert unreachable.returncode == 1
    assert "cannot use PostgreSQL at 127.0.0.1:1/db (" in unreachable.stderr
    assert "s3cret" not in unreachable.stdout + unreachable.stderr

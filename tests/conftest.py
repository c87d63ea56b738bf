"""A real PostgreSQL server for the tests that need one, started by the project itself.

`TEST_DATABASE_URL` when it is set (its role needs CREATEDB); otherwise a private,
throw-away cluster from the machine's PostgreSQL binaries (`chat_rescue/sandbox/
postgres.py`), one per test session, removed at its end. Each test gets a database of
its own. Without PostgreSQL those tests are skipped, with one line saying so, except
under CI (`CI` set), where a missing or failing server fails the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from chat_rescue.sandbox import postgres

MISSING = ("PostgreSQL not found: the PostgreSQL tests are skipped; "
           "set TEST_DATABASE_URL or install PostgreSQL")
_SKIPPED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def postgres_databases(request: pytest.FixtureRequest) -> Iterator[postgres.Databases]:
    """Fresh databases on the session's PostgreSQL server."""
    url = os.environ.get("TEST_DATABASE_URL")
    server = None
    if not url:
        bindir = postgres.find_bindir()
        if bindir is None:
            if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
                pytest.fail("PostgreSQL not found, and under CI its tests may not be "
                            "skipped: install PostgreSQL or set TEST_DATABASE_URL")
            request.config.stash[_SKIPPED] = True
            pytest.skip(MISSING)
        server = postgres.start(bindir)
        url = server.url()
    databases = postgres.Databases(url)
    try:
        yield databases
    finally:
        databases.close()
        if server is not None:
            server.stop()


@pytest.fixture
def postgres_url(postgres_databases: postgres.Databases) -> Iterator[str]:
    """The URL of a new database with the newest schema, dropped after the test."""
    url = postgres_databases.fresh()
    yield url
    postgres_databases.drop(url)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if terminalreporter.config.stash.get(_SKIPPED, False):
        terminalreporter.write_line(MISSING)

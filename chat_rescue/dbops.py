"""`chat-rescue migrate`: the database commands.

Exit codes as the other commands: 0 done; 1 the database could not be used (out of
reach, not a database); 2 refused, nothing written: the configuration is invalid, or the
schema is newer than this release knows.
"""

from __future__ import annotations

import sys
import time

from chat_rescue.ops import load_settings
from chat_rescue.storage import factory
from chat_rescue.storage.versions import SchemaTooNew


def migrate() -> int:
    """Bring the store `DATABASE_URL` names to the newest schema, saying what was done.

    Not needed before `run` (opening the store migrates it too): it lets an operator
    upgrade the schema on purpose, before replicas of the new release start.
    """
    settings = load_settings()
    if settings is None:
        return 2
    url = settings.database_url
    where = factory.where_is(url)
    started = time.monotonic()
    print(f"{where}: migrating", flush=True)

    def applied(number: int) -> None:
        print(f"{where}: migration {number} applied", flush=True)

    try:
        before, after = factory.migrate(url, applied)
    except SchemaTooNew as newer:
        print(f"{where}: {newer}", file=sys.stderr)
        return 2
    except ValueError as failed:
        print(f"DATABASE_URL: {failed}", file=sys.stderr)
        return 1
    if before == after:
        print(f"{where}: already at schema {after}")
    else:
        print(f"{where}: migrated from schema {before} to {after} "
              f"in {time.monotonic() - started:.1f} s")
    return 0

"""`chat-rescue migrate` and `copy-db`: the database commands.

Exit codes as the other commands: 0 done; 1 the database could not be used (out of
reach, not a database, a copy that did not match); 2 refused, nothing written: the
configuration is invalid, a schema is newer than this release knows, or the copy would
be wrong (a destination that holds data, schemas that do not correspond).
"""

from __future__ import annotations

import sys
import time

from chat_rescue.ops import load_settings
from chat_rescue.storage import factory
from chat_rescue.storage.transfer import CopyRefused, copy_store
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


def copy_db(source: str, destination: str, *, replace: bool) -> int:
    """Copy the store at `source` into the one at `destination`, printing each table's
    rows (verified against the source) and how long the copy took: the downtime of a
    move made with the bot stopped."""
    try:
        copied = copy_store(source, destination, replace=replace,
                            say=lambda line: print(line, flush=True))
    except SchemaTooNew as newer:
        print(f"{factory.where_is(source)}: {newer}", file=sys.stderr)
        return 2
    except CopyRefused as refused:
        print(f"copy-db refused, nothing written: {refused}", file=sys.stderr)
        return 2
    except ValueError as failed:
        print(f"copy-db failed, nothing written: {failed}", file=sys.stderr)
        return 1
    width = max(len(table) for table in copied.counts)
    for table, count in copied.counts.items():
        print(f"  {table:<{width}}  {count:>10,} rows")
    print(f"copied {sum(copied.counts.values()):,} rows in {copied.seconds:.1f} s; "
          "every table's count matches the source's")
    return 0

"""A private, throw-away PostgreSQL server from the binaries on this machine.

For the tests and benchmarks, never for production: `initdb` into a fresh temporary
directory, `pg_ctl start` on a free loopback port (`listen_addresses=127.0.0.1`, the
unix socket inside that directory, trust authentication, no fsync), then `stop()` removes
it all, at exit too. PostgreSQL refuses to run as root, so as root the server runs as
the `postgres` user (`runuser`) and the directory is theirs. A directory left behind by
a run that was killed is removed by the next `start()`.

`Databases` hands out fresh databases on such a server or on `TEST_DATABASE_URL`'s.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

BINARIES = ("initdb", "pg_ctl", "postgres")
# Where distributions put the server binaries (they are rarely on PATH).
_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin",
              "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin")
_PREFIX = "chat-rescue-pg-"
_SERVER_USER = "postgres"  # the account distributions' packages create

# Durability is of no use to a server that is deleted afterwards.
_TEST_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_min_messages": "warning",

}


class NotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path | None:
    """The directory of the newest initdb, pg_ctl and postgres: PATH first, then
    pg_config's answer, then where distributions install them."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                   timeout=10, check=True).stdout.strip()
            candidates.append(Path(found))
    for pattern in _BIN_GLOBS:
        candidates += sorted(Path("/").glob(pattern.lstrip("/")), key=_version_of, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in BINARIES):
            return bindir
    return None


def _version_of(bindir: Path) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", str(bindir))
    return tuple(int(n) for n in numbers)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One running throw-away cluster; `url()` names a database on it."""

    def __init__(self, root: Path, bindir: Path, port: int, as_user: str | None) -> None:
        self.root = root
        self.bindir = bindir
        self.port = port
        self.as_user = as_user
        self._stopped = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server at once (nothing in it is worth a clean shutdown) and remove
        its directory; a second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _pg_ctl(self.bindir, self.as_user, self.data, "stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start(bindir: Path | None = None, *, timeout: float = 60.0) -> Server:
    """Create and start a private cluster; raises NotFound without the binaries and
    RuntimeError (with the server's own words) when it does not start."""
    bindir = bindir or find_bindir()
    if bindir is None:
        raise NotFound("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found")
    reap_stale()
    as_user = _SERVER_USER if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix=_PREFIX))
    try:
        (root / "owner.pid").write_text(f"{os.getpid()}\n")
        if as_user is not None:
            shutil.chown(root, as_user)
        _initdb(bindir, as_user, root)
        for attempt in itertools.count(1):
            port = _free_port()
            _configure(root / "data", port, root)
            try:
                _pg_ctl(bindir, as_user, root / "data", "start", "-w", "-t", str(int(timeout)),
                        "-l", str(root / "server.log"))
                break
            except subprocess.CalledProcessError as failed:
                # Another program may have taken the port between the probe and the start.
                if attempt >= 3:
                    log = (root / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"PostgreSQL did not start: {failed.stderr}"
                                       f"{log}") from None
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    server = Server(root, bindir, port, as_user)
    atexit.register(server.stop)
    return server


def _as(as_user: str | None, command: list[str]) -> list[str]:
    return ["runuser", "-u", as_user, "--", *command] if as_user else command


def _initdb(bindir: Path, as_user: str | None, root: Path) -> None:
    base = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--no-sync"]
    # A collation that is not byte order (ICU's en-US, where PostgreSQL has it), so a
    # query that only works under the C collation fails here rather than in production.
    for extra in (["--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US"],
                  ["--locale=C.UTF-8"], ["--no-locale"]):
        shutil.rmtree(root / "data", ignore_errors=True)
        done = subprocess.run(_as(as_user, base + extra), cwd=root, capture_output=True,
                              text=True, timeout=120)
        if done.returncode == 0:
            return
    raise RuntimeError(f"initdb failed: {done.stderr.strip()}")


def _configure(data: Path, port: int, socket_dir: Path) -> None:
    settings = {**_TEST_SETTINGS, "port": str(port),
                "unix_socket_directories": f"'{socket_dir}'"}
    lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
    (data / "postgresql.auto.conf").write_text(lines)


def _pg_ctl(bindir: Path, as_user: str | None, data: Path, *args: str) -> None:
    subprocess.run(_as(as_user, [str(bindir / "pg_ctl"), "-D", str(data), *args]),
                   cwd=data.parent, capture_output=True, text=True, check=True, timeout=120)


def reap_stale() -> None:
    """Stop and remove clusters whose test run died without removing them."""
    for root in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        bindir = find_bindir()
        if bindir is not None and (root / "data" / "postmaster.pid").exists():
            as_user = _SERVER_USER if os.geteuid() == 0 else None
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _pg_ctl(bindir, as_user, root / "data", "stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def with_database(url: str, database: str) -> str:
    """The same server and role, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


class Databases:
    """Fresh databases on one server, each from a template made once (migrated, or
    empty), dropped again by `drop` or `close`. The role must be allowed CREATEDB."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._admin = psycopg.connect(url, autocommit=True)
        self._names = (f"chat_rescue_test_{os.getpid()}_{n}" for n in itertools.count())
        self._created: list[str] = []
        self._template: str | None = None

    def server_version(self) -> str:
        row = self._admin.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def fresh(self, *, migrated: bool = True) -> str:
        """The URL of a new database: with the newest schema, or empty (template1)."""
        name = next(self._names)
        template = self._migrated_template() if migrated else "template1"
        self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._created.append(name)
        return with_database(self.url, name)

    def drop(self, url: str) -> None:
        """Drop a database made by `fresh` (connections still open to it are ended)."""
        name = urlsplit(url).path.lstrip("/")
        self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self._created.remove(name)

    def _migrated_template(self) -> str:
        if self._template is None:
            from chat_rescue.storage.postgres import PostgresStore

            name = next(self._names)
            self._admin.execute(f'CREATE DATABASE "{name}"')
            self._created.append(name)
            PostgresStore(with_database(self.url, name)).close()
            self._template = name
        return self._template

    def close(self) -> None:
        """Drop every database made here."""
        for name in reversed(self._created):
            with contextlib.suppress(psycopg.Error):
                self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()
        self._admin.close()

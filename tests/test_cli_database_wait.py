"""`chat-rescue run` and a PostgreSQL server that does not answer: it waits a bounded
time for one that may come (saying so at each try), starts when it answers, and ends
with one plain line, never a traceback or the password, when it does not."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from chat_rescue.sandbox.telegram_support import free_port
from tests.test_cli import SLACK, chat_rescue


def test_run_waits_for_an_unreachable_postgresql_then_says_so_in_one_line(
        tmp_path: Path) -> None:
    started = time.monotonic()
    done = chat_rescue(tmp_path, "run", DATABASE_URL="postgresql://bot:s3cret@127.0.0.1:1/db",
                       DATABASE_WAIT="1.5", **SLACK)
    took = time.monotonic() - started
    assert done.returncode == 1
    *waited, last = done.stderr.splitlines()
    assert last.startswith("chat-rescue will not start: cannot use PostgreSQL at "
                           "127.0.0.1:1/db (")
    assert waited and all(line.startswith("chat-rescue: cannot use PostgreSQL at 127.0.0.1:1/db")
                          and "trying again in" in line for line in waited)
    assert "Traceback" not in done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    assert 1.5 <= took < 15


def test_run_does_not_wait_for_a_database_the_server_refuses(tmp_path: Path,
                                                              postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    missing = urlunsplit(parts._replace(path="/no_such_database"))
    started = time.monotonic()
    done = chat_rescue(tmp_path, "run", DATABASE_URL=missing, DATABASE_WAIT="30", **SLACK)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()  # the server answered: no point in waiting
    assert line.startswith("chat-rescue will not start: cannot use PostgreSQL at ")
    assert "no_such_database" in line
    assert time.monotonic() - started < 15


class LateForwarder:
    """A TCP port that refuses connections until `open()`, then forwards them to the
    real server: a database starting after its replica."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def open(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port))
        self._server = server
        thread = threading.Thread(target=self._accept, args=(server,), daemon=True)
        thread.start()

    def _accept(self, server: socket.socket) -> None:
        with suppress(OSError):
            while True:
                client, _ = server.accept()
                upstream = socket.create_connection(self.target)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
    with suppress(OSError):
        source.close()  # each end once: each pipe closes the socket it reads


def test_run_starts_once_postgresql_answers(tmp_path: Path, postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    late = LateForwarder((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{late.port}"
    url = urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2
                                    else host))
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "TELEGRAM_", "RESCUE_", "DATABASE_"))}
    env = {**clean, **SLACK, "DATABASE_URL": url, "DATABASE_WAIT": "30", "PORT": "0"}
    with subprocess.Popen(
            [sys.executable, "-c", "from chat_rescue.cli import main; main()", "run"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True) as child:
        try:
            assert child.stderr is not None and child.stdout is not None
            first = child.stderr.readline()  # the first try found nobody
            assert first.startswith(f"chat-rescue: cannot use PostgreSQL at {host}")
            late.open()
            running = child.stdout.readline()
            assert running.startswith("chat-rescue is running on ")
            child.send_signal(signal.SIGTERM)
            assert child.wait(timeout=30) == 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            late.close()

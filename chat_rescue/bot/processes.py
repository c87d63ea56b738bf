"""Outbox workers' names, and what one host can tell of them: `host:pid.start.namespace:
random`, whose process on this host (and pid namespace) still lives or not. A single-host
store (SQLite) judges its lease holders by this; a shared server (PostgreSQL) by a lock
each worker holds on it (`ports.Presence`)."""

from __future__ import annotations

import os
import secrets
import socket


def worker_name() -> str:
    """`<host>:<pid>.<start>.<pid namespace>:<random>`: who holds a lease, and how to tell
    whether that process still lives (`start`: when it started, so that pid 1 of a
    restarted container is not taken for its predecessor; the namespace, because two
    containers with one host name each have a pid 1)."""
    pid = os.getpid()
    return (f"{socket.gethostname()}:{pid}.{started(pid)}.{pid_namespace()}:"
            f"{secrets.token_hex(3)}")


def worker_alive(name: str) -> bool:
    """False only for a worker of this host and pid namespace whose process has ended
    (any other is waited for until its leases run out)."""
    host, _, rest = name.partition(":")
    pid, _, rest = rest.partition(":")[0].partition(".")
    began, _, namespace = rest.partition(".")
    if host != socket.gethostname() or not pid.isdigit() or namespace != pid_namespace():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process of that id
    return not began or started(int(pid)) in ("", began)


def started(pid: int) -> str:
    """When a process started (clock ticks since boot, from /proc; "" where unknown)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def pid_namespace() -> str:
    """This process's pid namespace ("" where unknown)."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return ""

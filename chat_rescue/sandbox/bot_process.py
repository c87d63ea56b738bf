"""chat-rescue as a real child process, for crash tests: start, wait for /healthz, SIGKILL.

The child is `python -m chat_rescue.sandbox.paced_run` (`chat-rescue run` with the sandbox
pacing) in its own working directory, so no `.env` of the developer's leaks in, with an
environment that holds only what the test gives it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

# Variables of ours that must not leak from the developer's shell into the child.
OWN_PREFIXES = ("SLACK_", "TELEGRAM_", "RESCUE_", "DATABASE_URL", "HOST", "PORT", "LOG_LEVEL")


class BotProcess:
    """One chat-rescue process at a time on a fixed port; output appended to `log_path`."""

    def __init__(self, env: Mapping[str, str], port: int, workdir: Path, log_path: Path) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
        self.env = {**base, **env, "PORT": str(port), "HOST": "127.0.0.1"}
        self.port = port
        self.workdir = workdir
        self.log_path = log_path
        self.starts = 0
        self.kills = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The running child's process id (outbox leases name it)."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, timeout: float = 20.0) -> float:
        """Start the child and wait until /healthz answers; returns the seconds it took."""
        if self.running:
            raise RuntimeError("the bot is already running")
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} ---\n".encode())
            log.flush()
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chat_rescue.sandbox.paced_run",
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._process = process
        self.starts += 1
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - began < timeout:
                if process.returncode is not None:
                    self._process = None
                    raise RuntimeError(f"the bot exited with {process.returncode}:\n"
                                       + self.log_tail())
                if await self._healthy(session):
                    return time.monotonic() - began
                await asyncio.sleep(0.02)
        await self.kill()
        raise TimeoutError(f"the bot did not answer /healthz in {timeout:g}s:\n"
                           + self.log_tail())

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
            self.kills += 1
        await process.wait()

    async def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait: the clean shutdown `chat-rescue run` does on Ctrl-C."""
        process, self._process = self._process, None
        if process is None:
            return 0
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            return -signal.SIGKILL

    async def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """The running child's /healthz report (any status); {} when it does not answer."""
        try:
            async with aiohttp.ClientSession() as session, session.get(
                    f"{self.url}/healthz",
                    timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                report: dict[str, Any] = await response.json()
                return report
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {}

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def _healthy(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"{self.url}/healthz",
                                   timeout=aiohttp.ClientTimeout(total=1)) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


def leads_telegram(report: Mapping[str, Any]) -> bool:
    """Whether a /healthz report says that its process polls Telegram (leads)."""
    telegram = report.get("leads", {}).get("telegram", {})
    return bool(telegram.get("this_replica_leads"))

#!/usr/bin/env python3
"""Set up a local virtualenv and run chat-rescue's main jobs.

    python3 dev.py demo    # install into .venv, then run `chat-rescue demo`
    python3 dev.py test    # install into .venv, then lint, type-check and run the tests

Needs only Python 3.11+; everything else is installed into ./.venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"chat-rescue needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating virtualenv in {VENV.name}/", flush=True)
        venv.create(VENV, with_pip=True)
    pyproject = ROOT / "pyproject.toml"
    if not STAMP.exists() or STAMP.stat().st_mtime < pyproject.stat().st_mtime:
        run(BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")
        run(BIN / "python", "-m", "pip", "install", "-q", "-e", ".[test]")
        STAMP.touch()


def main() -> None:
    job = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if job == "demo":
        setup()
        run(BIN / "chat-rescue", "demo", *rest)
    elif job == "test":
        setup()
        run(BIN / "ruff", "check", ".")
        run(BIN / "mypy")
        if not (shutil.which("chromium") and shutil.which("chromedriver")):
            print("Chromium not found: the queue page's browser test is skipped "
                  "(install chromium and chromium-driver)", flush=True)
        run(BIN / "python", "-m", "pytest", *rest)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as failed:
        sys.exit(failed.returncode)

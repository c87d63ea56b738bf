"""Reports, metrics and what-if replays (issue 11): three figures, one run.

1. **report** (`_bench_report.py`): build a 30-day report (figures and PNG) over 100,000
   conversations, off the event loop. Target <= 2 s.
2. **metrics** (`_bench_metrics.py`): one `GET /metrics` scrape with 1,000,000 open
   conversations (gauges kept current by the service, no row counting per scrape).
   Target <= 50 ms.
3. **whatif** (`_bench_whatif.py`): replay 30 days of 10,000 conversations a day through
   the engine with other thresholds. Target <= 30 s.

    .venv/bin/python benchmarks/reports.py                 # all three
    .venv/bin/python benchmarks/reports.py --only metrics  # one of them
    .venv/bin/python benchmarks/reports.py --quick         # smoke sizes

Each part's module has `run(quick: bool) -> list[str]`: it prints its own figures as it
goes and returns its TARGET lines, which this script prints last, together.
"""

from __future__ import annotations

import argparse
import importlib

from _common import machine

PARTS = {"report": "_bench_report", "metrics": "_bench_metrics", "whatif": "_bench_whatif"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PARTS), action="append")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    targets: list[str] = []
    for name in args.only or list(PARTS):
        print(f"--- {name}")
        targets += importlib.import_module(PARTS[name]).run(args.quick)
    print()
    for line in targets:
        print(line)


if __name__ == "__main__":
    main()

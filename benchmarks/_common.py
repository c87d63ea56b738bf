"""Small helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def proc_status_kib(field: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM, ...), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def machine() -> str:
    cpus = os.cpu_count()
    return f"{platform.python_implementation()} {platform.python_version()}, {cpus} cores, " \
           f"{platform.system()} {platform.release()}, {time.strftime('%Y-%m-%d')}"


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """'median (min .. max, n=3)' for printing repeated runs."""
    if len(values) == 1:
        return fmt.format(values[0])
    return (f"{fmt.format(median(values))} (min {fmt.format(min(values))}, "
            f"max {fmt.format(max(values))}, n={len(values)})")


def busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores, all processes) since boot."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

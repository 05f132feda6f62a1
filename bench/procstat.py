"""CPU counters from /proc: per process (all threads) and for the whole machine.

Clock ticks are 10 ms on Linux, so a window must hold enough requests for µs-per-request to
mean anything (a 3 s window at 300 req/s resolves ~10 µs).
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> tuple[float, float] | None:
    """(utime + stime, stime) of a live process, in seconds; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * TICK, int(fields[12]) * TICK


def machine_busy_s() -> float:
    """CPU seconds every core spent not idle since boot (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    ticks = [int(p) for p in parts[:8]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) * TICK


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    """Name -> CPU seconds, name + ":sys" -> the kernel's part of it, "_machine" -> all cores busy."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        if (cpu := process_cpu_s(pid)) is not None:
            out[name], out[name + ":sys"] = cpu
    out["_machine"] = machine_busy_s()
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before if name in after}

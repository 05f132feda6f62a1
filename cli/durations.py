"""Durations as the operator's screens print them (`aiub status`, the dashboard): short, with the
unit that keeps the number small."""

from __future__ import annotations


def duration(seconds: float | None, missing: str = "–") -> str:
    """A latency: milliseconds below 10 s, seconds above; `missing` when there is none."""
    if seconds is None:
        return missing
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def age(seconds: float) -> str:
    """How long ago something happened (a clock step backwards reads as now)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"

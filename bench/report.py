"""Markdown tables from benchmark samples: direct vs aiub with ratios, and CPU per request.

A sample is one load-generator run against one target: {"scenario", "label", "target", "load"
(loadgen.py's JSON), "cpu" (CPU seconds per service over the measured window), "elapsed_s"}.
Repetitions are combined by median for rates and percentiles, and by total CPU over total
requests for CPU per request.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable
from typing import Any

SERVICES = ("gateway", "router", "worker", "nats", "health")
TARGETS = ("direct", "aiub")


def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _get(load: dict[str, Any], path: str) -> float | None:
    group, _, key = path.partition(".")
    if not key:
        return load.get(group)
    return (load.get(group) or {}).get(key)


def combine(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Median metrics and pooled CPU per request for the samples of one (scenario, target)."""
    out: dict[str, Any] = {path: _median(_get(s["load"], path) for s in samples)
                           for path in ("rps", "latency_ms.p50", "latency_ms.p99", "ttft_ms.p50", "ttft_ms.p99")}
    ok = sum(s["load"]["ok"] for s in samples)
    out["ok"] = ok
    out["errors"] = sum(sum(s["load"]["errors"].values()) for s in samples)
    elapsed = sum(s["elapsed_s"] for s in samples)
    cpu: dict[str, float] = {}
    for s in samples:
        for name, seconds in s["cpu"].items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    cpu["client"] = sum(s["load"]["client_cpu_s"] for s in samples)
    totals = {k: v for k, v in cpu.items() if not k.startswith("_") and ":" not in k}
    ours = sum(totals.values())
    out["cpu_us"] = {k: (v / ok * 1e6 if ok else None) for k, v in totals.items()}
    aiub_cpu = sum(cpu.get(s, 0.0) for s in SERVICES)
    out["aiub_sys_share"] = sum(cpu.get(s + ":sys", 0.0) for s in SERVICES) / aiub_cpu if aiub_cpu else None
    # Whatever else ran on the machine meanwhile (other people's tests): the noise indicator.
    out["other_cores"] = max(0.0, cpu.get("_machine", ours) - ours) / elapsed if elapsed else None
    out["our_cores"] = ours / elapsed if elapsed else None
    return out


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def _row(label: str, metric: str, d: float | None, a: float | None, latency: bool) -> str:
    ratio = f"{a / d:.2f}×" if a is not None and d else "–"
    added = f"{a - d:+.2f} ms" if latency and a is not None and d is not None else ""
    return f"| {label} | {metric} | {_fmt(d)} | {_fmt(a)} | {ratio} | {added} |"


def tables(samples: list[dict[str, Any]]) -> str:
    order: dict[str, str] = {}
    for s in samples:
        order.setdefault(s["scenario"], s["label"])
    combined = {(key, t): combine([s for s in samples if s["scenario"] == key and s["target"] == t])
                for key in order for t in TARGETS}
    lines = ["| scenario | metric | direct | aiub | aiub/direct | added |", "|---|---|---|---|---|---|"]
    for key, label in order.items():
        d, a = combined[(key, "direct")], combined[(key, "aiub")]
        metrics = [("req/s", "rps", False)]
        if d["ttft_ms.p50"] is not None:
            metrics += [("TTFT p50 ms", "ttft_ms.p50", True), ("TTFT p99 ms", "ttft_ms.p99", True)]
        metrics += [("p50 ms", "latency_ms.p50", True), ("p99 ms", "latency_ms.p99", True)]
        for i, (name, path, latency) in enumerate(metrics):
            lines.append(_row(label if i == 0 else "", name, d[path], a[path], latency))
    lines += ["", "CPU per request in µs (CPU seconds in the measured window / requests completed); "
              "`kernel` is the share of aiub's CPU spent in the kernel (sockets, wake-ups); "
              "`other` is CPU used by processes outside the benchmark meanwhile, in cores (noise); "
              f"`ceiling` is the req/s this machine's {os.cpu_count()} cores could serve at this CPU cost per "
              "request (all processes, client included): a figure that noise from other processes "
              "affects less than measured req/s (meaningful only where the run is CPU-bound: high concurrency).", "",
              "| scenario | target | requests (errors) | client | simulator | " + " | ".join(SERVICES)
              + " | aiub total | kernel | all | ceiling | other |",
              "|---|---|---|---|---|" + "---|" * len(SERVICES) + "---|---|---|---|---|"]
    for key, label in order.items():
        for t in TARGETS:
            c = combined[(key, t)]
            us = c["cpu_us"]
            svc = [_fmt(us.get(s), 0) if t == "aiub" else "–" for s in SERVICES]
            aiub_total = sum(us.get(s) or 0.0 for s in SERVICES)
            share = c["aiub_sys_share"]
            kernel = f"{share:.0%}" if t == "aiub" and share is not None else "–"
            everything = sum(v or 0.0 for v in us.values()) - (0.0 if t == "aiub" else aiub_total)
            ceiling = (os.cpu_count() or 1) * 1e6 / everything if everything else None
            lines.append(f"| {label} | {t} | {c['ok']:,} ({c['errors']}) | {_fmt(us.get('client'), 0)} | "
                         f"{_fmt(us.get('simulator'), 0)} | " + " | ".join(svc)
                         + f" | {_fmt(aiub_total, 0) if t == 'aiub' else '–'} | {kernel} | {_fmt(everything, 0)} | "
                         f"{_fmt(ceiling, 0)} | {_fmt(c['other_cores'])} |")
    return "\n".join(lines)

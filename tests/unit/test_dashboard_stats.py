"""Rolling latency and traffic per provider, with a clock the test moves."""

from __future__ import annotations

from typing import Any

import pytest

from cli.dashboard.stats import RollingStats, percentile
from shared.messages import Outcome, OutcomeKind


def outcome(provider: str = "ollama", kind: OutcomeKind = "ok", latency_s: float = 0.2,
            ttft_s: float | None = 0.05, **extra: Any) -> Outcome:
    return Outcome(provider=provider, model="m", request_id="r", attempt="a", worker_id="w", kind=kind,
                   latency_s=latency_s, ttft_s=ttft_s, **extra)


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 0.5, None),
    ([1.0], 0.95, 1.0),
    ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
    ([float(i) for i in range(1, 101)], 0.95, 95.0),
    ([float(i) for i in range(1, 101)], 0.5, 50.0),
    ([1.0, 2.0], 0.0, 1.0),
])
def test_nearest_rank_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_p50_and_p95_per_provider_side_by_side() -> None:
    stats = RollingStats(window_s=60)
    for i in range(1, 101):
        stats.add(outcome("ollama", latency_s=i / 100, ttft_s=i / 1000), now=1000.0)
    stats.add(outcome("vllm", latency_s=2.0, ttft_s=0.5), now=1000.0)
    summary = stats.summary(now=1000.0)
    assert list(summary) == ["ollama", "vllm"]
    ollama = summary["ollama"]
    assert (ollama.ttft_p50, ollama.ttft_p95, ollama.total_p50, ollama.total_p95) == (0.05, 0.095, 0.5, 0.95)
    assert summary["vllm"].total_p95 == 2.0
    assert ollama.attempts == 100 and summary["vllm"].share == pytest.approx(1 / 101)


def test_total_latency_counts_only_successes_and_failures_are_upstream_only() -> None:
    stats = RollingStats()
    stats.add(outcome(latency_s=1.0), now=0.0)
    stats.add(outcome(kind="server_error", latency_s=0.001, ttft_s=None, status=502), now=0.0)
    stats.add(outcome(kind="client_error", latency_s=0.001, ttft_s=None, status=400), now=0.0)
    stats.add(outcome(kind="rate_limited", latency_s=0.001, ttft_s=None, status=429), now=0.0)
    s = stats.summary(now=0.0)["ollama"]
    assert s.total_p50 == 1.0 and s.total_p95 == 1.0
    assert s.attempts == 4 and s.failures == 2 and s.failure_rate == 0.5


def test_a_cancelled_attempt_is_not_counted() -> None:
    stats = RollingStats()
    stats.add(outcome(kind="cancelled", ttft_s=None), now=0.0)
    assert stats.summary(now=0.0) == {}


def test_samples_leave_the_window_on_both_sides_of_its_edge() -> None:
    stats = RollingStats(window_s=10)
    stats.add(outcome(latency_s=5.0), now=100.0)
    stats.add(outcome(latency_s=1.0), now=105.0)
    assert stats.summary(now=110.0)["ollama"].attempts == 2  # exactly window_s old: still in
    assert stats.summary(now=110.001)["ollama"].total_p95 == 1.0
    assert stats.summary(now=115.001) == {}


def test_memory_is_bounded_per_provider() -> None:
    stats = RollingStats(max_samples=10)
    for i in range(100):
        stats.add(outcome(latency_s=float(i)), now=0.0)
    s = stats.summary(now=0.0)["ollama"]
    assert s.attempts == 10 and s.total_p50 == 94.0

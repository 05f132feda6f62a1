"""The router's load view and usage statistics, with an injected clock."""

from __future__ import annotations

from typing import Any

from services.router.load import LoadView
from services.router.stats import UsageStats
from shared.messages import LoadReport, Outcome


def report(provider: str = "p", worker: str = "w1", in_flight: int = 1, queued: int = 0,
           capacity: int = 4) -> LoadReport:
    return LoadReport(provider=provider, worker_id=worker, in_flight=in_flight, queued=queued, capacity=capacity,
                      queue_capacity=8, at=0.0)


def outcome(kind: str = "ok", provider: str = "p", **fields: Any) -> Outcome:
    values: dict[str, Any] = {"model": "m", "request_id": "r", "attempt": "a", "worker_id": "w1",
                              "latency_s": 1.0, **fields}
    return Outcome(provider=provider, kind=kind, **values)  # type: ignore[arg-type]


def test_reports_sum_across_live_workers() -> None:
    view = LoadView()
    view.report(report(worker="w1", in_flight=2, queued=1), now=100.0)
    view.report(report(worker="w2", in_flight=1, capacity=2), now=100.5)
    load = view.load("p", now=101.0)
    assert load is not None and (load.busy, load.capacity, load.workers) == (4, 6, 2)
    assert view.load("other", now=101.0) is None


def test_a_report_expires_two_seconds_after_it_was_received() -> None:
    view = LoadView()
    view.report(report(), now=100.0)
    assert view.load("p", now=102.0) is not None
    assert view.load("p", now=102.001) is None


def test_placements_add_and_outcomes_subtract_until_the_next_report() -> None:
    view = LoadView()
    view.report(report(in_flight=2), now=0.0)
    view.placed("p", "w1", "mine-1", now=0.1)
    view.placed("p", "w1", "mine-2", now=0.1)
    assert view.load("p", 0.2).busy == 4  # type: ignore[union-attr]
    view.ended("p", "w1", "mine-1")  # ours, placed after the report
    view.ended("p", "w1", "older")  # counted in the report
    assert view.load("p", 0.2).busy == 2  # type: ignore[union-attr]
    view.report(report(in_flight=1), now=0.5)  # absolute again: corrections reset
    assert view.load("p", 0.6).busy == 1  # type: ignore[union-attr]


def test_outcomes_never_push_the_count_below_zero() -> None:
    view = LoadView()
    view.report(report(in_flight=0), now=0.0)
    view.ended("p", "w1", "x")
    assert view.load("p", 0.1).busy == 0  # type: ignore[union-attr]


def test_a_placement_before_the_first_report_counts_and_expires() -> None:
    view = LoadView()
    view.placed("p", "new", "a1", now=5.0)
    assert view.load("p", 5.1).busy == 1  # type: ignore[union-attr]
    assert view.load("p", 7.5) is None


def test_a_busy_answer_counts_the_worker_full_until_its_next_report() -> None:
    view = LoadView()
    view.report(report(in_flight=1, capacity=4), now=0.0)  # queue_capacity 8
    view.ended("p", "w1", "x")
    view.refused("p", "w1")
    assert view.load("p", 0.1).busy == 12  # type: ignore[union-attr]
    view.report(report(in_flight=2, capacity=4), now=0.5)
    assert view.load("p", 0.6).busy == 2  # type: ignore[union-attr]


def test_prune_forgets_expired_workers() -> None:
    view = LoadView()
    view.report(report(worker="gone"), now=0.0)
    view.report(report(worker="here"), now=3.0)
    view.prune(now=3.0)
    view.ended("p", "gone", "x")  # unknown worker: ignored, no error
    assert view.load("p", 3.0).workers == 1  # type: ignore[union-attr]


def test_usage_counts_ok_and_upstream_failures_and_ignores_client_errors() -> None:
    stats = UsageStats()
    for kind in ("ok", "ok", "server_error", "rate_limited", "client_error", "cancelled"):
        stats.record(outcome(kind), now=0.0)
    assert stats.success_rate("p", 0.0) == 0.5
    assert stats.success_rate("q", 0.0) is None


def test_usage_latency_is_time_to_first_token_when_streamed() -> None:
    stats = UsageStats()
    stats.record(outcome(ttft_s=0.2, latency_s=5.0), now=0.0)
    stats.record(outcome(latency_s=0.4), now=0.0)
    assert abs(stats.latency("p", 0.0) - 0.3) < 1e-9  # type: ignore[operator]


def test_usage_forgets_by_window_and_by_age() -> None:
    stats = UsageStats(window=2, max_age_s=60.0)
    stats.record(outcome("server_error"), now=0.0)
    stats.record(outcome("ok"), now=30.0)
    stats.record(outcome("ok"), now=30.0)
    assert stats.success_rate("p", 30.0) == 1.0  # the failure fell out of the window
    assert stats.success_rate("p", 90.0) == 1.0
    assert stats.success_rate("p", 90.001) is None

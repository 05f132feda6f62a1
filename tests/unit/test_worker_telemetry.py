"""The worker's metrics and log line, written from each attempt's Outcome."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from services.workers.telemetry import WorkerTelemetry
from shared.messages import Outcome, OutcomeKind
from shared.metrics import ProviderMetrics


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))


def outcome(kind: OutcomeKind = "ok", provider: str = "ollama", **extra: Any) -> Outcome:
    fields: dict[str, Any] = {"provider": provider, "model": "llama3.1:8b", "request_id": "r1", "attempt": "a1",
                              "worker_id": "w1", "kind": kind, "latency_s": 0.5, "ttft_s": 0.1,
                              "prompt_tokens": 7, "completion_tokens": 16}
    fields.update(extra)
    return Outcome(**fields)


def make() -> tuple[WorkerTelemetry, CollectorRegistry, RecordingLog]:
    registry = CollectorRegistry()
    log = RecordingLog()
    return WorkerTelemetry(ProviderMetrics(registry), log), registry, log


def test_counters_move_by_exactly_the_attempts_recorded() -> None:
    telemetry, registry, _ = make()
    for _ in range(3):
        telemetry.record(outcome())
    telemetry.record(outcome("server_error", status=502, ttft_s=None))
    telemetry.record(outcome(provider="vllm"))
    value = registry.get_sample_value
    assert value("provider_requests_total", {"provider": "ollama", "outcome": "ok"}) == 3
    assert value("provider_requests_total", {"provider": "ollama", "outcome": "server_error"}) == 1
    assert value("provider_requests_total", {"provider": "vllm", "outcome": "ok"}) == 1
    assert value("provider_errors_total", {"provider": "ollama", "kind": "server_error"}) == 1
    assert value("provider_errors_total", {"provider": "vllm", "kind": "server_error"}) is None
    assert value("provider_tokens_total", {"provider": "ollama", "direction": "completion"}) == 64


def test_total_latency_only_for_successes_ttft_whenever_seen() -> None:
    telemetry, registry, _ = make()
    telemetry.record(outcome(latency_s=0.5, ttft_s=0.1))
    telemetry.record(outcome("truncated", latency_s=0.02, ttft_s=0.01))
    value = registry.get_sample_value
    assert value("provider_latency_seconds_count", {"provider": "ollama", "phase": "total"}) == 1
    assert value("provider_latency_seconds_sum", {"provider": "ollama", "phase": "total"}) == 0.5
    assert value("provider_latency_seconds_count", {"provider": "ollama", "phase": "ttft"}) == 2


def test_a_caller_that_went_away_is_not_a_provider_error() -> None:
    telemetry, registry, log = make()
    telemetry.record(outcome("cancelled", status=499, ttft_s=None))
    assert registry.get_sample_value("provider_requests_total", {"provider": "ollama", "outcome": "cancelled"}) == 1
    assert "provider_errors_total{" not in generate_latest(registry).decode()
    telemetry.log_outcome(outcome("cancelled"))
    assert log.lines[-1][:2] == ("info", "attempt_ended")


def test_gauges_read_the_slots_at_scrape_time() -> None:
    telemetry, registry, _ = make()
    counts = {"queued": 0, "running": 0}
    telemetry.watch("ollama", queued=lambda: counts["queued"], running=lambda: counts["running"])
    counts.update(queued=3, running=2)
    assert registry.get_sample_value("request_queue_size", {"provider": "ollama"}) == 3
    assert registry.get_sample_value("provider_in_flight", {"provider": "ollama"}) == 2


def test_log_levels_follow_the_spec() -> None:
    telemetry, _, log = make()
    telemetry.log_outcome(outcome())
    telemetry.log_outcome(outcome("rate_limited", status=429))
    telemetry.log_outcome(outcome("timeout", status=504))
    telemetry.log_outcome(outcome("client_error", status=400))
    assert [(level, event) for level, event, _ in log.lines] == [
        ("info", "attempt_finished"), ("warning", "attempt_rate_limited"), ("error", "attempt_failed"),
        ("info", "attempt_ended")]
    fields = log.lines[0][2]
    assert fields["latency_ms"] == 500.0 and fields["ttft_ms"] == 100.0
    assert fields["model"] == "llama3.1:8b" and fields["provider"] == "ollama"


def test_without_metrics_it_only_logs() -> None:
    log = RecordingLog()
    telemetry = WorkerTelemetry(None, log)
    telemetry.watch("ollama", queued=lambda: 0, running=lambda: 0)
    telemetry.record(outcome())
    telemetry.log_outcome(outcome())
    assert len(log.lines) == 1

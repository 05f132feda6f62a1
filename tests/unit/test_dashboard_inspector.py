"""The request inspector's store and filter, and the metrics summary the dashboard shows."""

from __future__ import annotations

from typing import Any

import pytest

from cli.dashboard.inspector import RequestLog, display_id, matches, parse_query
from cli.dashboard.scrape import summarize
from shared.messages import AttemptRecord, Outcome, RequestRecord


def record(request_id: str, model: str = "llama3.1:8b", providers: tuple[str, ...] = ("ollama",),
           **extra: Any) -> RequestRecord:
    attempts = tuple(AttemptRecord(attempt=f"{request_id}-{i}", provider=p, worker_id="w", status=200)
                     for i, p in enumerate(providers))
    fields: dict[str, Any] = {"client_request_id": None, "kind": "chat", "stream": False, "status": 200,
                              "cache_hit": False, "latency_s": 0.1, "ttft_s": 0.05}
    fields.update(extra)
    return RequestRecord(request_id=request_id, model=model, attempts=attempts, **fields)


@pytest.mark.parametrize(("query", "expected"), [
    ("", True),
    ("model:llama3.1:8b", True),
    ("model:llama*", True),
    ("model:qwen*", False),
    ("model:llama", True),  # a plain word is a substring
    ("provider:vllm", True),  # any attempt's provider
    ("provider:ollama", True),
    ("provider:anthropic", False),
    ("provider:vllm model:qwen*", False),  # every term must match
    ("REQ_ABC", True),
    ("nothing-like-it", False),
])
def test_filter_by_model_provider_or_text(query: str, expected: bool) -> None:
    r = record("bus1", providers=("vllm", "ollama"), client_request_id="req_abc123")
    assert matches(r, parse_query(query)) is expected


def test_newest_first_bounded_and_filtered() -> None:
    log = RequestLog(capacity=3)
    for i in range(5):
        log.add_record(record(f"r{i}", model="qwen" if i % 2 else "llama"))
    assert [r.request_id for r in log.newest()] == ["r4", "r3", "r2"]
    assert [r.request_id for r in log.newest(parse_query("model:qwen"))] == ["r3"]
    assert [r.request_id for r in log.newest(limit=1)] == ["r4"]
    assert log.get("r0") is None and log.received == 5


def test_an_entry_joins_each_attempt_with_its_workers_outcome() -> None:
    log = RequestLog()
    # The worker's outcome usually arrives before the gateway's record.
    log.add_outcome(Outcome(provider="ollama", model="m", request_id="r1", attempt="r1-1", worker_id="w",
                            kind="ok", ttft_s=0.01, completion_tokens=16))
    log.add_record(record("r1", providers=("vllm", "ollama"), client_request_id="req_x"))
    entry = log.get("r1")
    assert entry is not None
    assert entry.outcome_for("r1-0") is None
    found = entry.outcome_for("r1-1")
    assert found is not None and found.completion_tokens == 16
    assert display_id(entry.record) == "req_x"


METRICS_A = """
# TYPE provider_requests counter
provider_requests_total{provider="ollama",outcome="ok"} 8
provider_requests_total{provider="ollama",outcome="server_error"} 2
provider_errors_total{provider="ollama",kind="server_error"} 2
request_queue_size{provider="ollama"} 1
"""
METRICS_B = """
provider_requests_total{provider="ollama",outcome="ok"} 5
provider_requests_total{provider="vllm",outcome="ok"} 5
router_load_balance_distribution_total{provider="ollama"} 15
router_load_balance_distribution_total{provider="vllm"} 5
router_fallback_triggered_total{original_provider="vllm"} 2
provider_availability{provider="vllm"} 0
provider_availability{provider="ollama"} 1
cache_hits_total 3
cache_misses_total 9
active_connections 4
total_throughput_tokens_per_second 120.5
request_queue_size{provider="vllm"} 2
"""


def test_metrics_are_summed_across_endpoints() -> None:
    summary = summarize({"http://a/metrics": METRICS_A, "http://b/metrics": METRICS_B, "http://c/metrics": None})
    assert summary.endpoints == {"http://a/metrics": True, "http://b/metrics": True, "http://c/metrics": False}
    assert summary.requests == {"ollama": 15, "vllm": 5}
    assert summary.errors == {"ollama": 2}
    assert summary.distribution == {"ollama": 15, "vllm": 5}
    assert summary.fallbacks == {"vllm": 2}
    assert summary.availability == {"vllm": 0, "ollama": 1}
    assert summary.queued == 3 and summary.active_connections == 4 and summary.throughput == 120.5
    assert summary.cache_hit_rate == 0.25


def test_unparsable_metrics_count_as_down() -> None:
    summary = summarize({"http://a/metrics": "this is { not prometheus"})
    assert summary.endpoints == {"http://a/metrics": False}
    assert summary.cache_hit_rate is None

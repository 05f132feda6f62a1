"""What a worker tells operators about each attempt: Prometheus metrics and one log line.

Both are written from the attempt's `Outcome`, after its last frame has gone to the caller,
so neither sits between a token and the client. The queue and in-flight gauges cost nothing
per request: they read the provider's slots when Prometheus scrapes.

Metrics (names from the spec; `_total` is added by the Prometheus client):
- `provider_requests_total{provider,outcome}`: every attempt, `outcome` = the Outcome's kind.
- `provider_errors_total{provider,kind}`: every attempt that did not succeed, except a caller
  that went away (`cancelled`) — that says nothing about the provider.
- `provider_latency_seconds{provider,phase}`: `ttft` whenever a first token was seen, `total`
  for successful attempts only (a fast 500 must not make a provider look quick).
- `provider_tokens_total{provider,direction}`: prompt and completion tokens.
- `request_queue_size{provider}`, `provider_in_flight{provider}`: waiting and running now.

System-wide `total_throughput_tokens_per_second` is the gateway's gauge; from workers it is
`sum(rate(provider_tokens_total{direction="completion"}[1m]))`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.messages import Outcome
from shared.metrics import ProviderMetrics

NOT_ERRORS = frozenset({"ok", "cancelled"})
_QUIET = frozenset({"ok", "client_error", "cancelled"})


class WorkerTelemetry:
    def __init__(self, metrics: ProviderMetrics | None, log: Any) -> None:
        self._metrics = metrics
        self._log = log
        self._children: dict[tuple[str, ...], Any] = {}  # labels() lookups cached: they take a lock

    def watch(self, provider: str, queued: Callable[[], float], running: Callable[[], float]) -> None:
        if self._metrics is not None:
            self._metrics.queue_size.labels(provider).set_function(queued)
            self._metrics.in_flight.labels(provider).set_function(running)

    def _child(self, metric: str, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = getattr(self._metrics, metric).labels(*labels)
        return child

    def record(self, outcome: Outcome) -> None:
        if self._metrics is None:
            return
        provider, kind = outcome.provider, outcome.kind
        self._child("requests", provider, kind).inc()
        if kind not in NOT_ERRORS:
            self._child("errors", provider, kind).inc()
        if outcome.ttft_s is not None:
            self._child("latency", provider, "ttft").observe(outcome.ttft_s)
        if kind == "ok":
            self._child("latency", provider, "total").observe(outcome.latency_s)
        if outcome.prompt_tokens:
            self._child("tokens", provider, "prompt").inc(outcome.prompt_tokens)
        if outcome.completion_tokens:
            self._child("tokens", provider, "completion").inc(outcome.completion_tokens)

    def log_outcome(self, outcome: Outcome) -> None:
        """INFO for a finished attempt, WARNING when rate-limited, ERROR when the provider failed."""
        kind = outcome.kind
        if kind in _QUIET:
            emit, event = self._log.info, ("attempt_finished" if kind == "ok" else "attempt_ended")
        elif kind == "rate_limited":
            emit, event = self._log.warning, "attempt_rate_limited"
        else:
            emit, event = self._log.error, "attempt_failed"
        emit(event, model=outcome.model, provider=outcome.provider, outcome=kind, status=outcome.status,
             latency_ms=round(outcome.latency_s * 1000, 1),
             ttft_ms=None if outcome.ttft_s is None else round(outcome.ttft_s * 1000, 1),
             prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
             attempt=outcome.attempt, worker_id=outcome.worker_id)

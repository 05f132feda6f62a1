"""What the gateway says about each finished request: one log line and the request metrics.

The log line is the spec's (`event`, `model`, `provider`, `latency_ms`, `cache_hit`,
`request_id`), at INFO for a plain success, WARN when it took a fallback or was refused with a
4xx/429, ERROR for a 5xx. It is written after the response's last byte, off the critical path.
"""

from __future__ import annotations

import time
from typing import Any

from services.gateway.token_throughput import TokenRate
from shared.metrics import GatewayMetrics


class RequestTelemetry:
    def __init__(self, metrics: GatewayMetrics, log: Any) -> None:
        self._metrics = metrics
        self._log = log
        self._tokens = TokenRate()

    def finished(self, *, kind: str, model: str, provider: str | None, status: int, cache_hit: bool,
                 latency_s: float, ttft_s: float | None, attempts: int, completion_tokens: int,
                 hedged_from: str | None = None, hedge_won: bool = False) -> None:
        """`hedged_from`: the provider of the attempt a hedge raced; `hedge_won`: the hedge answered."""
        self._metrics.requests.labels(endpoint=kind, status=f"{status // 100}xx").inc()
        if hedged_from is not None:
            self._metrics.hedges_started.labels(provider=hedged_from).inc()
            if hedge_won:
                self._metrics.hedges_won.labels(provider=hedged_from).inc()
        self._metrics.latency.labels(endpoint=kind).observe(latency_s)
        if completion_tokens:
            self._tokens.add(completion_tokens, time.monotonic())
        if status >= 500:
            emit = self._log.error
        elif status >= 400 or attempts > 1:
            emit = self._log.warning
        else:
            emit = self._log.info
        emit("request_completed", model=model, provider=provider, status=status, cache_hit=cache_hit,
             latency_ms=round(latency_s * 1000, 2), ttft_ms=None if ttft_s is None else round(ttft_s * 1000, 2),
             attempts=attempts, completion_tokens=completion_tokens)

    def refresh_gauges(self, active_connections: int) -> None:
        """Called when Prometheus scrapes: gauges cost nothing per request."""
        self._metrics.active_connections.set(active_connections)
        self._metrics.throughput.set(self._tokens.per_second(time.monotonic()))

"""Passive detection: what a worker's `Outcome` tells the breaker. Pure.

Only upstream failures count against a provider (`Outcome.upstream_failure`: 5xx,
connection errors, timeouts, resets, truncated streams, deadlines). A client's 4xx and a
client that went away say nothing about the provider; a 429 is its own event, because it
removes the provider for its Retry-After and not for an open period.
"""

from __future__ import annotations

from services.health.breaker import Event, Failed, RateLimited, Succeeded
from shared.messages import Outcome


def event_for(outcome: Outcome, at: float) -> Event | None:
    if outcome.kind == "ok":
        return Succeeded(at, outcome.ttft_s if outcome.ttft_s is not None else outcome.latency_s)
    if outcome.kind == "rate_limited":
        return RateLimited(at, outcome.retry_after)
    if outcome.upstream_failure:
        detail = f"HTTP {outcome.status}" if outcome.kind == "server_error" else outcome.kind
        return Failed(at, f"{detail} on {outcome.model}")
    return None

"""Which worker outcomes reach the breaker, and as what."""

from __future__ import annotations

from typing import Any

import pytest

from services.health.breaker import Failed, RateLimited, Succeeded
from services.health.passive import event_for
from shared.messages import Outcome


def outcome(**fields: Any) -> Outcome:
    base: dict[str, Any] = {"provider": "p", "model": "m", "request_id": "r", "attempt": "a", "worker_id": "w",
                            "kind": "ok"}
    return Outcome(**{**base, **fields})


def test_a_success_carries_its_time_to_first_token() -> None:
    assert event_for(outcome(kind="ok", ttft_s=0.2, latency_s=3.0), 10.0) == Succeeded(10.0, 0.2)


def test_without_a_first_token_time_the_whole_latency_counts() -> None:
    assert event_for(outcome(kind="ok", latency_s=1.5), 10.0) == Succeeded(10.0, 1.5)


@pytest.mark.parametrize("kind", ["server_error", "timeout", "connection", "truncated"])
def test_upstream_failures_count(kind: str) -> None:
    event = event_for(outcome(kind=kind, status=502), 10.0)
    assert isinstance(event, Failed) and event.at == 10.0


def test_a_server_error_names_its_status() -> None:
    event = event_for(outcome(kind="server_error", status=503), 1.0)
    assert isinstance(event, Failed) and "HTTP 503" in event.reason


@pytest.mark.parametrize("kind", ["client_error", "cancelled", "deadline"])
def test_a_clients_4xx_cancel_or_own_deadline_says_nothing_about_the_provider(kind: str) -> None:
    assert event_for(outcome(kind=kind, status=400), 1.0) is None


def test_a_429_is_a_rate_limit_with_its_retry_after() -> None:
    assert event_for(outcome(kind="rate_limited", status=429, retry_after=12.0), 5.0) == RateLimited(5.0, 12.0)
    assert event_for(outcome(kind="rate_limited", status=429), 5.0) == RateLimited(5.0, None)

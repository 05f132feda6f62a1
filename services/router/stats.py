"""Latency and success rate per provider, from the workers' `Outcome` events. Pure.

Every router hears every outcome (fan-out), so replicas score providers alike. Only outcomes
that say something about the provider count: `ok` is a success, an upstream failure or a 429
a failure; a client's 4xx or a cancel says nothing. Latency is time to first token when the
attempt streamed (it does not grow with the answer's length), else the whole call. Statistics
cover the last `window` outcomes no older than `max_age_s`: an old bad spell is forgotten, and
a provider with no recent data scores as unknown, so `usage_based` tries it again. Time to first
token is also kept on its own (streamed attempts only), for hedging's `auto` threshold.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from shared.messages import Outcome

DEFAULT_WINDOW = 50
DEFAULT_MAX_AGE_S = 300.0


@dataclass(frozen=True)
class _Sample:
    at: float
    ok: bool
    latency_s: float | None
    ttft_s: float | None = None


class UsageStats:
    def __init__(self, window: int = DEFAULT_WINDOW, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self.window = window
        self.max_age_s = max_age_s
        self._samples: dict[str, deque[_Sample]] = {}

    def record(self, outcome: Outcome, now: float) -> None:
        if outcome.kind == "ok":
            latency = outcome.ttft_s if outcome.ttft_s is not None else outcome.latency_s
            ttft = outcome.ttft_s if outcome.ttft_s is not None and outcome.ttft_s >= 0 else None
            sample = _Sample(now, True, latency if latency >= 0 else None, ttft)
        elif outcome.upstream_failure or outcome.kind == "rate_limited":
            sample = _Sample(now, False, None)
        else:
            return
        self._samples.setdefault(outcome.provider, deque(maxlen=self.window)).append(sample)

    def _recent(self, provider: str, now: float) -> list[_Sample]:
        samples = self._samples.get(provider)
        if not samples:
            return []
        while samples and now - samples[0].at > self.max_age_s:
            samples.popleft()
        return list(samples)

    def latency(self, provider: str, now: float) -> float | None:
        """Mean latency of recent successful attempts, None without any."""
        values = [s.latency_s for s in self._recent(provider, now) if s.ok and s.latency_s is not None]
        return sum(values) / len(values) if values else None

    def success_rate(self, provider: str, now: float) -> float | None:
        recent = self._recent(provider, now)
        return sum(1 for s in recent if s.ok) / len(recent) if recent else None

    def ttft_quantile(self, providers: Iterable[str], now: float, q: float) -> tuple[float | None, int]:
        """(the q-quantile of `providers`' recent successful streamed attempts' time to first token, how
        many there were); (None, 0) without any. Nearest rank: the smallest value at or above a q share."""
        values = sorted(s.ttft_s for p in dict.fromkeys(providers) for s in self._recent(p, now)
                        if s.ok and s.ttft_s is not None)
        if not values:
            return None, 0
        rank = max(1, math.ceil(q * len(values)))
        return values[rank - 1], len(values)

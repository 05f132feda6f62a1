"""Rolling per-provider latency and traffic from workers' `Outcome` events: no I/O, clock passed in.

What "slow" and "where traffic goes" mean on the dashboard:
- TTFT is sampled whenever a first token was seen; total latency only for successful attempts
  (a fast 500 must not make a provider look quick) — the same rule as the worker's histogram.
- `failures` are upstream failures and rate limits (`Outcome.upstream_failure` or 429): what
  the provider did wrong. A client's 4xx or a caller that went away is neither.
- `share` is the provider's part of all attempts in the window.
Samples older than `window_s` are dropped, and at most `max_samples` are kept per provider, so
a busy provider costs bounded memory and a sort of at most that many values per refresh.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from shared.messages import Outcome


@dataclass(frozen=True)
class Sample:
    at: float
    ttft_s: float | None
    total_s: float | None
    failed: bool


@dataclass(frozen=True)
class ProviderStats:
    provider: str
    attempts: int
    failures: int
    share: float
    ttft_p50: float | None
    ttft_p95: float | None
    total_p50: float | None
    total_p95: float | None

    @property
    def failure_rate(self) -> float:
        return self.failures / self.attempts if self.attempts else 0.0


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (`q` in 0..1); None when empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class RollingStats:
    def __init__(self, window_s: float = 300.0, max_samples: int = 5000) -> None:
        self.window_s = window_s
        self._samples: dict[str, deque[Sample]] = {}
        self._max = max_samples

    def add(self, outcome: Outcome, now: float) -> None:
        if outcome.kind == "cancelled":
            return  # the caller went away: says nothing about the provider's speed
        samples = self._samples.get(outcome.provider)
        if samples is None:
            samples = self._samples[outcome.provider] = deque(maxlen=self._max)
        samples.append(Sample(at=now, ttft_s=outcome.ttft_s,
                              total_s=outcome.latency_s if outcome.kind == "ok" else None,
                              failed=outcome.upstream_failure or outcome.kind == "rate_limited"))

    def _prune(self, now: float) -> None:
        oldest = now - self.window_s
        for samples in self._samples.values():
            while samples and samples[0].at < oldest:
                samples.popleft()

    def summary(self, now: float) -> dict[str, ProviderStats]:
        self._prune(now)
        total = sum(len(s) for s in self._samples.values())
        out = {}
        for provider, samples in sorted(self._samples.items()):
            if not samples:
                continue
            ttfts = sorted(s.ttft_s for s in samples if s.ttft_s is not None)
            totals = sorted(s.total_s for s in samples if s.total_s is not None)
            out[provider] = ProviderStats(
                provider=provider, attempts=len(samples), failures=sum(1 for s in samples if s.failed),
                share=len(samples) / total if total else 0.0,
                ttft_p50=percentile(ttfts, 0.5), ttft_p95=percentile(ttfts, 0.95),
                total_p50=percentile(totals, 0.5), total_p95=percentile(totals, 0.95))
        return out

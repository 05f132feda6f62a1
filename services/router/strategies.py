"""Load-balancing strategies: rank a model group's routable candidates, best first. Pure.

A strategy never drops a candidate: the router tries them in the order returned and the first
that accepts serves, so a busy or missing worker costs one hop, not the request.

- round_robin: smooth weighted round robin (nginx's). With equal weights it is a strict
  rotation: over any N consecutive decisions of one group, two providers' counts differ by at
  most 1. With weights, after any N decisions a provider is less than 1 above its share
  N * w / W (its current weight never drops to -W) and less than 2 below it (observed at most
  1.12). `tests/unit/test_routing_strategies.py` checks both with hypothesis.
- least_loaded: lowest (in flight + queued + 1) / (capacity * weight), from the workers' load
  reports; providers with no live report (no worker seen) rank last. When the report carries
  the backend's own load, busy is the larger of the two counts (the backend also serves
  requests that never passed through us).
- backend_load: lowest (backend running + waiting + 1) / (capacity * weight) + KV_WEIGHT * KV
  use, from the backend's own load endpoint as the workers report it; a provider without
  backend numbers is scored on its workers' counts (KV use 0); no live report ranks last.
- prefix_affinity: `affinity.py` ranks a request with an affinity key (rendezvous hashing,
  bounded by load); without a key it ranks here, as backend_load.
- usage_based: score = 0.4 latency + 0.4 success rate + 0.2 cost, each scaled so the best of
  the group is 1 (no data yet counts as best, so a new provider gets tried). Scores are
  recomputed every `USAGE_REFRESH_EVERY` decisions of the group, not per request.
- cost_optimized: the cheapest; among those within 10 % of the cheapest, the best quality_rank.
- quality_first: `custom_strategies.quality_first.priority_order` (provider keys), then the
  model's quality_rank.

Weights: the group's configured weight times a health factor (`degraded` counts half). The
ranking strategies (cost, quality, usage) put degraded providers after healthy ones. Ties for
first place are broken by the same weighted rotation, so equal providers share the traffic
instead of the first listed taking all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.config import Strategy

DEGRADED_WEIGHT = 0.5
USAGE_WEIGHTS = (0.4, 0.4, 0.2)  # latency, success rate, cost
USAGE_REFRESH_EVERY = 10
COST_TOLERANCE = 0.10
KV_WEIGHT = 0.5  # backend_load: a full KV cache weighs as half a slot-capacity of queue


@dataclass(frozen=True)
class Candidate:
    """What a strategy may know about one routable provider for this request."""

    provider: str
    weight: float = 1.0  # the group's configured weight
    degraded: bool = False
    cost: float = 0.0  # cost_per_1k_tokens of the model it would run
    quality: int = 0  # quality_rank of that model, higher is better
    busy: float | None = None  # in flight + queued across live workers; None: no live report
    backend_busy: float | None = None  # the backend's own running + waiting; None: not reported
    kv_usage: float | None = None  # the backend's KV cache use, 0..1
    capacity: int = 1  # slots across live workers (config max_concurrency when unknown)
    latency_s: float | None = None
    success_rate: float | None = None

    @property
    def effective_weight(self) -> float:
        return max(0.0, self.weight) * (DEGRADED_WEIGHT if self.degraded else 1.0)


class Balancer:
    """What strategies remember between decisions, per group: rotation state and usage scores.

    A group is one routing rule (a model's load_balancing entry, a pattern, a capability), so
    memory is bounded by the config. Not shared between router replicas: each rotates its own
    share of the traffic fairly, so the sum is fair too.
    """

    def __init__(self, usage_refresh_every: int = USAGE_REFRESH_EVERY) -> None:
        self._current: dict[str, dict[str, float]] = {}
        self._scores: dict[str, dict[str, float]] = {}
        self._decisions: dict[str, int] = {}
        self._refresh_every = usage_refresh_every

    def rotate(self, group: str, candidates: Sequence[Candidate]) -> list[Candidate]:
        """One step of smooth weighted round robin: the pick first, then the rest by who is next."""
        if len(candidates) <= 1:
            return list(candidates)
        current = self._current.setdefault(group, {})
        weights = [c.effective_weight for c in candidates]
        if sum(weights) <= 0:
            weights = [1.0] * len(candidates)
        total = sum(weights)
        for candidate, weight in zip(candidates, weights, strict=True):
            current[candidate.provider] = current.get(candidate.provider, 0.0) + weight
        pick = max(range(len(candidates)), key=lambda i: (current[candidates[i].provider], -i))
        current[candidates[pick].provider] -= total
        rest = sorted((i for i in range(len(candidates)) if i != pick),
                      key=lambda i: (-current[candidates[i].provider], i))
        return [candidates[pick], *(candidates[i] for i in rest)]

    def usage_scores(self, group: str, candidates: Sequence[Candidate]) -> dict[str, float]:
        """The group's scores, recomputed every `refresh_every` decisions or when a provider is new."""
        count = self._decisions.get(group, 0)
        self._decisions[group] = count + 1
        scores = self._scores.get(group)
        if scores is None or count % self._refresh_every == 0 or any(c.provider not in scores for c in candidates):
            scores = usage_scores(candidates)
            self._scores[group] = scores
        return scores


def usage_scores(candidates: Sequence[Candidate]) -> dict[str, float]:
    latencies = [c.latency_s for c in candidates if c.latency_s is not None and c.latency_s > 0]
    best_latency = min(latencies) if latencies else None
    best_cost = min(c.cost for c in candidates) if candidates else 0.0
    w_latency, w_success, w_cost = USAGE_WEIGHTS
    scores = {}
    for c in candidates:
        latency = 1.0 if best_latency is None or c.latency_s is None or c.latency_s <= 0 else best_latency / c.latency_s
        success = 1.0 if c.success_rate is None else c.success_rate
        cost = 1.0 if c.cost <= 0 else best_cost / c.cost
        scores[c.provider] = w_latency * latency + w_success * success + w_cost * cost
    return scores


def pressure(c: Candidate) -> tuple[float, float]:
    """backend_load's key, smaller is better: (1, 0) when nothing is known of the provider."""
    if c.busy is None:
        return (1.0, 0.0)
    weight = c.effective_weight
    if weight <= 0:
        return (0.0, float("inf"))
    busy = c.busy if c.backend_busy is None else c.backend_busy
    return (0.0, (busy + 1) / (max(1, c.capacity) * weight) + KV_WEIGHT * (c.kv_usage or 0.0))


def _ranked(balancer: Balancer, group: str, candidates: Sequence[Candidate],
            key: Callable[[Candidate], tuple[float, ...]], tier_degraded: bool) -> list[Candidate]:
    """Sort by `key` (smaller is better); rotate among the candidates tied for first."""
    def full(c: Candidate) -> tuple[float, ...]:
        return ((1.0 if c.degraded else 0.0) if tier_degraded else 0.0, *(round(k, 9) for k in key(c)))

    ordered = sorted(candidates, key=full)  # stable: ties keep config order
    best = full(ordered[0])
    tied = [c for c in ordered if full(c) == best]
    return [*balancer.rotate(group, tied), *ordered[len(tied):]]


def rank(strategy: Strategy, balancer: Balancer, group: str, candidates: Sequence[Candidate],
         priority_order: Sequence[str] = ()) -> list[Candidate]:
    if len(candidates) <= 1:
        return list(candidates)
    match strategy:
        case "round_robin":
            return balancer.rotate(group, candidates)
        case "least_loaded":
            def load(c: Candidate) -> tuple[float, ...]:
                if c.busy is None:
                    return (1.0, 0.0)
                busy = c.busy if c.backend_busy is None else max(c.busy, c.backend_busy)
                weight = c.effective_weight
                return (0.0, (busy + 1) / (max(1, c.capacity) * weight) if weight > 0 else float("inf"))

            return _ranked(balancer, group, candidates, load, tier_degraded=False)
        case "backend_load" | "prefix_affinity":
            return _ranked(balancer, group, candidates, lambda c: (*pressure(c),), tier_degraded=False)
        case "usage_based":
            scores = balancer.usage_scores(group, candidates)
            return _ranked(balancer, group, candidates,
                           lambda c: (-scores.get(c.provider, 0.0) * max(0.0, c.weight),), tier_degraded=True)
        case "cost_optimized":
            cheapest = min(c.cost for c in candidates if not c.degraded) if any(
                not c.degraded for c in candidates) else min(c.cost for c in candidates)
            limit = cheapest * (1 + COST_TOLERANCE)
            return _ranked(balancer, group, candidates,
                           lambda c: (0.0, -c.quality, c.cost) if c.cost <= limit else (1.0, c.cost, -c.quality),
                           tier_degraded=True)
        case "quality_first":
            position = {name: i for i, name in enumerate(priority_order)}
            return _ranked(balancer, group, candidates,
                           lambda c: (position.get(c.provider, len(position)), -c.quality), tier_degraded=True)
    raise ValueError(f"unknown strategy {strategy!r}")

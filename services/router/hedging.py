"""Whether the router offers a caller a hedge for an attempt it placed, and after how long. Pure.

The caller decides whether to hedge (shared/hedging.py, its budget); the router says whether a
hedge makes sense, because only it knows the model's settings, the pool and recent first-token
times from every worker's outcomes. Rules:
- Only for a model with `hedging.<name>` settings, `name` being the model the client asked for;
  never for a hedge attempt itself (one hedge per request).
- Providers with a cost (`cost_per_1k_tokens` > 0 for the model they would run) are neither
  hedged from nor hedged to unless the settings say `allow_paid: true`: `decide` drops them
  from a hedge attempt's plan, and no offer is made for an attempt placed on one.
- Only when another target of the plan could take the hedge (not the accepting provider, and
  free unless paid ones are allowed). The hedge attempt is routed afresh, with the accepting
  provider excluded; this only checks that there is somewhere to go.
- `after_s`: `after_ms` / 1000; for "auto", AUTO_FACTOR x the p95 time to first token of the
  pool (the plan's providers, the accepting one included) over the router's recent outcomes
  (UsageStats: each provider's last 50 of the last 5 minutes), once there are AUTO_MIN_SAMPLES
  of them, and never under AUTO_FLOOR_S. Fewer samples: no offer yet. The pool's, not the
  accepting provider's own: a provider that stalls often has its p95 inside its stalls, and
  would never be hedged. Twice the p95, not the p95: the outcomes' TTFT is the backend's, the
  caller's clock also counts the hops and the worker's queue, so at 1x far more than 5 % of
  requests crossed it and the budget went to requests that were not stalled (bench: p99
  unchanged at 2078 ms, 9.5 % extra).
"""

from __future__ import annotations

from collections.abc import Sequence

from services.router.stats import UsageStats
from shared.config import Config, HedgingSpec
from shared.messages import HedgeOffer, InferenceRequest

AUTO_QUANTILE = 0.95
AUTO_FACTOR = 2.0
AUTO_MIN_SAMPLES = 10
AUTO_FLOOR_S = 0.05


def settings(config: Config, request: InferenceRequest) -> HedgingSpec | None:
    """The hedging settings of the model the client asked for, if any."""
    return config.mappings.hedging.get(request.requested_model or request.model)


def paid(config: Config, provider: str, model: str) -> bool:
    spec = config.providers.get(provider)
    model_spec = spec.models.get(model) if spec is not None else None
    return model_spec is not None and model_spec.cost_per_1k_tokens > 0


def offer(config: Config, request: InferenceRequest, *, provider: str, model: str,
          others: Sequence[tuple[str, str]], usage: UsageStats, now: float) -> HedgeOffer | None:
    """The offer for `request`'s attempt accepted by `provider` (running `model`); `others`: the
    plan's other targets as (provider, model)."""
    spec = settings(config, request)
    if spec is None or request.hedge:
        return None
    if not spec.allow_paid and paid(config, provider, model):
        return None
    if not any(name != provider and (spec.allow_paid or not paid(config, name, served)) for name, served in others):
        return None
    if spec.after_ms == "auto":
        p95, samples = usage.ttft_quantile([provider, *(name for name, _ in others)], now, AUTO_QUANTILE)
        if p95 is None or samples < AUTO_MIN_SAMPLES:
            return None
        after_s = max(AUTO_FLOOR_S, AUTO_FACTOR * p95)
    else:
        after_s = spec.after_ms / 1000
    return HedgeOffer(attempt=request.attempt, provider=provider, after_s=after_s, max_fraction=spec.max_fraction,
                      group=request.requested_model or request.model)

"""The route a model takes now: "who serves `qwen-coder`, and what is next in its chain?". Pure.

The router's own pure functions answer (services/router/decision.py: `match_model` for the rule,
`decide` for the plan), given the config and the provider states the health service published.
The gateway has no load reports or recent outcomes, so a strategy that weighs them
(least_loaded, usage_based, backend_load) ranks the pool as with no information; the set of
routable providers and the reasons for the others are the router's exactly. A cooldown provider
is counted routable (its `admit_fraction` admits some requests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.router.decision import Match, decide, match_model
from services.router.load import LoadView
from services.router.stats import UsageStats
from services.router.strategies import Balancer
from shared.config import Config
from shared.messages import InferenceRequest, ProviderState


@dataclass(frozen=True)
class Step:
    provider: str
    routable: bool
    fallback: bool  # from the model's fallback chain, not the matched rule's pool
    reason: str | None = None  # why not routable: "unavailable", "disabled", "rate limited", ...
    model: str | None = None  # what this provider would run (differs for capability aliases)
    backend_model: str | None = None


@dataclass(frozen=True)
class Preview:
    model: str
    routed_by: str | None
    rule: str | None  # where the rule is in the config
    strategy: str | None
    steps: tuple[Step, ...]  # routable first, in the order they would be tried; then the others
    fallback_chain: tuple[str, ...]  # `fallback_chains.<model>` as configured
    refusal: str | None  # what a request would be told when nothing can serve it

    @property
    def serving(self) -> str | None:
        return next((s.provider for s in self.steps if s.routable), None)

    @property
    def next(self) -> str | None:
        routable = [s.provider for s in self.steps if s.routable]
        return routable[1] if len(routable) > 1 else None


def preview(config: Config, model: str, states: Mapping[str, ProviderState], now: float,
            capability: str | None = None) -> Preview:
    request = InferenceRequest(id="preview", attempt="preview", kind="chat", model=model, body={},
                               capability=capability)
    plan = decide(config, request, states=states, load=LoadView(), usage=UsageStats(), balancer=Balancer(),
                  admit_draw=0.0, now=now)
    matched = match_model(config.mappings, config.providers, model, capability)
    pool = matched.pool if isinstance(matched, Match) else ()
    steps = [Step(t.provider, True, t.fallback, model=t.model, backend_model=t.backend_model) for t in plan.targets]
    for skipped in plan.skipped:
        # decide() writes "provider (reason)"; provider names are subject tokens (no spaces).
        name, _, reason = skipped.partition(" (")
        steps.append(Step(name, False, name not in pool, reason=reason.removesuffix(")")))
    return Preview(model=model, routed_by=plan.routed_by, rule=matched.rule if isinstance(matched, Match) else None,
                   strategy=plan.strategy, steps=tuple(steps),
                   fallback_chain=tuple(config.mappings.fallback_chains.get(model, ())),
                   refusal=plan.refusal.message if plan.refusal is not None else None)

"""Which providers may serve a request, in the order to try them. Pure and deterministic.

Inputs: the config, provider states (health KV), the load view and usage statistics, the
request (model, capability, providers already tried, context fallbacks taken), the strategies'
memory (`Balancer`), one random draw and the time. Output: a `Plan` (targets in order) or a
reasoned refusal.

Order (the spec's `route_request`):
1. exact model name: `load_balancing.<model>` (a pool with a strategy) or `exact_matches.<model>`;
2. a `capability:<name>` alias as the model name (before patterns, which `*:*` would otherwise
   swallow);
3. patterns (glob; the most specific wins);
4. the request's `capability` field;
5. the providers whose `models` in providers.yaml list the model;
6. `default_provider`; else 404 `model_not_found` at once.
The matched pool is ranked by its strategy (`strategies`), then the model's fallback chain
follows in its configured order. Dropped, with the reason kept for the refusal: providers
already tried, disabled, `unavailable`, in `cooldown` and not admitted by this draw (the
health service publishes `admit_fraction`), or, for capability routing, with no model that
has the capability, or, for a hedge attempt, with a cost (unless the model's hedging settings
allow paid providers: services/router/hedging.py).

Context-window fallbacks: after the n-th `context_length_exceeded`, the request routes the
n-th model of `context_window_fallbacks.<model>` among those whose context window (from
providers.yaml) is larger than the model's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from services.router import hedging
from services.router.affinity import rank_by_affinity
from services.router.load import LoadView
from services.router.stats import UsageStats
from services.router.strategies import Balancer, Candidate, rank
from shared.config import CapabilityRoute, Config, ModelMappingsFile, ProviderSpec, Strategy
from shared.errors import ContextLengthExceeded, ModelNotFound, ServiceUnavailable
from shared.messages import InferenceRequest, ProviderState
from shared.prefix import prefix_key

RoutedBy = Literal["exact", "pattern", "capability", "load_balancing", "default"]
CAPABILITY_ALIAS = "capability:"


@dataclass(frozen=True)
class Target:
    provider: str
    model: str  # the public model this provider runs: differs from the request's for aliases and context fallbacks
    backend_model: str
    fallback: bool = False  # from the fallback chain rather than the matched pool


# What a plan refuses with: a class of the error tree (404 no route, 503 nothing available with
# the earliest reopening as Retry-After, 400 no larger context window), returned, not raised.
Refusal = ModelNotFound | ContextLengthExceeded | ServiceUnavailable


@dataclass(frozen=True)
class Plan:
    targets: tuple[Target, ...]
    routed_by: RoutedBy | None
    strategy: Strategy | None = None
    refusal: Refusal | None = None
    skipped: tuple[str, ...] = ()  # "provider (reason)" for each candidate dropped

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(t.provider for t in self.targets)

    @property
    def not_found(self) -> bool:
        return self.refusal is not None and self.refusal.status == 404


@dataclass(frozen=True)
class Match:
    pool: tuple[str, ...]
    routed_by: RoutedBy
    group: str  # the rule's name: the strategies' memory is per rule
    rule: str  # where the rule is in the config, for people (`aiub validate` names it)
    strategy: Strategy = "round_robin"
    weights: Mapping[str, float] = field(default_factory=dict)
    capability: CapabilityRoute | None = None
    capability_name: str | None = None


def match_model(mappings: ModelMappingsFile, providers: Mapping[str, ProviderSpec], model: str,
                capability: str | None) -> Match | ModelNotFound | None:
    """The rule that routes `model` (steps 1-6 above), a refusal for an unknown capability alias,
    or None. `aiub validate` previews routes with this same function."""
    balanced = mappings.load_balancing.get(model)
    if balanced is not None:
        return Match(balanced.providers, "load_balancing", f"lb:{model}", f"load_balancing.{model}",
                     balanced.strategy, balanced.weights)
    exact = mappings.exact_matches.get(model)
    if exact is not None:
        return Match((exact.provider,), "exact", f"exact:{model}", f"exact_matches.{model}")
    if model.startswith(CAPABILITY_ALIAS):
        name = model[len(CAPABILITY_ALIAS):]
        route = mappings.capabilities.get(name)
        if route is None:
            known = ", ".join(CAPABILITY_ALIAS + c for c in mappings.capabilities) or "none configured"
            return ModelNotFound(f"unknown capability {name!r} (known: {known})")
        return Match(route.providers, "capability", f"capability:{name}", f"capabilities.{name}", route.strategy,
                     capability=route, capability_name=name)
    patterns = sorted((p for p in mappings.patterns if p.matches(model)), key=lambda p: p.specificity, reverse=True)
    if patterns:
        return Match(patterns[0].targets, "pattern", f"pattern:{patterns[0].pattern}",
                     f"patterns ({patterns[0].pattern!r})")
    if capability is not None and capability in mappings.capabilities:
        route = mappings.capabilities[capability]
        return Match(route.providers, "capability", f"capability:{capability}", f"capabilities.{capability}",
                     route.strategy, capability=route, capability_name=capability)
    serving = tuple(name for name, spec in providers.items() if model in spec.models)
    if serving:
        return Match(serving, "load_balancing", f"served:{model}", "providers' model lists")
    if mappings.default_provider is not None:
        return Match((mappings.default_provider,), "default", "default", "default_provider")
    return None


def context_window(config: Config, model: str) -> int | None:
    """The largest context window any provider declares for `model`."""
    windows = [window for spec in config.providers.values()
               if model in spec.models and (window := spec.models[model].context_window) is not None]
    return max(windows) if windows else None


def context_chain(config: Config, model: str) -> tuple[str, ...]:
    """`model`, then its context-window fallbacks that are larger (a window not declared counts as larger)."""
    own = context_window(config, model)
    larger = []
    for candidate in config.mappings.context_window_fallbacks.get(model, ()):
        window = context_window(config, candidate)
        if own is None or window is None or window > own:
            larger.append(candidate)
    return (model, *larger)


def _capability_model(config: Config, provider: str, model: str, route: CapabilityRoute, name: str,
                      alias: bool) -> str | None:
    """The model `provider` runs for a capability request, or None if it has none with the capability."""
    models = config.providers[provider].models
    if not alias and model in models:
        return model
    for preferred in route.preferred_models:
        if preferred in models:
            return preferred
    tagged = sorted((m for m, spec in models.items() if name in spec.capabilities),
                    key=lambda m: -models[m].quality_rank)
    if tagged:
        return tagged[0]
    return model if not alias and not models else None


def _priority_order(config: Config) -> tuple[str, ...]:
    custom = config.mappings.custom_strategies.get("quality_first")
    # The spec writes entries like "vllm (13B+)": the provider key is the first word.
    return tuple(entry.split()[0] for entry in custom.priority_order if entry.split()) if custom else ()


def _unroutable(config: Config, name: str, excluded: Sequence[str], state: ProviderState | None,
                admit_draw: float) -> str | None:
    """Why `name` may not take this attempt, or None."""
    provider = config.providers.get(name)
    if name in excluded:
        return "already tried"
    if provider is None or provider.status == "disabled":
        return "disabled"
    if state is not None and not state.routable:
        # A 429's pause (it resumes a state) says so: "unavailable" alone reads like an outage.
        return "rate limited" if state.resume is not None else state.state
    if state is not None and state.admit_fraction < 1.0 and admit_draw >= state.admit_fraction:
        return f"{state.state}, not admitted"
    return None


def _resolve(config: Config, request: InferenceRequest) -> tuple[str, Match] | ModelNotFound | ContextLengthExceeded:
    """The model this attempt asks for (a context-window fallback may have moved it on) and the rule
    that routes it, or why there is none."""
    chain = context_chain(config, request.model)
    if request.context_fallback >= len(chain):
        tried = ", ".join(repr(m) for m in chain)
        return ContextLengthExceeded(
            f"the request does not fit the context window of {tried}, and context_window_fallbacks names no "
            "larger model")
    model = chain[request.context_fallback]
    matched = match_model(config.mappings, config.providers, model, request.capability)
    if isinstance(matched, ModelNotFound):
        return matched
    if matched is None:
        return ModelNotFound(
            f"no route for model {model!r} (no exact match, pattern, capability or provider serves it) and no "
            "default_provider is set")
    return model, matched


def decide(config: Config, request: InferenceRequest, *, states: Mapping[str, ProviderState], load: LoadView,
           usage: UsageStats, balancer: Balancer, admit_draw: float, now: float,
           wall_now: float | None = None) -> Plan:
    """The targets for this attempt of `request`. `admit_draw` in [0, 1) gates cooldown admission;
    `wall_now` (epoch seconds, the clock of `ProviderState.open_until`) dates a 503's Retry-After."""
    resolved = _resolve(config, request)
    if not isinstance(resolved, tuple):
        return Plan((), None, refusal=resolved)
    model, rule = resolved
    alias = model.startswith(CAPABILITY_ALIAS)
    skipped: list[str] = []
    seen: set[str] = set()
    not_admitted: list[tuple[str, str]] = []  # cooldown providers this draw turned away
    hedge = hedging.settings(config, request) if request.hedge else None
    free_only = request.hedge and (hedge is None or not hedge.allow_paid)

    def admit(name: str) -> str | None:
        """The model `name` would run, or None (the reason goes to `skipped`) when it may not serve."""
        seen.add(name)
        reason = _unroutable(config, name, request.excluded, states.get(name), admit_draw)
        if reason is not None and reason.endswith("not admitted"):
            served_if_admitted = model if rule.capability is None else _capability_model(
                config, name, model, rule.capability, rule.capability_name or "", alias)
            if served_if_admitted is not None:
                not_admitted.append((name, served_if_admitted))
        served = None
        if reason is None:
            served = model if rule.capability is None else _capability_model(
                config, name, model, rule.capability, rule.capability_name or "", alias)
            if served is None:
                reason = f"no model with capability {rule.capability_name!r}"
            elif free_only and hedging.paid(config, name, served):
                served, reason = None, "has a cost: not hedged to"
        if reason is not None:
            skipped.append(f"{name} ({reason})")
        return served

    pool: dict[str, tuple[Candidate, str]] = {}
    for name in dict.fromkeys(rule.pool):
        served = admit(name)
        if served is not None:
            pool[name] = (_candidate(config, name, served, rule.weights.get(name, 1.0), states, load, usage, now),
                          served)
    candidates = [c for c, _ in pool.values()]
    key = (request.prefix_hash or prefix_key(request.body)) if rule.strategy == "prefix_affinity" else None
    ranked = (rank_by_affinity(key, candidates) if key is not None
              else rank(rule.strategy, balancer, rule.group, candidates, _priority_order(config)))
    targets = [_target(config, c.provider, pool[c.provider][1], False) for c in ranked]
    for name in config.mappings.fallback_chains.get(model, ()):
        if name not in seen and (served := admit(name)) is not None:
            targets.append(_target(config, name, served, True))
    if not targets and not_admitted:
        # Admission throttles a recovering provider against its alternatives; when there is
        # no alternative, refusing would turn 90 % of requests into 503s for nothing.
        targets = [_target(config, name, served, False) for name, served in not_admitted]
    if not targets:
        return Plan((), rule.routed_by, rule.strategy, skipped=tuple(skipped), refusal=ServiceUnavailable(
            f"no provider available for {model!r}: " + ", ".join(skipped),
            retry_after=_retry_after(states, seen, wall_now)))
    return Plan(tuple(targets), rule.routed_by, rule.strategy, skipped=tuple(skipped))


def _retry_after(states: Mapping[str, ProviderState], names: set[str], wall_now: float | None) -> float | None:
    """Seconds until the earliest open circuit among `names` may close (at least 1)."""
    if wall_now is None:
        return None
    reopen = [s.open_until for n in names if (s := states.get(n)) is not None
              and s.state == "unavailable" and s.open_until is not None]
    return max(1.0, min(reopen) - wall_now) if reopen else None


def _candidate(config: Config, name: str, model: str, weight: float, states: Mapping[str, ProviderState],
               load: LoadView, usage: UsageStats, now: float) -> Candidate:
    spec = config.providers[name]
    model_spec = spec.models.get(model)
    state = states.get(name)
    seen = load.load(name, now)
    return Candidate(
        provider=name, weight=weight, degraded=state is not None and state.state == "degraded",
        cost=model_spec.cost_per_1k_tokens if model_spec else 0.0,
        quality=model_spec.quality_rank if model_spec else 0,
        busy=None if seen is None else float(seen.busy),
        backend_busy=None if seen is None or seen.backend_busy is None else float(seen.backend_busy),
        kv_usage=None if seen is None else seen.kv_usage,
        capacity=seen.capacity if seen is not None and seen.capacity > 0 else spec.max_concurrency,
        latency_s=usage.latency(name, now), success_rate=usage.success_rate(name, now),
    )


def _target(config: Config, provider: str, model: str, fallback: bool) -> Target:
    backend = config.providers[provider].backend_model(model)
    exact = config.mappings.exact_matches.get(model)
    if exact is not None and exact.backend_model and exact.provider == provider:
        backend = exact.backend_model
    return Target(provider, model, backend, fallback)


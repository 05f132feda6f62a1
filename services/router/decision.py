"""Which providers may serve a request, in the order to try them. Pure: no I/O, no clock.

Order (the spec's `route_request`): exact model name → pattern (glob, most specific wins) →
capability → load balancing among the candidates → `default_provider`. The fallback chain
for the model follows the chosen candidates. Providers already tried (`excluded`), disabled
in config, or not routable by health state are dropped; a provider in `cooldown` is kept
only for the `admit_fraction` of draws the health service publishes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.config import Config
from shared.messages import ProviderState

RoutedBy = Literal["exact", "pattern", "capability", "load_balancing", "default"]


@dataclass(frozen=True)
class Plan:
    """The candidates in order, and what matched; empty `candidates` means refuse."""

    candidates: tuple[str, ...]
    routed_by: RoutedBy | None
    strategy: str | None = None
    refusal: str | None = None  # why nothing can serve, for the client's error message
    not_found: bool = False  # no rule matches the model at all (404), as opposed to all down (503)


def _matched(config: Config, model: str, capability: str | None) -> tuple[tuple[str, ...], RoutedBy, str | None] | None:
    mappings = config.mappings
    balanced = mappings.load_balancing.get(model)
    if balanced is not None:
        return balanced.providers, "load_balancing", balanced.strategy
    exact = mappings.exact_matches.get(model)
    if exact is not None:
        return (exact.provider,), "exact", None
    patterns = sorted((p for p in mappings.patterns if p.matches(model)), key=lambda p: p.specificity, reverse=True)
    if patterns:
        return patterns[0].targets, "pattern", None
    if capability is not None and capability in mappings.capabilities:
        route = mappings.capabilities[capability]
        return route.providers, "capability", route.strategy
    if mappings.default_provider is not None:
        return (mappings.default_provider,), "default", None
    return None


def plan(config: Config, model: str, *, capability: str | None = None, excluded: Sequence[str] = (),
         states: Mapping[str, ProviderState] | None = None, admit_draw: float = 0.0) -> Plan:
    """Candidates for `model`. `admit_draw` in [0, 1) is the random draw cooldown admission uses."""
    matched = _matched(config, model, capability)
    if matched is None:
        return Plan((), None, refusal=f"no route for model {model!r} and no default_provider is set",
                    not_found=True)
    primary, routed_by, strategy = matched
    ordered: dict[str, None] = dict.fromkeys(primary)
    ordered.update(dict.fromkeys(config.mappings.fallback_chains.get(model, ())))
    states = states or {}
    skipped: list[str] = []
    chosen: list[str] = []
    for name in ordered:
        provider = config.providers.get(name)
        state = states.get(name)
        if name in excluded:
            skipped.append(f"{name} (already tried)")
        elif provider is None or provider.status == "disabled":
            skipped.append(f"{name} (disabled)")
        elif state is not None and not state.routable:
            skipped.append(f"{name} ({state.state})")
        elif state is not None and state.admit_fraction < 1.0 and admit_draw >= state.admit_fraction:
            skipped.append(f"{name} ({state.state}, not admitted)")
        else:
            chosen.append(name)
    if not chosen:
        return Plan((), routed_by, strategy, refusal=f"no provider available for {model!r}: tried "
                    + ", ".join(skipped))
    return Plan(tuple(chosen), routed_by, strategy)

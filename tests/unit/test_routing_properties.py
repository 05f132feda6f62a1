"""Properties of the whole decision over generated configs, states and requests (hypothesis)."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.decision import Plan, decide
from services.router.load import LoadView
from services.router.stats import UsageStats
from services.router.strategies import Balancer
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.messages import InferenceRequest, ProviderState

PROVIDERS = ("p0", "p1", "p2", "p3", "p4")
MODELS = ("m0", "m1", "m2", "x:1", "capability:fast", "capability:none")
STRATEGIES = ("round_robin", "least_loaded", "usage_based", "cost_optimized", "quality_first", "backend_load",
              "prefix_affinity")
provider_lists = st.lists(st.sampled_from(PROVIDERS), min_size=1, max_size=4)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    providers = {}
    for name in PROVIDERS:
        models = draw(st.lists(st.sampled_from(MODELS[:4]), max_size=3, unique=True))
        providers[name] = ProviderSpec.model_validate({
            "type": "vllm", "base_url": "http://h", "status": draw(st.sampled_from(["active", "active", "disabled"])),
            "models": {m: {"cost_per_1k_tokens": draw(st.floats(0, 3)), "quality_rank": draw(st.integers(0, 3)),
                           "capabilities": draw(st.lists(st.sampled_from(["fast", "chat"]), max_size=2))}
                       for m in models}})
    mappings: dict[str, Any] = {
        "exact_matches": {m: {"provider": draw(st.sampled_from(PROVIDERS))}
                          for m in draw(st.lists(st.sampled_from(MODELS[:4]), max_size=2, unique=True))},
        "load_balancing": {m: {"providers": draw(provider_lists), "strategy": draw(st.sampled_from(STRATEGIES)),
                               "weights": {p: draw(st.floats(0, 3)) for p in PROVIDERS[:2]}}
                           for m in draw(st.lists(st.sampled_from(MODELS[:4]), max_size=2, unique=True))},
        "patterns": [{"pattern": pat, "providers": draw(provider_lists)}
                     for pat in draw(st.lists(st.sampled_from(["m*", "*:*", "x*", "*"]), max_size=3, unique=True))],
        "capabilities": {"fast": {"providers": draw(provider_lists), "strategy": draw(st.sampled_from(STRATEGIES))}},
        "fallback_chains": {m: draw(provider_lists)
                            for m in draw(st.lists(st.sampled_from(MODELS), max_size=3, unique=True))},
        "default_provider": draw(st.none() | st.sampled_from(PROVIDERS)),
    }
    return Config(directory=Path("."), providers=providers, mappings=ModelMappingsFile.model_validate(mappings),
                  runtime=RuntimeFile())


states = st.dictionaries(st.sampled_from(PROVIDERS), st.builds(
    lambda s, f: (s, 0.0 if s == "unavailable" else (f if s == "cooldown" else 1.0)),
    st.sampled_from(["active", "degraded", "unavailable", "cooldown"]), st.sampled_from([0.1, 0.25, 0.5, 1.0])))


def run(config: Config, model: str, excluded: tuple[str, ...], raw_states: dict[str, tuple[str, float]],
        draw: float, capability: str | None = None) -> Plan:
    provider_states = {p: ProviderState(provider=p, state=s, admit_fraction=f)  # type: ignore[arg-type]
                       for p, (s, f) in raw_states.items()}
    # A prefix key, so that prefix_affinity pools rank by affinity rather than as backend_load.
    request = InferenceRequest(id="r", attempt="a", kind="chat", model=model, body={}, excluded=excluded,
                               capability=capability, prefix_hash=f"conversation-{draw}")
    return decide(config, request, states=provider_states, load=LoadView(), usage=UsageStats(), balancer=Balancer(),
                  admit_draw=draw, now=0.0)


def serving(config: Config, model: str, capability: str | None) -> set[str]:
    """Every provider some rule names for `model`: the decision may pick only among these."""
    m = config.mappings
    names = set(m.fallback_chains.get(model, ()))
    if model in m.exact_matches:
        names.add(m.exact_matches[model].provider)
    if model in m.load_balancing:
        names.update(m.load_balancing[model].providers)
    for pattern in m.patterns:
        if fnmatch.fnmatchcase(model, pattern.pattern):
            names.update(pattern.targets)
    for cap in {capability, model.removeprefix("capability:")} & set(m.capabilities):
        names.update(m.capabilities[cap].providers)  # type: ignore[index]
    names.update(p for p, spec in config.providers.items() if model in spec.models)
    if m.default_provider:
        names.add(m.default_provider)
    return names


@settings(max_examples=200, deadline=None)
@given(configs(), st.sampled_from(MODELS), st.lists(st.sampled_from(PROVIDERS), max_size=3).map(tuple), states,
       st.floats(0, 0.999), st.none() | st.just("fast"))
def test_only_routable_unexcluded_providers_that_serve_the_model(
        config: Config, model: str, excluded: tuple[str, ...], raw_states: dict[str, tuple[str, float]],
        draw: float, capability: str | None) -> None:
    plan = run(config, model, excluded, raw_states, draw, capability)
    assert len(set(plan.candidates)) == len(plan.candidates)
    assert (plan.refusal is None) == bool(plan.candidates)
    allowed = serving(config, model, capability)
    admitted = [n for n in plan.candidates if draw < raw_states.get(n, ("active", 1.0))[1]]
    for name in plan.candidates:
        assert name not in excluded
        assert config.providers[name].status == "active"
        state, fraction = raw_states.get(name, ("active", 1.0))
        assert state != "unavailable"
        # A cooldown provider the draw turned away serves only as the last resort: never beside
        # one that was admitted.
        assert draw < fraction or (state == "cooldown" and not admitted)
        assert name in allowed


@settings(max_examples=80, deadline=None)
@given(configs(), st.sampled_from(MODELS), states, st.floats(0, 0.999))
def test_same_inputs_same_plan(config: Config, model: str, raw_states: dict[str, tuple[str, float]],
                               draw: float) -> None:
    assert run(config, model, (), raw_states, draw) == run(config, model, (), raw_states, draw)


@settings(max_examples=80, deadline=None)
@given(configs(), st.sampled_from(MODELS[:4]), states)
def test_exact_match_stays_within_its_provider_and_chain(config: Config, model: str,
                                                         raw_states: dict[str, tuple[str, float]]) -> None:
    mappings = config.mappings
    if model not in mappings.exact_matches or model in mappings.load_balancing:
        return
    plan = run(config, model, (), raw_states, 0.0)
    assert set(plan.candidates) <= {mappings.exact_matches[model].provider, *mappings.fallback_chains.get(model, ())}

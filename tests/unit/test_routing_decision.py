"""The routing decision as plain function calls: rules in order, filters, fallbacks, refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.router.decision import Plan, context_chain, decide
from services.router.load import LoadView
from services.router.stats import UsageStats
from services.router.strategies import Balancer
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.messages import CONTEXT_LENGTH_EXCEEDED, InferenceRequest, LoadReport, ProviderState

PROVIDERS: dict[str, Any] = {
    "ollama": {"type": "ollama", "base_url": "http://o", "models": {
        "llama3.1:8b": {"context_window": 8192, "quality_rank": 2, "capabilities": ["chat"]},
        "qwen2.5-coder:7b": {"context_window": 32768, "quality_rank": 2, "capabilities": ["code"]},
        "big-llama": {"context_window": 131072}}},
    "llama_cpp_python": {"type": "llama_cpp", "base_url": "http://p", "max_concurrency": 1, "models": {
        "llama3.1:8b": {"backend_model": "llama.gguf", "context_window": 8192}}},
    "llama_cpp_native": {"type": "llama_cpp", "base_url": "http://n", "models": {"llama3.1:8b": {}}},
    "vllm": {"type": "vllm", "base_url": "http://v", "models": {
        "qwen-coder": {"backend_model": "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ", "quality_rank": 3,
                       "capabilities": ["code"]},
        "deepseek-r1": {"capabilities": ["reasoning"], "quality_rank": 3}}},
    "off": {"type": "vllm", "base_url": "http://x", "status": "disabled"},
}
MAPPINGS: dict[str, Any] = {
    "exact_matches": {"llama3.1:8b": {"provider": "ollama"},
                      "custom": {"provider": "vllm", "backend_model": "custom-awq"}},
    "patterns": [{"pattern": "*", "provider": "llama_cpp_native"},
                 {"pattern": "Qwen/*", "provider": "vllm"},
                 {"pattern": "Qwen/Qwen2*", "provider": "ollama"},
                 {"pattern": "*:*", "provider": "ollama"}],
    "capabilities": {
        "code": {"providers": ["vllm", "ollama"], "strategy": "round_robin", "preferred_models": ["qwen-coder"]},
        "reasoning": {"providers": ["vllm", "ollama", "llama_cpp_python"], "strategy": "round_robin"}},
    "fallback_chains": {"llama3.1:8b": ["ollama", "llama_cpp_python", "llama_cpp_native"]},
    "context_window_fallbacks": {"llama3.1:8b": ["llama3.1:8b-tiny", "qwen2.5-coder:7b", "big-llama"]},
    "load_balancing": {"pooled": {"providers": ["ollama", "vllm", "off"], "strategy": "round_robin"}},
}


def config(providers: dict[str, Any] | None = None, mappings: dict[str, Any] | None = None) -> Config:
    specs = {k: ProviderSpec.model_validate(v) for k, v in (providers or PROVIDERS).items()}
    return Config(directory=Path("."), providers=specs,
                  mappings=ModelMappingsFile.model_validate(MAPPINGS if mappings is None else mappings),
                  runtime=RuntimeFile())


def request(model: str, **fields: Any) -> InferenceRequest:
    return InferenceRequest(id="r", attempt="a", kind="chat", model=model, body={}, **fields)


def plan(model: str, cfg: Config | None = None, *, states: dict[str, ProviderState] | None = None,
         balancer: Balancer | None = None, draw: float = 0.0, load: LoadView | None = None, now: float = 0.0,
         **fields: Any) -> Plan:
    return decide(cfg or config(), request(model, **fields), states=states or {}, load=load or LoadView(),
                  usage=UsageStats(), balancer=balancer or Balancer(), admit_draw=draw, now=now)


def state(provider: str, name: str, admit: float = 1.0) -> ProviderState:
    return ProviderState(provider=provider, state=name, admit_fraction=admit)  # type: ignore[arg-type]


def test_exact_match_then_its_fallback_chain_in_order() -> None:
    result = plan("llama3.1:8b")
    assert result.routed_by == "exact"
    assert result.candidates == ("ollama", "llama_cpp_python", "llama_cpp_native")
    assert [t.fallback for t in result.targets] == [False, True, True]
    assert result.targets[1].backend_model == "llama.gguf"


def test_exact_match_backend_model_overrides_the_providers_name() -> None:
    assert plan("custom").targets[0].backend_model == "custom-awq"


def test_most_specific_pattern_wins() -> None:
    assert plan("Qwen/Qwen2.5-7B").candidates == ("ollama",)
    assert plan("Qwen/other").candidates == ("vllm",)
    assert plan("mistral").candidates == ("llama_cpp_native",)
    assert plan("mistral").routed_by == "pattern"


def test_capability_alias_is_seen_before_patterns_and_picks_each_providers_model() -> None:
    balancer = Balancer()
    first = plan("capability:code", balancer=balancer)
    assert first.routed_by == "capability"
    assert {(t.provider, t.model) for t in first.targets} == {("vllm", "qwen-coder"), ("ollama", "qwen2.5-coder:7b")}
    assert next(t for t in first.targets if t.provider == "vllm").backend_model == "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"
    second = plan("capability:code", balancer=balancer)
    assert first.candidates[0] != second.candidates[0]  # the pool rotates


def test_capability_pool_member_without_such_a_model_is_skipped_with_the_reason() -> None:
    result = plan("capability:reasoning")
    assert set(result.candidates) == {"vllm"}
    assert any("ollama (no model with capability 'reasoning')" in s for s in result.skipped)


def test_unknown_capability_alias_is_404() -> None:
    result = plan("capability:poetry")
    assert result.not_found and result.refusal is not None
    assert "capability:code" in result.refusal.message


def test_capability_field_applies_only_when_no_model_rule_matches() -> None:
    no_patterns = {**MAPPINGS, "patterns": []}
    assert plan("gpt-unknown", config(mappings=no_patterns), capability="reasoning").candidates == ("vllm",)
    assert plan("llama3.1:8b", capability="reasoning").routed_by == "exact"


def test_providers_listing_the_model_are_the_pool_when_no_rule_matches() -> None:
    result = plan("qwen-coder", config(mappings={}))
    assert result.routed_by == "load_balancing" and result.candidates == ("vllm",)


def test_default_provider_then_404() -> None:
    assert plan("nothing", config(mappings={"default_provider": "vllm"})).candidates == ("vllm",)
    refused = plan("nothing", config(mappings={}))
    assert refused.not_found and refused.candidates == ()


def test_excluded_disabled_and_unavailable_are_dropped_and_named() -> None:
    result = plan("llama3.1:8b", excluded=("ollama",), states={"llama_cpp_python": state("llama_cpp_python",
                                                                                        "unavailable", 0.0)})
    assert result.candidates == ("llama_cpp_native",)
    assert "ollama (already tried)" in result.skipped and "llama_cpp_python (unavailable)" in result.skipped
    pooled = plan("pooled")
    assert "off" not in pooled.candidates and "off (disabled)" in pooled.skipped
    paused = msgspec.structs.replace(state("llama_cpp_python", "unavailable", 0.0), resume="active")
    assert "llama_cpp_python (rate limited)" in plan("llama3.1:8b", states={"llama_cpp_python": paused}).skipped


def test_nothing_routable_is_503_naming_each_reason() -> None:
    result = plan("llama3.1:8b", excluded=("ollama", "llama_cpp_python", "llama_cpp_native"))
    assert result.refusal is not None and result.refusal.status == 503
    assert "llama_cpp_native (already tried)" in result.refusal.message


@pytest.mark.parametrize(("draw", "admitted"), [(0.0, True), (0.2499, True), (0.25, False), (0.9, False)])
def test_cooldown_admits_its_fraction_of_draws(draw: float, admitted: bool) -> None:
    result = plan("llama3.1:8b", states={"ollama": state("ollama", "cooldown", 0.25)}, draw=draw)
    assert ("ollama" in result.candidates) is admitted


def test_degraded_stays_routable() -> None:
    assert "ollama" in plan("llama3.1:8b", states={"ollama": state("ollama", "degraded")}).candidates


def test_context_chain_keeps_only_larger_windows_in_config_order() -> None:
    # the unknown "llama3.1:8b-tiny" has no declared window: trusted as larger
    assert context_chain(config(), "llama3.1:8b") == ("llama3.1:8b", "llama3.1:8b-tiny", "qwen2.5-coder:7b",
                                                      "big-llama")
    smaller = {**MAPPINGS, "context_window_fallbacks": {"qwen2.5-coder:7b": ["llama3.1:8b", "big-llama"]}}
    assert context_chain(config(mappings=smaller), "qwen2.5-coder:7b") == ("qwen2.5-coder:7b", "big-llama")


def test_context_fallback_routes_the_larger_model_then_refuses_with_400() -> None:
    moved = plan("llama3.1:8b", context_fallback=2)
    assert [(t.provider, t.model) for t in moved.targets] == [("ollama", "qwen2.5-coder:7b")]
    exhausted = plan("llama3.1:8b", context_fallback=4)
    assert exhausted.refusal is not None
    assert (exhausted.refusal.status, exhausted.refusal.code) == (400, CONTEXT_LENGTH_EXCEEDED)


def test_least_loaded_pool_reads_the_load_view() -> None:
    mappings = {"load_balancing": {"m": {"providers": ["ollama", "vllm"], "strategy": "least_loaded"}}}
    view = LoadView()
    view.report(LoadReport(provider="ollama", worker_id="w1", in_flight=3, queued=1, capacity=4,
                           queue_capacity=8, at=0), now=10.0)
    view.report(LoadReport(provider="vllm", worker_id="w2", in_flight=1, queued=0, capacity=4,
                           queue_capacity=8, at=0), now=10.0)
    assert plan("m", config(mappings=mappings), load=view, now=10.5).candidates == ("vllm", "ollama")


def test_quality_first_reads_the_priority_order_of_custom_strategies() -> None:
    mappings = {"load_balancing": {"m": {"providers": ["ollama", "llama_cpp_native", "vllm"],
                                         "strategy": "quality_first"}},
                "custom_strategies": {"quality_first": {"priority_order": ["vllm (13B+)", "ollama (8B)"]}}}
    assert plan("m", config(mappings=mappings)).candidates == ("vllm", "ollama", "llama_cpp_native")


def test_a_cooldown_provider_with_no_alternative_serves_even_when_not_admitted() -> None:
    states = {"ollama": state("ollama", "cooldown", 0.1), "llama_cpp_python": state("llama_cpp_python", "unavailable"),
              "llama_cpp_native": state("llama_cpp_native", "unavailable")}
    assert plan("llama3.1:8b", states=states, draw=0.9).candidates == ("ollama",)
    with_alternative = {**states, "llama_cpp_native": state("llama_cpp_native", "active")}
    assert plan("llama3.1:8b", states=with_alternative, draw=0.9).candidates == ("llama_cpp_native",)


def test_all_down_refusal_carries_the_earliest_reopening() -> None:
    def opened(provider: str, until: float) -> ProviderState:
        return ProviderState(provider=provider, state="unavailable", admit_fraction=0.0, open_until=until)

    states = {"ollama": opened("ollama", 1_000.0), "llama_cpp_python": opened("llama_cpp_python", 1_030.0),
              "llama_cpp_native": opened("llama_cpp_native", 1_100.0)}
    refused = decide(config(), request("llama3.1:8b"), states=states, load=LoadView(), usage=UsageStats(),
                     balancer=Balancer(), admit_draw=0.0, now=0.0, wall_now=970.0).refusal
    assert refused is not None and refused.status == 503 and refused.retry_after == 30.0
    late = decide(config(), request("llama3.1:8b"), states=states, load=LoadView(), usage=UsageStats(),
                  balancer=Balancer(), admit_draw=0.0, now=0.0, wall_now=999.9).refusal
    assert late is not None and late.retry_after == 1.0

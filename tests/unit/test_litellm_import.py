"""LiteLLM proxy configs become our config documents, with a note for everything not imported."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import ConfigError, ModelMappingsFile, ProvidersFile, RuntimeFile, load_config
from shared.config.litellm_import import Imported, LiteLLMImportError, import_litellm, is_litellm_config

ROOT = Path(__file__).resolve().parents[2]


def deployment(name: str, model: str, **params: Any) -> dict[str, Any]:
    info = params.pop("model_info", None)
    entry: dict[str, Any] = {"model_name": name, "litellm_params": {"model": model, **params}}
    if info is not None:
        entry["model_info"] = info
    return entry


def imported(*entries: dict[str, Any], **sections: Any) -> Imported:
    result = import_litellm({"model_list": list(entries), **sections})
    # Whatever the importer writes must be valid for our own models.
    ProvidersFile.model_validate(result.providers)
    ModelMappingsFile.model_validate(result.mappings)
    RuntimeFile.model_validate(result.runtime)
    return result


def notes_at(result: Imported, path: str) -> list[str]:
    return [n.message for n in result.notes if n.path == path]


def test_is_recognised_by_its_model_list() -> None:
    assert is_litellm_config({"model_list": []})
    assert not is_litellm_config({"providers": {}})
    assert not is_litellm_config(["model_list"])


def test_each_prefix_becomes_a_provider_of_its_type_with_the_backend_model_name() -> None:
    result = imported(
        deployment("llama3.1:8b", "ollama/llama3.1:8b"),
        deployment("qwen2.5-coder:7b", "ollama_chat/qwen2.5-coder:7b"),
        deployment("qwen-coder", "hosted_vllm/Qwen/Qwen2.5-Coder-7B-Instruct-AWQ", api_base="http://localhost:8001/v1"),
        deployment("local-gguf", "openai/model.gguf", api_base="http://localhost:8000/v1"),
        deployment("gpt-4o", "openai/gpt-4o", api_key="os.environ/OPENAI_API_KEY"),
        deployment("claude-3-sonnet", "anthropic/claude-3-sonnet-20240229", api_key="${ANTHROPIC_API_KEY}"),
        deployment("kimi", "ollama_chat/kimi-k2:1t-cloud", api_base="https://ollama.com",
                   api_key="os.environ/OLLAMA_API_KEY"),
    )
    providers = result.providers["providers"]
    assert {k: p["type"] for k, p in providers.items()} == {
        "ollama": "ollama", "vllm": "vllm", "openai_compatible": "openai_compatible", "openai": "openai",
        "anthropic": "anthropic", "ollama_cloud": "ollama_cloud"}
    assert providers["ollama"]["base_url"] == "http://localhost:11434"  # LiteLLM's default api_base
    assert providers["ollama"]["models"] == {"llama3.1:8b": {}, "qwen2.5-coder:7b": {}}
    assert providers["vllm"]["models"]["qwen-coder"]["backend_model"] == "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"
    assert providers["anthropic"]["env_var"] == "ANTHROPIC_API_KEY"
    assert providers["anthropic"]["requires_api_key"] is True
    assert providers["anthropic"]["base_url"] == "https://api.anthropic.com/v1"
    assert providers["ollama_cloud"]["env_var"] == "OLLAMA_API_KEY"
    assert result.mappings["exact_matches"]["claude-3-sonnet"] == {"provider": "anthropic"}
    assert "load_balancing" not in result.mappings
    assert result.notes == ()


def test_cloud_providers_without_api_key_use_litellms_default_variables() -> None:
    result = imported(deployment("gpt-4o", "gpt-4o"), deployment("claude", "claude-3-haiku-20240307"))
    providers = result.providers["providers"]
    assert providers["openai"]["env_var"] == "OPENAI_API_KEY"
    assert providers["anthropic"]["env_var"] == "ANTHROPIC_API_KEY"


def test_a_literal_api_key_is_never_copied_and_says_so() -> None:
    result = imported(deployment("m", "openai/m", api_base="http://h:8000/v1", api_key="sk-secret-123"))
    assert "sk-secret-123" not in yaml.safe_dump(result.providers) + "".join(map(str, result.notes))
    assert notes_at(result, "model_list[0].litellm_params.api_key")


def test_one_model_on_several_backends_is_load_balanced_with_the_mapped_strategy_and_weights() -> None:
    result = imported(
        deployment("llama", "ollama/llama3.1:8b", api_base="http://gpu1:11434", weight=2),
        deployment("llama", "ollama/llama3.1:8b", api_base="http://gpu2:11434"),
        router_settings={"routing_strategy": "least-busy"},
    )
    assert set(result.providers["providers"]) == {"ollama_11434", "ollama_11434_2"}
    assert result.mappings["load_balancing"]["llama"] == {
        "providers": ["ollama_11434", "ollama_11434_2"], "strategy": "least_loaded",
        "weights": {"ollama_11434": 2.0}}
    assert "llama" not in result.mappings.get("exact_matches", {})


def test_backends_sharing_a_type_get_their_port_or_the_name_model_info_gives() -> None:
    result = imported(
        deployment("a", "openai/a.gguf", api_base="http://localhost:8000/v1"),
        deployment("b", "openai/b.gguf", api_base="http://localhost:8080/v1"),
        deployment("c", "openai/c.gguf", api_base="http://localhost:9000/v1",
                   model_info={"aiub_provider": "llama_cpp_native"}),
    )
    assert list(result.providers["providers"]) == ["openai_compatible_8000", "openai_compatible_8080",
                                                   "llama_cpp_native"]


def test_deployments_of_one_backend_share_one_provider_and_its_limits() -> None:
    result = imported(
        deployment("a", "hosted_vllm/A", api_base="http://localhost:8001/v1", max_parallel_requests=8, timeout=30),
        deployment("b", "hosted_vllm/B", api_base="http://localhost:8001", max_parallel_requests=32),
    )
    (vllm,) = result.providers["providers"].values()
    assert vllm["max_concurrency"] == 32
    assert vllm["timeout_s"] == 30.0
    assert set(vllm["models"]) == {"a", "b"}


def test_model_info_gives_the_context_window_cost_and_mode() -> None:
    result = imported(deployment("m", "anthropic/claude-x", model_info={
        "max_input_tokens": 200000, "input_cost_per_token": 0.000003, "output_cost_per_token": 0.000003,
        "mode": "chat", "id": "abc"}))
    spec = result.providers["providers"]["anthropic"]["models"]["m"]
    assert spec["context_window"] == 200000
    assert spec["cost_per_1k_tokens"] == pytest.approx(0.003)
    assert spec["capabilities"] == ["chat"]
    assert "id" in notes_at(result, "model_list[0].model_info")[0]


def test_fallbacks_add_the_fallback_models_providers_serving_the_original_name() -> None:
    result = imported(
        deployment("llama3.1:8b", "ollama/llama3.1:8b"),
        deployment("llama-cpp", "openai/llama.gguf", api_base="http://localhost:8000/v1"),
        router_settings={"fallbacks": [{"llama3.1:8b": ["llama-cpp"]}]},
    )
    assert result.mappings["fallback_chains"] == {"llama3.1:8b": ["ollama", "openai_compatible"]}
    models = result.providers["providers"]["openai_compatible"]["models"]
    assert models["llama3.1:8b"]["backend_model"] == "llama.gguf"


def test_a_fallback_that_cannot_be_expressed_per_provider_is_noted() -> None:
    result = imported(
        deployment("a", "ollama/a"), deployment("b", "ollama/b"),
        router_settings={"fallbacks": [{"a": ["b", "nope"]}]},
    )
    messages = notes_at(result, "router_settings.fallbacks[0].a")
    assert any("cannot be expressed" in m for m in messages)
    assert any("'nope' is not in model_list" in m for m in messages)
    assert "fallback_chains" not in result.mappings


def test_context_window_fallbacks_and_aliases_map_to_ours() -> None:
    result = imported(
        deployment("small", "ollama/small", model_info={"max_input_tokens": 8192}),
        deployment("big", "hosted_vllm/big", api_base="http://v:8001/v1", model_info={"max_input_tokens": 32768}),
        router_settings={"context_window_fallbacks": [{"small": ["big"]}],
                         "model_group_alias": {"fast": "small", "huge": {"model": "big", "hidden": True}}},
    )
    assert result.mappings["context_window_fallbacks"] == {"small": ["big"]}
    assert result.mappings["exact_matches"]["fast"] == {"provider": "ollama"}
    assert result.providers["providers"]["ollama"]["models"]["fast"]["backend_model"] == "small"
    assert result.providers["providers"]["vllm"]["models"]["huge"]["backend_model"] == "big"


def test_router_settings_map_to_deadlines_and_breakers() -> None:
    result = imported(deployment("m", "ollama/m"), router_settings={
        "num_retries": 3, "timeout": 120, "allowed_fails": 2, "cooldown_time": 30})
    assert result.runtime == {"deadlines": {"retry_budget": 3, "total_s": 120.0}}
    health = result.providers["providers"]["ollama"]["health"]
    assert health == {"failure_threshold": 3, "failure_window_s": 60.0, "open_s": 30.0}


def test_router_settings_win_over_litellm_settings_and_the_conflict_is_noted() -> None:
    result = imported(deployment("m", "ollama/m"), router_settings={"num_retries": 1},
                      litellm_settings={"num_retries": 5, "request_timeout": 90})
    assert result.runtime["deadlines"] == {"retry_budget": 1, "total_s": 90.0}
    assert notes_at(result, "litellm_settings.num_retries")


def test_cache_and_master_key_say_what_to_set_without_revealing_secrets() -> None:
    result = imported(deployment("m", "ollama/m"),
                      litellm_settings={"cache": True, "cache_params": {
                          "type": "redis", "host": "redis", "port": 6380, "password": "os.environ/REDIS_PASSWORD"}},
                      general_settings={"master_key": "sk-1234-literal"})
    cache = next(n for n in result.notes if n.path == "litellm_settings.cache_params")
    assert cache.fix == "set REDIS_URL=redis://:${REDIS_PASSWORD}@redis:6380/0 for every gateway"
    key = next(n for n in result.notes if n.path == "general_settings.master_key")
    assert "AIUB_MASTER_KEY" in key.fix
    assert "sk-1234-literal" not in str(key)


@pytest.mark.parametrize(("section", "key"), [
    ("router_settings", "redis_host"), ("router_settings", "enable_pre_call_checks"),
    ("litellm_settings", "drop_params"), ("litellm_settings", "success_callback"),
    ("general_settings", "database_url"), ("general_settings", "alerting"),
])
def test_every_unsupported_setting_gets_a_note(section: str, key: str) -> None:
    result = imported(deployment("m", "ollama/m"), **{section: {key: "x"}})
    assert notes_at(result, f"{section}.{key}")


def test_unsupported_params_providers_and_top_level_keys_are_noted_never_dropped() -> None:
    result = imported(
        deployment("m", "ollama/m", rpm=60, temperature=0.2),
        deployment("az", "azure/gpt-4", api_base="https://x.openai.azure.com"),
        deployment("v", "hosted_vllm/v"),  # no api_base: vLLM has no default address
        environment_variables={"A": "b"},
    )
    assert notes_at(result, "model_list[0].litellm_params.rpm")
    assert notes_at(result, "model_list[0].litellm_params.temperature")
    assert "not supported" in notes_at(result, "model_list[1].litellm_params.model")[0]
    assert notes_at(result, "model_list[2].litellm_params.api_base")
    assert notes_at(result, "environment_variables")
    assert list(result.providers["providers"]) == ["ollama"]


def test_a_wildcard_model_name_becomes_a_pattern_when_the_backend_gets_the_same_name() -> None:
    result = imported(deployment("*", "ollama/*"), deployment("gpt-*", "openai/*"))
    assert result.mappings["patterns"] == [{"pattern": "*", "provider": "ollama"}]
    assert notes_at(result, "model_list[1]")


@pytest.mark.parametrize(("data", "where"), [
    ({"model_list": []}, "model_list"),
    ({"model_list": ["x"]}, "model_list[0]"),
    ({"model_list": [{"litellm_params": {"model": "ollama/m"}}]}, "model_list[0].model_name"),
    ({"model_list": [{"model_name": "m", "litellm_params": {}}]}, "model_list[0].litellm_params.model"),
    ({"model_list": [deployment("m", "ollama/m")], "router_settings": []}, "router_settings"),
])
def test_an_unreadable_config_names_the_key_path(data: dict[str, Any], where: str) -> None:
    with pytest.raises(LiteLLMImportError, match=rf"^{re.escape(where)}:"):
        import_litellm(data)


def test_the_shipped_example_loads_unchanged_through_load_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    config = load_config(ROOT / "config" / "litellm-unified.yaml")
    assert {"ollama", "llama_cpp_python", "llama_cpp_native", "vllm", "anthropic", "ollama_cloud"} == set(
        config.providers)
    assert config.mappings.fallback_chains["llama3.1:8b"] == ("ollama", "llama_cpp_python", "llama_cpp_native")
    assert config.providers["llama_cpp_python"].backend_model("llama3.1:8b") == "llama-3.1-8b-instruct-q4_k_m.gguf"
    assert config.runtime.deadlines.retry_budget == 2
    assert config.notes and any("drop_params" in n for n in config.notes)


def test_load_config_expands_env_in_imported_urls_and_refuses_other_yaml(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_BASE", "http://gpu-box:8001/v1")
    path = tmp_path / "litellm.yaml"
    path.write_text(yaml.safe_dump({"model_list": [
        deployment("q", "hosted_vllm/Q", api_base="os.environ/VLLM_API_BASE")]}))
    assert load_config(path).providers["vllm"].base_url == "http://gpu-box:8001/v1"
    other = tmp_path / "other.yaml"
    other.write_text("providers: {}\n")
    with pytest.raises(ConfigError, match="no model_list"):
        load_config(other)

from __future__ import annotations

import json
from pathlib import Path

import yaml

from services.gateway.model_catalog import configured_models, merge_models, models_body
from shared.config import load_config


def test_configured_names_first_then_served_names_not_already_listed() -> None:
    merged = merge_models([("qwen-coder", "vllm"), ("llama3.1:8b", "ollama")],
                          {"ollama": ["llama3.1:8b", "mistral:7b"], "vllm": ["Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"]},
                          created=5)
    assert [(m["id"], m["owned_by"]) for m in merged["data"]] == [
        ("qwen-coder", "vllm"), ("llama3.1:8b", "ollama"), ("mistral:7b", "ollama"),
        ("Qwen/Qwen2.5-Coder-7B-Instruct-AWQ", "vllm")]
    assert merged["object"] == "list" and {m["created"] for m in merged["data"]} == {5}
    assert merge_models([("a", "p")], {}, 1)["data"] == [{"id": "a", "object": "model", "created": 1, "owned_by": "p"}]


def test_from_config(tmp_path: Path) -> None:
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "ollama": {"type": "ollama", "base_url": "http://h:11434", "models": ["llama3.1:8b"]},
        "cloud": {"type": "ollama_cloud", "base_url": "https://ollama.com", "models": {
            "kimi-k2:1t-cloud": {"backend_model": "kimi-k2:1t"}}}}}))
    (tmp_path / "model-mappings.yaml").write_text(yaml.safe_dump({"exact_matches": {
        "kimi-k2:1t-cloud": {"provider": "cloud"}}, "patterns": [{"pattern": "gpt-oss:*", "provider": "cloud"}]}))
    config = load_config(tmp_path)
    assert configured_models(config) == [("kimi-k2:1t-cloud", "cloud"), ("llama3.1:8b", "ollama")]
    body = json.loads(models_body(config, {"cloud": ["kimi-k2:1t", "gpt-oss:120b"]}, 0))
    # kimi-k2:1t is the backend's name for kimi-k2:1t-cloud: no rule routes it, so it is not offered
    assert [m["id"] for m in body["data"]] == ["kimi-k2:1t-cloud", "llama3.1:8b", "gpt-oss:120b"]


def test_a_served_name_is_listed_only_where_its_route_reaches_the_provider_that_serves_it(tmp_path: Path) -> None:
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "ollama": {"type": "ollama", "base_url": "http://h:11434", "models": ["llama3.1:8b"]},
        "vllm": {"type": "vllm", "base_url": "http://h:8001", "models": {
            "qwen-coder": {"backend_model": "Qwen/Qwen2.5-Coder-7B"}}},
        "off": {"type": "vllm", "base_url": "http://h:8002", "status": "disabled"}}}))
    (tmp_path / "model-mappings.yaml").write_text(yaml.safe_dump({"default_provider": "ollama"}))
    config = load_config(tmp_path)
    body = json.loads(models_body(config, {"ollama": ["mistral:7b"], "vllm": ["Qwen/Qwen2.5-Coder-7B"],
                                           "off": ["phi3"]}, 0))
    # mistral:7b goes to the default provider, which serves it; the vLLM file name would go there too
    assert [m["id"] for m in body["data"]] == ["llama3.1:8b", "qwen-coder", "mistral:7b"]


def test_only_names_that_can_be_routed_are_listed(tmp_path: Path) -> None:
    """A model whose every route ends at a disabled provider answers only 503: a client picking
    from the list must not be offered it. A fallback chain to an active provider keeps it."""
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "ollama": {"type": "ollama", "base_url": "http://h:11434", "models": ["llama3.1:8b"]},
        "openai": {"type": "openai", "base_url": "https://api.openai.com/v1", "status": "disabled",
                   "models": ["gpt-4o-mini", "text-embedding-3-small", "gpt-4o"]}}}))
    (tmp_path / "model-mappings.yaml").write_text(yaml.safe_dump({
        "exact_matches": {"gpt-4o-mini": {"provider": "openai"}, "gpt-4o": {"provider": "openai"}},
        "fallback_chains": {"gpt-4o": ["openai", "ollama"]}}))
    config = load_config(tmp_path)
    assert configured_models(config) == [("gpt-4o", "openai"), ("llama3.1:8b", "ollama")]
    shipped = load_config(Path(__file__).resolve().parents[2] / "config")
    listed = {name for name, _ in configured_models(shipped)}
    assert "llama3.1:8b" in listed and "qwen-coder" in listed
    assert not listed & {"gpt-4o-mini", "claude-sonnet-4", "kimi-k2:1t-cloud"}  # the cloud ships disabled

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
        "kimi-k2:1t-cloud": {"provider": "cloud"}}}))
    config = load_config(tmp_path)
    assert configured_models(config) == [("kimi-k2:1t-cloud", "cloud"), ("llama3.1:8b", "ollama")]
    body = json.loads(models_body(config, {"cloud": ["kimi-k2:1t", "gpt-oss:120b"]}, 0))
    assert [m["id"] for m in body["data"]] == ["kimi-k2:1t-cloud", "llama3.1:8b", "kimi-k2:1t", "gpt-oss:120b"]

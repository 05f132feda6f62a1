"""Which model the trial inference asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.health.trial import is_trial, trial_model
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile


def config(models: Any, exact: dict[str, Any] | None = None) -> Config:
    provider = ProviderSpec(type="vllm", base_url="http://h:8001", models=models)
    return Config(directory=Path("."), providers={"p": provider},
                  mappings=ModelMappingsFile(exact_matches=exact or {}), runtime=RuntimeFile())


def test_the_first_chat_model_with_its_backend_name() -> None:
    cfg = config({"nomic-embed": {}, "qwen": {"backend_model": "Qwen/Qwen2.5"}})
    assert trial_model(cfg, "p") == ("qwen", "Qwen/Qwen2.5", "chat")


def test_a_model_with_an_embedding_capability_is_skipped() -> None:
    cfg = config({"e5": {"capabilities": ["embeddings"]}, "chat": {}})
    assert trial_model(cfg, "p") == ("chat", "chat", "chat")


def test_models_named_only_in_the_mappings() -> None:
    cfg = config({}, {"m": {"provider": "p", "backend_model": "m-backend"}})
    assert trial_model(cfg, "p") == ("m", "m-backend", "chat")


def test_an_embeddings_only_provider_gets_an_embedding_trial_and_none_without_models() -> None:
    assert trial_model(config({"nomic-embed": {}}), "p") == ("nomic-embed", "nomic-embed", "embedding")
    assert trial_model(config({}), "p") is None


def test_trial_request_ids_are_recognised() -> None:
    assert is_trial("trial-abc") and not is_trial("abc")

"""The Ollama door's model endpoints, from the configuration: /api/tags, /api/show, /api/ps and
/api/version. Pure.

- /api/tags lists the configured public names (config.public_models(): exact matches, then each
  provider's models) that can be routed, as /v1/models does (model_catalog.routable: a model
  whose every route ends at a disabled provider is not offered), spelled as the lab configured
  them: no `:latest` is added, and a client that adds one still reaches the model
  (ollama_request.model_name). Ollama's fields are all there: `size` is 0 (aiub holds no
  weights), `digest` a sha256 of the name, so a client that keys on it sees a stable value,
  `modified_at` when the gateway read its config, and `details` names the provider type as
  `format` and nothing it cannot know.
- /api/show answers for a configured name: `capabilities` from the model's configured
  capabilities (`embeddings` → `embedding`, `reasoning`/`thinking` → `thinking`, `vision`,
  and `completion` and `tools` for any model that is not an embedder), `model_info` with its
  configured context window as `aiub.context_length` (clients look for `*.context_length`).
  Any other name is a 404, as Ollama answers for a model it has not pulled.
- /api/ps reports no model loaded: aiub does not load models, its backends do.
- /api/version is the version of Ollama's API this door speaks.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from services.gateway.dialects.ollama_request import routed_name
from services.gateway.model_catalog import routable
from shared.config import Config
from shared.config.schema import ModelSpec
from shared.errors import ModelNotFound

API_VERSION = "0.12.0"

_encode = msgspec.json.encode


def model_spec(config: Config, name: str) -> tuple[str, ModelSpec]:
    """(provider type, model spec) of a configured name: the exact match's provider first."""
    match = config.mappings.exact_matches.get(name)
    if match is not None and match.provider in config.providers:
        provider = config.providers[match.provider]
        return provider.type, provider.models.get(name, ModelSpec())
    for provider in config.providers.values():
        if name in provider.models:
            return provider.type, provider.models[name]
    return "", ModelSpec()


def _details(provider_type: str) -> dict[str, Any]:
    return {"parent_model": "", "format": provider_type, "family": "", "families": None,
            "parameter_size": "", "quantization_level": ""}


def _entry(config: Config, name: str, modified_at: str) -> dict[str, Any]:
    provider_type, _ = model_spec(config, name)
    return {"name": name, "model": name, "modified_at": modified_at, "size": 0,
            "digest": hashlib.sha256(name.encode()).hexdigest(), "details": _details(provider_type)}


def tags_body(config: Config, modified_at: str) -> bytes:
    return _encode({"models": [_entry(config, name, modified_at) for name in config.public_models()
                               if routable(config, name)]})


def capabilities(spec: ModelSpec) -> list[str]:
    given = {c.lower() for c in spec.capabilities}
    found = ["embedding"] if given & {"embedding", "embeddings"} else ["completion", "tools"]
    if given & {"reasoning", "thinking"}:
        found.append("thinking")
    if "vision" in given:
        found.append("vision")
    return found


def show_body(config: Config, name: str, modified_at: str) -> bytes:
    """ModelNotFound for a name the configuration does not list."""
    known = config.public_models()
    routed = routed_name(name, known)
    if routed not in known:
        raise ModelNotFound(f"model '{name}' not found", param="model")
    provider_type, spec = model_spec(config, routed)
    info: dict[str, Any] = {"general.architecture": "aiub"}
    if spec.context_window:
        info["aiub.context_length"] = spec.context_window
    return _encode({"modelfile": "", "parameters": "", "template": "", "details": _details(provider_type),
                    "model_info": info, "capabilities": capabilities(spec), "modified_at": modified_at})


def ps_body() -> bytes:
    return b'{"models":[]}'


def version_body() -> bytes:
    return _encode({"version": API_VERSION})

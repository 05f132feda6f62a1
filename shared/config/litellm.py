"""The LiteLLM switch: a LiteLLM proxy YAML (recognised by its `model_list`) loaded as our `Config`,
through the same models as our own files (shared/config/litellm_import.py does the mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from shared.config.base import ConfigError
from shared.config.documents import describe, expand, parse
from shared.config.litellm_import import LiteLLMImportError, import_litellm, is_litellm_config
from shared.config.runtime import RuntimeFile
from shared.config.schema import Config, ModelMappingsFile, ProvidersFile


def load_litellm(path: Path, environ: Mapping[str, str]) -> Config:
    try:
        with path.open("rb") as f:
            data = yaml.safe_load(f)  # no ${VAR} expansion yet: `api_key: ${VAR}` names a variable
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not is_litellm_config(data):
        raise ConfigError(f"{path}: neither a config directory nor a LiteLLM proxy config (no model_list)")
    try:
        imported = import_litellm(data)
    except LiteLLMImportError as e:
        raise ConfigError(f"{path}: {e}") from None
    providers = parse(ProvidersFile, path, expand(imported.providers, path, environ))
    mappings = parse(ModelMappingsFile, path, expand(imported.mappings, path, environ))
    runtime = parse(RuntimeFile, path, expand(imported.runtime, path, environ))
    try:
        return Config(directory=path, providers=providers.providers, mappings=mappings, runtime=runtime,
                      notes=tuple(str(note) for note in imported.notes))
    except ValidationError as e:
        raise ConfigError(describe(path, e)) from None

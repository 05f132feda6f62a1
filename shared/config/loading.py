"""`load_config`: a config directory (`providers.yaml`, `model-mappings.yaml`, optional
`aiub.yaml`) or a single LiteLLM proxy YAML, loaded once into a frozen `Config`."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from shared.config.base import ConfigError
from shared.config.documents import describe, parse, read_yaml
from shared.config.litellm import load_litellm
from shared.config.runtime import RuntimeFile
from shared.config.schema import Config, ModelMappingsFile, ProvidersFile

# The config/ directory shipped beside the packages.
SHIPPED_CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "config"


def default_config_dir() -> Path:
    configured = os.environ.get("AIUB_CONFIG")
    return Path(configured) if configured else SHIPPED_CONFIG_DIR


def load_config(directory: str | Path | None = None) -> Config:
    """Our config directory, or a single LiteLLM proxy YAML (recognised by its `model_list`)."""
    root = Path(directory) if directory is not None else default_config_dir()
    if root.is_file():
        return load_litellm(root)
    providers = parse(ProvidersFile, root / "providers.yaml", read_yaml(root / "providers.yaml"))
    mappings = parse(ModelMappingsFile, root / "model-mappings.yaml", read_yaml(root / "model-mappings.yaml"))
    runtime_path = root / "aiub.yaml"
    runtime = parse(RuntimeFile, runtime_path, read_yaml(runtime_path)) if runtime_path.exists() else RuntimeFile()
    try:
        return Config(directory=root, providers=providers.providers, mappings=mappings, runtime=runtime)
    except ValidationError as e:
        raise ConfigError(describe(root, e)) from None

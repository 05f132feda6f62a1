"""`load_config`: a config directory (`providers.yaml`, `model-mappings.yaml`, optional
`aiub.yaml`) or a single LiteLLM proxy YAML, loaded once into a frozen `Config`.

The one place aiub reads its environment (with environment.py, for what is not config): the
`${VAR}` references in the files, and the secrets the files name by variable (each provider's
`env_var`, `redis.url_env`, `auth.master_key_env`, `auth.bus_secret_env`) are read here, once,
into the `Config`; nothing downstream calls `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from shared.config.base import ConfigError
from shared.config.documents import describe, parse, read_yaml, read_yaml_text
from shared.config.litellm import load_litellm
from shared.config.runtime import RuntimeFile
from shared.config.schema import Config, ModelMappingsFile, ProvidersFile

# The config/ directory shipped beside the packages.
SHIPPED_CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "config"


def default_config_dir(environ: Mapping[str, str]) -> Path:
    configured = environ.get("AIUB_CONFIG")
    return Path(configured) if configured else SHIPPED_CONFIG_DIR


def load_config(directory: str | Path | None = None, environ: Mapping[str, str] = os.environ) -> Config:
    """Our config directory, or a single LiteLLM proxy YAML (recognised by its `model_list`),
    with the secrets it names read from `environ`."""
    root = Path(directory) if directory is not None else default_config_dir(environ)
    return with_secrets(load_litellm(root, environ) if root.is_file() else _load_directory(root, environ), environ)


def with_secrets(config: Config, environ: Mapping[str, str]) -> Config:
    """`config` holding the values of the variables it names: provider keys, the Redis URL, the
    master key and the bus secret."""
    providers = {name: spec.with_api_key(environ.get(spec.env_var) if spec.env_var else None)
                 for name, spec in config.providers.items()}
    redis, auth = config.runtime.redis, config.runtime.auth
    runtime = config.runtime.model_copy(update={
        "redis": redis.with_url(environ.get(redis.url_env)),
        "auth": auth.with_secrets(environ.get(auth.master_key_env), environ.get(auth.bus_secret_env)),
    })
    return config.model_copy(update={"providers": providers, "runtime": runtime})


def load_texts(texts: Mapping[str, str], directory: str | Path, environ: Mapping[str, str] = os.environ) -> Config:
    """A config directory's files as texts (`providers.yaml`, `model-mappings.yaml`, optional
    `aiub.yaml`: a revision on the bus, shared/config/revisions.py), loaded as `load_config`
    loads the directory: `${VAR}` expanded and secrets read from `environ`, here and now."""
    root = Path(directory)
    return with_secrets(_from_texts(root, texts, environ), environ)


def _from_texts(root: Path, texts: Mapping[str, str], environ: Mapping[str, str]) -> Config:
    def read(name: str) -> object:
        return read_yaml_text(texts.get(name), root / name, environ)

    providers = parse(ProvidersFile, root / "providers.yaml", read("providers.yaml"))
    mappings = parse(ModelMappingsFile, root / "model-mappings.yaml", read("model-mappings.yaml"))
    runtime = (parse(RuntimeFile, root / "aiub.yaml", read("aiub.yaml")) if "aiub.yaml" in texts
               else RuntimeFile())
    try:
        return Config(directory=root, providers=providers.providers, mappings=mappings, runtime=runtime)
    except ValidationError as e:
        raise ConfigError(describe(root, e)) from None


def _load_directory(root: Path, environ: Mapping[str, str]) -> Config:
    providers = parse(ProvidersFile, root / "providers.yaml", read_yaml(root / "providers.yaml", environ))
    mappings = parse(ModelMappingsFile, root / "model-mappings.yaml",
                     read_yaml(root / "model-mappings.yaml", environ))
    runtime_path = root / "aiub.yaml"
    runtime = (parse(RuntimeFile, runtime_path, read_yaml(runtime_path, environ)) if runtime_path.exists()
               else RuntimeFile())
    try:
        return Config(directory=root, providers=providers.providers, mappings=mappings, runtime=runtime)
    except ValidationError as e:
        raise ConfigError(describe(root, e)) from None

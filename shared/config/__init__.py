"""Typed configuration: `providers.yaml`, `model-mappings.yaml` and the optional `aiub.yaml`.

Config is loaded once into frozen pydantic models and passed explicitly. Unknown keys are
refused (a key in the wrong place silently ignored is how gateways end up misrouting), and
every error names the file, the key path and what is wrong.

    base.py      ConfigError and the strict model base
    schema.py    providers.yaml, model-mappings.yaml and the Config joining them
    runtime.py   aiub.yaml
    env.py       ${VAR} expansion
    environment.py what the process environment says besides config (NATS_URL, ...)
    documents.py one file read, expanded and validated
    loading.py   load_config: a directory, or the LiteLLM switch (litellm.py); the secrets
                 the files name by variable, read once; load_texts: the same from texts
    revisions.py config revisions on the bus: records, diffs, what applies live (pure)
    litellm_*.py a LiteLLM proxy config as our three documents
"""

from shared.config.base import ConfigError
from shared.config.env import expand_env
from shared.config.environment import Environment, read_environment
from shared.config.loading import default_config_dir, load_config, load_texts, with_secrets
from shared.config.runtime import (
    AuthSettings,
    CacheSettings,
    Deadlines,
    GatewaySettings,
    LimitSettings,
    ModelLimits,
    RedisSettings,
    RuntimeFile,
    WorkerSettings,
)
from shared.config.schema import (
    DEFAULT_HEALTH_ENDPOINTS,
    CapabilityRoute,
    Config,
    CustomStrategy,
    ExactMatch,
    HealthCheckSpec,
    HedgingSpec,
    LoadBalancing,
    ModelMappingsFile,
    ModelSpec,
    PatternRoute,
    ProvidersFile,
    ProviderSpec,
    ProviderType,
    Strategy,
    provider_references,
    unknown_provider_references,
)

__all__ = [
    "DEFAULT_HEALTH_ENDPOINTS", "AuthSettings", "CacheSettings", "CapabilityRoute", "Config", "ConfigError",
    "CustomStrategy", "Deadlines", "Environment", "ExactMatch", "GatewaySettings", "HealthCheckSpec", "HedgingSpec",
    "LimitSettings",
    "LoadBalancing", "ModelLimits", "ModelMappingsFile", "ModelSpec", "PatternRoute", "ProviderSpec",
    "ProviderType", "ProvidersFile", "RedisSettings", "RuntimeFile", "Strategy", "WorkerSettings",
    "default_config_dir", "expand_env", "load_config", "load_texts", "provider_references", "read_environment",
    "unknown_provider_references", "with_secrets",
]

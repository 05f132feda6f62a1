"""Typed configuration: `providers.yaml`, `model-mappings.yaml` and the optional `aiub.yaml`.

Config is loaded once into frozen pydantic models and passed explicitly. Unknown keys are
refused (a key in the wrong place silently ignored is how gateways end up misrouting), and
every error names the file, the key path and what is wrong.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, ValidationError, field_validator, model_validator

from shared.litellm_import import LiteLLMImportError, import_litellm, is_litellm_config
from shared.subjects import InvalidSubjectToken, token

ProviderType = Literal["ollama", "openai_compatible", "vllm", "llama_cpp", "openai", "anthropic", "ollama_cloud"]
Strategy = Literal["round_robin", "least_loaded", "usage_based", "cost_optimized", "quality_first"]

DEFAULT_HEALTH_ENDPOINTS: dict[str, str | None] = {
    "ollama": "/api/tags",
    "openai_compatible": "/v1/models",
    "vllm": "/v1/models",
    "llama_cpp": "/v1/models",
    "openai": None,
    "anthropic": None,
    "ollama_cloud": None,
}


_M = TypeVar("_M", bound=BaseModel)


class ConfigError(Exception):
    """A config file is missing, unreadable or invalid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    backend_model: str | None = None  # the name the backend knows; defaults to the public name
    context_window: int | None = Field(default=None, gt=0)
    cost_per_1k_tokens: float = Field(default=0.0, ge=0)
    quality_rank: int = 0  # higher is better
    capabilities: tuple[str, ...] = ()
    description: str = ""


class HealthCheckSpec(_Strict):
    """Active probe and circuit-breaker settings of one provider (docs/health.md)."""

    interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0)
    attempts: int = Field(default=3, ge=1)
    enabled: bool = True
    failure_threshold: int = Field(default=3, ge=1)  # upstream failures within failure_window_s open the circuit
    failure_window_s: float = Field(default=60.0, gt=0)
    open_s: float = Field(default=300.0, gt=0)  # first open period; each reopening multiplies it by open_growth
    open_growth: float = Field(default=2.0, ge=1)
    max_open_s: float = Field(default=3600.0, gt=0)
    trial_timeout_s: float = Field(default=30.0, gt=0)  # the one trial inference after an open period
    ramp: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)  # admit_fraction steps in cooldown
    ramp_successes: int = Field(default=5, ge=1)  # successes at one step before the next
    rate_limited_s: float = Field(default=10.0, gt=0)  # a 429 without Retry-After removes the provider this long
    latency_min_samples: int = Field(default=10, ge=1)  # successes before latency can mark it degraded
    baseline_window: int = Field(default=50, ge=2)  # samples the slow (baseline) latency average spans
    recent_window: int = Field(default=5, ge=1)  # samples the fast (recent) latency average spans
    degraded_factor: float = Field(default=3.0, gt=1)  # recent > factor x baseline (and min_s above it)
    degraded_min_s: float = Field(default=0.5, ge=0)
    recover_factor: float = Field(default=1.5, ge=1)  # recent < factor x baseline: back to active
    slow_probe_s: float = Field(default=2.0, gt=0)  # a passing probe slower than this marks it degraded

    @field_validator("ramp")
    @classmethod
    def _ramp_rises_to_one(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or value[-1] != 1.0 or any(not 0 < f <= 1 for f in value) or list(value) != sorted(set(value)):
            raise ValueError("must rise strictly within (0, 1] and end at 1.0, e.g. [0.1, 0.25, 0.5, 1.0]")
        return value

    @model_validator(mode="after")
    def _recovery_below_degradation(self) -> HealthCheckSpec:
        if self.recover_factor >= self.degraded_factor:
            raise ValueError("recover_factor must be below degraded_factor")
        if self.max_open_s < self.open_s:
            raise ValueError("max_open_s must be at least open_s")
        return self


class ProviderSpec(_Strict):
    type: ProviderType
    base_url: str
    status: Literal["active", "disabled"] = "active"
    description: str = ""
    requires_api_key: bool = False
    env_var: str | None = None
    health_endpoint: str | None = None
    health: HealthCheckSpec = HealthCheckSpec()
    max_concurrency: int = Field(default=4, ge=1)
    queue_size: int = Field(default=64, ge=0)
    timeout_s: float = Field(default=600.0, gt=0)
    models: dict[str, ModelSpec] = {}

    @field_validator("models", mode="before")
    @classmethod
    def _models_may_be_a_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {name: {} for name in value}
        return {name: ({} if spec is None else spec) for name, spec in (value or {}).items()}

    @field_validator("base_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def probe_path(self) -> str | None:
        return self.health_endpoint or DEFAULT_HEALTH_ENDPOINTS[self.type]

    def api_key(self) -> str | None:
        """The key from the environment variable this provider names, if any."""
        # Stripped: a key pasted with its line end (a CRLF .env) would be an illegal header value.
        return (os.environ.get(self.env_var) or "").strip() or None if self.env_var else None

    def backend_model(self, public_name: str) -> str:
        spec = self.models.get(public_name)
        return spec.backend_model if spec and spec.backend_model else public_name


class ProvidersFile(_Strict):
    providers: dict[str, ProviderSpec]

    @field_validator("providers")
    @classmethod
    def _keys_are_subject_tokens(cls, value: dict[str, ProviderSpec]) -> dict[str, ProviderSpec]:
        for key in value:
            try:
                token(key)
            except InvalidSubjectToken:
                raise ValueError(f"provider key {key!r} may not contain '.', '*', '>' or whitespace") from None
        return value


class ExactMatch(_Strict):
    provider: str
    backend_model: str | None = None
    description: str = ""


class PatternRoute(_Strict):
    pattern: str
    provider: str | None = None
    providers: tuple[str, ...] = ()
    description: str = ""

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.pattern)

    @property
    def specificity(self) -> tuple[int, int]:
        """Most specific wins: more literal characters, then fewer wildcards."""
        literal = sum(1 for c in self.pattern if c not in "*?[]")
        return (literal, -sum(1 for c in self.pattern if c in "*?"))

    @property
    def targets(self) -> tuple[str, ...]:
        return ((self.provider,) if self.provider else ()) + self.providers


class CapabilityRoute(_Strict):
    providers: tuple[str, ...]
    strategy: Strategy = "round_robin"
    preferred_models: tuple[str, ...] = ()
    description: str = ""


class LoadBalancing(_Strict):
    providers: tuple[str, ...]
    strategy: Strategy = "round_robin"
    weights: dict[str, float] = {}


class CustomStrategy(_Strict):
    description: str = ""
    logic: str = ""
    priority_order: tuple[str, ...] = ()


class ModelMappingsFile(_Strict):
    exact_matches: dict[str, ExactMatch] = {}
    patterns: tuple[PatternRoute, ...] = ()
    capabilities: dict[str, CapabilityRoute] = {}
    fallback_chains: dict[str, tuple[str, ...]] = {}
    context_window_fallbacks: dict[str, tuple[str, ...]] = {}
    load_balancing: dict[str, LoadBalancing] = {}
    default_provider: str | None = None
    custom_strategies: dict[str, CustomStrategy] = {}


class Deadlines(_Strict):
    """How long a caller waits for each stage of an attempt (DESIGN.md, a request's life)."""

    accepted_s: float = Field(default=2.0, gt=0)
    first_token_s: float = Field(default=60.0, gt=0)
    idle_s: float = Field(default=10.0, gt=0)
    # Silence after which the caller asks NATS whether the worker still exists; above the
    # workers' heartbeat_s (1 s) so a live worker is never asked.
    liveness_s: float = Field(default=3.0, gt=0)
    total_s: float = Field(default=600.0, gt=0)
    retry_budget: int = Field(default=2, ge=0)  # extra attempts after the first


class RedisSettings(_Strict):
    """Redis for the cache, virtual keys and rate limits; the URL comes from the environment only."""

    url_env: str = "REDIS_URL"  # unset or empty: in-process cache and limits, keys in a file
    socket_timeout_s: float = Field(default=0.1, gt=0)  # redis-py has no timeout by default: a slow Redis is down
    connect_timeout_s: float = Field(default=0.2, gt=0)
    retry_after_s: float = Field(default=1.0, gt=0)  # after a failure, bypass Redis this long, then try again
    prefix: str = "aiub:"

    def url(self) -> str | None:
        return os.environ.get(self.url_env) or None


class CacheSettings(_Strict):
    enabled: bool = True
    ttl_s: float = Field(default=3600.0, gt=0)
    model_ttl_s: dict[str, NonNegativeFloat] = {}  # per public model name; 0 = never cache that model
    max_entries: int = Field(default=10_000, gt=0)  # the in-process LRU's bound
    max_entry_bytes: int = Field(default=1024 * 1024, gt=0)  # larger answers are not stored


class AuthSettings(_Strict):
    master_key_env: str = "AIUB_MASTER_KEY"  # the env var holding the master key; never the key itself
    keys_file: str | None = None  # virtual keys without Redis; default <state dir>/keys.json
    min_master_key_chars: int = Field(default=16, ge=8)
    # The secret the gateway signs each request's key scope with and workers check it against
    # (shared/scope.py): set it wherever the bus is reachable by more than aiub's own services.
    bus_secret_env: str = "AIUB_BUS_SECRET"

    def master_key(self) -> str | None:
        return os.environ.get(self.master_key_env) or None

    def bus_secret(self) -> bytes | None:
        value = os.environ.get(self.bus_secret_env)
        return value.encode() if value else None


class ModelLimits(_Strict):
    rpm: int | None = Field(default=None, gt=0)  # per key and model
    tpm: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)  # cap; also the default when a request names none


class LimitSettings(_Strict):
    models: dict[str, ModelLimits] = {}
    max_header_bytes: int = Field(default=32 * 1024, gt=0)  # request line plus headers; beyond: 431
    max_headers: int = Field(default=100, gt=0)
    # From a request's first byte to the end of its headers; beyond: 408 and the connection closes.
    header_timeout_s: float = Field(default=10.0, gt=0)


class GatewaySettings(_Strict):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # A body that stops arriving for this long is a 408: a stalled upload holds a connection.
    body_timeout_s: float = Field(default=30.0, gt=0)
    max_messages: int = Field(default=2048, gt=0)
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are listed


class WorkerSettings(_Strict):
    heartbeat_s: float = Field(default=1.0, gt=0)
    # How often a running attempt asks its caller whether it still waits: a killed gateway sends
    # no Cancel, and its generations would hold the backend's slots until their deadlines.
    caller_check_s: float = Field(default=5.0, gt=0)
    load_report_s: float = Field(default=0.5, gt=0)


class RuntimeFile(_Strict):
    deadlines: Deadlines = Deadlines()
    gateway: GatewaySettings = GatewaySettings()
    worker: WorkerSettings = WorkerSettings()
    redis: RedisSettings = RedisSettings()
    cache: CacheSettings = CacheSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()


class Config(BaseModel):
    """Everything loaded from one config directory, cross-checked."""

    model_config = ConfigDict(frozen=True)

    directory: Path  # the config directory, or the LiteLLM proxy YAML it was imported from
    providers: dict[str, ProviderSpec]
    mappings: ModelMappingsFile
    runtime: RuntimeFile
    notes: tuple[str, ...] = ()  # LiteLLM settings approximated or not imported: shown, never dropped silently

    @model_validator(mode="after")
    def _references_exist(self) -> Config:
        problems = list(unknown_provider_references(self.mappings, self.providers))
        if problems:
            raise ConfigError("\n".join(f"{self.mappings_file}: {p}" for p in problems))
        return self

    @property
    def mappings_file(self) -> Path:
        """Where the mappings were read: `directory` is a config directory or, as `load_config`
        decides, a LiteLLM proxy YAML that holds all three documents."""
        return self.directory if self.directory.is_file() else self.directory / "model-mappings.yaml"

    def public_models(self) -> list[str]:
        """Every model name a client may ask for by name, in a stable order."""
        names: dict[str, None] = dict.fromkeys(self.mappings.exact_matches)
        for spec in self.providers.values():
            names.update(dict.fromkeys(spec.models))
        return list(names)


def provider_references(mappings: ModelMappingsFile) -> Iterator[tuple[str, str]]:
    """(key path, provider) for every provider a mapping names. The one walk: the loader refuses
    an unknown name, `aiub validate` reports it (cli/validate/checks.py)."""
    for model, match in mappings.exact_matches.items():
        yield f"exact_matches.{model}.provider", match.provider
    for i, pattern in enumerate(mappings.patterns):
        for name in pattern.targets:
            yield f"patterns[{i}]", name
    for cap, route in mappings.capabilities.items():
        for name in route.providers:
            yield f"capabilities.{cap}.providers", name
    for model, chain in mappings.fallback_chains.items():
        for name in chain:
            yield f"fallback_chains.{model}", name
    for model, lb in mappings.load_balancing.items():
        for name in lb.providers:
            yield f"load_balancing.{model}", name
        for name in lb.weights:  # a typo here would leave the provider meant at weight 1
            yield f"load_balancing.{model}.weights.{name}", name
    if mappings.default_provider is not None:
        yield "default_provider", mappings.default_provider


def unknown_provider_references(mappings: ModelMappingsFile, providers: Mapping[str, Any]) -> list[str]:
    known = ", ".join(sorted(providers))
    return [f"{path}: unknown provider {name!r} (known: {known})"
            for path, name in provider_references(mappings) if name not in providers]


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, environ: Mapping[str, str], unset: Callable[[str, str], str], where: str = "") -> Any:
    """`${NAME}` and `${NAME:-default}` in string values, so compose and hosts can differ by env.
    `unset(key path, NAME)` decides what a variable that is unset and has no default becomes,
    or raises."""
    if isinstance(value, dict):
        return {k: expand_env(v, environ, unset, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, unset, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        return unset(where, name) if default is None else default

    return _ENV_REFERENCE.sub(substitute, value)


def _expand_env(value: Any, path: Path) -> Any:
    def refuse(where: str, name: str) -> str:
        raise ConfigError(f"{path}: {where}: environment variable {name} is not set (or write ${{{name}:-default}})")

    return expand_env(value, os.environ, refuse)


def _read_yaml(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            return _expand_env(yaml.safe_load(f) or {}, path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None


def _describe(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key (not allowed here)" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{path}: {where}: {message}")
    return "\n".join(lines)


def _parse(model: type[_M], path: Path, data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(path, e)) from None


def _load_litellm(path: Path) -> Config:
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
    providers = _parse(ProvidersFile, path, _expand_env(imported.providers, path))
    mappings = _parse(ModelMappingsFile, path, _expand_env(imported.mappings, path))
    runtime = _parse(RuntimeFile, path, _expand_env(imported.runtime, path))
    try:
        return Config(directory=path, providers=providers.providers, mappings=mappings, runtime=runtime,
                      notes=tuple(str(note) for note in imported.notes))
    except ValidationError as e:
        raise ConfigError(_describe(path, e)) from None


def default_config_dir() -> Path:
    configured = os.environ.get("AIUB_CONFIG")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "config"


def load_config(directory: str | Path | None = None) -> Config:
    """Our config directory, or a single LiteLLM proxy YAML (recognised by its `model_list`)."""
    root = Path(directory) if directory is not None else default_config_dir()
    if root.is_file():
        return _load_litellm(root)
    providers = _parse(ProvidersFile, root / "providers.yaml", _read_yaml(root / "providers.yaml"))
    mappings = _parse(ModelMappingsFile, root / "model-mappings.yaml", _read_yaml(root / "model-mappings.yaml"))
    runtime_path = root / "aiub.yaml"
    runtime = _parse(RuntimeFile, runtime_path, _read_yaml(runtime_path)) if runtime_path.exists() else RuntimeFile()
    try:
        return Config(directory=root, providers=providers.providers, mappings=mappings, runtime=runtime)
    except ValidationError as e:
        raise ConfigError(_describe(root, e)) from None

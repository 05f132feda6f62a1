"""`providers.yaml` and `model-mappings.yaml` as typed models, and the `Config` that joins them
with `aiub.yaml` (shared/config/runtime.py), cross-checked."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from shared.config.base import ConfigError
from shared.config.base import Strict as _Strict
from shared.config.runtime import RuntimeFile
from shared.subjects import InvalidSubjectToken, token

ProviderType = Literal["ollama", "openai_compatible", "vllm", "llama_cpp", "openai", "anthropic", "ollama_cloud"]
Strategy = Literal["round_robin", "least_loaded", "usage_based", "cost_optimized", "quality_first", "backend_load",
                   "prefix_affinity"]

DEFAULT_HEALTH_ENDPOINTS: dict[str, str | None] = {
    "ollama": "/api/tags",
    "openai_compatible": "/v1/models",
    "vllm": "/v1/models",
    "llama_cpp": "/v1/models",
    "openai": None,
    "anthropic": None,
    "ollama_cloud": None,
}


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
    # The backend's own load endpoint, polled by its workers (aiub.yaml worker.backend_load_s):
    # "/metrics" (vLLM, llama.cpp with --metrics), "/slots" (llama.cpp) or "/api/ps" (Ollama).
    load_endpoint: str | None = None
    models: dict[str, ModelSpec] = {}
    _api_key: str | None = PrivateAttr(default=None)  # never from the file: with_api_key; not in repr

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

    @field_validator("load_endpoint")
    @classmethod
    def _endpoint_is_a_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be a path on the backend, e.g. /metrics, /slots or /api/ps")
        return value

    def api_key(self) -> str | None:
        """The key from the environment variable this provider names, as the loader read it."""
        return self._api_key

    def with_api_key(self, value: str | None) -> ProviderSpec:
        """This spec holding `value` (the content of `env_var`) as its key: what load_config does
        once at start, so a backend call never reads the environment."""
        spec = self.model_copy()
        # Stripped: a key pasted with its line end (a CRLF .env) would be an illegal header value.
        spec._api_key = (value or "").strip() or None if self.env_var else None
        return spec

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


class HedgingSpec(_Strict):
    """`hedging.<model>` in model-mappings.yaml (docs/routing.md, "Hedging"): opt-in per model name
    as clients ask for it (a load_balancing group, an exact match, a `capability:<name>` alias,
    a model a provider lists)."""

    # A fixed threshold, or "auto": the accepting provider's recent p95 time to first token,
    # as the router measures it from every worker's outcomes.
    after_ms: float | Literal["auto"] = "auto"
    max_fraction: float = Field(default=0.1, gt=0, le=1)  # hedges per request, per caller process
    allow_paid: bool = False  # hedge from and to providers whose model has a cost_per_1k_tokens

    @field_validator("after_ms", mode="before")
    @classmethod
    def _milliseconds_or_auto(cls, value: Any) -> Any:
        # One message for both forms (a union would report each branch's failure separately).
        if value == "auto" or (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
            return value
        raise ValueError('must be a number of milliseconds above 0, or "auto"')


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
    hedging: dict[str, HedgingSpec] = {}


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



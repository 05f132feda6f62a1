"""What the LiteLLM import builds up as it reads: the backends found, the public model groups,
the wildcard patterns, provider keys and the notes. shared/config/litellm_import.py fills it from
`model_list`; shared/config/litellm_settings.py reads it for the router and proxy settings.
Both sit above this module, so neither reaches into the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_SEE = "see docs/deployment.md, 'Migrating from LiteLLM'"

@dataclass(frozen=True)
class Note:
    """A LiteLLM setting that was approximated or not imported, and what to do about it."""

    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" + (f" — {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class Kind:
    type: str
    key: str  # the provider key when only one backend has this type
    base_url: str | None  # LiteLLM's default api_base; None: api_base is required
    env_var: str | None  # the variable LiteLLM reads when no api_key is given


@dataclass
class Provider:
    kind: Kind
    base_url: str
    env_var: str | None
    path: str
    name: str | None = None  # model_info.aiub_provider
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeout_s: float | None = None
    max_concurrency: int | None = None


@dataclass
class Deployment:
    model: str
    provider: Provider
    weight: float | None


# Settings whose absence here is deliberate: what aiub does instead.
_INSTEAD = {
    "drop_params": "aiub passes request parameters through untouched; a backend that rejects one answers 400",
    "set_verbose": "logging is set with --log-level", "json_logs": "aiub always logs JSON lines",
    "success_callback": "aiub serves Prometheus metrics and JSON logs instead of callbacks",
    "failure_callback": "aiub serves Prometheus metrics and JSON logs instead of callbacks",
    "callbacks": "aiub serves Prometheus metrics and JSON logs instead of callbacks",
    "redis_host": "aiub's routers share state over NATS, not Redis", "redis_port": "aiub's routers share state "
    "over NATS, not Redis", "redis_password": "aiub's routers share state over NATS, not Redis",
    "redis_url": "aiub's routers share state over NATS, not Redis",
    "database_url": "aiub keeps no database: virtual keys live in Redis (or a file)",
    "store_model_in_db": "aiub reads models from config only",
    "rpm": "per-deployment rate limits are not supported; limit per key with `aiub keys create --rpm`",
    "tpm": "per-deployment rate limits are not supported; limit per key with `aiub keys create --tpm`",
    "stream_timeout": "aiub's caller deadlines apply (aiub.yaml deadlines.first_token_s and idle_s)",
    "order": "deployment order is not supported; use fallback_chains in model-mappings.yaml",
    "include": "included files are not read: merge them into this file",
    "environment_variables": "not applied: set these variables in the environment aiub runs in",
}


class ImportState:
    def __init__(self) -> None:
        self.notes: list[Note] = []
        self.providers: dict[tuple[str, str, str | None], Provider] = {}
        self.groups: dict[str, list[Deployment]] = {}
        self.patterns: list[dict[str, Any]] = []
        self.names: dict[int, str] = {}  # id(Provider) → key

    def note(self, path: str, message: str, fix: str = "") -> None:
        self.notes.append(Note(path, message, fix))

    def unsupported(self, path: str, key: str) -> None:
        reason = _INSTEAD.get(key)
        if reason is not None:
            self.note(path, f"not imported: {reason}", "remove it once you have moved to aiub")
        else:
            self.note(path, "not supported by aiub; ignored", f"remove it, or {_SEE}")

    def key(self, provider: Provider) -> str:
        return self.names[id(provider)]

"""A LiteLLM proxy config (`model_list`, `router_settings`, …) as our three config documents.

Pure: a parsed YAML mapping in; the `providers.yaml`, `model-mappings.yaml` and `aiub.yaml`
documents out, validated afterwards by the same models as our own files (shared/config/),
plus a `Note` for every setting that is approximated or not supported. A LiteLLM key is never
dropped without a note: silently ignored config is how a gateway ends up misrouting.

How LiteLLM maps to aiub:
- `model_list`: each distinct backend (the `model:` prefix, `api_base`, API key variable) is one
  provider, keyed by its type (`ollama`, `vllm`, `openai_compatible`, `openai`, `anthropic`,
  `ollama_cloud`; with the port or an index appended when two backends share a type, or named
  by `model_info.aiub_provider`). `model_name` is the public model, the rest of `model:` the
  backend's name for it. One deployment → `exact_matches`; several → `load_balancing`.
- `api_key: os.environ/VAR` (or `${VAR}`) → `env_var: VAR`; literal keys are never copied.
- `router_settings`: `routing_strategy` → the strategy of every load-balanced model;
  `num_retries` → `deadlines.retry_budget`; `timeout` → `deadlines.total_s`; `allowed_fails`
  and `cooldown_time` → each provider's breaker; `fallbacks` (model → models) → fallback chains
  (the fallback model's providers, serving it under the original name);
  `context_window_fallbacks` → ours, unchanged; `model_group_alias` → more public names.
- `litellm_settings.cache*` and `general_settings.master_key` live in the environment here
  (`REDIS_URL`, `AIUB_MASTER_KEY`): their notes say exactly what to set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.config.litellm_settings import apply_settings, env_name
from shared.config.litellm_state import Deployment, ImportState, Kind, Note, Provider

_BAD_KEY = re.compile(r"[^A-Za-z0-9_-]")



class LiteLLMImportError(ValueError):
    """The file cannot be read as a LiteLLM proxy config at all; the message names the key path."""


@dataclass(frozen=True)
class Imported:
    providers: dict[str, Any]  # the providers.yaml document
    mappings: dict[str, Any]  # the model-mappings.yaml document
    runtime: dict[str, Any]  # the aiub.yaml document
    notes: tuple[Note, ...]


def is_litellm_config(data: object) -> bool:
    return isinstance(data, Mapping) and "model_list" in data


_OLLAMA = Kind("ollama", "ollama", "http://localhost:11434", None)
_OPENAI = Kind("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY")
_ANTHROPIC = Kind("anthropic", "anthropic", "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY")
_PREFIXES = {
    "ollama": _OLLAMA,
    "ollama_chat": _OLLAMA,
    "hosted_vllm": Kind("vllm", "vllm", None, None),
    "openai": _OPENAI,
    "anthropic": _ANTHROPIC,
}
_OPENAI_COMPATIBLE = Kind("openai_compatible", "openai_compatible", None, None)
_OLLAMA_CLOUD = Kind("ollama_cloud", "ollama_cloud", None, "OLLAMA_API_KEY")
_UNPREFIXED = (("gpt-", _OPENAI), ("chatgpt-", _OPENAI), ("o1", _OPENAI), ("o3", _OPENAI), ("o4", _OPENAI),
               ("text-embedding-", _OPENAI), ("claude-", _ANTHROPIC))

_PARAMS_USED = {"model", "api_base", "api_key", "timeout", "max_parallel_requests", "weight"}
_INFO_USED = {"aiub_provider", "max_input_tokens", "max_tokens", "input_cost_per_token", "output_cost_per_token",
              "mode", "description"}
class _Importer(ImportState):
    """`model_list` read into the state; the settings are shared/config/litellm_settings.py's."""

    # model_list

    def entry(self, i: int, entry: Any) -> None:
        where = f"model_list[{i}]"
        if not isinstance(entry, Mapping):
            raise LiteLLMImportError(f"{where}: must be a mapping with model_name and litellm_params")
        name, params = entry.get("model_name"), entry.get("litellm_params")
        if not isinstance(name, str) or not name:
            raise LiteLLMImportError(f"{where}.model_name: missing (the public model name)")
        if not isinstance(params, Mapping) or not isinstance(params.get("model"), str):
            raise LiteLLMImportError(f"{where}.litellm_params.model: missing (e.g. ollama/llama3.1:8b)")
        info = entry.get("model_info") or {}
        for key in entry:
            if key not in ("model_name", "litellm_params", "model_info"):
                self.unsupported(f"{where}.{key}", str(key))
        for key in params:
            if key not in _PARAMS_USED:
                self.unsupported(f"{where}.litellm_params.{key}", str(key))
        unused = [str(k) for k in info if k not in _INFO_USED]
        if unused:
            self.note(f"{where}.model_info", f"informational keys not used by aiub: {', '.join(unused)}")

        kind, backend = self.kind(where, params["model"], params.get("api_base"))
        if kind is None:
            return
        base_url = self.base_url(where, kind, params.get("api_base"))
        if base_url is None:
            return
        env_var = self.api_key(where, kind, params.get("api_key"))
        group = (kind.type, base_url.rstrip("/").removesuffix("/v1"), env_var)
        provider = self.providers.setdefault(group, Provider(kind, base_url, env_var, where))
        if info.get("aiub_provider"):
            provider.name = str(info["aiub_provider"])
        self.limits(where, provider, params)

        if "*" in name or "?" in name:
            if backend != name:
                self.note(where, f"wildcard model_name {name!r} with model {params['model']!r} is not imported: "
                          "aiub sends the requested name to the backend unchanged",
                          f"use model_name equal to the part after the prefix, e.g. model_name: {backend!r}")
                return
            self.patterns.append({"pattern": name, "provider": provider})
            return
        spec = self.model_spec(where, info)
        if backend != name:
            spec["backend_model"] = backend
        existing = provider.models.get(name)
        if existing is not None and existing.get("backend_model", name) != backend:
            self.note(where, f"{name!r} is already served by this backend as "
                      f"{existing.get('backend_model', name)!r}; this deployment is not imported",
                      "give it its own model_name")
            return
        provider.models.setdefault(name, spec)
        deployments = self.groups.setdefault(name, [])
        if any(d.provider is provider for d in deployments):
            self.note(where, f"a second deployment of {name!r} on the same backend adds nothing: merged")
            return
        weight = params.get("weight")
        deployments.append(Deployment(name, provider, float(weight) if isinstance(weight, int | float) else None))

    def kind(self, where: str, model: str, api_base: Any) -> tuple[Kind | None, str]:
        prefix, _, rest = model.partition("/")
        kind = _PREFIXES.get(prefix) if rest else None
        if kind is None and not rest:
            kind = next((k for start, k in _UNPREFIXED if model.startswith(start)), None)
            rest = model
        if kind is None:
            self.note(f"{where}.litellm_params.model", f"{model!r}: provider {prefix!r} is not supported by aiub; "
                      "this deployment is not imported",
                      "supported: ollama/, ollama_chat/, hosted_vllm/, openai/ (with api_base for any "
                      "OpenAI-compatible server), anthropic/")
            return None, rest
        base = api_base if isinstance(api_base, str) else ""
        if kind is _OLLAMA and urlsplit(base).hostname in ("ollama.com", "www.ollama.com"):
            kind = _OLLAMA_CLOUD
        elif kind is _OPENAI and base and urlsplit(base).hostname != "api.openai.com":
            kind = _OPENAI_COMPATIBLE
        return kind, rest

    def base_url(self, where: str, kind: Kind, api_base: Any) -> str | None:
        env = env_name(api_base)
        if env is not None:
            return f"${{{env}}}"
        if isinstance(api_base, str) and api_base:
            return api_base.rstrip("/")
        if kind.base_url is None:
            self.note(f"{where}.litellm_params.api_base", "missing: this backend has no default address; "
                      "the deployment is not imported", "set api_base, e.g. http://localhost:8001/v1")
        return kind.base_url

    def api_key(self, where: str, kind: Kind, value: Any) -> str | None:
        if value is None:
            return kind.env_var
        env = env_name(value)
        if env is None:
            self.note(f"{where}.litellm_params.api_key", "a literal API key is never copied into aiub's config",
                      "put the key in an environment variable and write api_key: os.environ/NAME")
            return kind.env_var
        return env

    def limits(self, where: str, provider: Provider, params: Mapping[str, Any]) -> None:
        timeout, parallel = params.get("timeout"), params.get("max_parallel_requests")
        if isinstance(timeout, int | float) and timeout > 0:
            provider.timeout_s = max(provider.timeout_s or 0.0, float(timeout))
        elif timeout is not None:
            self.note(f"{where}.litellm_params.timeout", f"{timeout!r} is not a number of seconds; ignored")
        if isinstance(parallel, int) and parallel > 0:
            provider.max_concurrency = max(provider.max_concurrency or 0, parallel)
        elif parallel is not None:
            self.note(f"{where}.litellm_params.max_parallel_requests", f"{parallel!r} is not a positive integer")

    def model_spec(self, where: str, info: Mapping[str, Any]) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        window = info.get("max_input_tokens") or info.get("max_tokens")
        if isinstance(window, int) and window > 0:
            spec["context_window"] = window
        costs = [c for c in (info.get("input_cost_per_token"), info.get("output_cost_per_token"))
                 if isinstance(c, int | float) and c >= 0]
        if costs:
            spec["cost_per_1k_tokens"] = round(1000 * sum(costs) / len(costs), 9)
            if len(set(costs)) > 1:
                self.note(f"{where}.model_info", "input and output costs differ: aiub keeps one cost per 1k tokens, "
                          "their mean")
        if info.get("mode") in ("chat", "completion", "embedding"):
            spec["capabilities"] = [info["mode"]]
        if isinstance(info.get("description"), str):
            spec["description"] = info["description"]
        return spec

    def name_providers(self) -> None:
        taken: dict[str, int] = {}
        for p in self.providers.values():
            if p.name is None:
                taken[p.kind.key] = taken.get(p.kind.key, 0) + 1
        used: set[str] = set()
        for p in self.providers.values():
            if p.name is not None:
                name = p.name
            elif taken[p.kind.key] == 1:
                name = p.kind.key
            else:
                port = urlsplit(p.base_url).port if not p.base_url.startswith("$") else None
                name = f"{p.kind.key}_{port}" if port else p.kind.key
            name = _BAD_KEY.sub("_", name)
            unique, n = name, 2
            while unique in used:
                unique, n = f"{name}_{n}", n + 1
            used.add(unique)
            self.names[id(p)] = unique



def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise LiteLLMImportError(f"{name}: must be a mapping")
    return value


def import_litellm(data: Mapping[str, Any]) -> Imported:
    """Our three documents from a parsed LiteLLM proxy config; raises LiteLLMImportError if unreadable."""
    if not is_litellm_config(data):
        raise LiteLLMImportError("(top level): not a LiteLLM proxy config (no model_list)")
    model_list = data["model_list"]
    if not isinstance(model_list, list) or not model_list:
        raise LiteLLMImportError("model_list: must be a non-empty list of deployments")
    imp = _Importer()
    for key in data:
        if key not in ("model_list", "router_settings", "litellm_settings", "general_settings"):
            imp.unsupported(str(key), str(key))
    for i, item in enumerate(model_list):
        imp.entry(i, item)
    if not imp.providers:
        raise LiteLLMImportError("model_list: no deployment could be imported (see the notes)")
    imp.name_providers()

    router, settings, general = (_section(data, s) for s in ("router_settings", "litellm_settings",
                                                              "general_settings"))
    mappings, runtime, health = apply_settings(imp, router, settings, general)
    providers: dict[str, Any] = {}
    for p in imp.providers.values():
        entry: dict[str, Any] = {"type": p.kind.type, "base_url": p.base_url,
                                 "description": f"imported from LiteLLM ({p.path})"}
        if p.env_var:
            entry.update(requires_api_key=True, env_var=p.env_var)
        if p.max_concurrency:
            entry["max_concurrency"] = p.max_concurrency
        if p.timeout_s:
            entry["timeout_s"] = p.timeout_s
        if health:
            entry["health"] = dict(health)
        entry["models"] = p.models
        providers[imp.key(p)] = entry
    return Imported({"providers": providers}, mappings, runtime, tuple(imp.notes))

"""LiteLLM's `router_settings`, `litellm_settings` and `general_settings`, mapped to ours.

Pure, and the second half of shared/config/litellm_import.py: that module has turned `model_list`
into providers and model groups; this one turns the groups into routes (exact match or load
balancing), fallbacks, aliases and runtime settings, with a note for anything not imported.
When `router_settings` and `litellm_settings` both set a value, `router_settings` wins (as in
LiteLLM's proxy, where the router reads its own section last).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

from shared.config.litellm_state import ImportState

ENV_PREFIX = "os.environ/"
_DOLLAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}$")

STRATEGIES: dict[str, tuple[str, str]] = {  # LiteLLM routing_strategy → (ours, how it differs)
    "simple-shuffle": ("round_robin", ""),
    "least-busy": ("least_loaded", ""),
    "usage-based-routing": ("usage_based", "aiub's usage_based weighs latency 0.4, success rate 0.4 and cost 0.2 "
                                           "instead of rpm/tpm usage"),
    "usage-based-routing-v2": ("usage_based", "aiub's usage_based weighs latency 0.4, success rate 0.4 and cost "
                                              "0.2 instead of rpm/tpm usage"),
    "latency-based-routing": ("usage_based", "aiub's usage_based ranks by latency (0.4) with success rate and cost"),
    "cost-based-routing": ("cost_optimized", ""),
}

_ROUTER_KEYS = {"routing_strategy", "num_retries", "timeout", "allowed_fails", "cooldown_time", "fallbacks",
                "context_window_fallbacks", "default_fallbacks", "model_group_alias"}
_SETTINGS_KEYS = {"num_retries", "request_timeout", "fallbacks", "context_window_fallbacks", "default_fallbacks",
                  "cache", "cache_params"}
_GENERAL_KEYS = {"master_key"}


def apply_settings(imp: ImportState, router: Mapping[str, Any], settings: Mapping[str, Any],
                   general: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(model-mappings document, aiub.yaml document, health settings for every provider)."""
    for section, values, known in (("router_settings", router, _ROUTER_KEYS),
                                   ("litellm_settings", settings, _SETTINGS_KEYS),
                                   ("general_settings", general, _GENERAL_KEYS)):
        for key in values:
            if key not in known:
                imp.unsupported(f"{section}.{key}", str(key))

    def merged(key: str, settings_key: str | None = None) -> tuple[str, Any]:
        other = settings_key or key
        if key in router:
            if other in settings and settings[other] != router[key]:
                imp.note(f"litellm_settings.{other}", f"also set in router_settings.{key}, which wins")
            return f"router_settings.{key}", router[key]
        return f"litellm_settings.{other}", settings.get(other)

    _aliases(imp, router.get("model_group_alias"))
    mappings = _routes(imp, _strategy(imp, router.get("routing_strategy")))
    chains = _fallbacks(imp, *merged("fallbacks"), *merged("default_fallbacks"))
    if chains:
        mappings["fallback_chains"] = chains
    context = _context_fallbacks(imp, *merged("context_window_fallbacks"))
    if context:
        mappings["context_window_fallbacks"] = context

    deadlines: dict[str, Any] = {}
    where, retries = merged("num_retries")
    if isinstance(retries, int) and retries >= 0:
        deadlines["retry_budget"] = retries
    elif retries is not None:
        imp.note(where, f"{retries!r} is not a count; ignored")
    where, timeout = merged("timeout", "request_timeout")
    if isinstance(timeout, int | float) and timeout > 0:
        deadlines["total_s"] = float(timeout)
    elif timeout is not None:
        imp.note(where, f"{timeout!r} is not a number of seconds; ignored")
    runtime = {"deadlines": deadlines} if deadlines else {}
    _cache(imp, settings)
    _master_key(imp, general.get("master_key"))
    return mappings, runtime, _health(imp, router)


def _routes(imp: ImportState, strategy: str) -> dict[str, Any]:
    """The model-mappings routes of the model groups: one deployment an exact match, several a
    load-balancing group with the router's strategy and the deployments' weights."""
    mappings: dict[str, Any] = {}
    exact: dict[str, Any] = {}
    balanced: dict[str, dict[str, Any]] = {}
    for name, deployments in imp.groups.items():
        keys = [imp.key(d.provider) for d in deployments]
        if len(keys) == 1:
            exact[name] = {"provider": keys[0]}
            continue
        balanced[name] = {"providers": keys, "strategy": strategy}
        weights = {imp.key(d.provider): d.weight for d in deployments if d.weight is not None}
        if weights:
            balanced[name]["weights"] = weights
    if exact:
        mappings["exact_matches"] = exact
    if imp.patterns:
        mappings["patterns"] = [{"pattern": p["pattern"], "provider": imp.key(p["provider"])} for p in imp.patterns]
    if balanced:
        mappings["load_balancing"] = balanced
    return mappings


def _strategy(imp: ImportState, value: Any) -> str:
    if value is None:
        return "round_robin"
    mapped = STRATEGIES.get(str(value))
    if mapped is None:
        imp.note("router_settings.routing_strategy", f"{value!r} is not supported: round_robin is used",
                 "choose one of " + ", ".join(STRATEGIES))
        return "round_robin"
    if mapped[1]:
        imp.note("router_settings.routing_strategy", f"{value!r} becomes {mapped[0]}: {mapped[1]}")
    return mapped[0]


def _aliases(imp: ImportState, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        imp.note("router_settings.model_group_alias", "must map alias → model group; ignored")
        return
    for alias, target in value.items():
        where = f"router_settings.model_group_alias.{alias}"
        group = target.get("model") if isinstance(target, Mapping) else target
        if group not in imp.groups:
            imp.note(where, f"model group {group!r} is not in model_list; alias not imported")
            continue
        if alias in imp.groups:
            imp.note(where, f"{alias!r} is already a model_name; alias not imported")
            continue
        if isinstance(target, Mapping) and target.get("hidden"):
            imp.note(where, "hidden aliases are listed by /v1/models in aiub")
        for d in imp.groups[group]:
            spec = d.provider.models[group]
            d.provider.models[alias] = {**copy.deepcopy(spec), "backend_model": spec.get("backend_model", group)}
        imp.groups[alias] = [dataclasses.replace(d, model=alias) for d in imp.groups[group]]


def _pairs(imp: ImportState, where: str, value: Any) -> Iterator[tuple[str, str, list[str]]]:
    """(path, model, fallback models) from LiteLLM's `[{model: [fallback, ...]}, ...]`."""
    if value is None:
        return
    if not isinstance(value, list):
        imp.note(where, "must be a list like [{model: [fallback, ...]}]; ignored")
        return
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            imp.note(f"{where}[{i}]", "must be a mapping {model: [fallback, ...]}; ignored")
            continue
        for model, targets in item.items():
            targets = [targets] if isinstance(targets, str) else targets
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                imp.note(f"{where}[{i}].{model}", "must list model names; ignored")
                continue
            yield f"{where}[{i}].{model}", str(model), targets


def _fallbacks(imp: ImportState, where: str, value: Any, default_where: str, defaults: Any) -> dict[str, list[str]]:
    """Model → models fallbacks become per-model provider chains: each fallback model's providers
    join the chain and serve the original name with the fallback's backend model."""
    pairs = list(_pairs(imp, where, value))
    if defaults is not None:
        if isinstance(defaults, list) and all(isinstance(d, str) for d in defaults):
            named = {model for _, model, _ in pairs}
            pairs += [(default_where, model, [d for d in defaults if d != model])
                      for model in imp.groups if model not in named]
        else:
            imp.note(default_where, "must list model names; ignored")
    chains: dict[str, list[str]] = {}
    for path, model, targets in pairs:
        if model not in imp.groups:
            imp.note(path, f"model {model!r} is not in model_list; fallback not imported")
            continue
        chain = chains.setdefault(model, [imp.key(d.provider) for d in imp.groups[model]])
        for target in targets:
            if target not in imp.groups:
                imp.note(path, f"fallback model {target!r} is not in model_list; skipped")
                continue
            for d in imp.groups[target]:
                key, models = imp.key(d.provider), d.provider.models
                backend = models[target].get("backend_model", target)
                if key in chain or model in models:
                    current = models.get(model, {}).get("backend_model", model) if model in models else None
                    if current != backend:
                        imp.note(path, f"falling back from {model!r} to {target!r} on provider {key!r} cannot be "
                                 f"expressed: aiub's fallback chains name providers, and {key!r} already serves "
                                 f"{model!r}", f"serve {target!r} from another provider to fall back to it")
                    continue
                models[model] = {**copy.deepcopy(models[target]), "backend_model": backend}
                chain.append(key)
    primaries = {model: len(imp.groups[model]) for model in chains}
    return {model: chain for model, chain in chains.items() if len(chain) > primaries[model]}


def _context_fallbacks(imp: ImportState, where: str, value: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path, model, targets in _pairs(imp, where, value):
        if model not in imp.groups:
            imp.note(path, f"model {model!r} is not in model_list; fallback not imported")
            continue
        known = [t for t in targets if t in imp.groups]
        for target in targets:
            if target not in imp.groups:
                imp.note(path, f"fallback model {target!r} is not in model_list; skipped")
        if known:
            found.setdefault(model, []).extend(known)
    return found


def _health(imp: ImportState, router: Mapping[str, Any]) -> dict[str, Any]:
    health: dict[str, Any] = {}
    fails, cooldown = router.get("allowed_fails"), router.get("cooldown_time")
    if isinstance(fails, int) and fails >= 0:
        # LiteLLM cools a deployment down when failures in a minute exceed allowed_fails.
        health.update(failure_threshold=fails + 1, failure_window_s=60.0)
    elif fails is not None:
        imp.note("router_settings.allowed_fails", f"{fails!r} is not a count; ignored")
    if isinstance(cooldown, int | float) and cooldown > 0:
        health["open_s"] = float(cooldown)
        if cooldown > 3600:
            health["max_open_s"] = float(cooldown)
        imp.note("router_settings.cooldown_time", "aiub's breaker lengthens the open period on each reopening "
                 "(health.open_growth, up to health.max_open_s) and ramps traffic back in after it")
    elif cooldown is not None:
        imp.note("router_settings.cooldown_time", f"{cooldown!r} is not a number of seconds; ignored")
    return health


def _cache(imp: ImportState, settings: Mapping[str, Any]) -> None:
    enabled, params = settings.get("cache"), settings.get("cache_params") or {}
    if not isinstance(params, Mapping):
        imp.note("litellm_settings.cache_params", "must be a mapping; ignored")
        return
    if not enabled:
        if params:
            imp.note("litellm_settings.cache_params", "ignored: litellm_settings.cache is not true")
        return
    kind = params.get("type", "redis")
    if kind == "local":
        imp.note("litellm_settings.cache_params.type", "aiub's in-process cache is on whenever REDIS_URL is unset")
    elif kind != "redis":
        imp.note("litellm_settings.cache_params.type", f"cache type {kind!r} is not supported",
                 "use Redis (set REDIS_URL) or leave it unset for the in-process cache")
        return
    else:
        host, port = params.get("host", "localhost"), params.get("port", 6379)
        password = params.get("password")
        env = env_name(password)
        auth = "" if password is None else f":${{{env}}}@" if env else ":<password>@"
        imp.note("litellm_settings.cache_params", "aiub reads its Redis address from the environment",
                 f"set REDIS_URL=redis://{auth}{_plain(host)}:{_plain(port)}/0 for every gateway")
    for key in params:
        if key not in ("type", "host", "port", "password"):
            imp.note(f"litellm_settings.cache_params.{key}",
                     "not imported: the cache TTL and size are gateway settings (3600 s by default)")


def _master_key(imp: ImportState, value: Any) -> None:
    if value is None:
        return
    env = env_name(value)
    # The key itself never appears in a note: notes are printed and logged.
    source = f'"${env}"' if env else "<the key from general_settings.master_key>"
    imp.note("general_settings.master_key", "aiub's gateway reads its master key from the environment",
             f"export AIUB_MASTER_KEY={source}")


def env_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if value.startswith(ENV_PREFIX):
        return value[len(ENV_PREFIX):]
    match = _DOLLAR.match(value)
    return match.group(1) if match else None


def _plain(value: Any) -> str:
    env = env_name(value)
    return f"${{{env}}}" if env else str(value)

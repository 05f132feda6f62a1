"""`aiub validate`: every problem in a config at once, each with the file, the key path and the fix.

Pure: file texts and the environment in, `Problem`s out; the CLI reads the files. The
structural half (YAML, `${VAR}`, keys and types) is cli/validate/structure.py; this half
checks the parts against each other:
- every provider a mapping names exists (error) and is not disabled (warning);
- every model a mapping names routes somewhere (exact match, load balancing, pattern, a
  provider's model list or default_provider), and a provider that lists a model is reachable
  for it (by its route or its fallback chain);
- fallback chains repeat no provider and name models their providers serve; context-window
  fallbacks have no cycles and point at larger windows;
- API keys: a provider that requires one names its variable (error) and the variable is set
  (warning: the stack starts; its requests to that provider fail over);
- URLs and ports parse: every base_url, and NATS_URL / REDIS_URL from the environment;
- hedging settings name a model that routes (error: they would be ignored), to a pool with
  somewhere to hedge to (warning); hedging that pays (`allow_paid` with a paid provider) or
  can never apply (every provider paid) is a warning;
- a `backend_load` or `prefix_affinity` pool whose providers lack `load_endpoint` (warning: they
  are ranked on our own counts only).
Errors stop `aiub up` or misroute requests; warnings are worth reading. Exit code 1 on errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cli.validate.structure import UNSET_VARIABLE, Parsed, Problem, expand_env, parse_documents, parse_yaml
from services.router.decision import Refusal, match_model
from shared.config import ProviderSpec, provider_references
from shared.config.litellm_import import LiteLLMImportError, import_litellm, is_litellm_config

__all__ = ["Problem", "has_errors", "validate_directory", "validate_litellm"]

CLOUD_TYPES = {"openai", "anthropic", "ollama_cloud"}
_URL_SCHEMES = {"NATS_URL": ("nats", "tls", "ws", "wss"), "REDIS_URL": ("redis", "rediss", "unix")}


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def validate_directory(texts: Mapping[str, str | None], environ: Mapping[str, str],
                       directory: str = "") -> list[Problem]:
    """`texts`: providers.yaml, model-mappings.yaml and aiub.yaml by name (None when the file is absent)."""
    prefix = directory.rstrip("/") + "/" if directory else ""
    files = {"providers": prefix + "providers.yaml", "mappings": prefix + "model-mappings.yaml",
             "runtime": prefix + "aiub.yaml"}
    problems: list[Problem] = []
    docs: dict[str, Any] = {}
    not_yaml = False
    for doc, name in (("providers", "providers.yaml"), ("mappings", "model-mappings.yaml"), ("runtime", "aiub.yaml")):
        text = texts.get(name)
        if text is None:
            if doc != "runtime":
                problems.append(Problem(files[doc], "(file)", "file not found", f"create {name}"))
            continue
        data = parse_yaml(files[doc], text, problems)
        not_yaml |= data is None
        docs[doc] = expand_env(data, environ, files[doc], problems)
    if not_yaml:
        # A file that is not YAML reads as empty: every check past this point would report what
        # its absence implies (one missing colon in providers.yaml made 29 "unknown provider"s).
        # Its syntax error is the one thing to fix.
        return problems
    return check(parse_documents(docs, files, problems), files, environ, problems)


def validate_litellm(text: str, file: str, environ: Mapping[str, str]) -> list[Problem]:
    """A LiteLLM proxy config: what the import approximates or leaves out, then the same checks."""
    problems: list[Problem] = []
    data = parse_yaml(file, text, problems)
    if data is None:
        return problems
    if not is_litellm_config(data):
        return [*problems, Problem(file, "(top level)", "not a LiteLLM proxy config (no model_list)",
                                   "point --config at a config directory or a LiteLLM config.yaml")]
    try:
        imported = import_litellm(data)
    except LiteLLMImportError as e:
        path, _, message = str(e).partition(": ")
        return [*problems, Problem(file, path, message, "fix the entry as the message says")]
    for note in imported.notes:
        problems.append(Problem(file, note.path, note.message, note.fix or "nothing to do: informational",
                                "warning"))
    files = {doc: f"{file} (as {name})" for doc, name in (("providers", "providers.yaml"),
                                                          ("mappings", "model-mappings.yaml"),
                                                          ("runtime", "aiub.yaml"))}
    docs = {doc: expand_env(value, environ, files[doc], problems)
            for doc, value in (("providers", imported.providers), ("mappings", imported.mappings),
                               ("runtime", imported.runtime))}
    return check(parse_documents(docs, files, problems), files, environ, problems)


def check(parsed: Parsed, files: Mapping[str, str], environ: Mapping[str, str],
          problems: list[Problem]) -> list[Problem]:
    """The cross-checks, appended to `problems` (the structural ones) and returned."""
    _references(parsed, files["mappings"], problems)
    _routes(parsed, files, problems)
    _chains(parsed, files["mappings"], problems)
    _hedging(parsed, files["mappings"], problems)
    _backend_load(parsed, files, problems)
    _providers(parsed, files["providers"], environ, problems)
    _environment(environ, problems)
    # An unset variable leaves an empty value behind: what else is wrong with it is the same problem.
    unset = {(p.file, p.path) for p in problems if p.message.startswith(UNSET_VARIABLE)}
    return [p for p in problems if (p.file, p.path) not in unset or p.message.startswith(UNSET_VARIABLE)]


def _references(parsed: Parsed, file: str, problems: list[Problem]) -> None:
    known = sorted(parsed.provider_names)
    for path, name in provider_references(parsed.mappings):
        if name not in parsed.provider_names:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(Problem(file, path, f"unknown provider {name!r}",
                                    f"{hint}use a key of providers.yaml ({', '.join(known) or 'none defined'}), "
                                    f"or add a {name!r} entry there"))
        elif (spec := parsed.providers.get(name)) is not None and spec.status == "disabled":
            problems.append(Problem(file, path, f"provider {name!r} is disabled: it is skipped here",
                                    f"set providers.{name}.status: active, or remove it here", "warning"))


def route(parsed: Parsed, model: str) -> tuple[str, tuple[str, ...]] | None:
    """(rule, providers) the router's name matching picks for `model`: its own matcher
    (services/router/decision.py), so the preview cannot drift from what the router does."""
    found = match_model(parsed.mappings, parsed.providers, model, None)
    if found is None or isinstance(found, Refusal):
        return None
    return found.rule, found.pool


def _lists(parsed: Parsed, provider: str, model: str) -> bool:
    """Whether `provider` declares `model` (a provider with no model list takes any name)."""
    spec = parsed.providers.get(provider)
    return spec is None or not spec.models or model in spec.models


def _routes(parsed: Parsed, files: Mapping[str, str], problems: list[Problem]) -> None:
    m, file = parsed.mappings, files["mappings"]
    named = [(f"fallback_chains.{k}", k) for k in m.fallback_chains]
    named += [(f"context_window_fallbacks.{k}", k) for k in m.context_window_fallbacks]
    named += [(f"context_window_fallbacks.{k}", t) for k, ts in m.context_window_fallbacks.items() for t in ts]
    for path, model in named:
        if route(parsed, model) is None:
            problems.append(Problem(file, path, f"model {model!r} routes nowhere (no exact match, load balancing, "
                                    "pattern, provider model list or default_provider)",
                                    f"add exact_matches.{model}: {{provider: ...}}, or list it under a provider's "
                                    "models"))
    for model, match in m.exact_matches.items():
        if match.backend_model is None and not _lists(parsed, match.provider, model):
            problems.append(Problem(file, f"exact_matches.{model}", f"provider {match.provider!r} does not list "
                                    f"{model!r}: the backend receives the name {model!r} as is",
                                    f"add {model!r} under providers.{match.provider}.models (with backend_model "
                                    "if the backend names it differently)", "warning"))
    for cap, r in m.capabilities.items():
        for preferred in r.preferred_models:
            if not any(preferred in parsed.providers[p].models for p in r.providers if p in parsed.providers):
                problems.append(Problem(file, f"capabilities.{cap}.preferred_models", f"no provider of this "
                                        f"capability lists {preferred!r}", "list it under one of those providers' "
                                        "models, or remove it", "warning"))
    for name, spec in parsed.providers.items():
        for model in spec.models:
            found = route(parsed, model)
            if found is not None and name not in found[1] and name not in m.fallback_chains.get(model, ()):
                problems.append(Problem(files["providers"], f"providers.{name}.models.{model}",
                                        f"{found[0]} sends {model!r} to {', '.join(found[1])}: {name!r} never "
                                        f"serves it", f"route it there: exact_matches.{model}: {{provider: {name}}}, "
                                        f"a more specific pattern, or {name!r} in fallback_chains.{model}; or "
                                        "remove the model here", "warning"))


def _paid(parsed: Parsed, provider: str, model: str) -> bool:
    spec = parsed.providers.get(provider)
    model_spec = spec.models.get(model) if spec is not None else None
    return model_spec is not None and model_spec.cost_per_1k_tokens > 0


def _hedging(parsed: Parsed, file: str, problems: list[Problem]) -> None:
    m = parsed.mappings
    for model, spec in m.hedging.items():
        path = f"hedging.{model}"
        found = route(parsed, model)
        if found is None:
            problems.append(Problem(file, path, f"model {model!r} routes nowhere: these settings would never apply",
                                    "key hedging by a model name clients ask for (a load_balancing group, an "
                                    "exact match, capability:<name>, a model a provider lists)"))
            continue
        pool = tuple(dict.fromkeys((*found[1], *m.fallback_chains.get(model, ()))))
        if len(pool) < 2:
            problems.append(Problem(file, path, f"{found[0]} sends {model!r} to {', '.join(pool)} only: a hedge has "
                                    "nowhere else to go", "hedge a pool of two or more providers, or add a "
                                    f"fallback_chains.{model} entry", "warning"))
            continue
        paid = [p for p in pool if _paid(parsed, p, model)]
        if spec.allow_paid and paid:
            problems.append(Problem(file, f"{path}.allow_paid", f"hedging pays for both attempts on "
                                    f"{', '.join(paid)} (cost_per_1k_tokens > 0)", "set allow_paid: false unless "
                                    "the latency is worth up to max_fraction more spend", "warning"))
        elif not spec.allow_paid and len(pool) - len(paid) < 2:
            problems.append(Problem(file, path, f"{', '.join(paid)} {'has' if len(paid) == 1 else 'have'} a cost and "
                                    "is not hedged from or to: fewer than two free providers are left, so no request "
                                    "is ever hedged", "add free providers to the pool, or set allow_paid: true",
                                    "warning"))


def _backend_load(parsed: Parsed, files: Mapping[str, str], problems: list[Problem]) -> None:
    m = parsed.mappings
    pools = [(f"load_balancing.{k}", lb.strategy, lb.providers) for k, lb in m.load_balancing.items()]
    pools += [(f"capabilities.{k}", r.strategy, r.providers) for k, r in m.capabilities.items()]
    for path, strategy, providers in pools:
        if strategy not in ("backend_load", "prefix_affinity"):
            continue
        blind = [p for p in providers if (spec := parsed.providers.get(p)) is not None and spec.load_endpoint is None]
        if blind:
            problems.append(Problem(files["mappings"], f"{path}.strategy", f"{strategy} without the backends' own "
                                    f"load for {', '.join(blind)} (no load_endpoint): ranked on aiub's own in-flight "
                                    "counts only", "set load_endpoint (vLLM and llama.cpp: /metrics; llama.cpp: "
                                    f"/slots) on providers.{blind[0]}", "warning"))


def _chains(parsed: Parsed, file: str, problems: list[Problem]) -> None:
    m = parsed.mappings
    for i, pattern in enumerate(m.patterns):
        if not pattern.targets:
            problems.append(Problem(file, f"patterns[{i}]", f"pattern {pattern.pattern!r} names no provider",
                                    "add provider: KEY (or providers: [KEY, ...])"))
    pools = [(f"capabilities.{k}.providers", r.providers) for k, r in m.capabilities.items()]
    pools += [(f"load_balancing.{k}.providers", lb.providers) for k, lb in m.load_balancing.items()]
    for path, pool in pools:
        if not pool:
            problems.append(Problem(file, path, "an empty pool routes nowhere", "list at least one provider"))
    for model, chain in m.fallback_chains.items():
        seen: set[str] = set()
        for name in chain:
            if name in seen:
                problems.append(Problem(file, f"fallback_chains.{model}", f"provider {name!r} appears twice: the "
                                        "chain loops back", "list each provider once, in the order to try them"))
            seen.add(name)
            if name in parsed.providers and not _lists(parsed, name, model):
                problems.append(Problem(file, f"fallback_chains.{model}", f"provider {name!r} does not list "
                                        f"{model!r}: the backend receives the name {model!r} as is",
                                        f"add {model!r} under providers.{name}.models with its backend_model",
                                        "warning"))
    graph = m.context_window_fallbacks
    for model, targets in graph.items():
        if model in targets:
            problems.append(Problem(file, f"context_window_fallbacks.{model}", "a model cannot fall back to itself",
                                    "remove it from its own list"))
        own = _window(parsed, model)
        for target in targets:
            window = _window(parsed, target)
            if target != model and own is not None and window is not None and window <= own:
                problems.append(Problem(file, f"context_window_fallbacks.{model}", f"{target!r} has a context "
                                        f"window of {window}, not larger than {model!r}'s {own}: the router skips "
                                        "it", "name a model with a larger context_window", "warning"))
    for cycle in _cycles(graph):
        problems.append(Problem(file, f"context_window_fallbacks.{cycle[0]}", "fallbacks form a cycle: "
                                + " → ".join(cycle), "remove one link so every chain ends at the largest model"))


def _window(parsed: Parsed, model: str) -> int | None:
    windows = [w for spec in parsed.providers.values() if model in spec.models
               and (w := spec.models[model].context_window) is not None]
    return max(windows) if windows else None


def _cycles(graph: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Each cycle once (longer than a self-loop, which is reported on its own), in the order first met."""
    found: list[list[str]] = []
    reported: set[frozenset[str]] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt == node:
                continue
            if nxt in path:
                cycle = [*path[path.index(nxt):], nxt]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    found.append(cycle)
            elif len(path) < 64:
                walk(nxt, [*path, nxt])

    for start in graph:
        walk(start, [start])
    return found


def _providers(parsed: Parsed, file: str, environ: Mapping[str, str], problems: list[Problem]) -> None:
    if parsed.providers and not any(s.status == "active" for s in parsed.providers.values()):
        problems.append(Problem(file, "providers", "no provider is active: every request gets 503",
                                "set status: active on at least one provider", "warning"))
    routed = {name for _, name in provider_references(parsed.mappings)}
    for name, spec in parsed.providers.items():
        where = f"providers.{name}"
        _api_key(name, spec, file, environ, problems)
        _url(file, f"{where}.base_url", spec.base_url, ("http", "https"), problems)
        if spec.health_endpoint is not None and not spec.health_endpoint.startswith("/"):
            problems.append(Problem(file, f"{where}.health_endpoint", "must be a path starting with '/'",
                                    f"e.g. health_endpoint: /{spec.health_endpoint.lstrip('/')}"))
        if not spec.models and name not in routed and spec.status == "active":
            problems.append(Problem(file, where, "lists no models and no mapping names it: it never gets traffic",
                                    "add its models, or name it in model-mappings.yaml", "warning"))


def _api_key(name: str, spec: ProviderSpec, file: str, environ: Mapping[str, str], problems: list[Problem]) -> None:
    where = f"providers.{name}"
    if spec.requires_api_key and not spec.env_var:
        problems.append(Problem(file, f"{where}.env_var", "requires_api_key is true but no variable is named",
                                f"add env_var: {name.upper()}_API_KEY (keys live in the environment, never in "
                                "config)"))
    elif spec.env_var and not environ.get(spec.env_var) and spec.status == "active":
        problems.append(Problem(file, f"{where}.env_var", f"{spec.env_var} is not set: requests to {name!r} "
                                "fail (provider_auth_missing) and fall back to the next provider",
                                f"export {spec.env_var}=... before starting aiub", "warning"))
    elif spec.type in CLOUD_TYPES and not spec.env_var:
        problems.append(Problem(file, where, f"a {spec.type} provider with no API key variable",
                                "add requires_api_key: true and env_var: NAME", "warning"))


def _url(file: str, path: str, url: str, schemes: tuple[str, ...], problems: list[Problem]) -> None:
    parts = urlsplit(url)
    example = f"{schemes[0]}://127.0.0.1:4222" if schemes[0] == "nats" else f"{schemes[0]}://127.0.0.1:6379/0" \
        if schemes[0] == "redis" else "http://127.0.0.1:11434"
    if parts.scheme not in schemes:
        problems.append(Problem(file, path, f"{url!r}: scheme must be one of {', '.join(schemes)}",
                                f"e.g. {example}"))
        return
    try:
        port = parts.port
    except ValueError:
        problems.append(Problem(file, path, f"{url!r}: the port is not a number from 1 to 65535",
                                f"e.g. {example}"))
        return
    if parts.scheme != "unix" and not parts.hostname:
        problems.append(Problem(file, path, f"{url!r}: no host", f"e.g. {example}"))
    elif port == 0:
        problems.append(Problem(file, path, f"{url!r}: port 0 is not a port", f"e.g. {example}"))


def _environment(environ: Mapping[str, str], problems: list[Problem]) -> None:
    for name, schemes in _URL_SCHEMES.items():
        value = environ.get(name)
        if value:
            for url in value.split(",") if name == "NATS_URL" else [value]:
                _url("environment", name, url.strip(), schemes, problems)

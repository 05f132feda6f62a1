"""`/v1/models`: the configured public names, plus what the backends say they serve. Pure.

Configured names come first, in config order, owned by the provider that serves them (an
`exact_matches` entry, else the first provider listing the model). Then each provider's
served names that are not already listed, owned by that provider, in the order the workers
reported them. A provider whose workers did not answer contributes nothing: the configured
list is always complete on its own.

Only names that can be routed are listed, and a served name only where its route reaches a
provider that serves it (a backend also reports the names it serves configured models under,
such as a GGUF file name, which no rule routes): a client that enumerates models (an SDK's model
picker, a UI's dropdown) takes what it is offered, and a model whose every route ends at a
disabled provider answers nothing but 503. A name is routable when the router's own matcher
(services/router/decision.match_model) or its fallback chain names an active provider;
which of those is healthy right now is the health service's to say, and changes by the
second, so it does not hide a name. `aiub validate` warns of each mapping to a disabled provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from services.router.decision import Match, match_model
from shared.config import Config


def _destinations(config: Config, model: str) -> tuple[str, ...]:
    """Where a request for `model` may go, by the router's own matcher: its rule's pool, then its
    fallback chain (active or not)."""
    found = match_model(config.mappings, config.providers, model, None)
    pool = found.pool if isinstance(found, Match) else ()
    return (*pool, *config.mappings.fallback_chains.get(model, ()))


def _active(config: Config, provider: str) -> bool:
    spec = config.providers.get(provider)
    return spec is not None and spec.status == "active"


def routable(config: Config, model: str) -> bool:
    """Whether a request for `model` has an active provider to go to."""
    return any(_active(config, name) for name in _destinations(config, model))


def reaches(config: Config, model: str, provider: str) -> bool:
    """Whether a request for `model` may go to `provider` (the one whose backend reported it), with
    that provider active."""
    return _active(config, provider) and provider in _destinations(config, model)


def configured_models(config: Config) -> list[tuple[str, str]]:
    """(public name, owning provider) for every configured name that can be routed."""
    owners = {name: match.provider for name, match in config.mappings.exact_matches.items()}
    for provider, spec in config.providers.items():
        for model in spec.models:
            owners.setdefault(model, provider)
    return [(name, owners.get(name, "aiub")) for name in config.public_models() if routable(config, name)]


def merge_models(configured: Sequence[tuple[str, str]], served: Mapping[str, Sequence[str]],
                 created: int) -> dict[str, Any]:
    seen: dict[str, str] = {}
    for name, owner in configured:
        seen.setdefault(name, owner)
    for provider, names in served.items():
        for name in names:
            seen.setdefault(name, provider)
    return {"object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": owner}
                     for name, owner in seen.items()]}


def models_body(config: Config, served: Mapping[str, Sequence[str]], created: int) -> bytes:
    reachable = {provider: [name for name in names if reaches(config, name, provider)]
                 for provider, names in served.items()}
    return msgspec.json.encode(merge_models(configured_models(config), reachable, created))

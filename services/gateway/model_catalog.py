"""`/v1/models`: the configured public names, plus what the backends say they serve. Pure.

Configured names come first, in config order, owned by the provider that serves them (an
`exact_matches` entry, else the first provider listing the model). Then each provider's
served names that are not already listed, owned by that provider, in the order the workers
reported them. A provider whose workers did not answer contributes nothing: the configured
list is always complete on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from shared.config import Config


def configured_models(config: Config) -> list[tuple[str, str]]:
    """(public name, owning provider) for every configured name."""
    owners = {name: match.provider for name, match in config.mappings.exact_matches.items()}
    for provider, spec in config.providers.items():
        for model in spec.models:
            owners.setdefault(model, provider)
    return [(name, owners.get(name, "aiub")) for name in config.public_models()]


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
    return msgspec.json.encode(merge_models(configured_models(config), served, created))

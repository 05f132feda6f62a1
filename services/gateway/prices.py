"""What a model costs, from `cost_per_1k_tokens` in providers.yaml, looked up once per answer.

A provider lists a model under its public name (or the backend name an exact match maps it to);
a model nobody prices costs 0. Before a request runs, its provider is not known yet: a cost
budget's estimate uses the highest price any provider asks for the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.config import Config


@dataclass(frozen=True)
class Prices:
    per_provider: dict[tuple[str, str], float] = field(default_factory=dict)  # (provider, model) -> per 1k
    aliases: dict[str, str] = field(default_factory=dict)  # public model -> the backend name an exact match gives
    highest_of: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config) -> Prices:
        per_provider = {(key, name): spec.cost_per_1k_tokens for key, provider in config.providers.items()
                        for name, spec in provider.models.items() if spec.cost_per_1k_tokens}
        aliases = {public: match.backend_model for public, match in config.mappings.exact_matches.items()
                   if match.backend_model}
        highest: dict[str, float] = {}
        for (_, name), price in per_provider.items():
            highest[name] = max(price, highest.get(name, 0.0))
        return cls(per_provider, aliases, highest)

    def of_provider(self, provider: str | None, model: str) -> float:
        if provider is None or not self.per_provider:
            return 0.0
        found = self.per_provider.get((provider, model))
        if found is None and model in self.aliases:
            found = self.per_provider.get((provider, self.aliases[model]))
        return found or 0.0

    def highest(self, model: str) -> float:
        return self.highest_of.get(model) or self.highest_of.get(self.aliases.get(model, ""), 0.0)

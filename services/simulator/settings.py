"""What one simulator is started with: its flavor, models, knobs, seed and key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from services.simulator.engine import EngineSettings
from services.simulator.knobs import Knobs

Flavor = Literal["openai", "ollama", "anthropic"]
DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "openai": ("Qwen/Qwen2.5-Coder-7B-Instruct-AWQ",),
    "ollama": ("llama3.1:8b", "qwen2.5-coder:7b"),
    "anthropic": ("claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"),
}


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    flavor: Flavor
    models: tuple[str, ...] = ()  # empty: DEFAULT_MODELS[flavor]
    knobs: Knobs = field(default_factory=Knobs)
    seed: int | None = None  # seeds error injection, so a failure pattern can be replayed
    # When set, model requests must carry it: `authorization: Bearer <key>` (openai, ollama),
    # `x-api-key` (anthropic, which requires some key even when this is None).
    api_key: str | None = None
    # Set: behave like an inference engine (engine.py): prefix cache, sequence cap, load endpoints.
    engine: EngineSettings | None = None

    def __post_init__(self) -> None:
        if self.flavor not in DEFAULT_MODELS:
            raise ValueError(f"flavor must be one of {', '.join(DEFAULT_MODELS)}, got {self.flavor!r}")
        if not self.models:
            object.__setattr__(self, "models", DEFAULT_MODELS[self.flavor])

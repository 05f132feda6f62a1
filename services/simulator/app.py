"""A simulator's settings and the state its connections share: knobs, counters, routes, ids."""

from __future__ import annotations

import itertools
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from services.simulator import anthropic_wire, ollama_wire, openai_wire
from services.simulator.knobs import Knobs
from services.simulator.openai_wire import WireError
from services.simulator.routes import Dialect, routes

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

    def __post_init__(self) -> None:
        if self.flavor not in DEFAULT_MODELS:
            raise ValueError(f"flavor must be one of {', '.join(DEFAULT_MODELS)}, got {self.flavor!r}")
        if not self.models:
            object.__setattr__(self, "models", DEFAULT_MODELS[self.flavor])


class Stats:
    __slots__ = (
        "aborted",
        "active",
        "by_path",
        "completed",
        "dropped",
        "injected_errors",
        "requests",
    )

    def __init__(self) -> None:
        self.active = 0  # a live gauge: reset() leaves it alone
        self.reset()

    def reset(self) -> None:
        self.requests = self.completed = self.aborted = self.dropped = 0
        self.injected_errors = 0
        self.by_path: dict[str, int] = {}

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "active": self.active, "completed": self.completed,
                "aborted": self.aborted, "dropped": self.dropped,
                "injected_errors": self.injected_errors, "by_path": dict(self.by_path)}


class App:
    """Everything the connections of one simulator share."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.knobs = settings.knobs
        self.rng = random.Random(settings.seed)
        self.stats = Stats()
        self.routes = routes(settings.flavor)
        self.conns: set[Any] = set()
        self.closing = False
        self.started = int(time.time())
        self.started_iso = ollama_wire.iso_now()
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(12)
        ollama = settings.flavor == "ollama"
        self.names = (ollama_wire.accepted_names(settings.models) if ollama
                      else frozenset(settings.models))
        self.model_not_found = {"ollama": ollama_wire.model_not_found, "openai": openai_wire.model_not_found,
                                "anthropic": anthropic_wire.model_not_found}[settings.flavor]

    def next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):08x}"

    def resolve_model(self, dialect: Dialect, model: object) -> str:
        if model is None or model == "":
            if dialect == "vllm":  # vLLM answers with its served model when none is named
                return self.settings.models[0]
            raise WireError(400, "model: Field required" if dialect == "anthropic" else "model is required",
                            "model")
        if not isinstance(model, str):
            raise WireError(400, "model: Input should be a valid string", "model")
        if model not in self.names:
            raise self.model_not_found(model)
        return model

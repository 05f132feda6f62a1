"""A simulator's settings and the state its connections share: knobs, counters, routes, ids."""

from __future__ import annotations

import itertools
import random
import secrets
import time
from typing import Any

from services.simulator import anthropic_wire, ollama_wire, openai_wire
from services.simulator.engine_gate import EngineGate
from services.simulator.openai_wire import WireError
from services.simulator.routes import Dialect, routes
from services.simulator.settings import SimulatorSettings


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
        self.gate = EngineGate(settings.engine, random.Random(settings.seed)) if settings.engine else None
        if self.gate is not None:
            self.routes.update(self.gate.routes(settings.models))
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

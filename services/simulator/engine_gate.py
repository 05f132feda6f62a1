"""The asyncio shell around `engine.Engine`: a request waits here for a sequence, learns its
time to first token, and frees the sequence when its reply ends (or its client leaves).
Also the engine's load endpoints and its control route, added to a simulator's routes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.simulator import engine_wire
from services.simulator.engine import Engine, EngineSettings, Started

Clock = Callable[[], float]


class EngineGate:
    def __init__(self, settings: EngineSettings, rng: random.Random | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.engine = Engine(settings, rng or random.Random())
        self._clock = clock
        self._waiters: dict[str, asyncio.Future[Started]] = {}

    async def enter(self, request: str, parts: Sequence[str], completion_tokens: int) -> Started:
        """Wait for a free sequence; the start (with its TTFT) once it has one. Cancelled while
        waiting, the request leaves the queue; the caller must call `leave` either way."""
        started = self.engine.arrive(request, parts, completion_tokens, self._clock())
        if started is not None:
            return started
        future: asyncio.Future[Started] = asyncio.get_running_loop().create_future()
        self._waiters[request] = future
        return await future

    def leave(self, request: str) -> None:
        self._waiters.pop(request, None)
        for started in self.engine.finish(request, self._clock()):
            waiter = self._waiters.pop(started.request, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(started)

    def stall_for(self, seconds: float) -> None:
        self.engine.stall(self._clock() + seconds)

    def routes(self, models: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The load endpoints of the engine it plays, and `/_sim/engine` (GET its load and settings;
        POST `{"stall_s": 5}` stalls every request starting in the next 5 s, `{"stall_rate": 0.1,
        "stall_ms": 800}` sets random stalls)."""
        fmt = self.engine.settings.load_format
        table: dict[str, dict[str, Any]] = {}
        if fmt == "vllm":
            table["/metrics"] = {"GET": lambda _a, _b: (200, engine_wire.PROMETHEUS, engine_wire.vllm_metrics(
                self.engine.load(), models[0]))}
        elif fmt == "llamacpp":
            table["/metrics"] = {"GET": lambda _a, _b: (200, engine_wire.PROMETHEUS, engine_wire.llamacpp_metrics(
                self.engine.load()))}
            table["/slots"] = {"GET": lambda _a, _b: (200, engine_wire.JSON, engine_wire.llamacpp_slots(
                self.engine.load()))}
        else:
            table["/api/ps"] = {"GET": lambda _a, _b: (200, engine_wire.JSON, engine_wire.ollama_ps(
                models, (datetime.now(UTC) + timedelta(minutes=5)).isoformat(), self.engine.load()))}
        table["/_sim/engine"] = {"GET": lambda _a, _b: self._describe(), "POST": self._control}
        return table

    def _describe(self) -> tuple[int, bytes, bytes]:
        load, settings = self.engine.load(), self.engine.settings
        return 200, engine_wire.JSON, orjson.dumps({
            "running": load.running, "waiting": load.waiting, "kv_usage": load.kv_usage,
            "prefix_queries": load.prefix_queries, "prefix_hits": load.prefix_hits,
            "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__}})

    def _control(self, _app: object, body: bytes) -> tuple[int, bytes, bytes]:
        try:
            change = orjson.loads(body or b"{}")
            if not isinstance(change, dict) or set(change) - {"stall_s", "stall_rate", "stall_ms"}:
                raise ValueError("expected an object with stall_s, stall_rate and/or stall_ms")
            if "stall_s" in change:
                self.stall_for(float(change["stall_s"]))
            if "stall_rate" in change or "stall_ms" in change:
                s = self.engine.settings
                self.engine.settings = dataclasses.replace(
                    s, stall_rate=float(change.get("stall_rate", s.stall_rate)),
                    stall_ms=float(change.get("stall_ms", s.stall_ms)))
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return 400, engine_wire.JSON, orjson.dumps({"error": str(exc)})
        return self._describe()

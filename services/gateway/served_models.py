"""Ask the workers what their backends serve (`aiub.models.<provider>`), for `/v1/models`.

    catalog = ServedModels(nc, config)
    body = await catalog.body()   # OpenAI's model list: configured names + served names

Every active provider is asked at once; one that does not answer within `timeout_s` (no
worker running, backend slow) is left out rather than holding the response. Answers are
kept for `ttl_s`, so a client polling `/v1/models` costs the bus one round per period.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import msgspec
from nats.aio.client import Client

from services.gateway.model_catalog import models_body
from shared import subjects
from shared.config import Config
from shared.messages import model_list_decoder


async def ask_workers(nc: Client, providers: list[str], timeout_s: float) -> dict[str, tuple[str, ...]]:
    async def ask(provider: str) -> tuple[str, tuple[str, ...]]:
        with contextlib.suppress(Exception):
            reply = await nc.request(subjects.models(provider), b"", timeout=timeout_s)
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                return provider, model_list_decoder.decode(reply.data).models
        return provider, ()

    answers = await asyncio.gather(*(ask(p) for p in providers))
    return {provider: names for provider, names in answers if names}


class ServedModels:
    def __init__(self, nc: Client, config: Config, timeout_s: float = 1.0, ttl_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._nc = nc
        self._config = config
        self._timeout_s = timeout_s
        self._ttl_s = ttl_s
        self._clock = clock
        self._cached: tuple[float, dict[str, tuple[str, ...]]] | None = None
        self._lock = asyncio.Lock()

    async def served(self) -> dict[str, tuple[str, ...]]:
        async with self._lock:  # one round on the bus at a time, however many clients ask
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._ttl_s:
                active = [name for name, spec in self._config.providers.items() if spec.status == "active"]
                self._cached = (now, await ask_workers(self._nc, active, self._timeout_s))
            return self._cached[1]

    async def body(self) -> bytes:
        return models_body(self._config, await self.served(), int(time.time()))

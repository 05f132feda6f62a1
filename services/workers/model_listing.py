"""What a backend actually serves, asked by the worker on behalf of `/v1/models`.

A worker answers requests on `aiub.models.<provider>` (queue group `worker.<provider>`, so one
worker of the provider answers) with a `ModelList`. The backend is asked through the
provider's adapter (`/api/tags`, `/v1/models`), at most once per `ttl_s` per provider: a busy
`/v1/models` must not become load on the backends. A backend that cannot be asked yields a
`ModelList` with `error` set and no models, never silence, so the caller need not wait out
its timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.workers.adapters import adapter_for
from services.workers.adapters.base import StreamBroken
from services.workers.http import BackendHttp, BackendHttpError, BackendUnreachable
from shared import logs, subjects
from shared.config import Config, ProviderSpec
from shared.messages import ModelList, encode

log = logs.get("worker")

LIST_TIMEOUT_S = 5.0


async def list_models(http: BackendHttp, provider: str, spec: ProviderSpec,
                      timeout_s: float = LIST_TIMEOUT_S) -> ModelList:
    adapter = adapter_for(spec)
    request = adapter.models_request(spec, spec.api_key())
    if request is None:
        return ModelList(provider=provider, listed=False)
    try:
        status, body = await http.fetch(request.method, request.url, headers=request.headers, timeout_s=timeout_s)
        if status >= 400:
            return ModelList(provider=provider, error=f"the backend answered HTTP {status}")
        return ModelList(provider=provider, models=tuple(adapter.parse_models(body)))
    except StreamBroken as e:
        return ModelList(provider=provider, error=f"unreadable model list: {e}")
    except BackendHttpError as e:
        what = "ConnectError" if isinstance(e, BackendUnreachable) else type(e).__name__
        return ModelList(provider=provider, error=f"the backend could not be asked ({what})")


class ModelListResponder:
    def __init__(self, nc: Client, config: Config, providers: list[str], http: BackendHttp,
                 ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._nc = nc
        self._config = config
        self._providers = providers
        self._http = http
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, ModelList]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def reconfigure(self, config: Config) -> None:
        self._config = config
        self._cache.clear()  # a provider's base_url or key may have changed

    async def start(self) -> list[Subscription]:
        return [await self._nc.subscribe(subjects.models(p), queue=subjects.worker_queue(p), cb=self._on_request)
                for p in self._providers]

    async def answer(self, provider: str) -> ModelList:
        now = self._clock()
        cached = self._cache.get(provider)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        listing = await list_models(self._http, provider, self._config.providers[provider])
        if listing.error is not None:
            log.warning("model_list_failed", provider=provider, error=listing.error)
        self._cache[provider] = (now, listing)
        return listing

    async def _on_request(self, msg: Msg) -> None:
        # Never await the backend inside the NATS callback: it would hold up the next request.
        task = asyncio.create_task(self._respond(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, msg: Msg) -> None:
        provider = subjects.last_token(msg.subject)
        if provider in self._config.providers and msg.reply:
            await msg.respond(encode(await self.answer(provider)))

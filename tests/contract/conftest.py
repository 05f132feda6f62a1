"""The contract suite's fixtures: every test runs once per backend adapter (see harness.BACKENDS)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
import pytest_asyncio

from services.simulator.knobs import Knobs
from services.simulator.server import SimulatorSettings, start_simulator
from services.workers.http import BackendHttp
from shared.client import new_id
from shared.config import RuntimeFile
from tests.contract.harness import BACKENDS, Backend, Harness

TOKENS = 5
MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture(params=BACKENDS, ids=[b.id for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


@pytest_asyncio.fixture
async def make_harness(nats_url: str, backend: Backend) -> AsyncIterator[MakeHarness]:
    """Start a simulator and a worker for `backend`; keyword arguments override the provider's spec.

    `key` replaces the key the worker is given (None: the env var is unset, no key)."""
    nc = await nats.connect(nats_url)
    http = BackendHttp()
    started: list[Any] = []

    async def make(key: str | None = "default", base_url: str | None = None, runtime: RuntimeFile | None = None,
                   **overrides: Any) -> Harness:
        sim = await start_simulator(SimulatorSettings(backend.flavor, (backend.backend_model,),  # type: ignore[arg-type]
                                                      Knobs(tokens=TOKENS), api_key=backend.api_key))
        started.append(sim)
        # The key as load_config would have read it from the provider's env_var.
        spec = backend.spec(base_url or sim.url, **overrides).with_api_key(
            None if key is None else backend.api_key if key == "default" else key)
        harness = Harness(nc, backend, sim, f"p{new_id()}", spec, http, runtime)
        await harness.start()
        started.append(harness)
        return harness

    try:
        yield make
    finally:
        for thing in reversed(started):
            await (thing.stop() if isinstance(thing, Harness) else thing.close())
        await http.aclose()
        await nc.close()


@pytest_asyncio.fixture
async def harness(make_harness: MakeHarness) -> Harness:
    return await make_harness()

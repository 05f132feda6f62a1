"""The Responses door reads a virtual key from the key store once per request.

Its route authenticates and reads the body itself (to look up `previous_response_id` before
anything is generated), then hands both to `infer` (inference.Received), which must not check
the key again. Gateway, router and worker run in this process over a real NATS server and a
simulated backend; the gateway's key store counts its reads.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest

from services.gateway.app import create_app
from services.gateway.auth import Authenticator
from services.gateway.key_store import FileKeyStore
from services.gateway.keys import KeyRecord, new_key
from services.router.service import Router
from services.simulator.server import SimulatorSettings, start_simulator
from services.workers.http import BackendHttp
from services.workers.service import Worker
from shared.client import new_id
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile, with_secrets
from shared.health_view import HealthView

MASTER = "master-" + new_id()


class CountingKeyStore(FileKeyStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = 0

    async def get(self, key_id: str) -> KeyRecord | None:
        self.reads += 1
        return await super().get(key_id)


@dataclass
class Gateway:
    http: httpx.AsyncClient
    keys: CountingKeyStore
    key: str  # a virtual key
    model: str


@pytest.fixture
async def gateway(nats_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with await start_simulator(SimulatorSettings("openai")) as sim:
        model = sim.settings.models[0]
        provider = f"sim{new_id()}"
        config = with_secrets(Config(
            directory=tmp_path,
            providers={provider: ProviderSpec.model_validate({"type": "vllm", "base_url": sim.url,
                                                              "models": [model]})},
            mappings=ModelMappingsFile.model_validate({"exact_matches": {model: {"provider": provider}}}),
            runtime=RuntimeFile()), {"AIUB_MASTER_KEY": MASTER})
        nc = await nats.connect(nats_url)
        backend = BackendHttp()
        router = Router(nc, config, HealthView())
        worker = Worker(nc, config, [provider], backend)
        await router.start()
        await worker.start()
        app = create_app(config, nats_url, state_dir=tmp_path)
        keys = CountingKeyStore(tmp_path / "keys.json")
        key, record = new_key(time.time(), name="door")
        await keys.put(record)
        app.state.gateway.policies.auth = Authenticator("required", MASTER, keys)
        try:
            async with app.router.lifespan_context(app), httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=20) as http:
                yield Gateway(http, keys, key, model)
        finally:
            await worker.stop(grace_s=1.0)
            await backend.aclose()
            await nc.close()


async def test_a_create_reads_the_key_once_and_a_continuation_too(gateway: Gateway) -> None:
    bearer = {"authorization": f"Bearer {gateway.key}"}
    first = await gateway.http.post("/v1/responses", headers=bearer, json={"model": gateway.model, "input": "hi"})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "completed"
    assert gateway.keys.reads == 1
    again = await gateway.http.post("/v1/responses", headers=bearer, json={
        "model": gateway.model, "input": "and then?", "previous_response_id": first.json()["id"], "stream": True})
    assert again.status_code == 200, again.text
    assert "event: response.completed" in again.text
    assert gateway.keys.reads == 2


async def test_the_key_still_decides_what_infer_admits(gateway: Gateway) -> None:
    """The principal handed over is the one the limits and the model allow-list see."""
    key, record = new_key(time.time(), name="narrow", models=("other-*",))
    await gateway.keys.put(record)
    refused = await gateway.http.post("/v1/responses", headers={"authorization": f"Bearer {key}"},
                                      json={"model": gateway.model, "input": "hi"})
    assert refused.status_code == 403, refused.text
    assert gateway.keys.reads == 1
    anonymous = await gateway.http.post("/v1/responses", json={"model": gateway.model, "input": "hi"})
    assert anonymous.status_code == 401

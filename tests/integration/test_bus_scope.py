"""With a bus secret, workers serve only requests carrying a scope the deployment signed: a
program that can publish on `aiub.requests` cannot skip the gateway's keys by doing so."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from shared.client import InferenceClient
from shared.messages import Error, Result
from shared.scope import Scope, issue
from tests.support.processes import Simulator, Stack

SECRET = "bus-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("scope")), nats_url)
    s.env["AIUB_BUS_SECRET"] = SECRET
    sim = s.simulator("openai", ["open-model", "closed-model"])
    s.write_config(providers={"sim": {"type": "vllm", "base_url": sim.url,
                                      "models": {"open-model": {"capabilities": ["fast"]}, "closed-model": {}}}},
                   mappings={"exact_matches": {"open-model": {"provider": "sim"},
                                               "closed-model": {"provider": "sim"}},
                             "capabilities": {"fast": {"providers": ["sim"]}}},
                   runtime={"cache": {"enabled": False}})
    s.sim = sim
    s.service("router")
    s.worker("sim")
    s.gateway()
    try:
        s.wait_serving("open-model")  # through the gateway, which signs each request's scope
        yield s
    finally:
        s.stop()


async def ask(nats_url: str, model: str, token: str | None) -> Error | Result:
    nc = await nats.connect(nats_url)
    try:
        client = await InferenceClient.start(nc, scope=token)
        async with client.call(kind="chat", model=model, stream=False,
                               body={"model": model, "messages": [{"role": "user", "content": "hi"}]}) as call:
            frames = [frame async for frame in call]
        assert isinstance(frames[-1], Error | Result)
        return frames[-1]
    finally:
        await nc.close()


def backend_requests(sim: Simulator) -> int:
    return int(sim.stats()["requests"])


def test_the_gateway_signs_so_its_requests_are_served(stack: Stack) -> None:
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=10,
                          json={"model": "closed-model", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200


@pytest.mark.parametrize(("token", "status"), [
    (None, 401),
    (issue(Scope(tenant="forger", models=()), b"not-the-secret"), 401),
    (issue(Scope(tenant="t", models=(), expires_at=1.0), SECRET.encode()), 401),
    (issue(Scope(tenant="t", models=("open-*",)), SECRET.encode()), 403),
])
def test_a_bus_request_outside_a_signed_scope_never_reaches_the_backend(stack: Stack, token: str | None,
                                                                         status: int) -> None:
    sim: Simulator = stack.sim
    before = backend_requests(sim)
    answer = asyncio.run(ask(stack.nats_url, "closed-model", token))
    assert isinstance(answer, Error) and answer.status == status and answer.error.code == "invalid_scope"
    assert backend_requests(sim) == before


def test_a_bus_token_serves_the_models_it_names(stack: Stack) -> None:
    token = issue(Scope(tenant="t", models=("open-*",)), SECRET.encode())
    assert isinstance(asyncio.run(ask(stack.nats_url, "open-model", token)), Result)


def test_a_scope_is_checked_against_the_name_asked_for_not_the_model_routed_to(stack: Stack) -> None:
    """`capability:fast` is what the key may ask for; the router serves it with open-model."""
    token = issue(Scope(tenant="t", models=("capability:fast",)), SECRET.encode())
    assert isinstance(asyncio.run(ask(stack.nats_url, "capability:fast", token)), Result)
    refused = asyncio.run(ask(stack.nats_url, "open-model", token))
    assert isinstance(refused, Error) and refused.status == 403

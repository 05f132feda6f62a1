"""The health tests' stack (two simulators a and b behind one worker, a router and a gateway) and
what its tests share: a pytest plugin (tests/conftest.py), used by tests/integration/test_health_service.py
and tests/chaos/test_health_replicas.py. Each module gets its own stack (module scope)."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from shared import subjects
from shared.embedded_nats import free_port, wait_for_port
from shared.health_view import HealthView, open_bucket
from tests.support.processes import Simulator, Stack

CHAT = "/v1/chat/completions"
TOKENS = {"a": 2, "b": 3}
# The processes' settings (the replica test); in-process tests override what they need.
HEALTH = {"interval_s": 0.2, "timeout_s": 1, "attempts": 2, "failure_window_s": 10, "open_s": 30,
          "trial_timeout_s": 2, "ramp_successes": 2}
prompts = itertools.count()


@pytest.fixture(scope="module")
def health_stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("health")), nats_url)
    ports = {name: free_port() for name in TOKENS}
    procs = {name: s.spawn(f"simulator-{name}", "simulator", "--flavor", "openai", "--port", str(port), "--models", "m",
                           "--tokens", str(TOKENS[name])) for name, port in ports.items()}
    for name, port in ports.items():  # both start at once; then wait for each
        wait_for_port("127.0.0.1", port, 20, procs[name].popen)
    sims = {name: Simulator(procs[name], port) for name, port in ports.items()}
    s.write_config(
        providers={name: {"type": "vllm", "base_url": sim.url, "max_concurrency": 16, "models": ["m"],
                          "health": HEALTH} for name, sim in sims.items()},
        mappings={"exact_matches": {"m": {"provider": "a"}}, "fallback_chains": {"m": ["a", "b"]}},
        runtime={"deadlines": {"accepted_s": 2, "first_token_s": 5, "total_s": 10}, "cache": {"enabled": False}},
    )
    s.sims = sims
    s.worker("a", "b")
    s.router = s.service("router")
    s.gateway()
    try:
        yield s
    finally:
        for proc in s.processes:  # all at once, then wait for each
            if proc.alive:
                proc.popen.terminate()
        s.stop()


def sims(stack: Stack) -> dict[str, Simulator]:
    return stack.sims


def chats(sim: Simulator) -> int:
    return int(sim.stats()["by_path"].get(CHAT, 0))


def reset_stats(sim: Simulator) -> None:
    httpx.post(sim.url + "/_sim/reset", timeout=2, trust_env=False).raise_for_status()




@pytest_asyncio.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    conn = await nats.connect(nats_url)
    yield conn
    await conn.close()


@pytest_asyncio.fixture
async def view(health_stack: Stack, nc: Client) -> AsyncIterator[HealthView]:
    """A fresh start: no provider state, no leader, healthy simulators; then a router's view."""
    kv = await open_bucket(nc.jetstream())
    for key in ("a", "b", subjects.HEALTH_LEADER_KEY, subjects.HEALTH_HEARTBEAT_KEY):
        with contextlib.suppress(Exception):
            await kv.delete(key)
    for name, sim in sims(health_stack).items():
        sim.knobs(error_rate=0.0, error_status=500, retry_after=None, tokens=TOKENS[name])
        reset_stats(sim)
    v = HealthView(stale_after_s=1.0)
    await v.start(nc.jetstream())
    yield v
    await v.stop()


async def ask(http: httpx.AsyncClient, stack: Stack) -> tuple[int, str | None, httpx.Response]:
    """One chat request through the gateway: (status, which provider answered, response)."""
    body = {"model": "m", "messages": [{"role": "user", "content": f"hello {next(prompts)}"}]}
    response = await http.post(stack.gateway_url + CHAT, json=body)
    served = None
    if response.status_code == 200:
        tokens = response.json()["usage"]["completion_tokens"]
        served = next(name for name, n in TOKENS.items() if n == tokens)
    return response.status_code, served, response


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15, trust_env=False) as client:
        yield client


async def trip(http: httpx.AsyncClient, stack: Stack, view: HealthView, *names: str) -> float:
    """Make `names` answer 500 until the breaker opens; returns when the third request was sent."""
    for name in names:
        sims(stack)[name].knobs(error_rate=1.0, error_status=500)
    third_sent = 0.0
    for i in range(3):
        if i == 2:
            third_sent = time.monotonic()
        await ask(http, stack)
    await view.wait_for(lambda v: all(v.states[n].state == "unavailable" for n in names), 5)
    return third_sent

"""Active probes through httpx.MockTransport: no sockets, no real waiting between attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from services.health.prober import probe, probe_url
from shared.config import HealthCheckSpec, ProviderSpec


def spec(**fields: Any) -> ProviderSpec:
    health = HealthCheckSpec(**fields.pop("health", {}))
    return ProviderSpec(**{"type": "vllm", "base_url": "http://backend:8001", "health": health, **fields})


def client(handler: Callable[[httpx.Request], Awaitable[httpx.Response]]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


class Gaps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_probe_endpoints_by_type() -> None:
    assert probe_url(spec(type="ollama", base_url="http://h:11434")) == "http://h:11434/api/tags"
    assert probe_url(spec(type="vllm", base_url="http://h:8001/v1")) == "http://h:8001/v1/models"
    assert probe_url(spec(type="llama_cpp", base_url="http://h:8080")) == "http://h:8080/v1/models"
    assert probe_url(spec(type="llama_cpp", base_url="http://h:8080/v1", health_endpoint="/health")) == (
        "http://h:8080/health")
    assert probe_url(spec(type="ollama", base_url="http://h:11434/v1")) == "http://h:11434/api/tags"
    assert probe_url(spec(type="openai", base_url="https://api.openai.com/v1")) is None  # passive only
    assert probe_url(spec(health={"enabled": False})) is None


async def test_a_passing_probe_reports_its_latency() -> None:
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"data": []})

    async with client(handler) as http:
        result = await probe(http, spec())
    assert result is not None and result.ok and result.latency_s >= 0
    assert seen == ["http://backend:8001/v1/models"]


async def test_a_4xx_still_proves_the_server_listens() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    async with client(handler) as http:
        result = await probe(http, spec())
    assert result is not None and result.ok


async def test_a_failed_attempt_is_retried_and_a_later_pass_is_enough() -> None:
    answers = iter([503, 200])
    gaps = Gaps()

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers))

    async with client(handler) as http:
        result = await probe(http, spec(health={"interval_s": 5}), sleep=gaps)
    assert result is not None and result.ok and gaps.slept == [0.5]


async def test_every_attempt_failing_fails_the_probe_with_the_last_reason() -> None:
    calls = 0
    gaps = Gaps()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(500)

    async with client(handler) as http:
        result = await probe(http, spec(), sleep=gaps)
    assert result is not None and not result.ok
    assert calls == 3 and gaps.slept == [1.0, 1.0]  # min(1 s, interval / 10), between attempts only
    assert result.reason == "probe answered HTTP 500 (3 attempts)"


async def test_a_hung_probe_fails_at_its_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    async with client(handler) as http:
        result = await probe(http, spec(health={"timeout_s": 0.05, "attempts": 1}))
    assert result is not None and not result.ok and "timed out after 0.05s" in result.reason
    assert result.latency_s < 1.0


async def test_a_provider_without_a_probe_is_not_probed() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    async with client(handler) as http:
        assert await probe(http, spec(type="anthropic", base_url="https://api.anthropic.com")) is None

"""Rate limits on a real Redis: two gateway processes share one Lua-scripted GCRA, so together they
admit exactly a key's limit; token limits charge the completion after the answer; and the script
agrees with the pure `decide` it mirrors.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from services.gateway.gcra import Limit, decide
from services.gateway.rate_limit_store import RedisLimiter
from services.gateway.redis_link import RedisLink
from shared.config import RedisSettings
from tests.support.processes import Stack, wait_served
from tests.support.redis import RedisServer, redis_server

MASTER = "master-" + uuid.uuid4().hex
MODEL, LIMITED = "rl-model", "rl-limited-model"
MESSAGES = [{"role": "user", "content": "hello"}]
N = 5

@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture(scope="module")
def gateways(nats_url: str, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Stack, list[str]]]:
    s = Stack(Path(tmp_path_factory.mktemp("ratelimit")), nats_url)
    s.env.update({"REDIS_URL": redis.url, "AIUB_MASTER_KEY": MASTER})
    sim = s.simulator("openai", ["backend-model"])
    models = {name: {"backend_model": "backend-model"} for name in (MODEL, LIMITED)}
    s.write_config(
        providers={"sim": {"type": "vllm", "base_url": sim.url, "max_concurrency": 64, "models": models}},
        mappings={"exact_matches": {name: {"provider": "sim"} for name in models}},
        runtime={"deadlines": {"first_token_s": 5, "idle_s": 3, "total_s": 20, "retry_budget": 0},
                 "redis": {"prefix": f"test-{uuid.uuid4().hex[:8]}:"},
                 "cache": {"enabled": False},
                 "limits": {"models": {LIMITED: {"rpm": 2}}}},
    )
    s.service("router")
    s.worker("sim")
    urls = []
    for _ in range(2):
        s.gateway()
        urls.append(s.gateway_url)
    for url in urls:
        wait_served(url, MODEL, MASTER)
    try:
        yield s, urls
    finally:
        s.stop()


def _create_key(stack: Stack, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "cli", "keys", "--config", str(stack.config_dir), "create",
                          "--json", *args], env=stack.env, capture_output=True, text=True, timeout=30, check=True)
    return str(json.loads(out.stdout)["key"])


async def test_two_gateways_admit_exactly_the_limit_between_them(gateways: tuple[Stack, list[str]]) -> None:
    stack, urls = gateways
    key = _create_key(stack, "--rpm", str(N))
    async with httpx.AsyncClient(trust_env=False, timeout=20, headers={"authorization": f"Bearer {key}"},
                                 limits=httpx.Limits(max_connections=64)) as client:
        responses = await asyncio.gather(*(
            client.post(urls[i % 2] + "/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES})
            for i in range(3 * N)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * N + [429] * (2 * N)
    for r in responses:
        assert r.headers["x-ratelimit-limit-requests"] == str(N)
        if r.status_code == 429:
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            assert 1 <= int(r.headers["retry-after"]) <= 60 // N + 1
            assert r.headers["x-ratelimit-reset-requests"].endswith("s")
    # Both gateways refused some: the count was shared, not kept per process.
    refused_by = {str(r.request.url).rsplit("/v1", 1)[0] for r in responses if r.status_code == 429}
    assert refused_by == set(urls)


def test_completion_tokens_count_against_the_token_limit(gateways: tuple[Stack, list[str]]) -> None:
    stack, urls = gateways
    key = _create_key(stack, "--tpm", "100")
    body = {"model": MODEL, "messages": MESSAGES, "simulator": {"tokens": 200}}
    headers = {"authorization": f"Bearer {key}"}
    first = httpx.post(urls[0] + "/v1/chat/completions", json=body, headers=headers, trust_env=False, timeout=20)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    second = httpx.post(urls[1] + "/v1/chat/completions", json=body, headers=headers, trust_env=False, timeout=20)
    assert second.status_code == 429
    assert second.headers["x-ratelimit-remaining-tokens"] == "0"
    assert int(second.headers["retry-after"]) > 60  # 200 completion tokens at 100/min: over a minute's debt


def test_a_model_limit_applies_per_key(gateways: tuple[Stack, list[str]]) -> None:
    stack, urls = gateways
    codes = [httpx.post(urls[i % 2] + "/v1/chat/completions", json={"model": LIMITED, "messages": MESSAGES},
                        headers={"authorization": f"Bearer {MASTER}"}, trust_env=False, timeout=20).status_code
             for i in range(3)]
    assert codes == [200, 200, 429]
    other = _create_key(stack)
    assert httpx.post(urls[0] + "/v1/chat/completions", json={"model": LIMITED, "messages": MESSAGES},
                      headers={"authorization": f"Bearer {other}"}, trust_env=False, timeout=20).status_code == 200


@pytest.fixture
async def limiter(redis: RedisServer) -> AsyncIterator[RedisLimiter]:
    link = RedisLink(redis.url, RedisSettings(prefix=f"test-{uuid.uuid4().hex[:8]}:", socket_timeout_s=2))
    yield RedisLimiter(link)
    await link.close()


async def test_the_lua_script_agrees_with_the_pure_decision(limiter: RedisLimiter) -> None:
    rng = random.Random(7)
    now = 1_700_000_000_000.0
    names = ["a", "b", "c"]
    tats: dict[str, float] = {}
    seen: set[bool] = set()
    for step in range(200):
        now += rng.choice([0.0, 1.0, 250.0, 4000.0, 13_000.0])
        chosen = rng.sample(names, rng.randint(1, 3))
        limits = [Limit(name, "tokens", rng.choice([3, 10, 100]), rng.choice([1, 2, 5, 40, 150]))
                  for name in chosen]
        force = rng.random() < 0.2
        allowed, decisions, new_tats = decide([tats.get(lim.key) for lim in limits], now, limits, force)
        if allowed:
            tats.update({lim.key: t for lim, t in zip(limits, new_tats, strict=True)})
        got_allowed, got = await limiter.evaluate_at(limits, now, force)
        assert got_allowed == allowed, step
        seen.add(allowed)
        for want, have in zip(decisions, got, strict=True):
            assert have.remaining == want.remaining, step
            assert have.reset_ms == pytest.approx(-(-want.reset_ms // 1), abs=1), step
            assert have.retry_ms == pytest.approx(-(-want.retry_ms // 1), abs=1), step
    assert seen == {True, False}


async def test_a_redis_that_forgot_the_script_is_taught_it_again(limiter: RedisLimiter, redis: RedisServer) -> None:
    """After a Redis restart its script cache is empty: the limiter must not fail open or err."""
    limits = [Limit("forgot", "tokens", 2, 1)]
    now = 1_700_000_000_000.0
    assert (await limiter.evaluate_at(limits, now, False))[0] is True
    probe = aioredis.Redis.from_url(redis.url)
    try:
        await probe.script_flush()
    finally:
        await probe.aclose()
    assert (await limiter.evaluate_at(limits, now, False))[0] is True
    assert (await limiter.evaluate_at(limits, now, False))[0] is False  # the counter survived, the script came back
    assert limiter.fallbacks == 0

"""The response cache on a real Redis, end to end: SDK → gateway → (on a miss) NATS → worker → simulator.

Auth is on (master key plus virtual keys made with `aiub keys create`), so the tenant scope is
real. Hits are proven by the simulator's request counter not moving. The Redis-down test runs
last: the private Redis restarts empty.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.processes import Simulator, Stack, wait_served, wait_until
from tests.support.redis import RedisServer, redis_server

MASTER = "master-" + uuid.uuid4().hex
MODEL, OTHER, SHORT = "cached-model", "other-model", "short-ttl-model"
SHORT_TTL_S = 1.0
MESSAGES = [{"role": "user", "content": "cache me"}]

@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture(scope="module")
def stack(nats_url: str, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("cache")), nats_url)
    s.env.update({"REDIS_URL": redis.url, "AIUB_MASTER_KEY": MASTER})
    sim = s.simulator("openai", ["backend-model"])
    models = {name: {"backend_model": "backend-model"} for name in (MODEL, OTHER, SHORT)}
    s.write_config(
        providers={"sim": {"type": "vllm", "base_url": sim.url, "max_concurrency": 16, "models": models}},
        mappings={"exact_matches": {name: {"provider": "sim"} for name in models}},
        runtime={"deadlines": {"first_token_s": 5, "idle_s": 3, "total_s": 20, "retry_budget": 0},
                 "redis": {"prefix": f"test-{uuid.uuid4().hex[:8]}:", "retry_after_s": 0.5},
                 "cache": {"model_ttl_s": {SHORT: SHORT_TTL_S}}},
    )
    s.sim = sim
    s.service("router")
    s.worker("sim")
    s.gateway()
    wait_served(s.gateway_url, MODEL, MASTER)
    try:
        yield s
    finally:
        for client in _CLIENTS.values():
            client.close()
        _CLIENTS.clear()
        s.stop()


def _sim(stack: Stack) -> Simulator:
    return stack.sim


def _backend_calls(stack: Stack) -> int:
    return int(_sim(stack).stats()["by_path"].get("/v1/chat/completions", 0))


def _new_key(stack: Stack) -> str:
    out = subprocess.run([sys.executable, "-m", "cli", "keys", "--config", str(stack.config_dir), "create",
                          "--json"], env=stack.env, capture_output=True, text=True, timeout=30, check=True)
    return str(json.loads(out.stdout)["key"])


_CLIENTS: dict[str, openai.OpenAI] = {}  # one SDK client per key, closed with the stack


def _client(stack: Stack, key: str = MASTER) -> openai.OpenAI:
    if key not in _CLIENTS:
        _CLIENTS[key] = openai.OpenAI(base_url=stack.gateway_url + "/v1", api_key=key, max_retries=0, timeout=20)
    return _CLIENTS[key]


def _chat(stack: Stack, key: str = MASTER, **fields: Any) -> tuple[str, str]:
    """Returns (x-aiub-cache, content)."""
    body = {"model": MODEL, "messages": MESSAGES, **fields}
    raw = _client(stack, key).chat.completions.with_raw_response.create(**body)
    return raw.headers["x-aiub-cache"], raw.parse().choices[0].message.content or ""


def _metric(stack: Stack, name: str) -> float:
    text = httpx.get(stack.gateway_url + "/metrics", trust_env=False, timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_miss_then_hit_never_touches_the_backend(stack: Stack) -> None:
    before = _backend_calls(stack)
    first = _chat(stack, seed=1)
    assert first[0] == "miss" and _backend_calls(stack) == before + 1
    second = _chat(stack, seed=1)
    assert second == ("hit", first[1])
    assert _backend_calls(stack) == before + 1
    assert _metric(stack, "cache_hits_total") >= 1 and _metric(stack, "cache_misses_total") >= 1
    assert 0 < _metric(stack, "cache_hit_rate") < 1


@pytest.mark.parametrize("change", [
    {"temperature": 0.9},
    {"model": OTHER},
    {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]},
    {"max_tokens": 3},
])
def test_a_different_answer_shaping_field_misses(stack: Stack, change: dict[str, Any]) -> None:
    base = {"seed": 2, "temperature": 0.1}
    assert _chat(stack, **base)[0] in ("miss", "hit")
    assert _chat(stack, **base)[0] == "hit"
    before = _backend_calls(stack)
    assert _chat(stack, **{**base, **change})[0] == "miss"
    assert _backend_calls(stack) == before + 1


def test_tenants_do_not_share_entries(stack: Stack) -> None:
    alice, bob = _new_key(stack), _new_key(stack)
    assert _chat(stack, alice, seed=3)[0] == "miss"
    assert _chat(stack, alice, seed=3)[0] == "hit"
    assert _chat(stack, bob, seed=3)[0] == "miss"
    assert _chat(stack, MASTER, seed=3)[0] == "miss"


def test_entries_expire_after_the_models_ttl(stack: Stack) -> None:
    assert _chat(stack, model=SHORT, seed=4)[0] == "miss"
    assert _chat(stack, model=SHORT, seed=4)[0] == "hit"
    states: list[str] = []
    wait_until(lambda: states.append(_chat(stack, model=SHORT, seed=4)[0]) or states[-1] == "miss",
               SHORT_TTL_S + 5, "the entry to expire", interval_s=0.1)
    assert states[:-1] == ["hit"] * (len(states) - 1)


def _raw_stream(stack: Stack, **fields: Any) -> tuple[str, bytes]:
    body = {"model": MODEL, "messages": MESSAGES, "stream": True, **fields}
    with httpx.stream("POST", stack.gateway_url + "/v1/chat/completions", json=body, trust_env=False, timeout=20,
                      headers={"authorization": f"Bearer {MASTER}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return response.headers["x-aiub-cache"], response.read()


def test_a_streaming_hit_replays_the_same_events(stack: Stack) -> None:
    before = _backend_calls(stack)
    live = _raw_stream(stack, seed=5, stream_options={"include_usage": True})
    replayed = _raw_stream(stack, seed=5, stream_options={"include_usage": True})
    assert (live[0], replayed[0]) == ("miss", "hit")
    assert replayed[1] == live[1] and live[1].endswith(b"data: [DONE]\n\n")
    assert _backend_calls(stack) == before + 1
    chunks = list(_client(stack).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, seed=5,
                                                         stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(
        f"tok{i} " for i in range(16))
    assert _backend_calls(stack) == before + 1


def test_a_hit_names_the_provider_that_first_answered(stack: Stack) -> None:
    providers = []
    for _ in range(2):
        raw = _client(stack).chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, seed=11)
        providers.append((raw.headers["x-aiub-cache"], raw.headers.get("x-aiub-provider")))
    assert providers[0][0] == "miss" and providers[0][1]
    assert providers[1] == ("hit", providers[0][1])
    with httpx.stream("POST", stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=20,
                      json={"model": MODEL, "messages": MESSAGES, "stream": True, "seed": 12},
                      headers={"authorization": f"Bearer {MASTER}"}) as live:
        live.read()
    replayed = httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=20,
                          json={"model": MODEL, "messages": MESSAGES, "stream": True, "seed": 12},
                          headers={"authorization": f"Bearer {MASTER}"})
    assert replayed.headers["x-aiub-cache"] == "hit"
    assert replayed.headers["x-aiub-provider"] == live.headers["x-aiub-provider"]


def test_a_stream_and_a_plain_request_do_not_share_entries(stack: Stack) -> None:
    assert _raw_stream(stack, seed=6)[0] == "miss"
    assert _chat(stack, seed=6)[0] == "miss"


def test_opt_out_skips_the_lookup(stack: Stack) -> None:
    _chat(stack, seed=7)
    assert _chat(stack, seed=7)[0] == "hit"
    before = _backend_calls(stack)
    raw = _client(stack).chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, seed=7, extra_headers={"cache-control": "no-cache"})
    assert raw.headers["x-aiub-cache"] == "bypass"
    raw = _client(stack).chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, seed=7, extra_body={"cache": {"no-cache": True}})
    assert raw.headers["x-aiub-cache"] == "bypass"
    assert _backend_calls(stack) == before + 2


def test_errors_and_truncated_streams_are_not_stored(stack: Stack) -> None:
    failing = {"seed": 8, "extra_body": {"simulator": {"error_rate": 1, "error_status": 500}}}
    for _ in range(2):
        before = _backend_calls(stack)
        with pytest.raises(openai.InternalServerError):
            _chat(stack, **failing)
        assert _backend_calls(stack) == before + 1
    cut = {"seed": 9, "extra_body": {"simulator": {"drop_after": 2}}}
    for _ in range(2):
        before = _backend_calls(stack)
        with pytest.raises(openai.APIError):
            list(_client(stack).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **cut))
        assert _backend_calls(stack) == before + 1

async def test_each_request_record_says_what_the_cache_told_the_client(stack: Stack) -> None:
    import msgspec
    import nats

    from shared import subjects
    from shared.messages import RequestRecord

    nc = await nats.connect(stack.nats_url)
    records = await nc.subscribe(subjects.REQUEST_EVENTS)
    key = _new_key(stack)
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"record {uuid.uuid4().hex}"}]}
    told: dict[str, str] = {}
    try:
        async with httpx.AsyncClient(timeout=20) as http:
            for extra in ({}, {}, {"cache-control": "no-cache"}):
                answer = await http.post(f"{stack.gateway_url}/v1/chat/completions", json=body,
                                         headers={"authorization": f"Bearer {key}", **extra})
                assert answer.status_code == 200
                told[answer.headers["x-request-id"]] = answer.headers["x-aiub-cache"]
        assert sorted(told.values()) == ["bypass", "hit", "miss"]
        recorded: dict[str, str] = {}
        async for message in records.messages:
            record = msgspec.json.decode(message.data, type=RequestRecord)
            if record.request_id in told:
                recorded[record.request_id] = record.cache
            if len(recorded) == len(told):
                break
        assert recorded == told
    finally:
        await nc.close()



def test_redis_stopped_mid_run_is_bypassed_and_hits_resume(stack: Stack, redis: RedisServer) -> None:
    if not redis.restartable:
        pytest.skip("REDIS_URL names an external Redis, which this test may not stop")
    _chat(stack, seed=10)
    assert _chat(stack, seed=10)[0] == "hit"
    errors_before = _metric(stack, "cache_errors_total")
    redis.stop()
    try:
        for _ in range(3):
            state, content = _chat(stack, seed=10)
            assert state == "bypass" and content
        assert _metric(stack, "cache_errors_total") >= errors_before + 3
    finally:
        redis.start()
    # Back (and empty): a request that reaches it stores, the next one hits. Its first sight of
    # Redis may be a store, not a lookup: a lookup bypassed inside the retry window, whose answer
    # arrives after the window, is stored, so the next lookup hits without a miss in between.
    wait_until(lambda: _chat(stack, seed=10)[0] != "bypass", 10, "the cache to use Redis again", interval_s=0.2)
    assert _chat(stack, seed=10)[0] == "hit"


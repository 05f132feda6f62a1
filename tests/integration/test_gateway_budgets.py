"""Budgets, usage and the admin API through the whole stack.

Two gateways on one Redis admit exactly a budget's worth of concurrent requests between them;
usage rows appear after requests (in Redis, and in JetStream KV without Redis) and `aiub usage`
prints them; the admin API refuses virtual keys and anonymous callers, and a key it creates works
for inference while its secret is never listed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.gateway.usage_limits import estimate_prompt_tokens
from tests.support.processes import Stack, wait_served
from tests.support.redis import RedisServer, redis_server

MASTER = "master-" + uuid.uuid4().hex
MODEL = "budget-model"
PRICE = 0.5  # per 1k tokens


def _stack(root: Path, nats_url: str, env: dict[str, str], gateways: int) -> tuple[Stack, list[str]]:
    s = Stack(root, nats_url)
    s.env.update(env)
    sim = s.simulator("openai", ["backend-model"])
    s.write_config(
        providers={"sim": {"type": "vllm", "base_url": sim.url, "max_concurrency": 64,
                           "models": {MODEL: {"backend_model": "backend-model", "cost_per_1k_tokens": PRICE}}}},
        mappings={"exact_matches": {MODEL: {"provider": "sim"}}},
        runtime={"deadlines": {"first_token_s": 10, "idle_s": 5, "total_s": 30, "retry_budget": 0},
                 "redis": {"prefix": f"test-{uuid.uuid4().hex[:8]}:"}, "cache": {"enabled": False}},
    )
    s.service("router")
    s.worker("sim")
    urls = []
    for _ in range(gateways):
        s.gateway("--state-dir", str(root / "state"))
        urls.append(s.gateway_url)
    for url in urls:
        wait_served(url, MODEL, MASTER)
    return s, urls


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture(scope="module")
def on_redis(nats_url: str, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Stack, list[str]]]:
    s, urls = _stack(Path(tmp_path_factory.mktemp("budgets")), nats_url,
                     {"REDIS_URL": redis.url, "AIUB_MASTER_KEY": MASTER}, 2)
    try:
        yield s, urls
    finally:
        s.stop()


def _admin(url: str, method: str, path: str, key: str | None = MASTER, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, url + path, headers=headers, trust_env=False, timeout=20, **kwargs)


def _usage_when(url: str, params: dict[str, str], requests: int) -> list[dict[str, Any]]:
    """The usage rows once they count `requests`: the admin API flushes its own gateway's tally
    first, another gateway writes its own within a second."""
    rows: list[dict[str, Any]] = []
    for _ in range(50):
        rows = _admin(url, "GET", "/admin/usage", params=params).json()["data"]
        if rows and rows[0]["requests"] >= requests:
            break
        time.sleep(0.1)
    return rows


def _body(words: int = 3, tokens: int = 4, ttft_ms: float = 0) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": " ".join(["word"] * words)}],
            "simulator": {"tokens": tokens, "ttft_ms": ttft_ms}}


def test_two_gateways_admit_exactly_a_token_budget_between_them(on_redis: tuple[Stack, list[str]]) -> None:
    _, urls = on_redis
    body = _body(ttft_ms=1500)  # every admission happens before any answer settles
    estimate = estimate_prompt_tokens(json.dumps(body).encode())
    n = 5
    created = _admin(urls[0], "POST", "/admin/keys", json={"name": "budgeted", "budget_tokens_day": n * estimate})
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(trust_env=False, timeout=30, headers={"authorization": f"Bearer {key}"},
                                     limits=httpx.Limits(max_connections=64)) as client:
            return await asyncio.gather(*(
                client.post(urls[i % 2] + "/v1/chat/completions", content=json.dumps(body),
                            headers={"content-type": "application/json"}) for i in range(3 * n)))

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * n + [429] * (2 * n)
    refused = [r for r in responses if r.status_code == 429]
    assert {str(r.request.url).rsplit("/v1", 1)[0] for r in refused} == set(urls)
    error = refused[0].json()["error"]
    assert error["code"] == "budget_exceeded" and error["type"] == "rate_limit_error"
    assert "daily token budget" in error["message"] and "resets at" in error["message"]
    assert 1 <= int(refused[0].headers["retry-after"]) <= 86_400
    # Settled: the budget holds what the answers reported (the estimates were given back), the
    # usage too, and the next request fits again exactly when that leaves room for its estimate.
    [row] = _usage_when(urls[0], {"key": created.json()["id"], "group_by": "key,model"}, n)
    total = sum(r.json()["usage"]["total_tokens"] for r in responses if r.status_code == 200)
    assert (row["requests"], row["total_tokens"]) == (n, total)
    assert row["cost"] == pytest.approx(total * PRICE / 1000)
    room = n * estimate - total
    big = _body(words=room)  # its estimate is more than the room left
    assert estimate_prompt_tokens(json.dumps(big).encode()) > room
    after = httpx.post(urls[1] + "/v1/chat/completions", json=big, trust_env=False, timeout=20,
                       headers={"authorization": f"Bearer {key}"})
    assert after.status_code == 429, after.text
    small = httpx.post(urls[0] + "/v1/chat/completions", json=_body(), trust_env=False, timeout=20,
                       headers={"authorization": f"Bearer {key}"})
    assert small.status_code == 200


def test_usage_rows_after_requests_and_aiub_usage(on_redis: tuple[Stack, list[str]]) -> None:
    stack, urls = on_redis
    key = _admin(urls[0], "POST", "/admin/keys", json={"name": "counted"}).json()
    for url in urls:
        r = httpx.post(url + "/v1/chat/completions", json=_body(words=7, tokens=11), trust_env=False, timeout=20,
                       headers={"authorization": f"Bearer {key['key']}"})
        assert r.status_code == 200, r.text
    stream = httpx.post(urls[0] + "/v1/chat/completions", json={**_body(words=7, tokens=11), "stream": True,
                        "stream_options": {"include_usage": True}}, trust_env=False, timeout=20,
                        headers={"authorization": f"Bearer {key['key']}"})
    assert stream.status_code == 200
    [row] = _usage_when(urls[0], {"key": key["id"], "group_by": "key,model,provider,day"}, 3)
    assert (row["model"], row["provider"], row["requests"], row["completion_tokens"]) == (MODEL, "sim", 3, 33)
    assert row["prompt_tokens"] == 3 * 7 and row["cost"] == pytest.approx(3 * 18 * PRICE / 1000)
    out = subprocess.run([sys.executable, "-m", "cli", "usage", "--config", str(stack.config_dir), "--key", key["id"],
                          "--by", "key,provider"], env=stack.env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["key", "provider"]
    assert lines[1].split() == [key["id"], "sim", "3", "21", "33", "54", f"{3 * 18 * PRICE / 1000:.4f}"]
    as_json = subprocess.run([sys.executable, "-m", "cli", "usage", "--config", str(stack.config_dir), "--json",
                              "--key", key["id"]], env=stack.env, capture_output=True, text=True, timeout=30)
    assert json.loads(as_json.stdout)["data"][0]["total_tokens"] == 54


def test_the_admin_api_is_the_master_keys_alone(on_redis: tuple[Stack, list[str]]) -> None:
    _, urls = on_redis
    url = urls[0]
    created = _admin(url, "POST", "/admin/keys", json={"models": [MODEL], "rpm": 100})
    assert created.status_code == 201
    secret, key_id = created.json()["key"], created.json()["id"]
    for path in ("/admin/keys", "/admin/usage", "/admin/providers", f"/admin/keys/{key_id}", "/admin/config",
                 "/admin/config/1"):
        anonymous = _admin(url, "GET", path, key=None)
        assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"
        assert _admin(url, "GET", path, key="sk-aiub-000000000000_" + "0" * 64).status_code == 401
        virtual = _admin(url, "GET", path, key=secret)
        assert virtual.status_code == 403 and virtual.json()["error"]["type"] == "permission_error"
    assert _admin(url, "DELETE", f"/admin/keys/{key_id}", key=secret).status_code == 403
    # The key it made works for inference; its secret is never listed.
    assert httpx.post(url + "/v1/chat/completions", json=_body(), trust_env=False, timeout=20,
                      headers={"authorization": f"Bearer {secret}"}).status_code == 200
    listing = _admin(url, "GET", "/admin/keys")
    assert listing.status_code == 200 and key_id in listing.text
    assert secret not in listing.text and secret.split("_")[1] not in listing.text and "hash" not in listing.text
    updated = _admin(url, "PATCH", f"/admin/keys/{key_id}", json={"rpm": None, "budget_tokens_month": 10})
    assert updated.json()["rpm"] is None and updated.json()["budget_tokens_month"] == 10
    assert _admin(url, "PATCH", f"/admin/keys/{key_id}", json={"rmp": 1}).status_code == 400
    wrong_type = _admin(url, "PATCH", f"/admin/keys/{key_id}", json={"rpm": "many"})
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["param"] == "rpm"
    assert ".py" not in wrong_type.text and "/" not in wrong_type.json()["error"]["message"]
    # `true` read as 1, and 1e400 as an infinite budget stored as none
    for odd in ({"rpm": True}, {"budget_cost_day": 1e400}, {"budget_tokens_day": 1.5}):
        refused = httpx.patch(url + f"/admin/keys/{key_id}", content=json.dumps(odd).replace("Infinity", "1e400"),
                              headers={"content-type": "application/json", "authorization": f"Bearer {MASTER}"},
                              trust_env=False, timeout=20)
        assert refused.status_code == 400, (odd, refused.text)
    far = _admin(url, "POST", "/admin/keys", json={"name": "far", "expires": "99999999d"})
    assert far.status_code == 400 and far.json()["error"]["param"] == "expires", far.text
    assert _admin(url, "DELETE", f"/admin/keys/{key_id}").json()["status"] == "revoked"
    after = _admin(url, "PATCH", f"/admin/keys/{key_id}", json={"rpm": 5})
    assert after.status_code == 409 and after.json()["error"]["code"] == "key_revoked"
    assert httpx.post(url + "/v1/chat/completions", json=_body(), trust_env=False, timeout=20,
                      headers={"authorization": f"Bearer {secret}"}).status_code == 401
    assert _admin(url, "GET", "/admin/keys/ffffffffffff").status_code == 404
    providers = _admin(url, "GET", "/admin/providers")
    assert providers.status_code == 200 and providers.json()["object"] == "list"
    schema = httpx.get(url + "/openapi.json", trust_env=False, timeout=10).json()
    assert {"/admin/keys", "/admin/keys/{key_id}", "/admin/usage", "/admin/providers", "/admin/config",
            "/admin/config/{number}"} <= set(schema["paths"])
    assert schema["paths"]["/admin/keys"]["post"]["tags"] == ["admin"]
    assert "CreatedKey" in schema["components"]["schemas"]


def test_the_admin_api_reads_config_revisions(on_redis: tuple[Stack, list[str]]) -> None:
    stack, urls = on_redis
    before = _admin(urls[0], "GET", "/admin/config")
    assert before.status_code == 200, before.text
    assert before.json()["data"] == [] and before.json()["current"] is None
    pushed = subprocess.run([sys.executable, "-m", "cli", "config", "--nats", stack.nats_url, "push",
                             str(stack.config_dir)], env=stack.env, capture_output=True, text=True, timeout=60)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    history = _admin(urls[1], "GET", "/admin/config").json()  # any gateway: the revisions are on the bus
    assert [(r["number"], r["current"]) for r in history["data"]] == [(1, True)] and history["current"] == 1
    assert "providers.yaml" in history["data"][0]["files"] and isinstance(history["gateway_runs"], int)
    one = _admin(urls[0], "GET", "/admin/config/1").json()
    assert one["texts"]["providers.yaml"] == (stack.config_dir / "providers.yaml").read_text()
    assert one["source"].startswith("aiub config push")
    missing = _admin(urls[0], "GET", "/admin/config/9")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "revision_not_found"


def test_without_redis_usage_is_kept_in_jetstream_and_auth_off_refuses_the_admin_api(
        nats_url: str, tmp_path: Path) -> None:
    s, [url] = _stack(tmp_path, nats_url, {"REDIS_URL": "", "AIUB_MASTER_KEY": ""}, 1)
    try:
        refused = _admin(url, "GET", "/admin/keys", key=None)
        assert refused.status_code == 401 and "auth is off" in refused.json()["error"]["message"]
        assert _admin(url, "GET", "/admin/keys").status_code == 401  # even with a key in hand
        for _ in range(2):
            assert httpx.post(url + "/v1/chat/completions", json=_body(words=2, tokens=5), trust_env=False,
                              timeout=20).status_code == 200
        rows: list[dict[str, Any]] = []
        for _ in range(50):
            out = subprocess.run([sys.executable, "-m", "cli", "usage", "--config", str(s.config_dir), "--json",
                                  "--nats", nats_url, "--key", "anonymous"], env=s.env, capture_output=True,
                                 text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            rows = json.loads(out.stdout)["data"]
            if rows and rows[0]["requests"] >= 3:  # the readiness probe's answer counts too
                break
            time.sleep(0.2)
        assert rows[0]["key"] == "anonymous" and rows[0]["requests"] >= 3
    finally:
        s.stop()

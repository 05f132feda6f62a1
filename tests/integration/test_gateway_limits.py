"""Request limits and the in-process policies (no Redis): body size, headers, `max_tokens` caps,
CORS, in-process rate limits and the in-process LRU cache, against one real stack.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from shared.embedded_nats import free_port
from tests.support.processes import Simulator, Stack, wait_served, wait_until

MODEL, CAPPED, LIMITED = "limits-model", "capped-model", "limited-model"
MESSAGES = [{"role": "user", "content": "hello"}]
MAX_BODY = 64 * 1024
ORIGIN = "https://app.example"

@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("limits")), nats_url)
    for name in ("REDIS_URL", "AIUB_MASTER_KEY"):
        s.env.pop(name, None)
    sim = s.simulator("openai", ["backend-model"])
    models = {name: {"backend_model": "backend-model"} for name in (MODEL, CAPPED, LIMITED)}
    runtime = {"deadlines": {"first_token_s": 5, "idle_s": 3, "total_s": 20, "retry_budget": 0},
               "gateway": {"max_body_bytes": MAX_BODY},
               "limits": {"max_header_bytes": 16 * 1024, "max_headers": 50,
                          "models": {CAPPED: {"max_tokens": 8}, LIMITED: {"rpm": 3}}}}
    s.write_config(
        providers={"sim": {"type": "vllm", "base_url": sim.url, "max_concurrency": 16, "models": models}},
        mappings={"exact_matches": {name: {"provider": "sim"} for name in models}},
        runtime=runtime,
    )
    s.sim = sim
    s.runtime = runtime
    s.service("router")
    s.worker("sim")
    s.gateway()
    wait_served(s.gateway_url, MODEL)
    try:
        yield s
    finally:
        s.stop()


def _post(url: str, body: dict[str, object], **kwargs: object) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=body, trust_env=False, timeout=20, **kwargs)  # type: ignore[arg-type]


def _backend_calls(stack: Stack) -> int:
    sim: Simulator = stack.sim
    return int(sim.stats()["requests"])


def _raw_request(stack: Stack, head: bytes, body: bytes = b"") -> bytes:
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        sock.settimeout(5)
        return sock.recv(65536)


def test_oversized_bodies_are_413_with_or_without_a_length(stack: Stack) -> None:
    before = _backend_calls(stack)
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * MAX_BODY}]}
    response = _post(stack.gateway_url, big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 16384
    reply = _raw_request(stack, head, b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(5)))
    assert reply.startswith(b"HTTP/1.1 413")
    assert _backend_calls(stack) == before


def test_headers_over_the_limit_are_431_before_the_request_runs(stack: Stack) -> None:
    before = _backend_calls(stack)
    body = json.dumps({"model": MODEL, "messages": MESSAGES}).encode()
    start = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
    too_big = _raw_request(stack, start + b"X-Big: " + b"y" * 20_000 + b"\r\n\r\n", body)
    too_many = _raw_request(stack, start + b"".join(b"X-H%d: v\r\n" % i for i in range(60)) + b"\r\n", body)
    for reply in (too_big, too_many):
        assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "headers_too_large"
    # An endless header is cut off once it passes the limit, not buffered until it ends.
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(start + b"X-Endless: ")
        sock.settimeout(0.05)
        reply = b""
        for _ in range(64):  # 256 KiB at most, 16 times the limit
            try:
                sock.sendall(b"z" * 4096)
                reply = sock.recv(4096)
            except TimeoutError:
                continue
            if reply:
                break
    assert reply.startswith(b"HTTP/1.1 431")
    assert _backend_calls(stack) == before
    assert _post(stack.gateway_url, {"model": MODEL, "messages": MESSAGES},
                 headers={"x-fine": "v" * 8000}).status_code == 200


def test_bodies_larger_than_the_header_limit_are_not_mistaken_for_headers(stack: Stack) -> None:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * 40_000}]}).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    for parts in ([head + body], [head, body], [head + body[:100], body[100:]]):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            for part in parts:  # separate writes: most likely separate reads on the server
                sock.sendall(part)
            reply = b""
            while b"\r\n\r\n" not in reply:
                reply += sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200"), (len(parts), reply[:120])


def test_max_tokens_is_capped_per_model(stack: Stack) -> None:
    over = _post(stack.gateway_url, {"model": CAPPED, "messages": MESSAGES, "max_tokens": 9})
    assert over.status_code == 400
    assert over.json()["error"]["param"] == "max_tokens"
    capped = _post(stack.gateway_url, {"model": CAPPED, "messages": MESSAGES}).json()
    assert capped["usage"]["completion_tokens"] == 8
    assert capped["choices"][0]["finish_reason"] == "length"
    assert _post(stack.gateway_url, {"model": MODEL, "messages": MESSAGES, "max_tokens": 9}).status_code == 200


def test_in_process_rate_limit_per_model(stack: Stack) -> None:
    responses = [_post(stack.gateway_url, {"model": LIMITED, "messages": MESSAGES, "seed": i}) for i in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses] == ["2", "1", "0", "0"]
    refused = responses[-1]
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert 1 <= int(refused.headers["retry-after"]) <= 21
    assert refused.json()["error"]["type"] == "rate_limit_error"


def _metric(stack: Stack, name: str) -> float:
    text = httpx.get(stack.gateway_url + "/metrics", trust_env=False, timeout=5).text
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def test_in_process_cache_hits_and_reports_metrics(stack: Stack) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "seed": 42}
    first = _post(stack.gateway_url, body)
    before, hits = _backend_calls(stack), _metric(stack, "cache_hits_total")
    second = _post(stack.gateway_url, body)
    assert (first.headers["x-aiub-cache"], second.headers["x-aiub-cache"]) == ("miss", "hit")
    assert second.content == first.content and _backend_calls(stack) == before
    assert _metric(stack, "cache_hits_total") == hits + 1
    assert 0 < _metric(stack, "cache_hit_rate") <= 1


def test_cors_is_off_unless_origins_are_configured(stack: Stack) -> None:
    preflight = {"origin": ORIGIN, "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization,content-type"}
    off = httpx.options(stack.gateway_url + "/v1/chat/completions", headers=preflight, trust_env=False)
    assert "access-control-allow-origin" not in off.headers
    plain = _post(stack.gateway_url, {"model": MODEL, "messages": MESSAGES}, headers={"origin": ORIGIN})
    assert "access-control-allow-origin" not in plain.headers

    other = stack.root / "cors-config"
    shutil.copytree(stack.config_dir, other)
    runtime = {**stack.runtime, "gateway": {"max_body_bytes": MAX_BODY, "cors_origins": [ORIGIN]}}
    (other / "aiub.yaml").write_text(yaml.safe_dump(runtime))
    port = free_port()
    stack.spawn("gateway-cors", "gateway", "--config", str(other), "--port", str(port))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(url + "/ready", trust_env=False, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 30, "the CORS gateway to be ready")
    on = httpx.options(url + "/v1/chat/completions", headers=preflight, trust_env=False)
    assert on.status_code == 200 and on.headers["access-control-allow-origin"] == ORIGIN
    served = _post(url, {"model": MODEL, "messages": MESSAGES}, headers={"origin": ORIGIN})
    assert served.headers["access-control-allow-origin"] == ORIGIN
    assert "x-aiub-cache" in served.headers["access-control-expose-headers"]
    stranger = httpx.options(url + "/v1/chat/completions", headers={**preflight, "origin": "https://evil.example"},
                             trust_env=False)
    assert "access-control-allow-origin" not in stranger.headers

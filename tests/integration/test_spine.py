"""One request end to end: the official OpenAI SDK → gateway → NATS → router → worker → simulator.

Every process is real (each its own OS process) and talks over real sockets.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.processes import Simulator, Stack, wait_until

EXPECTED = "".join(f"tok{i} " for i in range(16))
IDLE_S = 1.5
BODY_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("spine")), nats_url)
    openai_sim = s.simulator("openai", ["Qwen/Qwen2.5-Coder-7B-Instruct-AWQ", "victim-model", "unrouted-file.gguf"])
    ollama_sim = s.simulator("ollama", ["llama3.1:8b"])
    s.write_config(
        providers={
            "vllm": {"type": "vllm", "base_url": openai_sim.url, "max_concurrency": 64,
                     "models": {"qwen-coder": {"backend_model": "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"}}},
            "ollama": {"type": "ollama", "base_url": ollama_sim.url, "max_concurrency": 64},
            "victim": {"type": "vllm", "base_url": openai_sim.url, "max_concurrency": 8},
            "ghost": {"type": "vllm", "base_url": "http://127.0.0.1:9"},
        },
        mappings={"exact_matches": {"qwen-coder": {"provider": "vllm"}, "llama3.1:8b": {"provider": "ollama"},
                                    "victim-model": {"provider": "victim"}, "ghost-model": {"provider": "ghost"}},
                  "patterns": [{"pattern": "Qwen/Qwen2.5-*", "provider": "vllm"}]},
        runtime={"deadlines": {"first_token_s": 3, "idle_s": IDLE_S, "total_s": 30, "retry_budget": 0},
                 "gateway": {"max_body_bytes": 64 * 1024, "body_timeout_s": BODY_TIMEOUT_S},
                 "limits": {"header_timeout_s": BODY_TIMEOUT_S}},
    )
    s.openai_sim, s.ollama_sim = openai_sim, ollama_sim
    s.service("router")
    s.worker("vllm", "ollama")
    s.worker("victim")  # serves victim-model, which /v1/models must list
    s.gateway()
    try:
        s.wait_serving("qwen-coder")
        s.wait_serving("llama3.1:8b")
        s.wait_serving("victim-model")
        yield s
        assert all(p.alive for p in s.processes if p.name in ("gateway", "router")), s.logs()
    finally:
        s.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack.gateway_url + "/v1", api_key="none", max_retries=0, timeout=20) as sdk:
        yield sdk


def _sim(stack: Stack, name: str) -> Simulator:
    return getattr(stack, name)  # type: ignore[no-any-return]


def test_chat_json_through_every_hop(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="llama3.1:8b", messages=[{"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content == EXPECTED
    assert reply.model == "llama3.1:8b"
    assert reply.usage is not None and reply.usage.completion_tokens == 16


def test_backend_model_name_is_mapped_and_hidden(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="qwen-coder", messages=[{"role": "user", "content": "Hi"}])
    assert reply.model == "qwen-coder"
    assert reply.choices[0].message.content == EXPECTED


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="qwen-coder", messages=[{"role": "user", "content": "Hello"}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EXPECTED
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16
    assert {c.model for c in chunks} == {"qwen-coder"}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]


def test_raw_sse_ends_with_done(stack: Stack) -> None:
    with httpx.stream("POST", stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=10,
                      json={"model": "llama3.1:8b", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                      headers={"x-request-id": "req_abc123", "cache-control": "no-cache"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"] == "req_abc123"
        assert response.headers["x-aiub-provider"] == "ollama"
        body = response.read().decode()
    events = [e for e in body.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_completions_and_embeddings_pass_through(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="qwen-coder", prompt="def f():", max_tokens=4)
    assert completion.choices[0].text == "tok0 tok1 tok2 tok3 "
    embedded = client.embeddings.create(model="qwen-coder", input=["a", "b", "c"])
    assert [d.index for d in embedded.data] == [0, 1, 2]
    assert len(embedded.data[0].embedding) > 0


def test_models_lists_configured_names(client: openai.OpenAI) -> None:
    models = client.models.list().data
    names = [m.id for m in models]
    assert {"qwen-coder", "llama3.1:8b", "victim-model", "ghost-model"} <= set(names)
    # ...then what the backends say they serve, asked through each provider's worker, where a
    # request for that name would reach the provider serving it; a name no rule routes is not offered.
    assert "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ" in names
    assert "unrouted-file.gguf" not in names
    assert client.chat.completions.create(model="Qwen/Qwen2.5-Coder-7B-Instruct-AWQ",
                                          messages=[{"role": "user", "content": "Hi"}]).choices


def test_health_and_ready(stack: Stack) -> None:
    assert httpx.get(stack.gateway_url + "/health", trust_env=False).json() == {"status": "ok"}
    ready = httpx.get(stack.gateway_url + "/ready", trust_env=False)
    assert ready.status_code == 200 and ready.json()["nats_connected"] is True


def test_unknown_model_is_404_at_once(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - started < 1.0
    assert caught.value.code == "model_not_found"


def test_backend_404_for_unknown_backend_model(stack: Stack) -> None:
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, json={
        "model": "Qwen/not-served", "messages": [{"role": "user", "content": "x"}]})
    # Not routed at all (no pattern matches): our 404, in OpenAI's shape.
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(("body", "param"), [
    (b"{not json", None),
    (b"[]", "body"),
    (b'{"model": "qwen-coder"}', "messages"),
    (b'{"model": "", "messages": [{"role": "user", "content": "x"}]}', "model"),
    (b'{"model": "qwen-coder", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
    (b'{"model": "qwen-coder", "messages": [{"content": "x"}]}', "messages[0]"),
    (b'{"model": "qwen-coder", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', "max_tokens"),
    (b'{"model": "qwen-coder", "messages": [{"role": "user", "content": "\xff\xfe"}]}', None),
    (b'{"model": "qwen-coder", "messages": [{"role": "user", "content": "x"}], "x": ' + b"[" * 600 + b"]" * 600
     + b"}", "body"),
    (b"[" * 50_000, "body"),  # past msgspec's own recursion guard
])
def test_bad_input_is_400_in_openai_shape_and_the_connection_stays_usable(stack: Stack, body: bytes,
                                                                          param: str | None) -> None:
    with httpx.Client(base_url=stack.gateway_url, trust_env=False, timeout=10) as http:
        response = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
        assert error["param"] == param
        assert http.get("/health").status_code == 200  # same keep-alive connection


def test_forgiving_spellings_of_a_valid_request(stack: Stack, client: openai.OpenAI) -> None:
    body = {"model": "qwen-coder", "messages": [{"role": "user", "content": "x"}], "stream": None}
    for path in ("/v1/chat/completions", "/v1/chat/completions/"):
        response = httpx.post(stack.gateway_url + path, json=body, trust_env=False, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == EXPECTED
    assert client.models.retrieve("qwen-coder").id == "qwen-coder"
    assert client.models.retrieve("Qwen/Qwen2.5-Coder-7B-Instruct-AWQ").id == "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nothing-like-it")


@pytest.mark.parametrize("sent", [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\": ",  # body stalls
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le",  # headers stall
    b"",  # nothing at all after connecting
])
def test_a_request_that_stops_arriving_is_408_and_the_connection_closes(stack: Stack, sent: bytes) -> None:
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(sent)
        sock.settimeout(BODY_TIMEOUT_S + 5)
        answer = b""
        while chunk := sock.recv(4096):  # until the gateway closes: the rest of a body must not be parsed
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"code":"request_timeout"' in answer and b"connection: close" in answer.lower()


def test_a_compressed_body_is_415_naming_the_encoding(stack: Stack) -> None:
    body = gzip.compress(b'{"model": "qwen-coder", "messages": [{"role": "user", "content": "x"}]}')
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", content=body, trust_env=False,
                          headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_content_encoding"
    assert "'gzip'" in response.json()["error"]["message"]


def test_head_answers_where_get_does_without_a_body(stack: Stack) -> None:
    for path in ("/v1/models", "/health", "/ready", "/metrics", "/v1/models/qwen-coder"):
        response = httpx.head(stack.gateway_url + path, trust_env=False)
        assert response.status_code == 200 and response.content == b"", path


def test_a_wrong_method_is_405_saying_which_is_allowed(stack: Stack) -> None:
    response = httpx.get(stack.gateway_url + "/v1/chat/completions", trust_env=False)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_route_is_404_in_openai_shape(stack: Stack) -> None:
    response = httpx.get(stack.gateway_url + "/v1/nothing", trust_env=False)
    assert response.status_code == 404
    assert "error" in response.json()
    assert response.json()["error"]["type"] == "invalid_request_error"  # what OpenAI's own 404s carry


def test_body_over_limit_is_413_with_content_length(stack: Stack) -> None:
    big = b'{"model": "qwen-coder", "messages": [{"role": "user", "content": "' + b"x" * 70_000 + b'"}]}'
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", content=big, trust_env=False)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_body_over_limit_is_413_before_it_is_all_read_when_chunked(stack: Stack) -> None:
    """A chunked upload that never ends still gets its 413: the gateway stops reading at the limit."""
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16384
        for _ in range(6):  # 96 KiB, over the 64 KiB limit; the rest of the body never comes
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sock.settimeout(5)
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413")


def test_no_worker_for_provider_is_503_at_once(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="ghost-model", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    assert "ghost" in caught.value.message
    assert time.monotonic() - started < 1.0


def test_stream_that_hangs_before_first_token_is_504(stack: Stack) -> None:
    started = time.monotonic()
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=20, json={
        "model": "qwen-coder", "stream": True, "messages": [{"role": "user", "content": "x"}],
        "simulator": {"hang": True}})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout"
    assert 2.5 < time.monotonic() - started < 6  # first_token_s is 3


def test_a_non_streaming_answer_may_take_longer_than_a_first_token(client: openai.OpenAI) -> None:
    """Its worker's heartbeats keep it alive past first_token_s; only the request's deadline bounds it."""
    reply = client.chat.completions.create(model="qwen-coder", messages=[{"role": "user", "content": "slow"}],
                                           extra_body={"simulator": {"ttft_ms": 4_000}},
                                           extra_headers={"cache-control": "no-store"})
    assert reply.choices[0].message.content == EXPECTED


def test_a_non_streaming_request_ends_at_its_deadline(stack: Stack) -> None:
    started = time.monotonic()
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=20, json={
        "model": "qwen-coder", "messages": [{"role": "user", "content": "deadline"}], "simulator": {"hang": True}},
        headers={"x-stainless-read-timeout": "2"})
    assert response.status_code == 504
    assert 1.5 < time.monotonic() - started < 4


def test_backend_error_keeps_status_and_retry_after(stack: Stack) -> None:
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=10, json={
        "model": "qwen-coder", "messages": [{"role": "user", "content": "x"}],
        "simulator": {"error_rate": 1, "error_status": 429, "retry_after": 7}})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert "127.0.0.1" not in response.text and "http://" not in response.text


def test_failure_after_first_chunk_is_an_error_event_not_a_clean_finish(client: openai.OpenAI) -> None:
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
                model="qwen-coder", messages=[{"role": "user", "content": "x"}], stream=True,
                extra_body={"simulator": {"drop_after": 3, "itl_ms": 5}}):
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "tok0 tok1 tok2 "


def test_client_disconnect_closes_backend_connection_within_a_second(stack: Stack) -> None:
    sim = _sim(stack, "openai_sim")
    aborted_before = sim.stats()["aborted"]
    with httpx.stream("POST", stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=10, json={
            "model": "qwen-coder", "stream": True, "messages": [{"role": "user", "content": "x"}],
            "simulator": {"tokens": 10_000, "itl_ms": 20}}) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    gone_at = time.monotonic()
    wait_until(lambda: sim.stats()["aborted"] > aborted_before, 1.0, "the backend connection to close")
    assert time.monotonic() - gone_at <= 1.0


@pytest.mark.parametrize("stream", [False, True])
def test_client_gone_before_the_first_token_closes_the_backend_connection(stack: Stack, stream: bool) -> None:
    """A careless client gives up on a slow (or non-streaming) answer: the backend stops too."""
    sim = _sim(stack, "openai_sim")
    wait_until(lambda: sim.stats()["active"] == 0, 10, "no backend request in flight")  # none to be counted
    aborted_before = sim.stats()["aborted"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=0.6, json={
            "model": "qwen-coder", "stream": stream, "messages": [{"role": "user", "content": f"gone {stream}"}],
            "simulator": {"hang": True}})
    gone_at = time.monotonic()
    wait_until(lambda: sim.stats()["aborted"] > aborted_before, 1.5, "the backend connection to close")
    assert time.monotonic() - gone_at <= 1.5


async def test_64_concurrent_streams_all_finish(stack: Stack) -> None:
    client = openai.AsyncOpenAI(base_url=stack.gateway_url + "/v1", api_key="none", max_retries=0, timeout=30)

    async def one(i: int) -> str:
        stream = await client.chat.completions.create(
            model="qwen-coder" if i % 2 else "llama3.1:8b", stream=True,
            messages=[{"role": "user", "content": f"n{i}"}], extra_body={"simulator": {"itl_ms": 2}})
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    texts = await asyncio.gather(*(one(i) for i in range(64)))
    assert texts == [EXPECTED] * 64
    await client.close()

"""The simulator over real sockets, driven by httpx, raw streams and the official openai SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import orjson
import pytest
import pytest_asyncio
from openai.types.chat import ChatCompletionMessageParam

from services.simulator.knobs import Knobs
from services.simulator.openai_wire import embed_vector
from services.simulator.server import Simulator, SimulatorSettings, start_simulator

pytestmark = pytest.mark.asyncio

OPENAI_MODEL = "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"
OLLAMA_MODEL = "llama3.1:8b"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "say something"}]


@pytest_asyncio.fixture
async def oai() -> AsyncIterator[Simulator]:
    async with await start_simulator(SimulatorSettings("openai", knobs=Knobs(tokens=5))) as sim:
        yield sim


@pytest_asyncio.fixture
async def oll() -> AsyncIterator[Simulator]:
    async with await start_simulator(SimulatorSettings("ollama", knobs=Knobs(tokens=4))) as sim:
        yield sim


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def sdk(sim: Simulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key="x", max_retries=0, timeout=5)


async def until(check: Callable[[], bool], deadline_s: float = 2.0) -> None:
    """Poll `check` until it holds; fail after the deadline instead of sleeping blindly."""
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError("condition not met within deadline")
        await asyncio.sleep(0.01)


# ----------------------------------------------------------------------------- OpenAI via SDK
async def test_sdk_chat_json(oai: Simulator) -> None:
    async with sdk(oai) as client:
        r = await client.chat.completions.create(model=OPENAI_MODEL, messages=USER)
        capped = await client.chat.completions.create(model=OPENAI_MODEL, messages=USER,
                                                      max_tokens=2)
    assert r.id.startswith("chatcmpl-") and r.model == OPENAI_MODEL
    assert r.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4 "
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (2, 5)
    assert capped.choices[0].finish_reason == "length"
    assert capped.choices[0].message.content == "tok0 tok1 "


async def test_sdk_chat_stream_with_usage(oai: Simulator) -> None:
    async with sdk(oai) as client:
        stream = await client.chat.completions.create(
            model=OPENAI_MODEL, messages=USER, stream=True,
            stream_options={"include_usage": True})
        chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 7


async def test_sdk_completions_embeddings_models(oai: Simulator) -> None:
    async with sdk(oai) as client:
        comp = await client.completions.create(model=OPENAI_MODEL, prompt=["a b", "c"],
                                               max_tokens=3)
        emb = await client.embeddings.create(model=OPENAI_MODEL, input=["x", "y", "x"])
        models = await client.models.list()
    assert [c.text for c in comp.choices] == ["tok0 tok1 tok2 "] * 2
    assert comp.choices[0].finish_reason == "length"
    # the SDK asks for base64 and decodes it itself
    vecs = [d.embedding for d in emb.data]
    assert len(vecs) == 3 and vecs[0] == vecs[2] != vecs[1]
    assert vecs[1] == pytest.approx(embed_vector("y"), rel=1e-6)
    assert [m.id for m in models.data] == [OPENAI_MODEL]


async def test_sdk_unknown_model_is_404(oai: Simulator) -> None:
    async with sdk(oai) as client:
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="gpt-nope", messages=USER)
    assert info.value.status_code == 404
    assert info.value.body == {"message": "The model `gpt-nope` does not exist.",
                               "type": "NotFoundError", "param": "model", "code": 404}


async def test_openai_http_errors(oai: Simulator, http: httpx.AsyncClient) -> None:
    bad = await http.post(oai.url + "/v1/chat/completions", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "BadRequestError"
    missing = await http.post(oai.url + "/v1/chat/completions", json={"model": OPENAI_MODEL})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"
    assert (await http.get(oai.url + "/nope")).status_code == 404
    wrong = await http.get(oai.url + "/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert (await http.get(oai.url + "/health")).status_code == 200
    assert (await http.get(oai.url + "/api/tags")).status_code == 404  # not an Ollama


# ----------------------------------------------------------------------------- Ollama native
async def test_ollama_chat_ndjson_stream(oll: Simulator, http: httpx.AsyncClient) -> None:
    body = {"model": OLLAMA_MODEL, "messages": USER}  # no "stream": Ollama streams by default
    async with http.stream("POST", oll.url + "/api/chat", json=body) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = [orjson.loads(line) async for line in r.aiter_lines() if line]
    assert [x["message"]["content"] for x in lines] == ["tok0 ", "tok1 ", "tok2 ", "tok3 ", ""]
    assert [x["done"] for x in lines] == [False] * 4 + [True]
    assert lines[-1]["done_reason"] == "stop" and lines[-1]["eval_count"] == 4


async def test_ollama_chat_generate_non_stream(oll: Simulator, http: httpx.AsyncClient) -> None:
    chat = await http.post(oll.url + "/api/chat", json={
        "model": OLLAMA_MODEL, "messages": USER, "stream": False, "options": {"num_predict": 2}})
    assert chat.json()["message"] == {"role": "assistant", "content": "tok0 tok1 "}
    assert chat.json()["done_reason"] == "length"
    gen = await http.post(oll.url + "/api/generate", json={
        "model": "qwen2.5-coder:7b", "prompt": "hi", "stream": False})
    assert gen.json()["response"] == "tok0 tok1 tok2 tok3 " and gen.json()["done"] is True


async def test_ollama_embed_tags_root(oll: Simulator, http: httpx.AsyncClient) -> None:
    emb = await http.post(oll.url + "/api/embed", json={"model": OLLAMA_MODEL, "input": ["a", "b"]})
    assert emb.json()["embeddings"] == [embed_vector("a"), embed_vector("b")]
    tags = (await http.get(oll.url + "/api/tags")).json()
    assert [m["name"] for m in tags["models"]] == [OLLAMA_MODEL, "qwen2.5-coder:7b"]
    root = await http.get(oll.url + "/")
    assert root.text == "Ollama is running"


async def test_ollama_unknown_model_404(oll: Simulator, http: httpx.AsyncClient) -> None:
    r = await http.post(oll.url + "/api/chat", json={"model": "nope:1b", "messages": USER})
    assert r.status_code == 404
    assert r.json() == {"error": 'model "nope:1b" not found, try pulling it first'}
    async with sdk(oll) as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="nope:1b", messages=USER)


async def test_ollama_serves_openai_v1(oll: Simulator) -> None:
    async with sdk(oll) as client:
        r = await client.chat.completions.create(model=OLLAMA_MODEL, messages=USER)
        models = await client.models.list()
    assert r.choices[0].message.content == "tok0 tok1 tok2 tok3 "
    assert {m.id for m in models.data} == {OLLAMA_MODEL, "qwen2.5-coder:7b"}


# ----------------------------------------------------------------------------- knobs and faults
async def test_injected_429_with_retry_after(oai: Simulator, http: httpx.AsyncClient) -> None:
    r = await http.post(oai.url + "/_sim/knobs", json={"error_rate": 1, "error_status": 429,
                                                       "retry_after": 2})
    assert r.json()["error_status"] == 429
    err = await http.post(oai.url + "/v1/chat/completions",
                          json={"model": OPENAI_MODEL, "messages": USER})
    assert err.status_code == 429 and err.headers["retry-after"] == "2"
    assert err.json()["error"]["code"] == 429
    assert oai.stats["injected_errors"] == 1
    # models listing is not a model request: never fails
    assert (await http.get(oai.url + "/v1/models")).status_code == 200


async def test_retry_after_only_with_429_and_503(oll: Simulator, http: httpx.AsyncClient) -> None:
    oll.set_knobs(error_rate=1.0, error_status=500, retry_after=3)
    r = await http.post(oll.url + "/api/chat", json={"model": OLLAMA_MODEL, "messages": USER})
    assert r.status_code == 500 and "retry-after" not in r.headers
    assert "error" in r.json()


async def test_drop_after_cuts_stream(oai: Simulator, http: httpx.AsyncClient) -> None:
    body = {"model": OPENAI_MODEL, "messages": USER, "stream": True,
            "simulator": {"drop_after": 2}}
    received: list[str] = []
    with pytest.raises(httpx.TransportError):
        async with http.stream("POST", oai.url + "/v1/chat/completions", json=body) as r:
            async for line in r.aiter_lines():
                received.append(line)
    data = [orjson.loads(x[6:]) for x in received if x.startswith("data: {")]
    assert [d["choices"][0]["delta"].get("content") for d in data] == ["", "tok0 ", "tok1 "]
    assert oai.stats["dropped"] == 1


async def test_drop_after_paced_and_non_stream(oll: Simulator, http: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.TransportError):
        await http.post(oll.url + "/api/chat", json={
            "model": OLLAMA_MODEL, "messages": USER, "stream": False,
            "simulator": {"drop_after": 0}})
    lines: list[str] = []
    with pytest.raises(httpx.TransportError):
        async with http.stream("POST", oll.url + "/api/chat", json={
                "model": OLLAMA_MODEL, "messages": USER,
                "simulator": {"drop_after": 1, "itl_ms": 1}}) as r:
            async for line in r.aiter_lines():
                lines.append(line)
    assert [orjson.loads(x)["message"]["content"] for x in lines if x] == ["tok0 "]
    assert oll.stats["dropped"] == 2


async def raw_post(sim: Simulator, path: str, body: dict[str, Any]
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    payload = orjson.dumps(body)
    writer.write(b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 b"content-length: %d\r\n\r\n%s" % (path.encode(), len(payload), payload))
    await writer.drain()
    return reader, writer


async def test_hang_then_client_close_counts_aborted(oai: Simulator) -> None:
    reader, writer = await raw_post(oai, "/v1/chat/completions", {
        "model": OPENAI_MODEL, "messages": USER, "simulator": {"hang": True}})
    await until(lambda: oai.stats["active"] == 1)
    assert oai.stats["aborted"] == 0
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.05)  # never answered
    writer.close()
    await writer.wait_closed()
    await until(lambda: oai.stats["aborted"] == 1)
    assert oai.stats["active"] == 0 and oai.stats["completed"] == 0


async def test_client_close_mid_stream_stops_generation(oll: Simulator) -> None:
    reader, writer = await raw_post(oll, "/api/chat", {
        "model": OLLAMA_MODEL, "messages": USER, "simulator": {"tokens": 1000, "itl_ms": 20}})
    first = await reader.readuntil(b"tok0 ")
    assert first.startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()
    await until(lambda: oll.stats["aborted"] == 1, deadline_s=1.0)
    assert oll.stats["active"] == 0 and oll.stats["completed"] == 0


async def test_per_request_knobs_body_and_header(oai: Simulator, http: httpx.AsyncClient) -> None:
    url = oai.url + "/v1/chat/completions"
    r = await http.post(url, json={"model": OPENAI_MODEL, "messages": USER,
                                   "simulator": {"tokens": 2}})
    assert r.json()["choices"][0]["message"]["content"] == "tok0 tok1 "
    h = await http.post(url, json={"model": OPENAI_MODEL, "messages": USER},
                        headers={"x-simulator": '{"echo": true}'})
    assert h.json()["choices"][0]["message"]["content"] == "say something"
    # the body field is applied after the header
    both = await http.post(url, json={"model": OPENAI_MODEL, "messages": USER,
                                      "simulator": {"tokens": 1}},
                           headers={"x-simulator": '{"tokens": 3}'})
    assert both.json()["usage"]["completion_tokens"] == 1
    bad = await http.post(url, json={"model": OPENAI_MODEL, "messages": USER,
                                     "simulator": {"bogus": 1}})
    assert bad.status_code == 400 and "unknown simulator knob 'bogus'" in bad.json()["error"]["message"]
    assert oai.knobs.tokens == 5  # instance knobs untouched


async def test_ttft_delays_first_token(oai: Simulator, http: httpx.AsyncClient) -> None:
    body = {"model": OPENAI_MODEL, "messages": USER, "stream": True,
            "simulator": {"ttft_ms": 150, "tokens": 2}}
    t0 = time.monotonic()
    async with http.stream("POST", oai.url + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200  # headers leave before the first token
        headers_at = time.monotonic() - t0
        lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
        first_token_at = time.monotonic() - t0
    assert headers_at < 0.15 <= first_token_at
    assert lines[-1] == "data: [DONE]"


async def test_long_stream_through_paced_path(oai: Simulator, http: httpx.AsyncClient) -> None:
    body = {"model": OPENAI_MODEL, "prompt": "x", "stream": True, "simulator": {"tokens": 3000}}
    count = 0
    async with http.stream("POST", oai.url + "/v1/completions", json=body) as r:
        async for line in r.aiter_lines():
            count += line.startswith('data: {"id"')
    assert count == 3001  # every token plus the finish chunk
    assert oai.stats["completed"] == 1


async def test_stats_and_reset(oai: Simulator, http: httpx.AsyncClient) -> None:
    await http.get(oai.url + "/v1/models")
    await http.post(oai.url + "/v1/embeddings", json={"model": OPENAI_MODEL, "input": "x"})
    stats = (await http.get(oai.url + "/_sim/stats")).json()
    assert stats["requests"] == 2 and stats["completed"] == 2 and stats["active"] == 0
    assert stats["by_path"] == {"/v1/models": 1, "/v1/embeddings": 1}
    reset = (await http.post(oai.url + "/_sim/reset")).json()
    assert reset["requests"] == 0 and reset["by_path"] == {}
    bad = await http.post(oai.url + "/_sim/knobs", json={"tokens": -1})
    assert bad.status_code == 400


async def test_seeded_error_injection_is_reproducible(http: httpx.AsyncClient) -> None:
    settings = SimulatorSettings("openai", knobs=Knobs(error_rate=0.5, error_status=503), seed=7)
    patterns = []
    for _ in range(2):
        async with await start_simulator(settings) as sim:
            statuses = [(await http.post(sim.url + "/v1/completions",
                                         json={"prompt": "x"})).status_code for _ in range(16)]
        patterns.append(statuses)
    assert patterns[0] == patterns[1]
    assert set(patterns[0]) == {200, 503}

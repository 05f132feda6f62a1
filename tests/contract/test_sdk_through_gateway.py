"""The stock OpenAI SDK through the whole stack, against backends speaking three different APIs.

Ollama's native API, OpenAI's (vLLM) and Anthropic's Messages each sit behind a simulator
process; gateway, router and worker are real processes. The SDK must get the same shapes,
the same chunk sequence and the same errors whichever of them answered. Every request says
something new (`fresh()`), so the gateway's response cache never answers in a backend's place.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import openai
import pytest

from services.gateway.served_models import ServedModels, ask_workers
from shared.config import load_config
from tests.support.processes import Simulator, Stack
from tests.support.three_backends import EXPECTED, MODEL_NAMES, three_backends

_counter = itertools.count()
ANTHROPIC_KEY = "sk-ant-sdk-test"
CHAT_MODELS = MODEL_NAMES
TEXT_MODELS = ["llama3.1:8b", "qwen-coder"]  # the backends with completions and embeddings
WEATHER: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("sdk")), nats_url)
    three = three_backends(s, ANTHROPIC_KEY, "AIUB_SDK_ANTHROPIC_KEY")
    s.write_config(
        providers=three.providers, mappings={"exact_matches": three.exact_matches},
        runtime={"deadlines": {"first_token_s": 5, "idle_s": 5, "total_s": 30, "retry_budget": 0}},
    )
    s.sims = three.sims
    s.service("router")
    s.worker("ollama", "vllm", "anthropic")
    s.gateway()
    try:
        for model in ("llama3.1:8b", "qwen-coder", "claude-sonnet"):  # the worker subscribes after the gateway is up
            s.wait_serving(model)
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack.gateway_url + "/v1", api_key="none", max_retries=0, timeout=20) as sdk:
        yield sdk


def fresh() -> list[Any]:
    return [{"role": "user", "content": f"Hello #{next(_counter)}"}]


def sim(stack: Stack, provider: str) -> Simulator:
    return stack.sims[provider]


def shape(chunks: list[Any]) -> list[tuple[Any, ...]]:
    """What a client can observe of a chunk sequence, minus ids and names."""
    return [(c.object, tuple((ch.delta.role, ch.delta.content, ch.finish_reason) for ch in c.choices),
             c.usage.completion_tokens if c.usage else None) for c in chunks]


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_json(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(model=model, messages=fresh())
    assert reply.model == model and reply.object == "chat.completion"
    assert reply.choices[0].message.content == EXPECTED and reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 16


def test_every_backend_streams_the_same_chunk_sequence(client: openai.OpenAI) -> None:
    shapes = {}
    for model in CHAT_MODELS:
        chunks = list(client.chat.completions.create(model=model, messages=fresh(), stream=True,
                                                     stream_options={"include_usage": True}))
        assert {c.model for c in chunks} == {model}
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == EXPECTED
        shapes[model] = shape(chunks)
    assert shapes["llama3.1:8b"] == shapes["qwen-coder"] == shapes["claude-sonnet"]
    first, *_, finish, usage = shapes["qwen-coder"]
    assert first[1][0][0] == "assistant" and finish[1][0][2] == "stop" and usage == ("chat.completion.chunk", (), 16)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_tool_calls_through_the_sdk(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(model=model, messages=fresh(), tools=[WEATHER])
    streamed = list(client.chat.completions.create(model=model, messages=fresh(), tools=[WEATHER], stream=True))
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert (call.type, call.function.name, call.function.arguments) == ("function", "get_weather", '{"city":"tok0"}')
    deltas = [tc for c in streamed if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == '{"city":"tok0"}'
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "tool_calls"


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_completions_json_and_stream(client: openai.OpenAI, model: str) -> None:
    completion = client.completions.create(model=model, prompt="def f():", max_tokens=4)
    assert completion.model == model and completion.choices[0].text == "tok0 tok1 tok2 tok3 "
    assert completion.choices[0].finish_reason == "length"
    chunks = list(client.completions.create(model=model, prompt="def f():", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == EXPECTED


def test_embeddings_single_and_batch_are_the_same_from_every_backend(client: openai.OpenAI) -> None:
    vectors = {}
    word = f"hello {next(_counter)}"  # one text for both backends: the model name keeps them apart in the cache
    for model in TEXT_MODELS:
        single = client.embeddings.create(model=model, input=word)  # the SDK asks for base64 and decodes it
        batch = client.embeddings.create(model=model, input=[word, "world", "again"])
        assert single.model == model and len(single.data) == 1
        assert [d.index for d in batch.data] == [0, 1, 2]
        assert batch.data[0].embedding == pytest.approx(single.data[0].embedding)
        vectors[model] = [x for d in batch.data for x in d.embedding]
    assert vectors["llama3.1:8b"] == pytest.approx(vectors["qwen-coder"])


def test_embeddings_on_anthropic_are_a_clear_400(client: openai.OpenAI, stack: Stack) -> None:
    requests_before = sim(stack, "anthropic").stats()["requests"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="claude-sonnet", input="hello")
    assert caught.value.code == "unsupported_capability"
    assert sim(stack, "anthropic").stats()["requests"] == requests_before


def test_untranslatable_request_is_a_400_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="llama3.1:8b", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert caught.value.param == "messages[0].content"


def test_backend_errors_look_the_same_from_every_backend(stack: Stack, client: openai.OpenAI) -> None:
    statuses = {}
    for provider, model in [("ollama", "llama3.1:8b"), ("vllm", "qwen-coder"), ("anthropic", "claude-sonnet")]:
        backend = sim(stack, provider)
        backend.knobs(error_rate=1.0, error_status=503)
        try:
            with pytest.raises(openai.APIStatusError) as caught:
                client.chat.completions.create(model=model, messages=fresh())
        finally:
            backend.knobs(error_rate=0.0)
        statuses[model] = (caught.value.status_code, caught.value.code)
        assert "127.0.0.1" not in caught.value.message
    assert set(statuses.values()) == {(503, "upstream_error")}


async def test_served_models_asks_the_workers_and_offers_only_names_that_route(stack: Stack) -> None:
    """What the gateway's /v1/models should answer (services/gateway/served_models.py), asked of the real workers."""
    nc = await nats.connect(stack.nats_url)
    try:
        started = time.monotonic()
        assert await ask_workers(nc, ["vllm", "nobody"], timeout_s=2.0) == {
            "vllm": ("Qwen/Qwen2.5-Coder-7B-Instruct-AWQ",)}
        assert time.monotonic() - started < 1.5  # a provider without workers does not hold the answer
        listing = json.loads(await ServedModels(nc, load_config(stack.config_dir)).body())
    finally:
        await nc.close()
    owners = {m["id"]: m["owned_by"] for m in listing["data"]}
    assert set(list(owners)[:3]) == {"llama3.1:8b", "qwen-coder", "claude-sonnet"}  # configured names first
    # The backends' own names for configured models: no rule routes them, so asking would be a 404
    # (tests/integration/test_spine.py lists a served name that a pattern routes).
    assert "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ" not in owners and "claude-sonnet-4-20250514" not in owners

"""The `ollama` Python library against aiub's Ollama front door: what only this door has.

Chat, streaming, a tool call round-tripped, usage, a bad field and an unknown model are the
front-door contract's (tests/contract/test_front_door_contract.py). Three backends, each a
simulator process speaking its own API (tests/support/three_backends.py): Ollama's native one,
OpenAI's (vLLM) and Anthropic's Messages. The client speaks Ollama's API whichever answers. Every
request says something new (`fresh()`), so the response cache never answers in a backend's place.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from services.simulator.knobs import Knobs
from tests.support.processes import Stack
from tests.support.three_backends import EXPECTED, MODEL_NAMES, MODELS, three_backends

ANTHROPIC_KEY = "sk-ant-ollama-door-test"
BACKENDS = {model: backend for backend, model in MODELS.items()}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
_counter = itertools.count()


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("ollama-door")), nats_url)
    three = three_backends(s, ANTHROPIC_KEY, "AIUB_TEST_ANTHROPIC_KEY")
    sims = three.sims
    providers = three.providers
    providers["ollama"]["models"] = {
        "llama3.1:8b": {"capabilities": ["chat", "vision", "reasoning"], "context_window": 8192},
        "steady-model": {"backend_model": "llama3.1:8b"}}
    providers["vllm"]["models"]["qwen-coder"]["capabilities"] = ["chat", "code"]
    s.write_config(
        providers={**providers,
                   "ghost": {"type": "vllm", "base_url": "http://127.0.0.1:9", "models": ["steady-model"]}},
        mappings={"exact_matches": {**three.exact_matches, "steady-model": {"provider": "ghost"}},
                  "fallback_chains": {"steady-model": ["ghost", "ollama"]}},
        runtime={"deadlines": {"first_token_s": 5, "idle_s": 5, "total_s": 30, "retry_budget": 2}},
    )
    s.sims = sims
    s.service("router")
    s.worker("ollama", "vllm", "anthropic", "ghost")
    s.gateway()
    try:
        for model in MODEL_NAMES:
            s.wait_serving(model)
        yield s
        assert all(p.alive for p in s.processes if p.name in ("gateway", "router")), s.logs()
    finally:
        s.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[ollama.Client]:
    # What an Ollama client does with OLLAMA_HOST=http://localhost:4000.
    sdk = ollama.Client(host=stack.gateway_url, timeout=20, trust_env=False)
    try:
        yield sdk
    finally:
        sdk._client.close()


@contextlib.contextmanager
def knobs(stack: Stack, model: str, **values: Any) -> Iterator[None]:
    """The simulator behind `model` turned by `values` for the block, then back to its defaults."""
    sim = stack.sims[BACKENDS[model]]
    sim.knobs(**values)
    try:
        yield
    finally:
        sim.knobs(**{name: getattr(Knobs(), name) for name in values})


def fresh() -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Hello #{next(_counter)}"}]


def test_list_names_the_configured_models(client: ollama.Client) -> None:
    listed = client.list()
    names = [m.model for m in listed.models]
    assert set(MODEL_NAMES) <= set(names)
    entry = next(m for m in listed.models if m.model == "qwen-coder")
    assert entry.modified_at is not None and entry.digest and entry.details is not None
    assert entry.details.format == "vllm"


def test_show_version_and_ps(stack: Stack, client: ollama.Client) -> None:
    shown = client.show("llama3.1:8b")
    assert shown.capabilities == ["completion", "tools", "thinking", "vision"]
    assert shown.modelinfo == {"general.architecture": "aiub", "aiub.context_length": 8192}
    assert client.ps().models == []
    version = httpx.get(stack.gateway_url + "/api/version", trust_env=False).json()
    assert version["version"].count(".") == 2
    root = httpx.get(stack.gateway_url + "/", trust_env=False)
    assert root.status_code == 200 and root.text == "Ollama is running"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_chat_streams_ndjson_by_default(stack: Stack, model: str) -> None:
    with httpx.stream("POST", stack.gateway_url + "/api/chat", trust_env=False, timeout=20,
                      json={"model": model, "messages": fresh(), "options": {"num_predict": 4}}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert all(line["model"] == model for line in lines)
    assert "".join(line["message"]["content"] for line in lines) == "tok0 tok1 tok2 tok3 "
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    last = lines[-1]
    assert last["done_reason"] == "length" and last["eval_count"] == 4 and last["prompt_eval_count"] > 0
    assert last["total_duration"] >= last["eval_duration"] > 0


def test_library_stream_and_generate(client: ollama.Client) -> None:
    parts = list(client.chat(model="qwen-coder", messages=fresh(), stream=True))
    assert "".join(p.message.content or "" for p in parts) == EXPECTED and parts[-1].done
    generated = client.generate(model="llama3.1:8b", prompt=f"Why is the sky blue? #{next(_counter)}",
                                system="Be brief", options={"num_predict": 3})
    assert generated.response == "tok0 tok1 tok2 " and generated.done_reason == "length"
    streamed = list(client.generate(model="claude-sonnet", prompt=f"Why? #{next(_counter)}", stream=True))
    assert "".join(p.response or "" for p in streamed) == EXPECTED and streamed[-1].eval_count == 16
    loaded = client.generate(model="llama3.1:8b")
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""


def test_embed_and_the_legacy_embeddings(client: ollama.Client) -> None:
    for model in ("llama3.1:8b", "qwen-coder"):
        embedded = client.embed(model=model, input=["sky", f"grass #{next(_counter)}"])
        assert embedded.model == model and len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) > 0
        assert embedded.prompt_eval_count
    legacy = client.embeddings(model="qwen-coder", prompt=f"llamas #{next(_counter)}")
    assert len(legacy.embedding) > 0


def test_thinking_reaches_the_message(client: ollama.Client) -> None:
    reply = client.chat(model="llama3.1:8b", messages=fresh(), think=True)
    assert reply.message.thinking == "think0 think1 think2 " and reply.message.content == EXPECTED
    parts = list(client.chat(model="llama3.1:8b", messages=fresh(), think=True, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == "think0 think1 think2 "


def test_images_pass_to_a_vision_model_and_are_a_400_elsewhere(client: ollama.Client) -> None:
    seen = client.chat(model="llama3.1:8b", messages=[{"role": "user", "content": "What is it?", "images": [PNG]}])
    assert seen.message.content == EXPECTED
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model="qwen-coder", messages=[{"role": "user", "content": "What is it?", "images": [PNG]}])
    assert refused.value.status_code == 400 and "does not take images" in refused.value.error


def test_errors_are_ollamas_shape_with_their_status(stack: Stack, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as unshown:
        client.show("no-such-model")
    assert unshown.value.status_code == 404 and unshown.value.error == "model 'no-such-model' not found"
    missing = httpx.post(stack.gateway_url + "/api/generate", trust_env=False, timeout=10, json={"prompt": "x"})
    assert missing.status_code == 400 and missing.json() == {"error": "model is required"}
    pulled = httpx.post(stack.gateway_url + "/api/pull", trust_env=False, timeout=10, json={"model": "x"})
    assert pulled.status_code == 404 and "not pulled" in pulled.json()["error"]
    for path in ("/api/tags", "/api/ps", "/api/version"):  # HEAD where GET answers, not the catch-all 404
        assert httpx.head(stack.gateway_url + path, trust_env=False, timeout=10).status_code == 200, path
    wrong_method = httpx.get(stack.gateway_url + "/api/chat", trust_env=False, timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert wrong_method.json() == {"error": "/api/chat takes POST, not GET"}


def test_a_backend_failure_mid_stream_is_an_error_line(stack: Stack, client: ollama.Client) -> None:
    said = []
    with knobs(stack, "qwen-coder", drop_after=3), pytest.raises(ollama.ResponseError) as broken:
        for part in client.chat(model="qwen-coder", messages=fresh(), stream=True):
            said.append(part.message.content)
    assert said == ["tok0 ", "tok1 ", "tok2 "] and broken.value.error


def test_fallback_before_the_first_token(stack: Stack, client: ollama.Client) -> None:
    reply = client.chat(model="steady-model", messages=fresh())
    assert reply.model == "steady-model" and reply.message.content == EXPECTED
    raw = httpx.post(stack.gateway_url + "/api/chat", trust_env=False, timeout=20,
                     json={"model": "steady-model", "messages": fresh(), "stream": False})
    assert raw.headers["x-aiub-provider"] == "ollama"  # the ghost refused; the chain's next answered
    parts = list(client.chat(model="steady-model", messages=fresh(), stream=True))
    assert "".join(p.message.content or "" for p in parts) == EXPECTED and parts[-1].done

"""The official `anthropic` SDK through the whole stack: what only the Anthropic front door has.

Behind it sit three simulated backends speaking three different APIs (Ollama's native API,
vLLM's OpenAI API, Anthropic's Messages API; tests/support/three_backends.py), and more for
fallback, failures and hang-ups. Text, streaming, tool calls, usage, a bad field and an unknown
model are the front-door contract's (tests/contract/test_front_door_contract.py), for every door.
Auth is on (a master key), so the SDK's `x-api-key` is the credential.
Each request says something new (`fresh()`) unless a test wants the response cache.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.support.processes import Simulator, Stack, wait_until
from tests.support.three_backends import EXPECTED, MODEL_NAMES, three_backends

MASTER = "master-" + uuid.uuid4().hex
ANTHROPIC_KEY = "sk-ant-front-door"
_counter = itertools.count()


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("anthropic-door")), nats_url)
    s.env.pop("REDIS_URL", None)
    s.env["AIUB_MASTER_KEY"] = MASTER
    three = three_backends(s, ANTHROPIC_KEY, "AIUB_DOOR_ANTHROPIC_KEY")
    sims = {**three.sims,
            "broken": s.simulator("openai", ["ha-model"], "--error-rate", "1", "--error-status", "503"),
            "dropper": s.simulator("openai", ["drop-model"]),
            "slow": s.simulator("openai", ["slow-model"])}
    s.write_config(
        providers={
            **three.providers,
            "broken": {"type": "vllm", "base_url": sims["broken"].url,
                       "models": {"ha-model": {"backend_model": "ha-model"}}},
            "ha_ollama": {"type": "ollama", "base_url": sims["ollama"].url,
                          "models": {"ha-model": {"backend_model": "llama3.1:8b"}}},
            "dropper": {"type": "vllm", "base_url": sims["dropper"].url},
            "slow": {"type": "vllm", "base_url": sims["slow"].url},
        },
        mappings={"exact_matches": {**three.exact_matches, "ha-model": {"provider": "broken"},
                                    "drop-model": {"provider": "dropper"}, "slow-model": {"provider": "slow"}},
                  "fallback_chains": {"ha-model": ["broken", "ha_ollama"]}},
        runtime={"deadlines": {"first_token_s": 5, "idle_s": 5, "total_s": 30, "retry_budget": 1}},
    )
    s.sims = sims
    s.service("router")
    s.worker("ollama", "vllm", "anthropic", "broken", "ha_ollama", "dropper", "slow")
    s.gateway()
    try:
        for model in (*MODEL_NAMES, "ha-model", "drop-model", "slow-model"):
            s.wait_serving(model, MASTER)
        sims["dropper"].knobs(drop_after=3)  # after the probes, which must succeed
        sims["slow"].knobs(tokens=10_000, itl_ms=20)
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=stack.gateway_url, api_key=MASTER, max_retries=0, timeout=20) as sdk:
        yield sdk


def fresh(text: str = "Hello") -> list[Any]:
    return [{"role": "user", "content": f"{text} #{next(_counter)}"}]


def sim(stack: Stack, name: str) -> Simulator:
    return stack.sims[name]


def test_streaming_event_sequence_on_the_wire(stack: Stack) -> None:
    with httpx.stream("POST", stack.gateway_url + "/v1/messages", trust_env=False, timeout=20,
                      headers={"x-api-key": MASTER, "anthropic-version": "2023-06-01",
                               "anthropic-beta": "interleaved-thinking-2025-05-14"},
                      json={"model": "qwen-coder", "max_tokens": 4, "stream": True, "messages": fresh()}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        names = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "ping", *["content_block_delta"] * 4,
                     "content_block_stop", "message_delta", "message_stop"]


def test_bearer_credentials_and_count_tokens(stack: Stack) -> None:
    with anthropic.Anthropic(base_url=stack.gateway_url, auth_token=MASTER, max_retries=0, timeout=20) as sdk:
        assert sdk.messages.create(model="qwen-coder", max_tokens=10, messages=fresh()).content
        count = sdk.messages.count_tokens(model="qwen-coder", messages=[{"role": "user", "content": "word " * 100}])
    assert 100 <= count.input_tokens <= 200


def test_errors_in_anthropics_shape(stack: Stack, client: anthropic.Anthropic) -> None:
    missing = httpx.post(stack.gateway_url + "/v1/messages", trust_env=False, timeout=10, headers={"x-api-key": MASTER},
                         json={"model": "qwen-coder", "messages": fresh()})
    assert missing.status_code == 400
    assert missing.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                         "message": "max_tokens: Field required"}}
    with anthropic.Anthropic(base_url=stack.gateway_url, api_key="wrong-key", max_retries=0) as stranger, \
            pytest.raises(anthropic.AuthenticationError) as unauthorized:
        stranger.messages.create(model="qwen-coder", max_tokens=10, messages=fresh())
    assert unauthorized.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                                  "message": "invalid API key"}}
    nowhere = httpx.post(stack.gateway_url + "/v1/messages/count_tokens", trust_env=False, timeout=10, json={})
    assert nowhere.status_code == 401 and nowhere.json()["type"] == "error"


def test_images_reach_backends_that_take_them_and_are_a_400_where_not(client: anthropic.Anthropic) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}
    for model in MODEL_NAMES:
        content: Any = [image, {"type": "text", "text": f"what is this #{next(_counter)}"}]
        reply = client.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": content}])
        assert reply.content[0].type == "text"
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="llama3.1:8b", max_tokens=20, messages=[
            {"role": "user", "content": [url_image, {"type": "text", "text": "x"}]}])
    assert isinstance(refused.value.body, dict) and refused.value.body["error"]["type"] == "invalid_request_error"
    assert "image URL" in refused.value.body["error"]["message"]


def test_a_failure_mid_stream_is_an_error_event(client: anthropic.Anthropic) -> None:
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as failed, \
            client.messages.stream(model="drop-model", max_tokens=100, messages=fresh()) as stream:
        received.extend(stream.text_stream)
    assert "".join(received) == "tok0 tok1 tok2 "
    assert isinstance(failed.value.body, dict) and failed.value.body["type"] == "error"
    assert failed.value.body["error"]["type"] == "api_error"


def test_fallback_before_the_first_token(stack: Stack, client: anthropic.Anthropic) -> None:
    broken_before = sim(stack, "broken").stats()["requests"]
    with client.messages.stream(model="ha-model", max_tokens=100, messages=fresh()) as stream:
        assert "".join(stream.text_stream) == EXPECTED
    reply = client.messages.with_raw_response.create(model="ha-model", max_tokens=100, messages=fresh())
    assert reply.headers["x-aiub-provider"] == "ha_ollama" and reply.parse().content[0].type == "text"
    assert sim(stack, "broken").stats()["requests"] > broken_before


def test_the_cache_answers_in_anthropics_shape(client: anthropic.Anthropic) -> None:
    messages = fresh("cache me")
    first = client.messages.with_raw_response.create(model="qwen-coder", max_tokens=50, messages=messages)
    again = client.messages.with_raw_response.create(model="qwen-coder", max_tokens=50, messages=messages)
    assert (first.headers["x-aiub-cache"], again.headers["x-aiub-cache"]) == ("miss", "hit")
    assert again.parse().content == first.parse().content and again.parse().usage.output_tokens == 16
    for expected in ("miss", "hit"):
        with client.messages.with_streaming_response.create(model="qwen-coder", max_tokens=50, messages=messages,
                                                            stream=True) as response:
            assert response.headers["x-aiub-cache"] == expected
            names = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
        assert names[0] == "message_start" and names[-1] == "message_stop" and names.count("content_block_delta") == 16


def test_a_client_that_hangs_up_stops_the_generation(stack: Stack) -> None:
    slow = sim(stack, "slow")
    aborted_before = slow.stats()["aborted"]
    with httpx.stream("POST", stack.gateway_url + "/v1/messages", trust_env=False, timeout=10,
                      headers={"x-api-key": MASTER},
                      json={"model": "slow-model", "max_tokens": 10_000, "stream": True, "messages": fresh()}) as r:
        lines = r.iter_lines()
        assert next(lines) == "event: message_start"
    gone_at = time.monotonic()
    wait_until(lambda: slow.stats()["aborted"] > aborted_before, 1.5, "the backend connection to close")
    assert time.monotonic() - gone_at <= 1.5


def test_the_anthropic_backend_gets_the_clients_own_body_and_its_thinking_comes_back(
        client: anthropic.Anthropic) -> None:
    """`thinking` has no OpenAI word: only the client's own body, sent natively, carries it to an
    anthropic provider (the simulator thinks only when asked); its reasoning returns as a block."""
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    reply = client.messages.create(model="claude-sonnet", max_tokens=2048, messages=fresh(), thinking=thinking)
    assert [b.type for b in reply.content] == ["thinking", "text"]
    assert json.loads(reply.to_json())["content"][0]["thinking"] == "Let me think about that."
    with client.messages.stream(model="claude-sonnet", max_tokens=2048, messages=fresh(), thinking=thinking) as s:
        kinds = [e.delta.type for e in s if e.type == "content_block_delta"]
        final = s.get_final_message()
    assert kinds[0] == "thinking_delta" and set(kinds[1:]) == {"text_delta"}
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[1].type == "text"
    assert final.content[1].text == EXPECTED
    unthinking = client.messages.create(model="claude-sonnet", max_tokens=100, messages=fresh())
    assert [b.type for b in unthinking.content] == ["text"]

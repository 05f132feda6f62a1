"""The official `openai` SDK's Responses client through the whole stack: what only the Responses door has.

Text, streaming, a function call round-tripped by previous_response_id, usage, a bad field and an
unknown model are the front-door contract's (tests/contract/test_front_door_contract.py).
Behind it sit simulated backends speaking three APIs (Ollama's native API, vLLM's OpenAI API,
Anthropic's Messages API; tests/support/three_backends.py), one vLLM that reasons first, one
that always fails (with an Ollama fallback), one that drops its streams. Two gateways share one
NATS: a response stored through one is read, continued and deleted through the other. Auth is on
(a master key).
Each request says something new (`fresh()`) so no answer comes from the response cache.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import openai
import pytest

from tests.support.processes import Stack
from tests.support.three_backends import EXPECTED, MODEL_NAMES, three_backends

MASTER = "master-" + uuid.uuid4().hex
ANTHROPIC_KEY = "sk-ant-responses-door"
WEATHER: Any = {"type": "function", "name": "get_weather", "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
_counter = itertools.count()


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("responses-door")), nats_url)
    s.env.pop("REDIS_URL", None)
    s.env["AIUB_MASTER_KEY"] = MASTER
    three = three_backends(s, ANTHROPIC_KEY, "AIUB_RESPONSES_ANTHROPIC_KEY")
    sims = {**three.sims,
            "thinker": s.simulator("openai", ["think-model"]),
            "broken": s.simulator("openai", ["ha-model"], "--error-rate", "1", "--error-status", "503"),
            "dropper": s.simulator("openai", ["drop-model"])}
    sims["thinker"].knobs(reasoning=True)
    s.write_config(
        providers={
            **three.providers,
            "thinker": {"type": "vllm", "base_url": sims["thinker"].url},
            "broken": {"type": "vllm", "base_url": sims["broken"].url,
                       "models": {"ha-model": {"backend_model": "ha-model"}}},
            "ha_ollama": {"type": "ollama", "base_url": sims["ollama"].url,
                          "models": {"ha-model": {"backend_model": "llama3.1:8b"}}},
            "dropper": {"type": "vllm", "base_url": sims["dropper"].url},
        },
        mappings={"exact_matches": {**three.exact_matches, "think-model": {"provider": "thinker"},
                                    "ha-model": {"provider": "broken"}, "drop-model": {"provider": "dropper"}},
                  "fallback_chains": {"ha-model": ["broken", "ha_ollama"]}},
        runtime={"deadlines": {"first_token_s": 5, "idle_s": 5, "total_s": 30, "retry_budget": 1},
                 "gateway": {"responses_ttl_s": 600}},
    )
    s.sims = sims
    s.service("router")
    s.worker("ollama", "vllm", "anthropic", "thinker", "broken", "ha_ollama", "dropper")
    s.gateway()
    first_url = s.gateway_url
    s.gateway()
    s.runtime = {"urls": [first_url, s.gateway_url]}
    try:
        for model in (*MODEL_NAMES, "think-model", "ha-model", "drop-model"):
            s.wait_serving(model, MASTER)
        sims["dropper"].knobs(drop_after=3)  # after the probes, which must succeed
        yield s
    finally:
        s.stop()


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=MASTER, max_retries=0, timeout=20)


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with sdk(stack.runtime["urls"][0]) as c:
        yield c


@pytest.fixture
def other(stack: Stack) -> Iterator[openai.OpenAI]:
    """A client of the second gateway."""
    with sdk(stack.runtime["urls"][1]) as c:
        yield c


def fresh(text: str = "Hello") -> str:
    return f"{text} #{next(_counter)}"


def test_a_response_echoes_its_settings(client: openai.OpenAI) -> None:
    r = client.responses.create(model="qwen-coder", input=fresh(), instructions="be brief")
    assert r.id.startswith("resp_") and r.output_text == EXPECTED and [i.type for i in r.output] == ["message"]
    assert r.instructions == "be brief" and r.store is True


def test_the_stream_helper_accumulates_the_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="qwen-coder", input=fresh()) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == EXPECTED and final.output_text == EXPECTED and final.status == "completed"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_a_function_call_round_trips_as_explicit_items_without_the_store(client: openai.OpenAI, model: str) -> None:
    asked: list[Any] = [{"role": "user", "content": fresh("Weather?")}]
    call = client.responses.create(model=model, input=asked, tools=[WEATHER], store=False)
    calls = [i for i in call.output if i.type == "function_call"]
    assert len(calls) == 1 and call.store is False
    follow_up = [*asked, *(i.model_dump(exclude_none=True) for i in call.output),
                 {"type": "function_call_output", "call_id": calls[0].call_id, "output": "4C"}]
    assert client.responses.create(model=model, input=follow_up, store=False).output_text == EXPECTED
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(call.id)


def test_reasoning_text_is_a_reasoning_item(client: openai.OpenAI) -> None:
    r = client.responses.create(model="think-model", input=fresh())
    assert [i.type for i in r.output] == ["reasoning", "message"]
    reasoning = r.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "think0 think1 think2 " and r.output_text == EXPECTED
    events = list(client.responses.create(model="think-model", input=fresh(), stream=True))
    assert "".join(e.delta for e in events if e.type == "response.reasoning_text.delta") == "think0 think1 think2 "
    assert [i.type for i in events[-1].response.output] == ["reasoning", "message"]


def test_a_bad_item_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="qwen-coder", input=[{"type": "function_call_output", "output": "x"}])
    assert caught.value.param == "input[0].call_id"  # type: ignore[attr-defined]


def test_an_unknown_response_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="qwen-coder", input=fresh(), previous_response_id="resp_" + "0" * 32)
    assert caught.value.param == "previous_response_id"  # type: ignore[attr-defined]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_nonsense")


def test_a_failure_mid_stream_is_an_error_event_and_response_failed(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="drop-model", input=fresh(), stream=True))
    kinds = [e.type for e in events]
    assert "response.output_text.delta" in kinds and kinds[-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed" and events[-1].response.error is not None
    assert "response.completed" not in kinds


def test_fallback_before_the_first_token(client: openai.OpenAI) -> None:
    assert client.responses.create(model="ha-model", input=fresh()).output_text == EXPECTED
    events = list(client.responses.create(model="ha-model", input=fresh(), stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == EXPECTED


def test_stored_responses_are_seen_continued_and_deleted_on_every_gateway(client: openai.OpenAI,
                                                                        other: openai.OpenAI) -> None:
    first = client.responses.create(model="qwen-coder", input=fresh("remember me"))
    assert other.responses.retrieve(first.id).output_text == first.output_text == EXPECTED
    streamed = list(client.responses.create(model="qwen-coder", input=fresh(), stream=True))[-1].response
    assert other.responses.retrieve(streamed.id).status == "completed"
    second = other.responses.create(model="llama3.1:8b", previous_response_id=first.id, input="and then?")
    assert second.previous_response_id == first.id and second.output_text == EXPECTED
    third = client.responses.create(model="qwen-coder", previous_response_id=second.id, input="once more")
    assert third.output_text == EXPECTED
    deleted = other.responses.delete(first.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="qwen-coder", previous_response_id=first.id, input="gone?")
    assert client.responses.retrieve(third.id).id == third.id  # its own entry holds the whole conversation
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(first.id)


def test_without_a_key_nothing_is_read(stack: Stack, client: openai.OpenAI) -> None:
    kept = client.responses.create(model="qwen-coder", input=fresh())
    url = stack.runtime["urls"][1]
    assert httpx.get(f"{url}/v1/responses/{kept.id}", trust_env=False, timeout=5).status_code == 401
    assert httpx.post(f"{url}/v1/responses", trust_env=False, timeout=5,
                      json={"model": "qwen-coder", "input": "x"}).status_code == 401


def test_the_events_on_the_wire_are_named_sse_without_done(stack: Stack) -> None:
    with httpx.stream("POST", stack.runtime["urls"][0] + "/v1/responses", trust_env=False, timeout=20,
                      headers={"authorization": f"Bearer {MASTER}"},
                      json={"model": "qwen-coder", "input": fresh(), "stream": True,
                            "max_output_tokens": 2}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    names = [line[7:] for line in lines if line.startswith("event: ")]
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.incomplete"]
    assert len(names) * 2 == len(lines) and "data: [DONE]" not in lines
    assert json.loads(lines[-1][6:])["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_cached_answer_is_a_new_response_and_is_stored_too(client: openai.OpenAI) -> None:
    asked = fresh("same question")
    first = client.responses.with_raw_response.create(model="qwen-coder", input=asked)
    again = client.responses.with_raw_response.create(model="qwen-coder", input=asked)
    assert again.headers.get("x-aiub-cache") == "hit"
    one, two = first.parse(), again.parse()
    assert one.id != two.id and one.output_text == two.output_text == EXPECTED
    assert client.responses.retrieve(two.id).output_text == EXPECTED


async def test_the_bucket_keeps_entries_for_the_configured_age(stack: Stack) -> None:
    nc = await nats.connect(stack.nats_url)
    try:
        info = await nc.jetstream().stream_info("KV_aiub_responses")
        assert info.config.max_age == 600
    finally:
        await nc.close()


def test_the_gateway_nats_user_may_use_the_bucket(secured_stack: Stack) -> None:
    """deploy/nats/auth.conf: the gateway's own user stores, reads and deletes responses."""
    secured_stack.wait_serving("tiny")
    url = secured_stack.gateway_url
    made = httpx.post(url + "/v1/responses", trust_env=False, timeout=10,
                      json={"model": "tiny", "input": "hi", "max_output_tokens": 3})
    assert made.status_code == 200, made.text
    kept = made.json()["id"]
    assert httpx.get(f"{url}/v1/responses/{kept}", trust_env=False, timeout=5).status_code == 200
    assert httpx.delete(f"{url}/v1/responses/{kept}", trust_env=False, timeout=5).status_code == 200
    assert "Permissions Violation" not in secured_stack.logs()

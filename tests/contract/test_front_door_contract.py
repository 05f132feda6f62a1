"""The front-door contract: one suite, run for every door against every backend's API.

Each door (Anthropic Messages through the `anthropic` SDK, OpenAI Responses through the `openai`
SDK, Ollama's native API through the `ollama` library; front_doors.py) is asked the same things
of a model served by each backend flavour (Ollama's native API, vLLM's OpenAI API, Anthropic's
Messages API; tests/support/three_backends.py): a text answer with its usage, the same streamed,
a tool call round-tripped (its result sent back, and the call streamed), a bad field refused with
a 400 naming it, an unknown model a 404. The last two are decided before any backend is asked,
so they run once per door. Gateway, router, worker and simulators are real processes; auth is on,
so each door's own credential is checked too. What only one door has (its event sequence on the
wire, stored responses, count_tokens, `/api/tags`...) stays in its integration test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.front_doors import DOORS, Door
from tests.support.processes import Stack
from tests.support.three_backends import CALL, EXPECTED, MODELS, three_backends

MASTER = "master-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("front-door-contract")), nats_url)
    s.env.pop("REDIS_URL", None)
    s.env["AIUB_MASTER_KEY"] = MASTER
    backends = three_backends(s, "sk-ant-door-contract", "AIUB_DOOR_CONTRACT_ANTHROPIC_KEY")
    s.write_config(providers=backends.providers, mappings={"exact_matches": backends.exact_matches},
                   runtime={"deadlines": {"first_token_s": 5, "idle_s": 5, "total_s": 30, "retry_budget": 0}})
    s.service("router")
    s.worker(*backends.providers)
    s.gateway()
    try:
        for model in MODELS.values():
            s.wait_serving(model, MASTER)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module", params=DOORS, ids=[d.id for d in DOORS])
def door(request: pytest.FixtureRequest, stack: Stack) -> Iterator[Door]:
    made: Door = request.param(stack.gateway_url, MASTER)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=list(MODELS), ids=list(MODELS))
def model(request: pytest.FixtureRequest) -> str:
    """A model served by the backend of this flavour."""
    return MODELS[request.param]


def test_text_and_usage(door: Door, model: str) -> None:
    said = door.text(model)
    assert said.text == EXPECTED
    assert said.output_tokens == 16 and said.input_tokens > 0


def test_streaming_and_its_usage(door: Door, model: str) -> None:
    said = door.stream(model)
    assert said.text == EXPECTED
    assert said.output_tokens == 16 and said.input_tokens > 0


def test_a_tool_call_and_its_result_round_trip(door: Door, model: str) -> None:
    called = door.tool_round_trip(model)
    assert called.calls == [CALL]
    assert called.streamed == [CALL]
    assert called.answer == EXPECTED


def test_a_bad_field_is_a_400_naming_it(door: Door) -> None:
    refused = door.refuse_a_bad_field(MODELS["vllm"])
    assert refused.status == 400
    assert door.bad_field in refused.said


def test_an_unknown_model_is_a_404(door: Door) -> None:
    refused = door.unknown_model()
    assert refused.status == 404
    assert "no-such-model" in refused.said

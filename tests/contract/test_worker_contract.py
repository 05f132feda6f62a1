"""The worker contract, written once and run against every backend adapter.

Whatever API the backend speaks (Ollama NDJSON, OpenAI SSE, Anthropic SSE events), the
caller gets the same OpenAI frames: this is what lets the stock OpenAI SDK stay unaware of
which backend answered. Every test runs once per entry of `harness.BACKENDS`, against the
simulator speaking that backend's real wire format, through a real worker on a real NATS.
Faults and behaviours are set on the simulator instance (`set_knobs`): a per-request knob in
the body reaches every backend but Anthropic's (whose API refuses fields it does not know).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from typing import Any

import pytest

from services.simulator.openai_wire import DEFAULT_DIMENSIONS
from shared import subjects
from shared.config import RuntimeFile
from shared.messages import CancelReason, Chunk, Done, Error, outcome_decoder
from tests.contract.conftest import TOKENS, MakeHarness
from tests.contract.harness import BACKENDS, PUBLIC_MODEL, Backend, Harness
from tests.support.processes import wait_until_async

EXPECTED = "".join(f"tok{i} " for i in range(TOKENS))
USER = [{"role": "user", "content": "Hello there"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]}}}
ARGUMENTS = {"city": "tok0", "days": 1}  # what the simulator's model fills in (services/simulator/tools.py)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": PUBLIC_MODEL, "messages": USER, **extra}


def only(condition: Any) -> pytest.MarkDecorator:
    """Run a test against just the backends it concerns, instead of skipping the others."""
    chosen = [b for b in BACKENDS if condition(b)]
    return pytest.mark.parametrize("backend", chosen, ids=[b.id for b in chosen], indirect=True)




# ----------------------------------------------------------------------------- streaming
async def test_stream_tokens_in_order_role_first_finish_last(harness: Harness) -> None:
    reply = await harness.call("chat", chat(stream=True), stream=True)
    reply.done()
    chunks = reply.chunks
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == EXPECTED
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert all(c["choices"] for c in chunks), "no usage chunk unless asked"
    assert {c["model"] for c in chunks} == {PUBLIC_MODEL}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1


async def test_usage_when_asked(harness: Harness) -> None:
    reply = await harness.call("chat", chat(stream=True, stream_options={"include_usage": True}), stream=True)
    done = reply.done()
    last = reply.chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == TOKENS
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + TOKENS
    assert (done.prompt_tokens, done.completion_tokens) == (last["usage"]["prompt_tokens"], TOKENS)


async def test_max_tokens_cut_is_finish_reason_length(harness: Harness) -> None:
    reply = await harness.call("chat", chat(stream=True, max_tokens=2), stream=True)
    reply.done()
    chunks = [c for c in reply.chunks if c["choices"]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "tok0 tok1 "
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_chat_json(harness: Harness) -> None:
    result = (await harness.call("chat", chat())).result()
    assert result["object"] == "chat.completion" and result["model"] == PUBLIC_MODEL
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == EXPECTED
    assert choice["finish_reason"] == "stop"
    assert result["usage"]["completion_tokens"] == TOKENS


# ----------------------------------------------------------------------------- tools
async def test_tool_calls_round_trip_streamed(harness: Harness) -> None:
    harness.sim.set_knobs(tool_call=True)
    reply = await harness.call("chat", chat(stream=True, tools=[WEATHER]), stream=True)
    reply.done()
    deltas = [c["choices"][0]["delta"] for c in reply.chunks if c["choices"]]
    calls = [call for d in deltas for call in d.get("tool_calls") or ()]
    assert calls and calls[0]["id"] and calls[0]["type"] == "function"
    assert calls[0]["function"]["name"] == "get_weather"
    assert {c["index"] for c in calls} == {0}
    assert json.loads("".join(c["function"].get("arguments") or "" for c in calls)) == ARGUMENTS
    assert reply.chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    # The client answers the call; the backend must accept the conversation as translated.
    history = [*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": calls[0]["id"], "type": "function",
         "function": {"name": "get_weather", "arguments": json.dumps(ARGUMENTS)}}]},
               {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny, 22C"}]
    harness.sim.set_knobs(tool_call=False)
    answer = (await harness.call("chat", {"model": PUBLIC_MODEL, "messages": history, "tools": [WEATHER]})).result()
    assert answer["choices"][0]["message"]["content"] == EXPECTED


async def test_tool_call_json(harness: Harness) -> None:
    harness.sim.set_knobs(tool_call=True)
    result = (await harness.call("chat", chat(tools=[WEATHER]))).result()
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == ARGUMENTS


# ----------------------------------------------------------------------------- fields the client means for the backend
# docs/api.md: the gateway removes only its own fields, the rest reaches the backend untouched.
# The simulator's per-request `simulator` knob is such a field, unknown to every API. Anthropic's
# Messages API refuses fields it does not know, so its adapter sends only what it translates.
@only(lambda b: b.flavor != "anthropic")
async def test_an_unknown_top_level_field_reaches_the_backend(harness: Harness) -> None:
    knob = {"simulator": {"tokens": 3}}
    reply = await harness.call("chat", chat(stream=True, **knob), stream=True)
    reply.done()
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in reply.chunks if c["choices"]) \
        == "tok0 tok1 tok2 "
    result = (await harness.call("chat", chat(**knob))).result()
    assert result["choices"][0]["message"]["content"] == "tok0 tok1 tok2 "
    completion = (await harness.call("completion", {"model": PUBLIC_MODEL, "prompt": "x", **knob})).result()
    assert completion["choices"][0]["text"] == "tok0 tok1 tok2 "
    # Embeddings have no tokens to count: a knob that fails the call shows it arrived.
    failed = (await harness.call("embedding", {"model": PUBLIC_MODEL, "input": "x",
                                               "simulator": {"error_rate": 1.0, "error_status": 400}})).error()
    assert failed.status == 400


@only(lambda b: b.flavor == "ollama")
async def test_the_backends_own_options_reach_it_beside_the_translated_ones(harness: Harness) -> None:
    # Ollama's own `options` (num_predict is its max_tokens) and `keep_alive`, `format` beside an
    # OpenAI field the adapter translates into the same `options` object.
    body = chat(options={"num_predict": 2}, temperature=0.1, keep_alive="5m", format="json")
    result = (await harness.call("chat", body)).result()
    assert result["choices"][0]["message"]["content"] == "tok0 tok1 "
    assert result["choices"][0]["finish_reason"] == "length"


# ----------------------------------------------------------------------------- completions, embeddings
@only(lambda b: "completion" in b.kinds)
async def test_completions_json_and_stream(harness: Harness) -> None:
    result = (await harness.call("completion", {"model": PUBLIC_MODEL, "prompt": "def f():", "max_tokens": 3})).result()
    assert result["object"] == "text_completion" and result["model"] == PUBLIC_MODEL
    assert result["choices"][0]["text"] == "tok0 tok1 tok2 " and result["choices"][0]["finish_reason"] == "length"
    reply = await harness.call("completion", {"model": PUBLIC_MODEL, "prompt": "def f():", "stream": True,
                                              "stream_options": {"include_usage": True}}, stream=True)
    reply.done()
    chunks = reply.chunks
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == EXPECTED
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == TOKENS


@only(lambda b: "embedding" in b.kinds)
async def test_embeddings_single_batch_dimensions_and_base64(harness: Harness) -> None:
    single = (await harness.call("embedding", {"model": PUBLIC_MODEL, "input": "hello"})).result()
    assert single["object"] == "list" and single["model"] == PUBLIC_MODEL
    assert len(single["data"]) == 1 and len(single["data"][0]["embedding"]) == DEFAULT_DIMENSIONS
    batch = (await harness.call("embedding", {"model": PUBLIC_MODEL, "input": ["a", "b", "c"], "dimensions": 16})
             ).result()
    assert [d["index"] for d in batch["data"]] == [0, 1, 2]
    assert {len(d["embedding"]) for d in batch["data"]} == {16}
    packed = (await harness.call("embedding", {"model": PUBLIC_MODEL, "input": ["hello"],
                                               "encoding_format": "base64"})).result()
    vector = struct.unpack(f"<{DEFAULT_DIMENSIONS}f", base64.b64decode(packed["data"][0]["embedding"]))
    assert vector == pytest.approx(single["data"][0]["embedding"], rel=1e-6)


@only(lambda b: b.kinds != {"chat", "completion", "embedding"})
@pytest.mark.parametrize("kind", ["completion", "embedding"])
async def test_a_missing_capability_is_a_clear_400(harness: Harness, backend: Backend, kind: str) -> None:
    assert kind not in backend.kinds
    body = {"model": PUBLIC_MODEL, "prompt": "x"} if kind == "completion" else {"model": PUBLIC_MODEL, "input": "x"}
    error = (await harness.call(kind, body)).error()  # type: ignore[arg-type]
    assert (error.status, error.retryable, error.error.code) == (400, False, "unsupported_capability")
    assert harness.sim.stats["requests"] == 0


# ----------------------------------------------------------------------------- failures
@pytest.mark.parametrize(("status", "public", "retryable"), [(500, 500, True), (503, 503, True), (502, 502, True),
                                                             (400, 400, False), (404, 404, False)])
async def test_backend_errors_keep_status_and_retryability(harness: Harness, status: int, public: int,
                                                           retryable: bool) -> None:
    harness.sim.set_knobs(error_rate=1, error_status=status)
    error = (await harness.call("chat", chat(stream=True), stream=True)).error()
    assert (error.status, error.retryable, error.provider) == (public, retryable, harness.provider)
    assert "http://" not in error.error.message and "127.0.0.1" not in error.error.message


async def test_rate_limit_is_retryable_with_retry_after(harness: Harness) -> None:
    harness.sim.set_knobs(error_rate=1, error_status=429, retry_after=7)
    error = (await harness.call("chat", chat())).error()
    assert (error.status, error.retryable, error.retry_after) == (429, True, 7.0)


async def test_stream_cut_mid_way_is_a_truncation_error_after_the_tokens(harness: Harness) -> None:
    harness.sim.set_knobs(drop_after=2)
    reply = await harness.call("chat", chat(stream=True), stream=True)
    error = reply.error()
    assert (error.status, error.error.code, error.retryable) == (502, "stream_truncated", False)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in reply.chunks if c["choices"])
    assert text == "tok0 tok1 "


async def test_connection_refused_is_retryable_and_names_no_address(make_harness: MakeHarness) -> None:
    harness = await make_harness(base_url="http://127.0.0.1:9")
    error = (await harness.call("chat", chat())).error()
    assert (error.status, error.retryable, error.error.code) == (502, True, "connection_error")
    assert "127.0.0.1" not in error.error.message


async def test_a_backlog_travels_in_fewer_frames_than_chunks_and_in_order(harness: Harness) -> None:
    harness.sim.set_knobs(tokens=300, itl_ms=0)  # the backend writes faster than anyone reads
    reply = await harness.call("chat", chat(stream=True), stream=True)
    reply.done()
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in reply.chunks if c["choices"])
    assert text == "".join(f"tok{i} " for i in range(300))
    frames = [f for f in reply.frames if isinstance(f, Chunk)]
    assert len(frames) < len(reply.chunks) / 2, (len(frames), len(reply.chunks))


async def test_a_caller_that_predates_batches_gets_one_chunk_per_frame(harness: Harness) -> None:
    harness.sim.set_knobs(tokens=300, itl_ms=0)
    reply = await harness.call("chat", chat(stream=True), stream=True, chunk_batches=False)
    reply.done()
    frames = [f for f in reply.frames if isinstance(f, Chunk)]
    assert len(frames) == len(reply.chunks) and all(f.more == () for f in frames)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in reply.chunks if c["choices"])
    assert text == "".join(f"tok{i} " for i in range(300))


async def test_cancel_closes_the_backend_connection(harness: Harness) -> None:
    harness.sim.set_knobs(tokens=10_000, itl_ms=10)
    accepted, sub = await harness.open("chat", chat(stream=True), stream=True)
    first = await harness.frames(accepted, sub, limit=2)
    assert all(isinstance(f, Chunk) for f in first.frames)
    await harness.cancel(accepted)
    cancelled_at = time.monotonic()
    await wait_until_async(lambda: harness.sim.stats["aborted"] == 1, 2.0, "the backend connection to close")
    assert time.monotonic() - cancelled_at < 1.0
    await sub.unsubscribe()


@only(lambda b: b.id == "vllm")
@pytest.mark.parametrize(("reason", "stalled", "kind"), [("deadline", True, "timeout"), ("deadline", False, "deadline"),
                                                         ("client_gone", False, "cancelled")])
async def test_a_cancels_reason_decides_whether_it_counts_against_the_provider(
        harness: Harness, reason: CancelReason, stalled: bool, kind: str) -> None:
    harness.sim.set_knobs(tokens=10_000, itl_ms=10)
    outcomes = await harness.nc.subscribe(subjects.outcome(harness.provider))
    accepted, sub = await harness.open("chat", chat(stream=True), stream=True)
    await harness.frames(accepted, sub, limit=1)
    await harness.cancel(accepted, reason, stalled)
    outcome = outcome_decoder.decode((await outcomes.next_msg(timeout=5)).data)
    assert outcome.kind == kind
    assert outcome.upstream_failure == stalled
    await outcomes.unsubscribe()
    await sub.unsubscribe()


@only(lambda b: b.id == "vllm")
@pytest.mark.parametrize(("silent_s", "kind"), [(0.0, "deadline"), (0.6, "timeout")])
async def test_a_deadline_after_a_first_tokens_worth_of_silence_counts_against_the_provider(
        make_harness: MakeHarness, silent_s: float, kind: str) -> None:
    """A wedged backend is silent until every request's own deadline: that must still count.
    A client's short deadline against a backend that has not been silent long does not."""
    harness = await make_harness(runtime=RuntimeFile.model_validate({"deadlines": {"first_token_s": 0.5}}))
    harness.sim.set_knobs(hang=True)
    outcomes = await harness.nc.subscribe(subjects.outcome(harness.provider))
    accepted, sub = await harness.open("chat", chat())
    await asyncio.sleep(silent_s)  # the silence being measured, not a wait for readiness
    await harness.cancel(accepted, "deadline")
    outcome = outcome_decoder.decode((await outcomes.next_msg(timeout=5)).data)
    assert outcome.kind == kind
    await outcomes.unsubscribe()
    await sub.unsubscribe()


async def test_idle_backend_mid_stream_times_out_not_retryable(make_harness: MakeHarness) -> None:
    harness = await make_harness(timeout_s=0.5)
    started = time.monotonic()
    harness.sim.set_knobs(itl_ms=5_000)
    reply = await harness.call("chat", chat(stream=True), stream=True)
    error = reply.error()
    assert (error.status, error.error.type, error.retryable) == (504, "timeout", False)
    assert any(isinstance(f, Chunk) for f in reply.frames)
    assert time.monotonic() - started < 3.0


async def test_silent_backend_before_first_token_times_out_retryable(make_harness: MakeHarness) -> None:
    harness = await make_harness(timeout_s=0.5)
    harness.sim.set_knobs(hang=True)
    error = (await harness.call("chat", chat(stream=True), stream=True)).error()
    assert (error.status, error.retryable) == (504, True)


# ----------------------------------------------------------------------------- keys and model lists
@only(lambda b: b.api_key is not None)
async def test_missing_key_fails_before_any_call(make_harness: MakeHarness) -> None:
    harness = await make_harness(key=None)
    error = (await harness.call("chat", chat())).error()
    assert (error.status, error.error.code, error.retryable) == (502, "provider_auth_missing", True)
    assert harness.sim.stats["requests"] == 0


@only(lambda b: b.api_key is not None)
async def test_rejected_key_is_the_gateways_problem_not_the_clients(make_harness: MakeHarness) -> None:
    harness = await make_harness(key="wrong-key-0123456789")
    error = (await harness.call("chat", chat())).error()
    assert (error.status, error.error.code, error.retryable) == (502, "provider_auth_failed", False)
    assert "wrong-key" not in error.error.message


async def test_model_list_names_what_the_backend_serves(harness: Harness, backend: Backend) -> None:
    listing = await harness.models()
    assert (listing.provider, listing.listed, listing.error) == (harness.provider, True, None)
    assert backend.backend_model in listing.models


async def test_unreachable_backend_model_list_says_why(make_harness: MakeHarness) -> None:
    listing = await (await make_harness(base_url="http://127.0.0.1:9")).models()
    assert listing.models == () and listing.error and "127.0.0.1" not in listing.error


async def test_many_streams_at_once_each_in_order(harness: Harness) -> None:
    harness.sim.set_knobs(echo=True, itl_ms=1)
    replies = await asyncio.gather(*(harness.call("chat", chat(stream=True, messages=[
        {"role": "user", "content": f"number {i}"}]), stream=True) for i in range(8)))
    for i, reply in enumerate(replies):
        assert isinstance(reply.last, Done), reply.frames
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in reply.chunks if c["choices"])
        assert text == f"number {i}"
    assert not any(isinstance(f, Error) for r in replies for f in r.frames)


async def test_a_stopping_worker_tells_its_callers_instead_of_leaving_them_waiting(harness: Harness) -> None:
    harness.sim.set_knobs(hang=True)
    silent, silent_sub = await harness.open("chat", chat(stream=True), stream=True)
    harness.sim.set_knobs(hang=False, tokens=10_000, itl_ms=10)
    talking, talking_sub = await harness.open("chat", chat(stream=True), stream=True)
    assert isinstance((await harness.frames(talking, talking_sub, limit=1)).frames[0], Chunk)
    stopped_at = time.monotonic()
    await harness.worker.stop(grace_s=0.2)
    before_content = (await harness.frames(silent, silent_sub, timeout_s=2.0)).error()
    after_content = (await harness.frames(talking, talking_sub, timeout_s=2.0)).error()
    assert time.monotonic() - stopped_at < 2.0
    assert (before_content.status, before_content.error.code, before_content.retryable) == (503, "worker_shutdown",
                                                                                           True)
    assert (after_content.status, after_content.retryable) == (503, False)


async def test_the_requests_own_deadline_stops_the_backend(harness: Harness) -> None:
    """Whatever the caller's fate, a worker never generates past the request's deadline."""
    harness.sim.set_knobs(hang=True)
    started = time.monotonic()
    accepted, sub = await harness.open("chat", chat(stream=True), stream=True, deadline=time.time() + 0.5)
    error = (await harness.frames(accepted, sub, timeout_s=3.0)).error()
    assert (error.status, error.error.code) == (504, "deadline_exceeded")
    assert time.monotonic() - started < 2.0
    await wait_until_async(lambda: harness.sim.stats["aborted"] == 1, 2.0, "the backend connection to close")

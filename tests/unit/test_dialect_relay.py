"""The relay with a front door's translator: every ending of a stream in the dialect's own events;
and a bug before any answer, a 500 in the dialect's shape.

Driven as Starlette drives it (iterated to the end); the Anthropic door is the dialect, and the
request metrics say what status each stream ended with.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

from services.gateway import dialects
from services.gateway.auth import Principal
from services.gateway.dialects.anthropic import MESSAGES
from services.gateway.policies import Admission, Policies
from services.gateway.relay import relay
from services.gateway.state import GatewayState
from services.gateway.telemetry import RequestTelemetry
from services.gateway.unexpected_errors import ContainUnexpectedErrors
from shared import logs
from shared.client import Call, ContentFrame, InferenceClient
from shared.config import Config, ModelMappingsFile, RuntimeFile
from shared.messages import Chunk, Done, InferenceRequest, Result

TRANSLATED = MESSAGES.parse(b'{"model": "m", "max_tokens": 9, "stream": true, '
                            b'"messages": [{"role": "user", "content": "hi"}]}')


def _chunk(seq: int, text: str) -> Chunk:
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": text}}]}
    return Chunk(attempt="a", seq=seq, data=msgspec.Raw(json.dumps(data).encode()))


def _state(tmp_path: Path) -> GatewayState:
    config = Config(directory=tmp_path, providers={}, mappings=ModelMappingsFile(), runtime=RuntimeFile())
    policies = Policies.build(config, host="127.0.0.1", insecure_no_auth=False, state_dir=tmp_path)
    return GatewayState(config=config, policies=policies, telemetry=RequestTelemetry(policies.metrics,
                                                                                    logs.get("gateway")))


def _call() -> Call:
    request = InferenceRequest(id="r", attempt="a", kind="chat", model="m", body={}, stream=True)
    return Call(cast(InferenceClient, None), request, 0.0)


async def _frames(*frames: ContentFrame, bug: bool = False) -> AsyncIterator[ContentFrame]:
    for frame in frames:
        yield frame
    if bug:
        raise RuntimeError("a bug nobody foresaw")


async def _run(tmp_path: Path, first: ContentFrame, *rest: ContentFrame,
               bug: bool = False) -> tuple[list[dict[str, Any]], GatewayState]:
    state = _state(tmp_path)
    stream = relay(state, _call(), _frames(*rest, bug=bug), first, time.monotonic(), Admission(Principal("t")),
                   MESSAGES.stream(TRANSLATED))
    raw = b"".join([part async for part in stream])
    assert b"[DONE]" not in raw  # an OpenAI ending never leaks into another dialect
    events = [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]
    return events, state


def _finished(state: GatewayState, status_class: str) -> float:
    return state.policies.registry.get_sample_value("gateway_requests_total",
                                                    {"endpoint": "chat", "status": status_class}) or 0.0


async def test_a_finished_stream_ends_in_message_stop_with_dones_usage(tmp_path: Path) -> None:
    events, state = await _run(tmp_path, _chunk(1, "a"), _chunk(2, "b"),
                               Done(attempt="a", seq=3, prompt_tokens=5, completion_tokens=2))
    assert [e["type"] for e in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2]["usage"] == {"input_tokens": 5, "output_tokens": 2} and _finished(state, "2xx") == 1


async def test_frames_that_stop_without_a_final_one_end_in_an_error_event(tmp_path: Path) -> None:
    events, state = await _run(tmp_path, _chunk(1, "a"))
    assert events[-1] == {"type": "error", "error": {"type": "api_error",
                                                     "message": "the response ended without a final frame"}}
    assert "message_stop" not in [e["type"] for e in events] and _finished(state, "5xx") == 1


async def test_a_bug_mid_stream_is_an_error_event_in_the_dialect(tmp_path: Path) -> None:
    events, state = await _run(tmp_path, _chunk(1, "a"), bug=True)
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "internal error"}}
    assert _finished(state, "5xx") == 1


async def test_a_backend_that_ignored_stream_true_is_said_as_a_whole_stream(tmp_path: Path) -> None:
    whole = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "all"}, "finish_reason": "length"}]}
    events, _ = await _run(tmp_path, Result(attempt="a", seq=1, data=msgspec.Raw(json.dumps(whole).encode()),
                                            prompt_tokens=3, completion_tokens=1))
    assert [e["type"] for e in events] == ["message_start", "content_block_start", "ping", "content_block_delta",
                                           "content_block_stop", "message_delta", "message_stop"]
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"


async def test_a_bug_before_the_answer_is_a_500_in_the_requests_dialect() -> None:
    async def door(request: Request) -> None:
        dialects.use(request, MESSAGES)
        raise RuntimeError("a bug nobody foresaw")

    async def plain(request: Request) -> None:
        raise RuntimeError("a bug nobody foresaw")

    app = Starlette(routes=[Route("/door", door, methods=["POST"]), Route("/plain", plain, methods=["POST"])])
    app.add_middleware(ContainUnexpectedErrors)
    with TestClient(app) as http:
        answered = http.post("/door")
        assert answered.status_code == 500
        assert answered.json() == {"type": "error", "error": {"type": "api_error", "message": "internal error"}}
        assert http.post("/plain").json()["error"]["type"] == "internal_error"

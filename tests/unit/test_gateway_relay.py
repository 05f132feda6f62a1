"""The streamed relay's last status: a client that went away is a 499, a bug of ours a 500.

The relay is driven the way Starlette drives it: iterated, and closed (`aclose`) when the
client has gone. The request metrics are the events asserted on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import msgspec
import pytest

from services.gateway.auth import Principal
from services.gateway.policies import Admission, Policies
from services.gateway.relay import relay
from services.gateway.state import GatewayState
from services.gateway.telemetry import RequestTelemetry
from shared import logs
from shared.client import Call, ContentFrame, InferenceClient
from shared.config import Config, ModelMappingsFile, RuntimeFile
from shared.messages import Chunk, InferenceRequest
from shared.sse import DONE_EVENT

FIRST = Chunk(attempt="a", seq=1, data=msgspec.Raw(b'{"choices":[]}'))


def _state(tmp_path: Path) -> GatewayState:
    config = Config(directory=tmp_path, providers={}, mappings=ModelMappingsFile(), runtime=RuntimeFile())
    policies = Policies.build(config, host="127.0.0.1", insecure_no_auth=False, state_dir=tmp_path)
    return GatewayState(config=config, policies=policies, telemetry=RequestTelemetry(policies.metrics,
                                                                                    logs.get("gateway")))


def _call() -> Call:
    request = InferenceRequest(id="r", attempt="a", kind="chat", model="m", body={}, stream=True)
    return Call(cast(InferenceClient, None), request, 0.0)  # no attempt ever starts: the client is never used


def _finished(state: GatewayState, status_class: str) -> float:
    value = state.policies.registry.get_sample_value("gateway_requests_total",
                                                     {"endpoint": "chat", "status": status_class})
    return value or 0.0


async def _broken_frames() -> AsyncIterator[ContentFrame]:
    raise RuntimeError("a bug nobody foresaw")
    yield FIRST  # an async generator


async def _endless_frames() -> AsyncIterator[ContentFrame]:
    seq = 1
    while True:
        seq += 1
        yield Chunk(attempt="a", seq=seq, data=msgspec.Raw(b'{"choices":[]}'))


async def test_a_bug_mid_stream_is_a_500_with_an_error_event_not_a_client_gone(tmp_path: Path) -> None:
    state = _state(tmp_path)
    stream = relay(state, _call(), _broken_frames(), FIRST, time.monotonic(), Admission(Principal("t")))
    sent = [part async for part in stream]
    assert sent[0].startswith(b'data: {"choices"')
    assert b'"type":"internal_error"' in sent[-2] and sent[-1] == DONE_EVENT  # never a clean-looking end
    assert (_finished(state, "5xx"), _finished(state, "4xx")) == (1, 0)


@pytest.mark.parametrize("chunks_read", [1, 3])
async def test_a_client_that_goes_away_mid_stream_is_a_499(tmp_path: Path, chunks_read: int) -> None:
    state = _state(tmp_path)
    stream = relay(state, _call(), _endless_frames(), FIRST, time.monotonic(), Admission(Principal("t")))
    for _ in range(chunks_read):
        await anext(stream)
    await stream.aclose()  # what Starlette does when the client has gone
    assert (_finished(state, "4xx"), _finished(state, "5xx")) == (1, 0)


async def test_a_stream_cancelled_while_it_waits_for_a_frame_is_a_499(tmp_path: Path) -> None:
    state = _state(tmp_path)
    waiting = asyncio.Event()

    async def silent_frames() -> AsyncIterator[ContentFrame]:
        waiting.set()
        await asyncio.Event().wait()
        yield FIRST

    stream = relay(state, _call(), silent_frames(), FIRST, time.monotonic(), Admission(Principal("t")))
    consumer = asyncio.create_task(anext(stream))
    await consumer  # the first chunk
    consumer = asyncio.create_task(anext(stream))
    await waiting.wait()
    consumer.cancel()  # the other way Starlette stops a stream whose client went away
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert (_finished(state, "4xx"), _finished(state, "5xx")) == (1, 0)

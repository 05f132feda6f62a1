"""A streamed answer, relayed as SSE from its second frame on (the first decided the status).

A stream always ends in `[DONE]`, after either its final frame or an error event: a failure
after content is never a clean-looking finish. Its record's status: 200, the error frame's, 502
when frames stop without a final one, 499 when the client went away (Starlette cancels the task
or closes the generator), 500 for a bug of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from services.gateway.cache import CachedAnswer
from services.gateway.dialects import StreamTranslator
from services.gateway.dialects.openai_objects import as_chunk
from services.gateway.policies import Admission, Policies
from services.gateway.records import record
from services.gateway.state import GatewayState
from shared import logs
from shared.client import Call, ContentFrame
from shared.errors import AiubError, UpstreamError, error_json
from shared.messages import Chunk, Done, Error, ErrorBody, Result
from shared.sse import DONE_EVENT, event

log = logs.get("gateway")

_INTERNAL_ERROR = AiubError("internal error").body()


async def settle(policies: Policies, admission: Admission, answer: CachedAnswer | None, prompt_tokens: int,
                 completion_tokens: int, provider: str | None = None) -> None:
    """Count the usage, store the answer and charge its tokens; a failure here costs the cache
    entry or a charge, never the response."""
    try:
        await policies.settle(admission, answer, prompt_tokens, completion_tokens, provider)
    except Exception as e:
        log.warning("settle_failed", error=repr(e))


async def release(policies: Policies, admission: Admission) -> None:
    """No complete answer (an error, a cut-off stream, a client gone): give back a budget's estimate."""
    if not admission.budget_charges or admission.settled:
        return
    try:
        await policies.release(admission)
    except Exception as e:
        log.warning("release_failed", error=repr(e))


class _Kept:
    """The chunks kept for the cache, only while they fit in one entry."""

    __slots__ = ("chunks", "limit", "size", "storing")

    def __init__(self, storing: bool, limit: int) -> None:
        self.storing = storing
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, payloads: list[bytes]) -> None:
        self.chunks.extend(payloads)
        self.size += sum(map(len, payloads))
        self.storing = self.size <= self.limit
        if not self.storing:
            self.chunks.clear()

    def answer(self, call: Call, chunks: tuple[bytes, ...] | None = None) -> CachedAnswer | None:
        if not self.storing:
            return None
        return CachedAnswer(kind="stream", chunks=tuple(self.chunks) if chunks is None else chunks,
                            provider=call.provider or "")


def _failure(door: StreamTranslator | None, status: int, error: ErrorBody) -> tuple[bytes, ...]:
    """How a stream that fails ends: OpenAI's error event then [DONE], or the door's own ending."""
    if door is not None:
        return (door.error(status, error),)
    return event(error_json(error)), DONE_EVENT


def _said(chunk: Chunk, kept: _Kept, door: StreamTranslator | None) -> bytes:
    """What the client is sent for one Chunk frame (kept for the cache too, when storing)."""
    payloads = [bytes(raw) for raw in chunk.payloads]
    if kept.storing:
        kept.add(payloads)
    return b"".join(map(event, payloads)) if door is None else door.chunks(payloads)


async def relay(state: GatewayState, call: Call, frames: AsyncIterator[ContentFrame], first: ContentFrame,
                started: float, admission: Admission, door: StreamTranslator | None = None) -> AsyncIterator[bytes]:
    """`door`: a front door's translator says each event in its dialect (None: OpenAI's SSE, as is)."""
    status = 200
    completion_tokens = 0  # bound by the Done pattern below
    kept = _Kept(admission.mode is not None and admission.mode.write, state.config.runtime.cache.max_entry_bytes)
    state.active_connections += 1
    try:
        async with call:
            frame: ContentFrame | None = first
            while frame is not None:
                match frame:
                    case Chunk():
                        if said := _said(frame, kept, door):
                            yield said
                    case Done(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens):
                        # Settled before [DONE] reaches the client: its next request already sees the entry.
                        await settle(state.policies, admission, kept.answer(call), prompt_tokens, completion_tokens,
                                     call.provider)
                        yield DONE_EVENT if door is None else door.end(prompt_tokens, completion_tokens)
                        return
                    case Error(error=error, status=status):
                        log.warning("stream_failed", provider=call.provider, status=status, message=error.message)
                        for part in _failure(door, status, error):
                            yield part
                        return
                    case Result(data=data):  # a backend that ignored stream=true
                        payload = bytes(data)
                        completion_tokens = frame.completion_tokens
                        await settle(state.policies, admission, kept.answer(call, (payload,)), frame.prompt_tokens,
                                     completion_tokens, call.provider)
                        if door is not None:
                            yield door.chunks([as_chunk(payload)]) + door.end(frame.prompt_tokens, completion_tokens)
                            return
                        yield event(payload)
                        yield DONE_EVENT
                        return
                frame = await anext(frames, None)
            truncated = UpstreamError("the response ended without a final frame")
            status = truncated.status
            for part in _failure(door, status, truncated.body()):
                yield part
    except (asyncio.CancelledError, GeneratorExit):
        status = 499  # how Starlette ends a stream whose client went away: it cancels the task, or closes us
        raise
    except Exception as e:
        # A bug of ours, not the client's leaving: a 500, logged as one, and the stream still ends
        # in an error event rather than looking complete.
        status = 500
        log.error("stream_relay_failed", provider=call.provider, error=repr(e), exc_info=True)
        for part in _failure(door, status, _INTERNAL_ERROR):
            yield part
    finally:
        state.active_connections -= 1
        await release(state.policies, admission)
        with contextlib.suppress(Exception):
            await record(state, call, started, status, completion_tokens,
                         cache=admission.headers.get("x-aiub-cache", ""))

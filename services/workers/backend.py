"""One backend call: HTTP out through the adapter, frames back to the caller.

The only I/O here is the HTTP exchange and publishing frames; what the bytes mean is the
adapter's business and what a failure means is `failures`'. Chunks leave as they arrive, so
the first token reaches the client before the backend has produced the last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec

from services.workers import failures
from services.workers.adapters.base import Adapter, InvalidRequest, StreamBroken, Usage
from services.workers.frames import FrameSender
from services.workers.http import BackendBroken, BackendHttp, BackendTimeout, BackendUnreachable
from shared.config import ProviderSpec
from shared.messages import Chunk, Done, Error, OutcomeKind, Result, ResultPart, WorkOrder

MAX_ERROR_BODY = 64 * 1024
# A result frame must fit one NATS message: room for the envelope, and base64 grows by 4/3.
_ENVELOPE_BYTES = 4096


@dataclass
class BackendReport:
    kind: OutcomeKind
    status: int
    ttft_s: float | None = None
    usage: Usage = field(default_factory=Usage)
    retry_after: float | None = None


async def _fail(sender: FrameSender, provider: str, failure: failures.Failure, ttft: float | None,
                usage: Usage) -> BackendReport:
    await sender.send(Error(attempt=sender.attempt, seq=sender.next_seq(), status=failure.status,
                            error=failure.error, retryable=failure.retryable, retry_after=failure.retry_after,
                            provider=provider))
    return BackendReport(failure.outcome, failure.status, ttft, usage, failure.retry_after)


async def call_backend(http: BackendHttp, adapter: Adapter, spec: ProviderSpec, order: WorkOrder,
                       sender: FrameSender) -> BackendReport:
    provider = order.provider
    if order.request.kind not in adapter.kinds:
        return await _fail(sender, provider, failures.unsupported(provider, order.request.kind), None, Usage())
    api_key = spec.api_key()
    if spec.requires_api_key and api_key is None:
        return await _fail(sender, provider, failures.missing_api_key(provider, spec.env_var), None, Usage())
    try:
        request = adapter.build(order, spec, api_key)
    except InvalidRequest as e:
        return await _fail(sender, provider, failures.invalid_request(e.message, e.param), None, Usage())
    started = time.monotonic()
    ttft: float | None = None
    usage = Usage()
    headers = {"content-type": "application/json", **request.headers}
    body = msgspec.json.encode(request.json) if request.json is not None else None
    try:
        # The backend may think as long as the provider allows between two reads; the caller's
        # own deadlines (and its Cancel) bound the whole exchange.
        async with http.open(request.method, request.url, body=body, headers=headers,
                             read_timeout_s=spec.timeout_s) as response:
            if response.status >= 400:
                failure = failures.from_status(provider, response.status,
                                               adapter.error_message(await response.read(MAX_ERROR_BODY)),
                                               response.headers.get("retry-after"))
                return await _fail(sender, provider, failure, None, usage)
            if request.stream:
                translator = adapter.stream(order)
                async for raw in response.chunks():
                    payloads = translator.feed(raw)
                    if payloads and ttft is None:
                        ttft = time.monotonic() - started
                    limit = sender.max_payload - _ENVELOPE_BYTES if order.request.chunk_batches else 0
                    for first, *more in chunk_batches(payloads, limit):
                        await sender.send(Chunk(attempt=sender.attempt, seq=sender.next_seq(), data=first,
                                                more=tuple(more)))
                    if translator.finished:
                        break
                usage = translator.usage
                if not translator.finished:
                    raise StreamBroken("the backend closed the stream before its end marker")
                await sender.send(Done(attempt=sender.attempt, seq=sender.next_seq(), provider=provider,
                                       prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens))
            else:
                data, usage = adapter.result(order, await response.read())
                ttft = time.monotonic() - started
                await _send_result(sender, data, usage)
    except StreamBroken as e:
        return await _fail(sender, provider, failures.truncated(provider, str(e), ttft is None), ttft, usage)
    except BackendUnreachable as e:
        return await _fail(sender, provider, failures.connection_failed(provider, str(e)), ttft, usage)
    except BackendTimeout:
        return await _fail(sender, provider, failures.timed_out(provider, ttft is None), ttft, usage)
    except BackendBroken as e:
        if ttft is None and not request.stream:
            return await _fail(sender, provider, failures.connection_failed(provider, str(e)), ttft, usage)
        return await _fail(sender, provider, failures.truncated(provider, str(e), ttft is None), ttft, usage)
    return BackendReport("ok", 200, ttft, usage)


def chunk_batches(payloads: list[bytes], limit: int) -> list[tuple[msgspec.Raw, ...]]:
    """The payloads of one read, in order, grouped into frames that fit the bus's max payload
    (a limit of 0: one payload per frame)."""
    batches: list[tuple[msgspec.Raw, ...]] = []
    batch: list[msgspec.Raw] = []
    size = 0
    for payload in payloads:
        if batch and size + len(payload) > limit:
            batches.append(tuple(batch))
            batch, size = [], 0
        batch.append(msgspec.Raw(payload))
        size += len(payload) + 1
    if batch:
        batches.append(tuple(batch))
    return batches


async def _send_result(sender: FrameSender, data: bytes, usage: Usage) -> None:
    if len(data) > sender.max_payload - _ENVELOPE_BYTES:
        part = (sender.max_payload - _ENVELOPE_BYTES) * 3 // 4
        for start in range(0, len(data), part):
            await sender.send(ResultPart(attempt=sender.attempt, seq=sender.next_seq(), data=data[start:start + part]))
        data = b"null"
    await sender.send(Result(attempt=sender.attempt, seq=sender.next_seq(), data=msgspec.Raw(data),
                             prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens))

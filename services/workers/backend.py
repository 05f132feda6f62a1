"""One backend call: HTTP out through the adapter, frames back to the caller.

The only I/O here is the HTTP exchange and publishing frames; what the bytes mean is the
adapter's business and what a failure means is `failures`'. Chunks leave as they arrive, so
the first token reaches the client before the backend has produced the last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import msgspec

from services.workers import failures
from services.workers.adapters.base import Adapter, InvalidRequest, StreamBroken, Usage
from shared.config import ProviderSpec
from shared.messages import Chunk, Done, Error, OutcomeKind, Result, ResultPart, WorkOrder

if TYPE_CHECKING:
    from services.workers.service import FrameSender

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


def http_client(transport: str, max_connections: int = 512) -> httpx.AsyncClient:
    """One pooled client per worker process. The aiohttp transport costs about a fifth of the
    CPU of httpx's own per request (DESIGN.md, Speed); `httpx` stays selectable to compare."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    timeout = httpx.Timeout(connect=5.0, read=None, write=30.0, pool=30.0)
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False), timeout=timeout,
                                 trust_env=False)
    return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)


async def _fail(sender: FrameSender, provider: str, failure: failures.Failure, ttft: float | None,
                usage: Usage) -> BackendReport:
    await sender.send(Error(attempt=sender.attempt, seq=sender.next_seq(), status=failure.status,
                            error=failure.error, retryable=failure.retryable, retry_after=failure.retry_after,
                            provider=provider))
    return BackendReport(failure.outcome, failure.status, ttft, usage, failure.retry_after)


async def call_backend(http: httpx.AsyncClient, adapter: Adapter, spec: ProviderSpec, order: WorkOrder,
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
    # The backend may think as long as the provider allows between two reads; the caller's
    # own deadlines (and its Cancel) bound the whole exchange.
    timeout = httpx.Timeout(connect=5.0, read=spec.timeout_s, write=30.0, pool=spec.timeout_s)
    try:
        async with http.stream(request.method, request.url, content=msgspec.json.encode(request.json),
                               headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                body = await _read_bounded(response)
                failure = failures.from_status(provider, response.status_code, adapter.error_message(body),
                                               response.headers.get("retry-after"))
                return await _fail(sender, provider, failure, None, usage)
            if request.stream:
                translator = adapter.stream(order)
                async for raw in response.aiter_bytes():
                    for payload in translator.feed(raw):
                        if ttft is None:
                            ttft = time.monotonic() - started
                        await sender.send(Chunk(attempt=sender.attempt, seq=sender.next_seq(),
                                                data=msgspec.Raw(payload)))
                    if translator.finished:
                        break
                usage = translator.usage
                if not translator.finished:
                    raise StreamBroken("the backend closed the stream before its end marker")
                await sender.send(Done(attempt=sender.attempt, seq=sender.next_seq(), provider=provider,
                                       prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens))
            else:
                data, usage = adapter.result(order, await response.aread())
                ttft = time.monotonic() - started
                await _send_result(sender, data, usage)
    except StreamBroken as e:
        return await _fail(sender, provider, failures.truncated(provider, str(e), ttft is None), ttft, usage)
    except httpx.TimeoutException as e:
        if refused(e):
            return await _fail(sender, provider, failures.connection_failed(provider, "ConnectError"), ttft, usage)
        return await _fail(sender, provider, failures.timed_out(provider, ttft is None), ttft, usage)
    except httpx.ConnectError as e:
        return await _fail(sender, provider, failures.connection_failed(provider, type(e).__name__), ttft, usage)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
        if ttft is None and not request.stream:
            return await _fail(sender, provider, failures.connection_failed(provider, type(e).__name__), ttft, usage)
        return await _fail(sender, provider, failures.truncated(provider, type(e).__name__, ttft is None), ttft, usage)
    return BackendReport("ok", 200, ttft, usage)


def refused(error: httpx.TimeoutException) -> bool:
    """httpx-aiohttp 0.2 reports a refused or unreachable connection as `ConnectTimeout`; its
    cause, an OSError that is no timeout, tells them apart."""
    cause = error.__cause__
    return (isinstance(error, httpx.ConnectTimeout) and isinstance(cause, OSError)
            and not isinstance(cause, TimeoutError))


async def _read_bounded(response: httpx.Response) -> bytes:
    body = b""
    async for raw in response.aiter_bytes():
        body += raw
        if len(body) >= MAX_ERROR_BODY:
            break
    return body[:MAX_ERROR_BODY]


async def _send_result(sender: FrameSender, data: bytes, usage: Usage) -> None:
    if len(data) > sender.max_payload - _ENVELOPE_BYTES:
        part = (sender.max_payload - _ENVELOPE_BYTES) * 3 // 4
        for start in range(0, len(data), part):
            await sender.send(ResultPart(attempt=sender.attempt, seq=sender.next_seq(), data=data[start:start + part]))
        data = b"null"
    await sender.send(Result(attempt=sender.attempt, seq=sender.next_seq(), data=msgspec.Raw(data),
                             prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens))

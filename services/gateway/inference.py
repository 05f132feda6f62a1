"""One inference request, from HTTP to the bus and back.

In order: authenticate, read and validate the body, the policies' admission (limits, cache),
then one call through the client library. A route that had to authenticate and read the body
itself first (the Responses door looks up `previous_response_id` before anything is generated)
hands both over as `Received`, so neither happens twice. The status is decided by the first frame: an error
before any content is an ordinary JSON error with its status (so SDKs raise the right
exception), a result is a JSON answer, and content is relayed as SSE (relay.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from nats.aio.client import Client

from services.gateway import dialects, validation
from services.gateway.auth import Principal
from services.gateway.body import read_body
from services.gateway.cache import CachedAnswer, replay
from services.gateway.dialects import Dialect, Translated
from services.gateway.disconnect import ClientGone, first_or_gone
from services.gateway.policies import Admission
from services.gateway.records import record, record_hit
from services.gateway.relay import relay, release, settle
from services.gateway.request_ids import client_request_id, client_timeout
from services.gateway.responses import JSON, error_response
from services.gateway.state import GatewayState
from shared import logs, scope, tracing
from shared.client import Call, ContentFrame, InferenceClient, new_id
from shared.errors import PayloadTooLarge, ServiceUnavailable
from shared.messages import Error, RequestKind, Result

log = logs.get("gateway")

# Room for the InferenceRequest around the body and the router's WorkOrder around that.
_BUS_ENVELOPE_BYTES = 16 * 1024


@dataclass(frozen=True)
class Received:
    """What a route did before calling `infer`: authenticated the caller (with the dialect's
    credential) and read the body, within the gateway's limits."""

    principal: Principal
    raw: bytes


async def infer(state: GatewayState, request: Request, kind: RequestKind = "chat",
                dialect: Dialect | None = None, received: Received | None = None) -> Response:
    """An OpenAI request of `kind`; or, with a `dialect`, a front door's request (its kind is the
    translation's), answered in that dialect (dialects/__init__.py). `received`: the caller is
    already authenticated and the body already read."""
    started = time.monotonic()
    asked = request.headers
    if dialect is not None:
        dialects.use(request, dialect)
    echo_id = client_request_id(asked.get("x-request-id"))
    request_id = new_id()
    response_id = echo_id or request_id
    tracing.bind(response_id)  # every log line of this request carries the id the client sees
    policies, settings = state.policies, state.config.runtime.gateway
    if received is None:
        principal = await policies.auth.authenticate(
            asked.get("authorization") if dialect is None else dialect.authorization(asked))
        raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    else:
        principal, raw = received.principal, received.raw
    door: tuple[Dialect, Translated] | None = None
    if dialect is None:
        parsed = validation.parse(kind, raw, settings)
    else:
        translated = dialect.parse(raw)
        door = dialect, translated
        parsed = replace(validation.check(translated.kind, translated.body, settings), native=translated.native,
                         native_dialect=translated.native_dialect)
    log.debug("request_received", model=parsed.model, kind=parsed.kind, stream=parsed.stream)
    admission, cached = await policies.admit(principal, parsed, raw, asked.get("cache-control"))
    headers = {"x-request-id": response_id, **admission.headers}
    if cached is not None:
        await record_hit(state, parsed, request_id, echo_id, started)
        return _cached(cached, headers) if door is None else _cached_in(*door, cached, headers)
    client = state.client
    if client is None or not state.bus_health.connected:
        await release(state.policies, admission)
        return error_response(503, ServiceUnavailable("the gateway is not connected to NATS",
                                                      code="bus_unavailable").body(), response_id, dialect=dialect)
    # The obvious case early; shared/client.py measures the request exactly as it is encoded.
    try:
        _check_fits_the_bus(state.nc, raw)
    except PayloadTooLarge:
        await release(state.policies, admission)
        raise
    call = _start(state, client, request, parsed, principal, request_id, echo_id)
    return await _answer(state, request, call, parsed.model, started, headers, admission, response_id, door)


def _cached(cached: CachedAnswer, headers: dict[str, str]) -> Response:
    if cached.provider:
        headers["x-aiub-provider"] = cached.provider
    if cached.kind == "stream":
        return Response(b"".join(replay(cached)), media_type="text/event-stream",
                        headers={**headers, "cache-control": "no-cache"})
    return Response(cached.body, media_type=JSON, headers=headers)


def _cached_in(dialect: Dialect, translated: Translated, cached: CachedAnswer, headers: dict[str, str]) -> Response:
    """A cache entry (OpenAI form, whoever stored it) through the dialect's own translation."""
    if cached.provider:
        headers["x-aiub-provider"] = cached.provider
    if cached.kind == "stream":
        translator = dialect.stream(translated)
        body = translator.chunks(list(cached.chunks)) + translator.end(cached.prompt_tokens, cached.completion_tokens)
        return Response(body, media_type=dialect.stream_media_type, headers={**headers, "cache-control": "no-cache"})
    return Response(dialect.result(translated, cached.body), media_type=JSON, headers=headers)


def _check_fits_the_bus(nc: Client | None, raw: bytes) -> None:
    if nc is not None and len(raw) + _BUS_ENVELOPE_BYTES > nc.max_payload:
        raise PayloadTooLarge(f"the request body is {len(raw)} bytes; the bus carries at most "
                              f"{nc.max_payload - _BUS_ENVELOPE_BYTES}")


def _start(state: GatewayState, client: InferenceClient, request: Request, parsed: validation.ParsedRequest,
           principal: Principal, request_id: str, echo_id: str | None) -> Call:
    # The SDK sends its read timeout: for a non-streaming call the whole answer is one read.
    timeout_s = client_timeout(request.headers.get("x-stainless-timeout")) or (
        None if parsed.stream else client_timeout(request.headers.get("x-stainless-read-timeout")))
    lifetime_s = timeout_s or state.config.runtime.deadlines.total_s
    return client.call(kind=parsed.kind, model=parsed.model, body=parsed.body, stream=parsed.stream,
                       timeout_s=timeout_s, capability=parsed.capability, request_id=request_id,
                       client_request_id=echo_id, scope=_signed_scope(state.bus_secret, principal, lifetime_s),
                       chunk_batches=True, native_body=parsed.native, native_dialect=parsed.native_dialect,
                       session_id=request.headers.get("x-session-id"))


def _signed_scope(secret: bytes | None, principal: Principal, lifetime_s: float) -> str | None:
    """The caller's key scope for the workers to check, when the bus requires one."""
    if secret is None:
        return None
    models = principal.record.models if principal.record is not None else ()
    return scope.issue(scope.Scope(tenant=principal.tenant, models=models, expires_at=time.time() + lifetime_s + 60),
                       secret)


async def _answer(state: GatewayState, request: Request, call: Call, model: str, started: float,
                  headers: dict[str, str], admission: Admission, response_id: str,
                  door: tuple[Dialect, Translated] | None = None) -> Response:
    """The answer as the first frame decides it; `door`: said in a front door's dialect."""
    frames = aiter(call)
    first: ContentFrame | None = None
    try:
        first = await first_or_gone(request, frames)
    except ClientGone:
        log.info("client_gone", model=model, waited_ms=round((time.monotonic() - started) * 1000, 1))
        await release(state.policies, admission)
        await record(state, call, started, 499, cache=admission.headers.get("x-aiub-cache", ""))
        return Response(status_code=499)  # nobody reads it: the connection is closed
    finally:
        if first is None or isinstance(first, Error | Result):
            await call.__aexit__(None, None, None)
    if call.provider:
        headers["x-aiub-provider"] = call.provider
    if isinstance(first, Error):
        await release(state.policies, admission)
        await record(state, call, started, first.status, cache=admission.headers.get("x-aiub-cache", ""))
        failed_at = first.provider or call.provider  # a provider's own error may outlive its attempt
        return error_response(first.status, first.error, response_id, first.retry_after,
                              {**admission.headers, **({"x-aiub-provider": failed_at} if failed_at else {})},
                              None if door is None else door[0])
    if isinstance(first, Result):
        data = bytes(first.data)
        await settle(state.policies, admission, CachedAnswer(kind="result", body=data, provider=call.provider or ""),
                     first.prompt_tokens, first.completion_tokens, call.provider)
        await record(state, call, started, 200, first.completion_tokens,
                     cache=admission.headers.get("x-aiub-cache", ""))
        if door is not None:
            data = door[0].result(door[1], data)
        return Response(data, media_type=JSON, headers=headers)
    if door is not None:
        return StreamingResponse(relay(state, call, frames, first, started, admission, door[0].stream(door[1])),
                                 media_type=door[0].stream_media_type,
                                 headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
    return StreamingResponse(relay(state, call, frames, first, started, admission), media_type="text/event-stream",
                             headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})

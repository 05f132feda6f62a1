"""The gateway: OpenAI's HTTP API in front of the bus.

It validates, publishes through the client library and relays frames as JSON or SSE. The
status of a streamed response is decided by the first frame: an error before any content is
an ordinary JSON error with its status (so SDKs raise the right exception); after content,
a failure is an SSE error event followed by `[DONE]`, never a clean finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from nats.aio.client import Client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from services.gateway import validation
from services.gateway.auth import Principal
from services.gateway.body import read_body
from services.gateway.cache import CachedAnswer, replay
from services.gateway.disconnect import ClientGone, first_or_gone
from services.gateway.model_catalog import models_body
from services.gateway.paths import StripTrailingSlash
from services.gateway.policies import Admission, Policies
from services.gateway.request_ids import client_request_id, client_timeout
from services.gateway.served_models import ServedModels
from services.gateway.telemetry import RequestTelemetry
from services.gateway.unexpected_errors import ContainUnexpectedErrors
from shared import bus, logs, scope, subjects, tracing
from shared.client import Call, ContentFrame, InferenceClient, new_id
from shared.config import Config
from shared.errors import AiubError, ModelNotFound, PayloadTooLarge, error_json, retry_after_header
from shared.messages import AttemptRecord, Chunk, Done, Error, ErrorBody, RequestKind, RequestRecord, Result, encode
from shared.sse import DONE_EVENT, event

log = logs.get("gateway")

JSON = "application/json"
_INTERNAL_ERROR = error_json(ErrorBody(message="internal error", type="internal_error"))


@dataclass
class GatewayState:
    config: Config
    nats_url: str | None = None
    nc: Client | None = None
    client: InferenceClient | None = None
    bus_health: bus.BusHealth = field(default_factory=bus.BusHealth)
    active_connections: int = 0
    policies: Policies | None = None
    telemetry: RequestTelemetry | None = None
    served_models: ServedModels | None = None


def _error_response(status: int, body: ErrorBody, request_id: str | None = None,
                    retry_after: float | None = None, extra: dict[str, str] | None = None) -> Response:
    headers = dict(extra) if extra else {}
    if request_id:
        headers["x-request-id"] = request_id
    if retry_after is not None:
        headers["retry-after"] = retry_after_header(retry_after)
    return Response(error_json(body), status_code=status, media_type=JSON, headers=headers)


# Room for the InferenceRequest around the body and the router's WorkOrder around that.
_BUS_ENVELOPE_BYTES = 16 * 1024

EXPOSED_HEADERS = ["x-request-id", "x-aiub-cache", "x-aiub-provider", "retry-after"] + [
    f"x-ratelimit-{what}-{unit}" for what in ("limit", "remaining", "reset") for unit in ("requests", "tokens")]


def create_app(config: Config, nats_url: str | None = None, *, host: str = "127.0.0.1",
               insecure_no_auth: bool = False, state_dir: Path = Path(".aiub")) -> FastAPI:
    """Raises auth.StartupRefused when the bind address needs a master key and none is set."""
    policies = Policies.build(config, host=host, insecure_no_auth=insecure_no_auth, state_dir=state_dir)
    state = GatewayState(config=config, nats_url=nats_url, policies=policies,
                         telemetry=RequestTelemetry(policies.metrics, log))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc, state.bus_health = await bus.connect("aiub-gateway", state.nats_url, state.bus_health)
        state.nc = nc
        state.client = await InferenceClient.start(nc, config.runtime.deadlines)
        state.served_models = ServedModels(nc, config)
        log.info("gateway_ready", nats=nc.connected_url.netloc if nc.connected_url else None, **policies.describe())
        if policies.auth.mode == "off_insecure":
            log.warning("auth_disabled", reason="--insecure-no-auth on a non-loopback bind: anyone can call")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()
            await policies.close()

    # FastAPI's built-in OpenTelemetry wraps every request even with no exporter configured:
    # off, it is a measured ~35 µs of CPU per request (docs/benchmarks.md).
    app = FastAPI(title="aiub", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry={"tracing": False, "metrics": False})
    app.state.gateway = state
    app.add_middleware(ContainUnexpectedErrors)
    app.add_middleware(StripTrailingSlash)
    if config.runtime.gateway.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.runtime.gateway.cors_origins),
                           allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"],
                           expose_headers=EXPOSED_HEADERS)

    @app.exception_handler(AiubError)
    async def _aiub_error(request: Request, exc: AiubError) -> Response:
        # Refused before reaching the bus (auth, limits, validation): one line, never the key itself.
        (log.error if exc.status >= 500 else log.warning)("request_rejected", status=exc.status, code=exc.code,
                                                          path=request.url.path)
        return _error_response(exc.status, exc.body(), client_request_id(request.headers.get("x-request-id")),
                               exc.retry_after, getattr(exc, "headers", None))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # An unknown path or method: OpenAI answers these, 404 included, as invalid_request_error.
        return _error_response(exc.status_code, ErrorBody(message=str(exc.detail), type="invalid_request_error",
                                                          code=str(exc.status_code)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _error_response(400, ErrorBody(message=str(exc), type="invalid_request_error"))

    bus_secret = config.runtime.auth.bus_secret()

    async def infer(request: Request, kind: RequestKind) -> Response:
        started = time.monotonic()
        echo_id = client_request_id(request.headers.get("x-request-id"))
        request_id = new_id()
        response_id = echo_id or request_id
        tracing.bind(response_id)  # every log line of this request carries the id the client sees
        principal = await policies.auth.authenticate(request.headers.get("authorization"))
        raw = await read_body(request, config.runtime.gateway.max_body_bytes, config.runtime.gateway.body_timeout_s)
        parsed = validation.parse(kind, raw, config.runtime.gateway)
        log.debug("request_received", model=parsed.model, kind=kind, stream=parsed.stream)
        admission, cached = await policies.admit(principal, parsed, raw, request.headers.get("cache-control"))
        headers = {"x-request-id": response_id, **admission.headers}
        if cached is not None:
            await _record_hit(state, parsed, request_id, echo_id, started)
            if cached.provider:
                headers["x-aiub-provider"] = cached.provider
            if cached.kind == "stream":
                return Response(b"".join(replay(cached)), media_type="text/event-stream",
                                headers={**headers, "cache-control": "no-cache"})
            return Response(cached.body, media_type=JSON, headers=headers)
        client = state.client
        if client is None or not state.bus_health.connected:
            return _error_response(503, ErrorBody(message="the gateway is not connected to NATS",
                                                  type="service_unavailable", code="bus_unavailable"), response_id)
        nc = state.nc
        if nc is not None and len(raw) + _BUS_ENVELOPE_BYTES > nc.max_payload:
            raise PayloadTooLarge(f"the request body is {len(raw)} bytes; the bus carries at most "
                                  f"{nc.max_payload - _BUS_ENVELOPE_BYTES}")
        # The SDK sends its read timeout: for a non-streaming call the whole answer is one read.
        timeout_s = client_timeout(request.headers.get("x-stainless-timeout")) or (
            None if parsed.stream else client_timeout(request.headers.get("x-stainless-read-timeout")))
        call = client.call(kind=kind, model=parsed.model, body=parsed.body, stream=parsed.stream, timeout_s=timeout_s,
                           capability=parsed.capability, request_id=request_id, client_request_id=echo_id,
                           scope=_signed_scope(bus_secret, principal, timeout_s or config.runtime.deadlines.total_s),
                           chunk_batches=True)
        frames = aiter(call)
        first: ContentFrame | None = None
        try:
            first = await first_or_gone(request, frames)
        except ClientGone:
            log.info("client_gone", model=parsed.model, waited_ms=round((time.monotonic() - started) * 1000, 1))
            await _record(state, call, started, 499)
            return Response(status_code=499)  # nobody reads it: the connection is closed
        finally:
            if first is None or isinstance(first, Error | Result):
                await call.__aexit__(None, None, None)
        if call.provider:
            headers["x-aiub-provider"] = call.provider
        if isinstance(first, Error):
            await _record(state, call, started, first.status)
            failed_at = first.provider or call.provider  # a provider's own error may outlive its attempt
            return _error_response(first.status, first.error, response_id, first.retry_after,
                                   {**admission.headers, **({"x-aiub-provider": failed_at} if failed_at else {})})
        if isinstance(first, Result):
            data = bytes(first.data)
            await _settle(policies, admission, CachedAnswer(kind="result", body=data, provider=call.provider or ""),
                          first.prompt_tokens, first.completion_tokens)
            await _record(state, call, started, 200, first.completion_tokens)
            return Response(data, media_type=JSON, headers=headers)
        return StreamingResponse(_relay(state, call, frames, first, started, admission),
                                 media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})

    @app.post("/v1/chat/completions")
    @app.post("/chat/completions", include_in_schema=False)
    async def chat_completions(request: Request) -> Response:
        return await infer(request, "chat")

    @app.post("/v1/completions")
    @app.post("/completions", include_in_schema=False)
    async def completions(request: Request) -> Response:
        return await infer(request, "completion")

    @app.post("/v1/embeddings")
    @app.post("/embeddings", include_in_schema=False)
    async def embeddings(request: Request) -> Response:
        return await infer(request, "embedding")

    configured_models_body = models_body(config, {}, int(time.time()))

    @app.get("/v1/models")
    @app.get("/models", include_in_schema=False)
    async def models(request: Request) -> Response:
        await policies.auth.authenticate(request.headers.get("authorization"))
        # Configured names first, then what the backends say they serve (cached; a silent worker
        # costs at most its short timeout and leaves the configured list).
        if state.served_models is None:
            return Response(configured_models_body, media_type=JSON)
        return Response(await state.served_models.body(), media_type=JSON)

    @app.get("/v1/models/{model_id:path}")
    @app.get("/models/{model_id:path}", include_in_schema=False)
    async def model(request: Request, model_id: str) -> Response:
        """One entry of the list (`client.models.retrieve`); ids may hold a `/`."""
        listed = await models(request)
        for entry in msgspec.json.decode(bytes(listed.body))["data"]:
            if entry["id"] == model_id:
                return Response(msgspec.json.encode(entry), media_type=JSON)
        raise ModelNotFound(f"the model '{model_id}' does not exist", param="model")

    @app.get("/metrics")
    async def metrics() -> Response:
        assert state.telemetry is not None
        state.telemetry.refresh_gauges(state.active_connections)
        return Response(generate_latest(policies.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health")
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.get("/ready")
    async def ready() -> Response:
        ok = state.bus_health.connected and state.client is not None
        body = encode({"ready": ok, "nats_connected": state.bus_health.connected})
        return Response(body, status_code=200 if ok else 503, media_type=JSON)

    return app


def _signed_scope(secret: bytes | None, principal: Principal, lifetime_s: float) -> str | None:
    """The caller's key scope for the workers to check, when the bus requires one."""
    if secret is None:
        return None
    models = principal.record.models if principal.record is not None else ()
    return scope.issue(scope.Scope(tenant=principal.tenant, models=models, expires_at=time.time() + lifetime_s + 60),
                       secret)


async def _settle(policies: Policies, admission: Admission, answer: CachedAnswer | None, prompt_tokens: int,
                  completion_tokens: int) -> None:
    """Store the answer and charge its tokens; a failure here costs the cache entry, never the response."""
    try:
        await policies.settle(admission, answer, prompt_tokens, completion_tokens)
    except Exception as e:
        log.warning("settle_failed", error=repr(e))


async def _relay(state: GatewayState, call: Call, frames: AsyncIterator[ContentFrame], first: ContentFrame,
                 started: float, admission: Admission) -> AsyncIterator[bytes]:
    status = 200
    completion_tokens = 0  # bound by the Done pattern below
    policies = state.policies
    assert policies is not None
    # The chunks are kept for the cache only while they fit in one entry.
    storing = admission.mode is not None and admission.mode.write
    limit = state.config.runtime.cache.max_entry_bytes
    kept: list[bytes] = []
    kept_bytes = 0
    state.active_connections += 1
    try:
        async with call:
            frame: ContentFrame | None = first
            while frame is not None:
                match frame:
                    case Chunk():
                        payloads = [bytes(raw) for raw in frame.payloads]
                        if storing:
                            kept.extend(payloads)
                            kept_bytes += sum(map(len, payloads))
                            storing = kept_bytes <= limit
                            if not storing:
                                kept.clear()
                        yield b"".join(map(event, payloads))
                    case Done(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens):
                        # Settled before [DONE] reaches the client: its next request already sees the entry.
                        answer = CachedAnswer(kind="stream", chunks=tuple(kept),
                                              provider=call.provider or "") if storing else None
                        await _settle(policies, admission, answer, prompt_tokens, completion_tokens)
                        yield DONE_EVENT
                        return
                    case Error(error=error, status=error_status):
                        status = error_status
                        log.warning("stream_failed", provider=call.provider, status=error_status,
                                    message=error.message)
                        yield event(error_json(error))
                        yield DONE_EVENT
                        return
                    case Result(data=data):  # a backend that ignored stream=true
                        payload = bytes(data)
                        answer = CachedAnswer(kind="stream", chunks=(payload,),
                                              provider=call.provider or "") if storing else None
                        completion_tokens = frame.completion_tokens
                        await _settle(policies, admission, answer, frame.prompt_tokens, completion_tokens)
                        yield event(payload)
                        yield DONE_EVENT
                        return
                frame = await anext(frames, None)
            status = 502
            yield event(error_json(ErrorBody(message="the response ended without a final frame",
                                             type="upstream_error")))
            yield DONE_EVENT
    except (asyncio.CancelledError, GeneratorExit):
        # How Starlette ends a stream whose client went away: it cancels the task, or closes us.
        status = 499
        raise
    except Exception as e:
        # A bug of ours, not the client's leaving: a 500, logged as one, and the stream still ends
        # in an error event rather than looking complete.
        status = 500
        log.error("stream_relay_failed", provider=call.provider, error=repr(e), exc_info=True)
        yield event(_INTERNAL_ERROR)
        yield DONE_EVENT
    finally:
        state.active_connections -= 1
        with contextlib.suppress(Exception):
            await _record(state, call, started, status, completion_tokens)


async def _record_hit(state: GatewayState, parsed: validation.ParsedRequest, request_id: str,
                      client_request_id: str | None, started: float) -> None:
    latency = time.monotonic() - started
    if state.telemetry is not None:
        state.telemetry.finished(kind=parsed.kind, model=parsed.model, provider=None, status=200, cache_hit=True,
                                 latency_s=latency, ttft_s=None, attempts=0, completion_tokens=0)
    nc = state.nc
    if nc is None:
        return
    record = RequestRecord(request_id=request_id, client_request_id=client_request_id, model=parsed.model,
                           kind=parsed.kind, stream=parsed.stream, status=200, cache_hit=True,
                           latency_s=latency, ttft_s=None, at=time.time())
    with contextlib.suppress(Exception):
        await nc.publish(subjects.REQUEST_EVENTS, encode(record))


async def _record(state: GatewayState, call: Call, started: float, status: int, completion_tokens: int = 0) -> None:
    """Log the request and publish its story for the dashboard: after its last byte was sent."""
    latency = time.monotonic() - started
    ttft = call.first_content_at - started if call.first_content_at else None
    if state.telemetry is not None:
        state.telemetry.finished(kind=call.request.kind, model=call.request.model, provider=call.provider,
                                 status=status, cache_hit=False, latency_s=latency, ttft_s=ttft,
                                 attempts=len(call.attempts), completion_tokens=completion_tokens)
    nc = state.nc
    if nc is None:
        return
    attempts = tuple(AttemptRecord(attempt=a.attempt, provider=a.provider, worker_id=a.worker_id, status=a.status,
                                   error=a.error, latency_s=((a.ended or time.monotonic()) - a.started))
                     for a in call.attempts)
    record = RequestRecord(request_id=call.request.id, client_request_id=call.request.client_request_id,
                           model=call.request.model, kind=call.request.kind, stream=call.request.stream,
                           status=status, cache_hit=False, latency_s=latency, ttft_s=ttft,
                           attempts=attempts, at=time.time())
    with contextlib.suppress(Exception):
        await nc.publish(subjects.REQUEST_EVENTS, encode(record))

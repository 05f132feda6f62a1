"""The gateway: OpenAI's HTTP API in front of the bus. The app factory, its lifespan and the handlers.

An inference request's path lives in inference.py (and relay.py for a stream); its record, after
the last byte, in records.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from opentelemetry.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from services.gateway import admin, dialects, usage_store
from services.gateway.dialects import anthropic_routes, ollama_routes, responses_routes
from services.gateway.graphql_api import endpoint as graphql_api
from services.gateway.inference import infer
from services.gateway.model_catalog import models_body
from services.gateway.paths import StripTrailingSlash
from services.gateway.policies import Policies
from services.gateway.request_ids import client_request_id
from services.gateway.responses import JSON, READ_METHODS, error_response
from services.gateway.served_models import ServedModels
from services.gateway.state import GatewayState
from services.gateway.telemetry import RequestTelemetry
from services.gateway.unexpected_errors import ContainUnexpectedErrors
from shared import bus, logs
from shared.client import InferenceClient
from shared.config import Config
from shared.config_watch import ConfigWatch
from shared.errors import AiubError, BadRequest, ClientError, ModelNotFound
from shared.messages import encode

log = logs.get("gateway")

# Every method a route answers (the Responses door's and the admin API's DELETE, the admin API's
# PATCH, Ollama's HEAD), so a browser's preflight allows what the API serves.
CORS_METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"]
EXPOSED_HEADERS = ["x-request-id", "x-aiub-cache", "x-aiub-provider", "retry-after"] + [
    f"x-ratelimit-{what}-{unit}" for what in ("limit", "remaining", "reset") for unit in ("requests", "tokens")]


def create_app(config: Config, nats_url: str | None = None, *, host: str = "127.0.0.1",
               insecure_no_auth: bool = False, state_dir: Path = Path(".aiub"),
               tracer_provider: TracerProvider | None = None, config_revision: int = 0) -> FastAPI:
    """Raises auth.StartupRefused when the bind address needs a master key and none is set.
    `tracer_provider`: trace each request (FastAPI's server span, our attempts under it); None: off.
    `config_revision`: the `aiub_config` revision `config` is (0: files); later ones apply live."""
    policies = Policies.build(config, host=host, insecure_no_auth=insecure_no_auth, state_dir=state_dir)
    state = GatewayState(config=config, nats_url=nats_url, policies=policies,
                         telemetry=RequestTelemetry(policies.metrics, log), tracer_provider=tracer_provider,
                         live=ConfigWatch("gateway", config, number=config_revision))
    # FastAPI's built-in OpenTelemetry wraps every request even with no exporter configured:
    # off, it is a measured ~35 µs of CPU per request (docs/benchmarks.md).
    # /openapi.json documents the admin API (docs/admin-api.md); no docs pages are served.
    app = FastAPI(title="aiub", lifespan=_lifespan(state), docs_url=None, redoc_url=None, openapi_url="/openapi.json",
                  telemetry=_telemetry(tracer_provider))
    app.state.gateway = state
    app.add_middleware(ContainUnexpectedErrors)
    app.add_middleware(StripTrailingSlash)
    if config.runtime.gateway.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.runtime.gateway.cors_origins),
                           allow_methods=CORS_METHODS, allow_headers=["*"],
                           expose_headers=EXPOSED_HEADERS)
    _add_error_handlers(app)
    state.bus_secret = config.runtime.auth.bus_secret()
    _add_inference_routes(app, state)
    _add_dialect_routes(app, state)
    _add_model_routes(app, state)
    _add_service_routes(app, state)
    admin.add_routes(app, state)
    graphql_api.add_routes(app, state)  # /graphql (docs/graphql.md)
    return app


def _telemetry(tracer_provider: TracerProvider | None) -> TelemetryConfig:
    """Traced only with a provider (shared/spans.py): then FastAPI's server span is the root of the
    request's trace, with the client library's attempts under it. Probes and scrapes are not traced."""
    return {"tracing": tracer_provider is not None, "tracer_provider": tracer_provider, "metrics": False,
            "logs": False, "operation_spans": False, "auto_configure": False,
            "exclude": lambda scope: scope.get("path") in ("/metrics", "/health", "/ready")}


def _lifespan(state: GatewayState) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        policies = state.policies
        nc, state.bus_health = await bus.connect("aiub-gateway", state.nats_url, state.bus_health)
        state.nc = nc
        tracer = state.tracer_provider.get_tracer("aiub.gateway") if state.tracer_provider else None
        state.client = await InferenceClient.start(nc, state.config.runtime.deadlines, tracer=tracer)
        state.served_models = ServedModels(nc, state.config)
        policies.usage.start(usage_store.open_store(policies.link, nc))
        await _follow_config(state)
        log.info("gateway_ready", nats=bus.server_address(nc), **policies.describe())
        if policies.auth.mode == "off_insecure":
            log.warning("auth_disabled", reason="--insecure-no-auth on a non-loopback bind: anyone can call")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await bus.close(nc)
            if state.live is not None:
                await state.live.stop()
            await policies.close()

    return lifespan


async def _follow_config(state: GatewayState) -> None:
    """Revisions of `aiub_config` from now on apply live (GatewayState.reconfigure)."""
    assert state.nc is not None
    live = state.live = state.live or ConfigWatch("gateway", state.config)
    started = state.config  # the listener, CORS, auth and Redis were built from it
    await live.start(state.nc.jetstream())
    if live.config is not started:  # pushed since main.py read the bucket
        state.reconfigure(live.config)
    live.bind(state.reconfigure, started=started)
    state.bus_health.on_reconnect.append(live.rewatch)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AiubError)
    async def _aiub_error(request: Request, exc: AiubError) -> Response:
        # Refused before reaching the bus (auth, limits, validation): one line, never the key itself.
        (log.error if exc.status >= 500 else log.warning)("request_rejected", status=exc.status, code=exc.code,
                                                          path=request.url.path)
        return error_response(exc.status, exc.body(), client_request_id(request.headers.get("x-request-id")),
                              exc.retry_after, getattr(exc, "headers", None), dialects.of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # An unknown path or method: OpenAI answers these, 404 included, as invalid_request_error.
        error = ClientError(exc.status_code, str(exc.detail), code=str(exc.status_code)) \
            if 400 <= exc.status_code < 500 else AiubError(str(exc.detail))
        # A 405's Allow header tells the client which method the path takes (RFC 9110 requires it).
        return error_response(error.status, error.body(), extra=dict(exc.headers or {}),
                              dialect=dialects.of(request))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own text names the endpoint's source file: say only which field and why.
        problems = exc.errors()
        where = ".".join(str(part) for part in problems[0]["loc"][1:]) if problems else None
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in problems)
        return error_response(400, BadRequest(message or "invalid request", param=where or None).body(),
                              dialect=dialects.of(request))


def _add_inference_routes(app: FastAPI, state: GatewayState) -> None:
    @app.post("/v1/chat/completions")
    @app.post("/chat/completions", include_in_schema=False)
    async def chat_completions(request: Request) -> Response:
        return await infer(state, request, "chat")

    @app.post("/v1/completions")
    @app.post("/completions", include_in_schema=False)
    async def completions(request: Request) -> Response:
        return await infer(state, request, "completion")

    @app.post("/v1/embeddings")
    @app.post("/embeddings", include_in_schema=False)
    async def embeddings(request: Request) -> Response:
        return await infer(state, request, "embedding")


def _add_dialect_routes(app: FastAPI, state: GatewayState) -> None:
    """The front doors (dialects/__init__.py): one line each, calling the door's own route module."""
    anthropic_routes.add_routes(app, state)
    ollama_routes.add_routes(app, state)
    responses_routes.add_routes(app, state)


def _add_model_routes(app: FastAPI, state: GatewayState) -> None:
    configured_models_body = models_body(state.config, {}, int(time.time()))

    @app.api_route("/v1/models", methods=READ_METHODS)
    @app.api_route("/models", methods=READ_METHODS, include_in_schema=False)
    async def models(request: Request) -> Response:
        await state.policies.auth.authenticate(request.headers.get("authorization"))
        # Configured names first, then what the backends say they serve (cached; a silent worker
        # costs at most its short timeout and leaves the configured list).
        if state.served_models is None:
            return Response(configured_models_body, media_type=JSON)
        return Response(await state.served_models.body(), media_type=JSON)

    @app.api_route("/v1/models/{model_id:path}", methods=READ_METHODS)
    @app.api_route("/models/{model_id:path}", methods=READ_METHODS, include_in_schema=False)
    async def model(request: Request, model_id: str) -> Response:
        """One entry of the list (`client.models.retrieve`); ids may hold a `/`."""
        listed = await models(request)
        for entry in msgspec.json.decode(bytes(listed.body))["data"]:
            if entry["id"] == model_id:
                return Response(msgspec.json.encode(entry), media_type=JSON)
        raise ModelNotFound(f"the model '{model_id}' does not exist", param="model")


def _add_service_routes(app: FastAPI, state: GatewayState) -> None:
    @app.api_route("/metrics", methods=READ_METHODS)
    async def metrics() -> Response:
        state.telemetry.refresh_gauges(state.active_connections)
        return Response(generate_latest(state.policies.registry), media_type=CONTENT_TYPE_LATEST)

    @app.api_route("/health", methods=READ_METHODS)
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.api_route("/ready", methods=READ_METHODS)
    async def ready() -> Response:
        ok = state.bus_health.connected and state.client is not None
        body = encode({"ready": ok, "nats_connected": state.bus_health.connected})
        return Response(body, status_code=200 if ok else 503, media_type=JSON)

"""Traces across the bus: W3C trace context in NATS headers, and the spans each service adds.

Rules:
- Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. The
  entry point (cli/main.py) reads it once, through `Environment`, and calls `install`, which sets
  OpenTelemetry's global tracer provider for the process. Unset, nothing is installed: every
  tracer is the API's no-op, a span is `INVALID_SPAN`, and no header is added.
- The trace context travels in the NATS headers `traceparent` (and `tracestate`) beside
  `Aiub-Request-Id` (shared/tracing.py), on each hop: the client library's request to a router
  carries its attempt span, the router's work order carries its route span.
- One client request is one trace: the gateway's HTTP server span (FastAPI's own), under it one
  `aiub.attempt` span per attempt (so fallbacks, and hedges, are siblings), under each the
  router's `aiub.route` span, under that the worker's `aiub.serve`, and under that
  `aiub.backend` around the backend's HTTP call.
- Services take a `Tracer` (tests pass their own provider's); the default is the global one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared import tracing
from shared.messages import InferenceRequest

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["INVALID_SPAN", "Attempt", "Context", "Span", "SpanKind", "Tracer", "end_attempt", "extract", "failed",
           "inject", "install", "installed", "start_attempt", "tracer"]

# W3C trace context only: baggage is not ours to forward. Stateless, so one is enough.
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT = "traceparent"


def tracer(name: str) -> Tracer:
    """The global provider's tracer: a no-op one unless `install` ran in this process."""
    return trace.get_tracer(name)


def inject(headers: dict[str, str], span: Span) -> dict[str, str]:
    """`headers` plus `traceparent`/`tracestate` naming `span` as the parent, when it has a context."""
    if span.get_span_context().is_valid:
        _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
    return headers


def extract(headers: Mapping[str, str] | None) -> Context | None:
    """The parent a message's headers name; None (a new trace, or none) when they name none."""
    if not headers or _TRACEPARENT not in headers:
        return None
    return _PROPAGATOR.extract(headers)


def failed(span: Span, description: str) -> None:
    span.set_status(Status(StatusCode.ERROR, description))


def start_attempt(tracer: Tracer, request: InferenceRequest, attempt: str, number: int) -> Span:
    """`aiub.attempt`: a child of the caller's current span (the gateway's request), so attempts are siblings."""
    span = tracer.start_span("aiub.attempt", kind=SpanKind.CLIENT)
    if span.is_recording():
        span.set_attributes({"aiub.request_id": tracing.request_id(request), "aiub.attempt": attempt,
                             "aiub.attempt_number": number, "gen_ai.request.model": request.model,
                             "aiub.stream": request.stream})
    return span


class Attempt(Protocol):
    """What the client library knows of an attempt when it ends (shared/client.py's AttemptInfo)."""

    span: Span
    provider: str | None
    worker_id: str | None
    status: int
    error: str | None


def end_attempt(info: Attempt, cancelled: bool = False) -> None:
    """Ends the attempt's span once, whichever way the attempt ends first."""
    span, info.span = info.span, INVALID_SPAN
    if span.is_recording():
        span.set_attributes({"aiub.provider": info.provider or "", "aiub.worker_id": info.worker_id or "",
                             "http.response.status_code": 499 if cancelled else info.status})
        if cancelled:
            failed(span, "the consumer went away")
        elif info.error is not None:
            failed(span, info.error)
    span.end()


def install(service: str, url: str | None) -> TracerProvider | None:
    """Export this process's spans over OTLP (http/protobuf) to `url`, as `service.name` aiub-<service>.
    None: nothing is installed and nothing costs. The SDK flushes and shuts down at exit."""
    if not url:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"aiub-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    trace.set_tracer_provider(provider)
    return provider


def installed() -> TracerProvider | None:
    """The SDK provider `install` set up in this process, if any (the gateway hands it to FastAPI)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    from opentelemetry.sdk.trace import TracerProvider

    return provider if isinstance(provider, TracerProvider) else None

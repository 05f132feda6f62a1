"""A worker's spans for one attempt (shared/spans.py draws the whole trace):
- `aiub.serve`, a child of the router's `aiub.route` (the work order's `traceparent`), from the
  order's acceptance to its `Outcome`: the wait for a slot and the backend call;
- `aiub.backend`, its child, around the backend's HTTP call alone.
Attributes come from the attempt's `Outcome` and `BackendReport`, so a span says what the
metrics and the log line say. With tracing off every span is the no-op one and nothing is set."""

from __future__ import annotations

from opentelemetry import trace

from services.workers.backend import BackendReport
from shared import spans
from shared.messages import Outcome, WorkOrder

_NOT_FAILURES = frozenset({"ok", "cancelled"})


def start_serve(tracer: spans.Tracer, order: WorkOrder, request_id: str,
                parent: spans.Context | None) -> spans.Span:
    span = tracer.start_span("aiub.serve", context=parent, kind=spans.SpanKind.CONSUMER)
    if span.is_recording():
        span.set_attributes({"aiub.request_id": request_id, "aiub.attempt": order.request.attempt,
                             "aiub.provider": order.provider, "gen_ai.request.model": order.request.model})
    return span


def start_backend(tracer: spans.Tracer, serve: spans.Span, order: WorkOrder, base_url: str) -> spans.Span:
    if not serve.is_recording():
        return spans.INVALID_SPAN
    return tracer.start_span("aiub.backend", context=trace.set_span_in_context(serve), kind=spans.SpanKind.CLIENT,
                             attributes={"aiub.provider": order.provider, "url.full": base_url,
                                         "gen_ai.request.model": order.backend_model or order.request.model,
                                         "aiub.stream": order.request.stream})


def end_backend(span: spans.Span, report: BackendReport) -> None:
    if span.is_recording():
        span.set_attributes({"aiub.outcome": report.kind, "http.response.status_code": report.status,
                             "gen_ai.usage.input_tokens": report.usage.prompt_tokens,
                             "gen_ai.usage.output_tokens": report.usage.completion_tokens})
        if report.ttft_s is not None:
            span.set_attribute("aiub.ttft_s", report.ttft_s)
        if report.kind not in _NOT_FAILURES:
            spans.failed(span, f"{report.kind} ({report.status})")
    span.end()


def end_serve(span: spans.Span, outcome: Outcome) -> None:
    if span.is_recording():
        span.set_attributes({"aiub.worker_id": outcome.worker_id, "aiub.outcome": outcome.kind,
                             "http.response.status_code": outcome.status, "aiub.latency_s": outcome.latency_s,
                             "gen_ai.usage.input_tokens": outcome.prompt_tokens,
                             "gen_ai.usage.output_tokens": outcome.completion_tokens})
        if outcome.kind not in _NOT_FAILURES:
            spans.failed(span, f"{outcome.kind} ({outcome.status})")
    span.end()

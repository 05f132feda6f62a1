"""Trace context in NATS headers (shared/spans.py): injected only for a real span, extracted only
when a hop sent one; with nothing installed every span is the no-op one."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from shared import spans


def test_a_span_travels_as_traceparent_and_comes_back_as_its_parent() -> None:
    tracer = TracerProvider().get_tracer("t")
    span = tracer.start_span("attempt")
    headers = spans.inject({"Aiub-Request-Id": "r"}, span)
    ctx = span.get_span_context()
    assert headers["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    child = tracer.start_span("route", context=spans.extract(headers))
    assert child.parent is not None and child.parent.span_id == ctx.span_id
    assert child.get_span_context().trace_id == ctx.trace_id


def test_without_a_provider_nothing_is_added_and_nothing_is_extracted() -> None:
    span = trace.NoOpTracer().start_span("attempt")
    assert span is spans.INVALID_SPAN
    assert spans.inject({"Aiub-Request-Id": "r"}, span) == {"Aiub-Request-Id": "r"}
    assert spans.extract({"Aiub-Request-Id": "r"}) is None and spans.extract(None) is None


def test_install_needs_an_url() -> None:
    assert spans.install("router", None) is None

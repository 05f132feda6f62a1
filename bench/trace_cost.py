"""What tracing costs per request, in CPU microseconds, off and on (shared/spans.py).

Replays in this process the tracing work one request does on every hop, with the code the
services run: the client library's attempt span and its NATS header, the router's extract,
`aiub.route` span and header, the worker's extract, `aiub.serve` and `aiub.backend` spans; and,
separately, FastAPI's server span around a request to a trivial route (the gateway's root span).

- off: nothing installed (`OTEL_EXPORTER_OTLP_ENDPOINT` unset): the API's no-op tracer.
- on: an SDK provider with the BatchSpanProcessor the services install, its exporter replaced by
  one that drops the batch (the OTLP protobuf encoding is measured on its own line, per span).

    python bench/trace_cost.py            # 20 000 rounds
    python bench/trace_cost.py -n 100000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import FastAPI
from fastapi.responses import Response
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from services.gateway.app import _telemetry
from services.workers import attempt_spans
from services.workers.backend import BackendReport
from shared import spans, tracing
from shared.client import AttemptInfo
from shared.messages import InferenceRequest, Outcome, WorkOrder


class Drop(SpanExporter):
    def __init__(self) -> None:
        self.kept: list[ReadableSpan] = []

    def export(self, batch: Sequence[ReadableSpan]) -> SpanExportResult:
        if len(self.kept) < 10:
            self.kept.extend(batch[:10])
        return SpanExportResult.SUCCESS


def per_call_us(fn: Callable[[], object], rounds: int) -> float:
    for _ in range(min(1000, rounds)):
        fn()
    started = time.process_time()
    for _ in range(rounds):
        fn()
    return (time.process_time() - started) / rounds * 1e6


def one_request(tracer: spans.Tracer) -> Callable[[], None]:
    request = InferenceRequest(id="rU81iOL9fPd5p1jElfthsa", attempt="rU81iOL9fPd5p1jElfthuq", kind="chat",
                               model="llama3.1:8b", body={}, client_request_id="req_abc123")
    order = WorkOrder(request=request, reply_inbox="_INBOX.x.y", provider="ollama", backend_model="llama3.1:8b")
    report = BackendReport(kind="ok", status=200, ttft_s=0.02)
    outcome = Outcome(provider="ollama", model="llama3.1:8b", request_id=request.id, attempt=request.attempt,
                      worker_id="w6d7IIM5w6z38UraQOU416S", kind="ok", latency_s=0.1, ttft_s=0.02)

    def run() -> None:
        # client library (gateway): one attempt
        info = AttemptInfo(attempt=request.attempt, started=0.0)
        info.span = spans.start_attempt(tracer, request, info.attempt, 1)
        to_router = spans.inject(tracing.headers(request), info.span)
        # router
        route = tracer.start_span("aiub.route", context=spans.extract(to_router), kind=spans.SpanKind.CONSUMER)
        if route.is_recording():
            route.set_attributes({"aiub.request_id": tracing.request_id(request), "aiub.attempt": request.attempt,
                                  "aiub.attempt_number": 1, "gen_ai.request.model": request.model,
                                  "aiub.routed_by": "exact", "aiub.strategy": "", "aiub.candidates": ["ollama"],
                                  "aiub.excluded": []})
        to_worker = spans.inject(tracing.headers(request), route)
        route.set_attributes({"aiub.provider": "ollama", "aiub.worker_id": "w"})
        route.end()
        # worker
        serve = attempt_spans.start_serve(tracer, order, "req_abc123", spans.extract(to_worker))
        backend = attempt_spans.start_backend(tracer, serve, order, "http://127.0.0.1:11434")
        attempt_spans.end_backend(backend, report)
        attempt_spans.end_serve(serve, outcome)
        # client library: the attempt ends
        info.status, info.provider = 200, "ollama"
        spans.end_attempt(info)

    return run


def no_tracing() -> Callable[[], None]:
    """The same hops before traces existed: the request-id header, twice."""
    request = InferenceRequest(id="rU81iOL9fPd5p1jElfthsa", attempt="a", kind="chat", model="llama3.1:8b", body={},
                               client_request_id="req_abc123")

    def run() -> None:
        tracing.headers(request)
        tracing.headers(request)

    return run


def server_span(provider: TracerProvider | None, rounds: int) -> float:
    """CPU per request through FastAPI with the gateway's telemetry settings, over raw ASGI."""
    app = FastAPI(telemetry=_telemetry(provider), openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v1/chat/completions")
    async def answer() -> Response:
        return Response(b"{}", media_type="application/json")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"gateway"), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 4000)}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: object) -> None:
        return None

    async def measure() -> float:
        for _ in range(min(1000, rounds)):
            await app(dict(scope), receive, send)
        started = time.process_time()
        for _ in range(rounds):
            await app(dict(scope), receive, send)
        return (time.process_time() - started) / rounds * 1e6

    return asyncio.run(measure())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--rounds", type=int, default=20_000)
    rounds = parser.parse_args().rounds
    dropped = Drop()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(dropped, max_queue_size=rounds * 8))
    baseline = per_call_us(no_tracing(), rounds)
    off = per_call_us(one_request(spans.tracer("aiub.bench")), rounds)  # nothing installed: the no-op tracer
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    on = per_call_us(one_request(provider.get_tracer("aiub.bench")), rounds)
    http_off = server_span(None, rounds)
    http_on = server_span(provider, rounds)
    provider.force_flush()
    encode = per_call_us(lambda: encode_spans(dropped.kept[:5]).SerializeToString(), rounds) / 5
    provider.shutdown()
    rows = [
        ("bus hops without any tracing code (the request-id headers)", baseline),
        ("bus hops (client attempt, router, worker), tracing off", off),
        ("bus hops (4 spans, 2 headers), tracing on", on),
        ("FastAPI request to a trivial route, tracing off", http_off),
        ("FastAPI request to a trivial route, tracing on (+ server span)", http_on),
        ("OTLP protobuf encoding, per span (on the exporter's thread)", encode),
    ]
    for label, us in rows:
        print(f"{label:<70} {us:7.2f} µs")
    print(f"{'per request, tracing off (added by tracing)':<70} {off - baseline:7.2f} µs")
    added_on = on - baseline + http_on - http_off + 5 * encode
    print(f"{'per request, tracing on: 5 spans + their encoding':<70} {added_on:7.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

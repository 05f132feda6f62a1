"""One request is one trace across gateway, router and workers (shared/spans.py), fallback included.

The three services run in this process on one loop, over a real NATS server and a real simulated
backend; each has its own SDK tracer provider (its own `service.name`), so the only thing tying
their spans together is the W3C trace context that travels in the NATS headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.gateway.app import create_app
from services.router.service import Router
from services.simulator.server import SimulatorSettings, start_simulator
from services.workers.http import BackendHttp
from services.workers.service import Worker
from shared.client import new_id
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.health_view import HealthView

UNREACHABLE = "http://127.0.0.1:9"  # connection refused: a retryable failure before any content


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    yield spans
    spans.shutdown()


def provider(service: str, exporter: InMemorySpanExporter) -> TracerProvider:
    traced = TracerProvider(resource=Resource.create({"service.name": f"aiub-{service}"}))
    traced.add_span_processor(SimpleSpanProcessor(exporter))
    return traced


def service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


async def test_a_request_that_fell_back_once_is_one_trace_across_the_services(
        nats_url: str, tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    async with await start_simulator(SimulatorSettings("openai")) as sim:
        model = sim.settings.models[0]
        broken, good = f"broken{new_id()}", f"good{new_id()}"
        config = Config(directory=tmp_path, providers={
            broken: ProviderSpec.model_validate({"type": "vllm", "base_url": UNREACHABLE, "models": [model]}),
            good: ProviderSpec.model_validate({"type": "vllm", "base_url": sim.url, "models": [model]})},
            mappings=ModelMappingsFile.model_validate({"exact_matches": {model: {"provider": broken}},
                                                       "fallback_chains": {model: [broken, good]}}),
            runtime=RuntimeFile())
        nc = await nats.connect(nats_url)
        http = BackendHttp()
        router = Router(nc, config, HealthView(), tracer=provider("router", exporter).get_tracer("aiub.router"))
        worker = Worker(nc, config, [broken, good], http, tracer=provider("worker", exporter).get_tracer("aiub.worker"))
        await router.start()
        await worker.start()
        app = create_app(config, nats_url, state_dir=tmp_path, tracer_provider=provider("gateway", exporter))
        try:
            async with app.router.lifespan_context(app), httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
                answer = await client.post("/v1/chat/completions", json={
                    "model": model, "messages": [{"role": "user", "content": "hi"}]})
                assert answer.status_code == 200, answer.text
                assert answer.headers["x-aiub-provider"] == good
                await router.wait_idle()
        finally:
            await worker.stop(grace_s=1.0)
            await http.aclose()
            await nc.close()

    spans = exporter.get_finished_spans()
    assert len({span.context.trace_id for span in spans}) == 1, [(s.name, service(s)) for s in spans]
    by_id = {span.context.span_id: span for span in spans}
    [root] = [span for span in spans if span.parent is None]
    assert (service(root), root.kind, root.attributes["http.response.status_code"]) == ("aiub-gateway", SpanKind.SERVER,
                                                                                         200)

    def children(parent: ReadableSpan, name: str) -> list[ReadableSpan]:
        return sorted((s for s in spans if s.parent and s.parent.span_id == parent.context.span_id and s.name == name),
                      key=lambda s: s.start_time or 0)

    # Two attempts, siblings under the request: the first failed on the broken provider, the second answered.
    first, second = children(root, "aiub.attempt")
    assert [a.attributes["aiub.attempt_number"] for a in (first, second)] == [1, 2]
    assert (first.attributes["aiub.provider"], first.status.status_code) == (broken, StatusCode.ERROR)
    assert (second.attributes["aiub.provider"], second.attributes["http.response.status_code"]) == (good, 200)
    for attempt, served_by in ((first, broken), (second, good)):
        [route] = children(attempt, "aiub.route")
        assert (service(route), route.attributes["aiub.provider"]) == ("aiub-router", served_by)
        [serve] = children(route, "aiub.serve")
        [backend] = children(serve, "aiub.backend")
        assert service(serve) == service(backend) == "aiub-worker"
        assert serve.attributes["aiub.provider"] == backend.attributes["aiub.provider"] == served_by
    assert second.attributes["aiub.attempt"] != first.attributes["aiub.attempt"]
    assert children(children(children(first, "aiub.route")[0], "aiub.serve")[0], "aiub.backend")[0].attributes[
        "aiub.outcome"] == "connection"
    assert children(root, "aiub.route") == []  # nothing skips a level
    assert all(by_id.get(s.parent.span_id) is not None for s in spans if s.parent)  # no orphan: every parent exported

"""The dashboard against a real NATS server and a real `/metrics` endpoint: provider states from
the KV bucket, requests from the gateway's events, outcomes from workers, metrics over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry, start_http_server

from cli.dashboard.app import DashboardApp
from cli.dashboard.feed import Feed, Model
from shared import subjects
from shared.embedded_nats import free_port
from shared.health_view import open_bucket
from shared.messages import AttemptRecord, Outcome, ProviderState, RequestRecord, encode
from shared.metrics import RouterMetrics
from tests.support.screen import SIZE, row, screen_text, until

REFRESH_S = 0.5


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[tuple[Client, KeyValue]]:
    nc = await nats.connect(nats_url)
    kv = await open_bucket(nc.jetstream())
    yield nc, kv
    await nc.close()


@pytest.fixture
def metrics_endpoint() -> Iterator[str]:
    registry = CollectorRegistry()
    router = RouterMetrics(registry)
    router.distribution.labels(provider="dashprov").inc(3)
    router.distribution.labels(provider="other").inc(1)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(5)


def state(name: str, state_name: str, seq: int, reason: str) -> bytes:
    return encode(ProviderState(provider=name, state=state_name, since=time.time(), seq=seq, reason=reason,  # type: ignore[arg-type]
                                admit_fraction=0.0 if state_name == "unavailable" else 1.0))


async def test_dashboard_follows_a_live_stack(nats_url: str, bus: tuple[Client, KeyValue],
                                              metrics_endpoint: str) -> None:
    nc, kv = bus
    await kv.put("dashprov", state("dashprov", "active", 1, "probe passed"))
    model = Model(metrics_urls=[metrics_endpoint, "http://127.0.0.1:9/metrics"])
    app = DashboardApp(model, Feed(model, nats_url), refresh_s=REFRESH_S)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row(app, "dashprov", "active", "probe passed"), 10, "the provider's state")
        assert f"connected to {nats_url}" in screen_text(app)

        # A provider going down shows within the refresh interval (plus the KV watch's delivery).
        await kv.put("dashprov", state("dashprov", "unavailable", 2, "3 failures within 60 s"))
        took = await until(pilot, lambda: row(app, "dashprov", "unavailable", "3 failures within 60 s"), 10,
                           "the provider to show as down")
        assert took <= REFRESH_S + 1.5

        # A request's story: the worker's outcome, then the gateway's record.
        outcome = Outcome(provider="dashprov", model="dash-model", request_id="busid1", attempt="att1",
                          worker_id="wdash", kind="ok", latency_s=0.42, ttft_s=0.07, prompt_tokens=3,
                          completion_tokens=16, at=time.time())
        await nc.publish(subjects.outcome("dashprov"), encode(outcome))
        record = RequestRecord(request_id="busid1", client_request_id="req_dash_1", model="dash-model", kind="chat",
                               stream=True, status=200, cache_hit=False, latency_s=0.45, ttft_s=0.08,
                               attempts=(AttemptRecord(attempt="att1", provider="dashprov", worker_id="wdash",
                                                       status=200, latency_s=0.43),), at=time.time())
        await nc.publish(subjects.REQUEST_EVENTS, encode(record))
        await until(pilot, lambda: row(app, "req_dash_1", "dash-model", "dashprov", "200"), 10, "the request")
        assert row(app, "dashprov", "1", "100%", "0%", "70 ms", "70 ms", "420 ms", "420 ms")

        await pilot.press("enter")
        await until(pilot, lambda: row(app, "request req_dash_1", "bus id busid1"), 5, "the request's details")
        assert row(app, "1", "dashprov", "wdash", "200", "ok", "430 ms", "70 ms", "3/16")
        await pilot.press("escape")

        await until(pilot, lambda: row(app, "metrics 1/2 endpoints up"), 10, "the metrics line")
        assert row(app, "traffic:", "dashprov 3 (75%)", "other 1 (25%)")

"""The health service against real NATS, real simulators and the real worker, router and gateway.

Two providers serve one model, `m`: `a` first, `b` as its fallback. The simulators tell who
answered by the length of the reply (a: 2 tokens, b: 3). Most tests run the health service
in this process, with short intervals from a per-test config, so they can read its events
and metrics; the replica test runs it as processes and kills them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError
from prometheus_client import CollectorRegistry

from cli.status import as_dict, read_snapshot, render_table
from services.health import breaker
from services.health.service import HealthService, ServiceSettings
from shared import subjects
from shared.client import new_id
from shared.config import Config, load_config
from shared.health_view import HealthView
from shared.messages import Accepted, InferenceRequest, encode, frame_decoder
from shared.metrics import HealthMetrics
from tests.support.health_stack import CHAT, ask, chats, prompts, reset_stats, sims, trip
from tests.support.processes import Process, Stack, wait_until_async


@pytest.fixture(scope="module")
def stack(health_stack: Stack) -> Stack:
    return health_stack


def configured(stack: Stack, **health: Any) -> Config:
    config = load_config(stack.config_dir)
    providers = {name: spec.model_copy(update={"health": spec.health.model_copy(update=health)})
                 for name, spec in config.providers.items()}
    return config.model_copy(update={"providers": providers})


class InProcess:
    def __init__(self, service: HealthService, registry: CollectorRegistry) -> None:
        self.service = service
        self.registry = registry

    def effects(self, provider: str, kind: type) -> list[tuple[float, Any]]:
        return [(at, e) for at, p, e in self.service.history if p == provider and isinstance(e, kind)]

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@contextlib.asynccontextmanager
async def health_service(nc: Client, config: Config, view: HealthView) -> AsyncIterator[InProcess]:
    registry = CollectorRegistry()
    service = HealthService(nc, config, HealthMetrics(registry), ServiceSettings(heartbeat_s=0.3, lease_s=2))
    await service.start()
    try:
        await view.wait_for(lambda v: {"a", "b"} <= set(v.states) and not v.stale, 5)
        yield InProcess(service, registry)
    finally:
        await service.stop()


# -- the circuit opens -------------------------------------------------------------------------
async def test_three_500s_open_the_circuit_within_a_second_and_stop_traffic(
        stack: Stack, nc: Client, view: HealthView, http: httpx.AsyncClient) -> None:
    async with health_service(nc, configured(stack), view) as health:
        third_sent = await trip(http, stack, view, "a")
        seen = time.monotonic()
        assert seen - third_sent < 1.0
        state = view.states["a"]
        assert state.open_until is not None and state.open_until > time.time() + 20
        assert "3 upstream failures" in state.reason and view.states["b"].state == "active"
        ((moved_at, moved),) = health.effects("a", breaker.Transitioned)
        assert (moved.source, moved.target, moved.trigger) == ("active", "unavailable", "tripped")
        propagation_ms = (view.received_at["a"] - moved_at) * 1000
        print(f"\ntransition -> a router's view: {propagation_ms:.2f} ms")
        assert propagation_ms < 1000
        assert health.metric("provider_availability", provider="a") == 0
        assert health.metric("provider_state", provider="a", state="unavailable") == 1
        assert health.metric("provider_transitions_total", provider="a", to="unavailable", reason="tripped") == 1

        before = chats(sims(stack)["a"])
        served = []
        window_ends = time.monotonic() + 1.0
        while time.monotonic() < window_ends:
            status, by, _ = await ask(http, stack)
            served.append((status, by))
        assert served and set(served) == {(200, "b")}
        assert chats(sims(stack)["a"]) == before

        snapshot = await read_snapshot(stack.nats_url)
        listed = {p["provider"]: p for p in as_dict(snapshot, time.time())["providers"]}
        assert listed["a"]["state"] == "unavailable" and listed["b"]["probe_latency_s"] is not None
        assert "unavailable" in render_table(snapshot, time.time())


async def test_after_the_open_period_one_trial_then_traffic_ramps_back(
        stack: Stack, nc: Client, view: HealthView, http: httpx.AsyncClient) -> None:
    async with health_service(nc, configured(stack, open_s=1.0), view) as health:
        await trip(http, stack, view, "a")
        sims(stack)["a"].knobs(error_rate=0.0)
        reset_stats(sims(stack)["a"])
        served: list[str | None] = []
        statuses: list[int] = []
        fractions: list[float] = []

        stop = asyncio.Event()

        async def traffic() -> None:
            while not stop.is_set():  # finish each request, so every one `a` saw is counted
                status, by, _ = await ask(http, stack)
                statuses.append(status)
                served.append(by)

        async def watch() -> None:
            while True:
                state = view.states["a"]
                if not fractions or fractions[-1] != state.admit_fraction:
                    fractions.append(state.admit_fraction)
                view.changed.clear()
                await view.changed.wait()

        sender, watcher = asyncio.create_task(traffic()), asyncio.create_task(watch())
        try:
            await view.wait_for(lambda v: v.states["a"].state == "active", 15)
        finally:
            stop.set()
            watcher.cancel()
            await asyncio.gather(sender, watcher, return_exceptions=True)

        assert statuses and set(statuses) == {200}
        (opened_at, _), = [(at, e) for at, e in health.effects("a", breaker.Transitioned)
                           if e.target == "unavailable"]
        trials = health.effects("a", breaker.StartTrial)
        assert len(trials) == 1 and trials[0][0] - opened_at >= 1.0 - 0.05
        # Every request `a` saw was a user request we counted, but one: the trial.
        assert chats(sims(stack)["a"]) == served.count("a") + 1
        assert [e.admit_fraction for _, e in health.effects("a", breaker.RampStepped)] == [0.25, 0.5, 1.0]
        assert [(e.source, e.target) for _, e in health.effects("a", breaker.Transitioned)] == [
            ("active", "unavailable"), ("unavailable", "cooldown"), ("cooldown", "active")]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
        assert served.count("a") >= 3 * 2  # the ramp's successes came from user traffic


# -- what does not count, and what counts differently -----------------------------------------------
async def test_a_4xx_storm_changes_nothing(stack: Stack, nc: Client, view: HealthView,
                                           http: httpx.AsyncClient) -> None:
    async with health_service(nc, configured(stack, failure_threshold=2), view) as health:
        before = view.states["a"]
        sims(stack)["a"].knobs(error_rate=1.0, error_status=400)
        statuses = [(await ask(http, stack))[0] for _ in range(10)]
        assert statuses == [400] * 10
        await wait_until_async(lambda: health.service.outcomes_seen >= 10, 5, "the outcomes to arrive")
        assert health.effects("a", breaker.Transitioned) == []
        assert view.states["a"].state == "active" and view.states["a"].seq == before.seq


async def test_impatient_clients_do_not_open_a_slow_providers_circuit(
        stack: Stack, nc: Client, view: HealthView, http: httpx.AsyncClient) -> None:
    async with health_service(nc, configured(stack, failure_threshold=2), view) as health:
        sims(stack)["a"].knobs(ttft_ms=1500)
        try:
            for _ in range(4):  # what the OpenAI SDK sends for `timeout=0.3`
                body = {"model": "m", "messages": [{"role": "user", "content": f"hurry {next(prompts)}"}]}
                response = await http.post(stack.gateway_url + CHAT, json=body, headers={"x-stainless-timeout": "0.3"})
                assert response.status_code == 504
            await wait_until_async(lambda: health.service.outcomes_seen >= 4, 5, "the outcomes to arrive")
        finally:
            sims(stack)["a"].knobs(ttft_ms=0)
        assert health.effects("a", breaker.Transitioned) == []
        assert view.states["a"].state == "active"


async def test_a_429_removes_the_provider_for_its_retry_after_only(
        stack: Stack, nc: Client, view: HealthView, http: httpx.AsyncClient) -> None:
    async with health_service(nc, configured(stack), view) as health:
        sims(stack)["a"].knobs(error_rate=1.0, error_status=429, retry_after=1)
        status, by, _ = await ask(http, stack)
        assert (status, by) == (200, "b")  # the gateway moved on to the fallback
        await view.wait_for(lambda v: v.states["a"].state == "unavailable", 2)
        assert view.states["a"].resume == "active"
        sims(stack)["a"].knobs(error_rate=0.0)
        await view.wait_for(lambda v: v.states["a"].state == "active", 3)
        assert health.effects("a", breaker.StartTrial) == []  # no trial: a rate limit is not an outage
        assert chats(sims(stack)["a"]) == 1
        assert (await ask(http, stack))[1] == "a"


async def test_all_providers_down_answers_503_at_once(stack: Stack, nc: Client, view: HealthView,
                                                      http: httpx.AsyncClient) -> None:
    async with health_service(nc, configured(stack), view):
        await trip(http, stack, view, "a", "b")
        timings = []
        for _ in range(5):
            started = time.monotonic()
            status, _, response = await ask(http, stack)
            timings.append(time.monotonic() - started)
            assert status == 503
        timings.sort()
        assert timings[2] < 0.1, timings
        assert 20 <= int(response.headers["retry-after"]) <= 31


# -- state survives processes ----------------------------------------------------------------------
async def test_a_router_started_late_obeys_the_state_at_once(stack: Stack, nc: Client, view: HealthView,
                                                             http: httpx.AsyncClient) -> None:
    async with health_service(nc, configured(stack), view):
        await trip(http, stack, view, "a")
        before = chats(sims(stack)["a"])
        old: Process = stack.router
        old.stop()
        stack.router = stack.service("router")
        # The first request the new router takes is already placed by the state in the bucket.
        request = InferenceRequest(id=new_id(), attempt=new_id(), kind="chat", model="m",
                                   body={"model": "m", "messages": [{"role": "user", "content": "first"}]})
        give_up_at = time.monotonic() + 20
        while True:
            try:
                first = frame_decoder.decode((await nc.request(subjects.REQUESTS, encode(request), timeout=5)).data)
                break
            except NoRespondersError:
                assert time.monotonic() < give_up_at, "the new router never subscribed"
                await asyncio.sleep(0.05)
        assert isinstance(first, Accepted) and first.provider == "b"
        results = [(await ask(http, stack))[:2] for _ in range(10)]
        assert results == [(200, "b")] * 10
        assert chats(sims(stack)["a"]) == before

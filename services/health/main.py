"""`aiub health`: probes providers and publishes their state in the `aiub_health` KV bucket."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx

from shared import bus, logs, subjects
from shared.config import Config, ProviderSpec
from shared.health_view import Heartbeat, open_bucket
from shared.messages import ProviderState, encode

log = logs.get("health")

HEARTBEAT_S = 2.0


async def probe(http: httpx.AsyncClient, spec: ProviderSpec) -> str | None:
    """None when healthy, else why not. Providers without a probe are judged by outcomes only."""
    path = spec.probe_path
    if path is None:
        return None
    root = spec.base_url[:-3] if spec.base_url.endswith("/v1") and path.startswith("/v1") else spec.base_url
    for attempt in range(spec.health.attempts):
        try:
            response = await http.get(root + path, timeout=spec.health.timeout_s)
            if response.status_code < 500:
                return None
            reason = f"probe answered HTTP {response.status_code}"
        except httpx.HTTPError as e:
            reason = f"probe failed: {type(e).__name__}"
        if attempt + 1 < spec.health.attempts:
            await asyncio.sleep(min(1.0, spec.health.interval_s / 10))
    return reason


async def serve(config: Config, nats_url: str | None, stop: asyncio.Event) -> None:
    nc, _ = await bus.connect("aiub-health", nats_url)
    kv = await open_bucket(nc.jetstream())
    http = httpx.AsyncClient(trust_env=False)
    states: dict[str, ProviderState] = {}

    async def publish(name: str, healthy_reason: str | None) -> None:
        previous = states.get(name)
        state_name = "active" if healthy_reason is None else "unavailable"
        if previous is not None and previous.state == state_name:
            return
        state = ProviderState(provider=name, state=state_name, previous=previous.state if previous else None,
                              reason=healthy_reason or "probe passed", since=time.time(),
                              seq=(previous.seq + 1) if previous else 1,
                              admit_fraction=1.0 if healthy_reason is None else 0.0)
        states[name] = state
        await kv.put(name, encode(state))
        level = log.info if state_name == "active" else log.warning
        level("provider_state_changed", provider=name, state=state_name, reason=state.reason)

    async def watch(name: str, spec: ProviderSpec) -> None:
        while True:
            await publish(name, await probe(http, spec))
            await asyncio.sleep(spec.health.interval_s)

    async def heartbeat() -> None:
        while True:
            await kv.put(subjects.HEALTH_HEARTBEAT_KEY, encode(Heartbeat(leader="health", at=time.time())))
            await asyncio.sleep(HEARTBEAT_S)

    tasks = [asyncio.create_task(watch(n, s)) for n, s in config.providers.items() if s.status == "active"]
    tasks.append(asyncio.create_task(heartbeat()))
    log.info("health_ready", providers=list(config.providers))
    await stop.wait()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await http.aclose()
    await nc.drain()

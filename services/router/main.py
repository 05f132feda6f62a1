"""`aiub router`: the routing service as a process."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from services.router.service import Router
from shared import bus, logs, metrics
from shared.config import Config
from shared.config_watch import ConfigWatch
from shared.health_view import HealthView

log = logs.get("router")


async def serve(config: Config, nats_url: str | None, stop: asyncio.Event, metrics_port: int | None = None,
                metrics_host: str | None = None) -> None:
    registry = CollectorRegistry()
    served_on = metrics.serve(registry, metrics_port, metrics_host)
    nc, bus_health = await bus.connect("aiub-router", nats_url)
    view = HealthView()
    await view.start(nc.jetstream())
    bus_health.on_reconnect.append(view.rewatch)
    live = ConfigWatch("router", config)
    await live.start(nc.jetstream())
    bus_health.on_reconnect.append(live.rewatch)
    router = Router(nc, live.config, view, metrics.RouterMetrics(registry))
    live.bind(router.reconfigure)
    await router.start()
    log.info("router_ready", metrics_port=served_on)
    await stop.wait()
    await bus.close(nc)
    await router.wait_idle()
    await live.stop()
    await view.stop()

"""`aiub health`: the health service as a process (see `service.py` and README.md here)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from services.health.service import HealthService, ServiceSettings
from shared import bus, logs, metrics
from shared.config import Config
from shared.config_watch import ConfigWatch

log = logs.get("health")


async def serve(config: Config, nats_url: str | None, stop: asyncio.Event, metrics_port: int | None = None,
                metrics_host: str | None = None,
                settings: ServiceSettings | None = None) -> None:
    nc, bus_health = await bus.connect("aiub-health", nats_url)
    registry = CollectorRegistry()
    health_metrics = metrics.HealthMetrics(registry)
    port = metrics.serve(registry, metrics_port, metrics_host)
    live = ConfigWatch("health", config)
    await live.start(nc.jetstream())
    bus_health.on_reconnect.append(live.rewatch)
    service = HealthService(nc, live.config, health_metrics, settings)
    live.bind(service.reconfigure)
    await service.start()
    log.info("health_ready", holder=service.holder, providers=list(service.providers), metrics_port=port)
    await stop.wait()
    await service.stop()
    await live.stop()
    await bus.close(nc)

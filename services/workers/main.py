"""`aiub worker --provider KEY [KEY ...]`: serves providers' work subjects as a process."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from services.workers.http import BackendHttp
from services.workers.service import Worker
from shared import bus, logs, metrics
from shared.config import Config
from shared.config_watch import ConfigWatch

log = logs.get("worker")


async def serve(config: Config, providers: list[str], nats_url: str | None, stop: asyncio.Event,
                metrics_port: int | None = None, metrics_host: str | None = None) -> None:
    """`metrics_port`: serve Prometheus `/metrics` there (0: any free port; None: not served)."""
    registry = CollectorRegistry()
    provider_metrics = metrics.ProviderMetrics(registry)
    served_on = metrics.serve(registry, metrics_port, metrics_host)
    http = BackendHttp()
    nc, bus_health = await bus.connect(f"aiub-worker-{'-'.join(providers)}", nats_url)
    live = ConfigWatch("worker", config, served=providers)
    await live.start(nc.jetstream())
    bus_health.on_reconnect.append(live.rewatch)
    worker = Worker(nc, live.config, providers, http, metrics=provider_metrics)
    live.bind(worker.reconfigure)
    await worker.start()
    log.info("worker_ready", providers=providers, worker_id=worker.worker_id, metrics_port=served_on)
    await stop.wait()
    await worker.stop()
    await live.stop()
    await bus.close(nc)
    await http.aclose()

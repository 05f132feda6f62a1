"""`aiub worker --provider KEY [KEY ...]`: serves providers' work subjects as a process."""

from __future__ import annotations

import asyncio

from services.workers.backend import http_client
from services.workers.service import Worker
from shared import bus, logs
from shared.config import Config

log = logs.get("worker")


async def serve(config: Config, providers: list[str], nats_url: str | None, stop: asyncio.Event) -> None:
    http = http_client(config.runtime.worker.http_transport)
    nc, _ = await bus.connect(f"aiub-worker-{'-'.join(providers)}", nats_url)
    worker = Worker(nc, config, providers, http)
    await worker.start()
    log.info("worker_ready", providers=providers, worker_id=worker.worker_id)
    await stop.wait()
    await worker.stop()
    await nc.drain()
    await http.aclose()

"""`aiub gateway`: the HTTP surface as a process (uvicorn with uvloop and httptools)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import nats
import uvicorn

from services.gateway.app import create_app
from services.gateway.auth import StartupRefused
from services.gateway.header_limits import limited_protocol
from shared import bus, config_watch, logs, spans
from shared.config import Config

log = logs.get("gateway")


def serve(config: Config, host: str, port: int, nats_url: str | None, *, insecure_no_auth: bool = False,
          state_dir: str | Path = ".aiub") -> int:
    config, revision = asyncio.run(bucket_config(config, nats_url))
    try:
        app = create_app(config, nats_url, host=host, insecure_no_auth=insecure_no_auth, state_dir=Path(state_dir),
                         tracer_provider=spans.installed(), config_revision=revision)
    except StartupRefused as e:
        print(f"aiub gateway: {e}", file=sys.stderr)
        return 2
    limits = config.runtime.limits
    protocol = limited_protocol(limits.max_header_bytes, limits.max_headers, limits.header_timeout_s)
    uvicorn.run(app, host=host, port=port, loop="uvloop", http=protocol,
                log_level="warning", access_log=False, timeout_graceful_shutdown=10, server_header=False,
                proxy_headers=False, date_header=False)
    return 0


async def bucket_config(config: Config, nats_url: str | None) -> tuple[Config, int]:
    """The `aiub_config` bucket's current revision, read before the listener and middleware are
    built from it (the lifespan then follows later ones live); the files when the bucket is empty
    or the bus does not answer at once (the lifespan applies a revision it finds later)."""
    url = bus.nats_url(nats_url)
    try:
        nc = await nats.connect(servers=[u.strip() for u in url.split(",") if u.strip()], connect_timeout=2,
                                max_reconnect_attempts=0, allow_reconnect=False,
                                inbox_prefix=bus.inbox_prefix_for(url))
    except Exception as e:
        log.info("config_bucket_not_read", error=repr(e), running="the files it was started with")
        return config, 0
    try:
        return await config_watch.initial(nc.jetstream(), "gateway", config)
    finally:
        await nc.close()

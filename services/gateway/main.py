"""`aiub gateway`: the HTTP surface as a process (uvicorn with uvloop and httptools)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from services.gateway.app import create_app
from services.gateway.auth import StartupRefused
from services.gateway.header_limits import limited_protocol
from shared import bus, config_watch, logs, spans
from shared.config import Config

log = logs.get("gateway")


def serve(config: Config, host: str, port: int, nats_url: str | None, *, insecure_no_auth: bool = False,
          state_dir: str | Path = ".aiub") -> int:
    """`aiub gateway`: the gateway as its own process, on its own uvloop."""
    config, revision = asyncio.run(bucket_config(config, nats_url))
    try:
        app = create_app(config, nats_url, host=host, insecure_no_auth=insecure_no_auth, state_dir=Path(state_dir),
                         tracer_provider=spans.installed(), config_revision=revision)
    except StartupRefused as e:
        print(f"aiub gateway: {e}", file=sys.stderr)
        return 2
    uvicorn.Server(_server_config(app, config, host, port, loop="uvloop")).run()
    return 0


async def serve_hosted(config: Config, host: str, port: int, nats_url: str | None, stop: asyncio.Event, *,
                       insecure_no_auth: bool = False, state_dir: str | Path = ".aiub") -> None:
    """The gateway as one service of `aiub services` (cli/up/combined.py): the same app and HTTP
    server on the loop it shares with the others, until `stop`. A refused start or a port it cannot
    bind raises, so the host stops and its supervisor sees it."""
    config, revision = await bucket_config(config, nats_url)
    try:
        app = create_app(config, nats_url, host=host, insecure_no_auth=insecure_no_auth, state_dir=Path(state_dir),
                         tracer_provider=spans.installed(), config_revision=revision)
    except StartupRefused as e:
        print(f"aiub gateway: {e}", file=sys.stderr)
        raise
    server = _HostedServer(_server_config(app, config, host, port))

    async def exit_on_stop() -> None:
        await stop.wait()
        server.should_exit = True

    stopper = asyncio.create_task(exit_on_stop())
    try:
        await server.serve()
    except SystemExit:  # uvicorn's answer to a port it cannot bind: not a reason to end the whole host at once
        raise RuntimeError(f"the gateway could not listen on {host}:{port}") from None
    finally:
        stopper.cancel()


class _HostedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The host process owns SIGTERM and SIGINT; they reach this server through `stop`.
        yield


def _server_config(app: FastAPI, config: Config, host: str, port: int, loop: str = "none") -> uvicorn.Config:
    """`loop`: "none" where the loop is already running (hosted), else the one uvicorn makes."""
    limits = config.runtime.limits
    protocol = limited_protocol(limits.max_header_bytes, limits.max_headers, limits.header_timeout_s)
    return uvicorn.Config(app, host=host, port=port, loop=loop, http=protocol, log_level="warning",
                          access_log=False, timeout_graceful_shutdown=10, server_header=False,
                          proxy_headers=False, date_header=False)


async def bucket_config(config: Config, nats_url: str | None) -> tuple[Config, int]:
    """The `aiub_config` bucket's current revision, read before the listener and middleware are
    built from it (the lifespan then follows later ones live); the files when the bucket is empty
    or the bus does not answer at once (the lifespan applies a revision it finds later)."""
    url = bus.nats_url(nats_url)
    try:
        nc = await bus.connect_once(url, 2)
    except Exception as e:
        log.info("config_bucket_not_read", error=repr(e), running="the files it was started with")
        return config, 0
    try:
        return await config_watch.initial(nc.jetstream(), "gateway", config)
    finally:
        await nc.close()

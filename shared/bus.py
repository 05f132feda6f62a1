"""Connecting to NATS the way every aiub service must (DESIGN.md, "NATS protocol").

nats-py gives up reconnecting after about two minutes by default; a service that silently
stops talking to the bus is worse than one that crashes, so reconnects are unlimited and the
connection state drives the service's readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from nats.aio.client import Client
from nats.errors import ConnectionClosedError, ConnectionReconnectingError, NoServersError, SlowConsumerError

from shared import logs, subjects
from shared.nats_library import nats, servers

DEFAULT_URL = "nats://127.0.0.1:4222"

log = logs.get("bus")


@dataclass
class BusHealth:
    """What `/ready` and metrics read: is the bus usable right now, and what went wrong."""

    connected: bool = False
    disconnects: int = 0
    reconnects: int = 0
    slow_consumer_errors: int = 0
    errors: list[str] = field(default_factory=list)
    # Run (as tasks) after each reconnect: what a server restart may have lost, set up again.
    on_reconnect: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def inbox_prefix_for(url: str) -> str:
    """`_INBOX.<user>` when the URL names a NATS user (its permissions allow only that prefix).
    A URL that does not parse gets the plain prefix: connecting to it fails, and says why."""
    try:
        user = urlsplit(url.split(",")[0].strip()).username
    except ValueError:
        user = None
    return subjects.inbox_prefix(user)


def nats_url(explicit: str | None = None) -> str:
    """`explicit` (--nats, else $NATS_URL as the entry point read it), else the default."""
    return explicit or DEFAULT_URL


def server_address(nc: Client) -> str | None:
    """host:port of the server `nc` is on, for logs: the URL's userinfo holds a password."""
    url = nc.connected_url
    return f"{url.hostname}:{url.port}" if url is not None else None


async def retire_follower(task: asyncio.Task[None], watcher: Any) -> None:
    """Stop a KV follower that a fresh watcher replaced: its task first, then its watcher."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    if watcher is not None:
        with contextlib.suppress(Exception):
            await watcher.stop()


async def close(nc: Client) -> None:
    """Drain on shutdown, or just close when the server is gone: nats-py refuses to drain while
    it is reconnecting, and a service stopping during a bus outage must still stop cleanly."""
    try:
        await nc.drain()
    except (ConnectionReconnectingError, ConnectionClosedError):
        # nats-py's close can itself raise while its transport is half gone; the process is
        # leaving, and nothing is left to flush to a server that is not there.
        with contextlib.suppress(Exception):
            await nc.close()


async def connect_once(url: str, timeout_s: float) -> Client:
    """One try at each server `url` names, then nats-py's error: for commands and start-up reads
    that must answer at once when the bus is not there. (nats-py reads max_reconnect_attempts=0 as
    "forever", which hung `aiub config` and a gateway's start; without an error callback it logs a
    traceback per failed try, where the caller says what failed in one line.)"""
    async def quiet(_: Exception) -> None:
        return None

    return await nats.connect(servers=servers(url), inbox_prefix=inbox_prefix_for(url), connect_timeout=timeout_s,
                              allow_reconnect=False, max_reconnect_attempts=1, error_cb=quiet)


async def connect(name: str, url: str | None = None, health: BusHealth | None = None) -> tuple[Client, BusHealth]:
    state = health or BusHealth()

    async def on_error(error: Exception) -> None:
        if isinstance(error, SlowConsumerError):
            state.slow_consumer_errors += 1
            log.warning("nats_slow_consumer", subject=error.subject)
            return
        state.errors = [*state.errors[-9:], repr(error)]
        log.warning("nats_error", error=repr(error))

    async def on_disconnect() -> None:
        if state.connected:
            state.disconnects += 1
            log.warning("nats_disconnected")
        state.connected = False

    async def on_reconnect() -> None:
        state.connected = True
        state.reconnects += 1
        log.info("nats_reconnected")
        for hook in state.on_reconnect:
            task = asyncio.create_task(_run_hook(hook))
            _hook_tasks.add(task)
            task.add_done_callback(_hook_tasks.discard)

    async def on_closed() -> None:
        state.connected = False

    servers = nats_url(url)
    nc = await _connect_retrying(
        servers,
        name=name,
        inbox_prefix=inbox_prefix_for(servers),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        # A server whose host vanished (power, a cut link) sends no FIN: unanswered pings are how
        # the client learns it, within about 6 s instead of nats-py's default 4 minutes, and moves
        # to the next URL of its list (docs/multi-host.md).
        ping_interval=2,
        max_outstanding_pings=2,
        # The list is in order of preference (`aiub hub` puts the host's own node first).
        dont_randomize=True,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        closed_cb=on_closed,
        pending_size=64 * 1024 * 1024,
    )
    state.connected = True
    return nc, state


_hook_tasks: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references


async def _run_hook(hook: Callable[[], Awaitable[None]]) -> None:
    try:
        await hook()
    except Exception as e:  # a hook's failure must not reach nats-py's callback machinery
        log.warning("nats_reconnect_hook_failed", error=repr(e))


async def _connect_retrying(url: str, initial_deadline_s: float = 30.0, **options: object) -> Client:
    """nats-py fails at once when the server is not up yet; services may start first (compose)."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + initial_deadline_s
    while True:
        try:
            return await nats.connect(servers=servers(url), **options)
        except (OSError, NoServersError, TimeoutError) as e:
            if loop.time() >= give_up_at:
                raise
            log.warning("nats_connect_retry", url=url, error=repr(e))
            await asyncio.sleep(0.5)

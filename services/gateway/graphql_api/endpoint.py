"""`/graphql` on the gateway: Strawberry's FastAPI router, behind the admin API's auth.

Who may call is decided before the query is read (admin.require_master, docs/admin-api.md):
- over HTTP (POST only; no GET queries, no GraphiQL page), by the Authorization header: the master
  key is served, a virtual key is a 403, no key or a wrong key a 401, and with auth off every call
  is a 401: the answers are the admin API's, OpenAI's error JSON;
- over WebSocket (graphql-transport-ws only), by `connection_init`: its payload's `authorization`
  (`{"authorization": "Bearer <master key>"}`, what a browser can send), else the upgrade
  request's header. Anything but the master key closes the socket with 4403 before
  `connection_ack`, and the protocol refuses every operation before the ack.

`add_routes` also joins the app's lifespan: once the gateway is connected it starts following
provider states and request records (live.py), and stops before the bus closes. Strawberry itself
(router.py) is imported on the first call, in a thread: a second and 11 MB that a gateway nobody
queries by GraphQL never spends, and that delays no other request when it is spent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from services.gateway.graphql_api import PATH
from services.gateway.graphql_api.live import Live
from services.gateway.state import GatewayState

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _OnFirstCall:
    """An ASGI app that builds Strawberry's router when `/graphql` is first called, then hands every
    call to it."""

    def __init__(self, state: GatewayState, live: Live) -> None:
        self._state = state
        self._live = live
        self._router: ASGIApp | None = None
        self._building = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._router is None:
            async with self._building:
                if self._router is None:
                    self._router = await asyncio.to_thread(self._build)
        await self._router(scope, receive, send)

    def _build(self) -> ASGIApp:
        from services.gateway.graphql_api.router import Router  # the slow import this module defers

        return Router(self._state, self._live)


def add_routes(app: FastAPI, state: GatewayState) -> None:
    live = Live()
    graphql = _OnFirstCall(state, live)
    app.router.routes.append(Route(PATH, graphql, include_in_schema=False))
    app.router.routes.append(WebSocketRoute(PATH, graphql))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with inner(app_) as value:
            if state.nc is not None:
                await live.start(state.nc)
                # nats-py recreates a KV watcher only 10-20 s after a server restart: watch again
                # at once, as the routers do, so no transition is missed.
                state.bus_health.on_reconnect.append(live.health.rewatch)
            try:
                yield value
            finally:
                await live.stop()

    app.router.lifespan_context = lifespan

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
provider states and request records (live.py), and stops before the bus closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from services.gateway.admin import require_master
from services.gateway.graphql_api import schema
from services.gateway.graphql_api.live import Live
from services.gateway.state import GatewayState
from shared.errors import AiubError

PATH = "/graphql"
WHAT = "the GraphQL interface"
MAX_SUBSCRIPTIONS = 10  # per WebSocket connection


class _Router(GraphQLRouter[dict[str, Any], None]):
    def __init__(self, state: GatewayState, live: Live) -> None:
        async def context(connection: HTTPConnection) -> dict[str, Any]:
            if connection.scope["type"] != "websocket":
                await require_master(state, connection.headers.get("authorization"), WHAT)
            return {"state": state, "live": live}

        self.gateway = state
        super().__init__(schema.build(), path=PATH, graphql_ide=None, allow_queries_via_get=False,
                         context_getter=context, subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
                         connection_init_wait_timeout=timedelta(seconds=10),
                         max_subscriptions_per_connection=MAX_SUBSCRIPTIONS, include_in_schema=False)

    async def on_ws_connect(self, context: dict[str, Any]) -> UnsetType | dict[str, object] | None:
        params = context.get("connection_params")
        authorization = params.get("authorization") if isinstance(params, dict) else None
        if not isinstance(authorization, str):
            authorization = context["request"].headers.get("authorization")
        try:
            await require_master(self.gateway, authorization, WHAT)
        except AiubError:
            raise ConnectionRejectionError from None
        return await super().on_ws_connect(context)


def add_routes(app: FastAPI, state: GatewayState) -> None:
    live = Live()
    app.include_router(_Router(state, live))
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

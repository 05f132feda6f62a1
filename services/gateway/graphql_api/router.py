"""Strawberry's FastAPI router for `/graphql`, with the admin API's auth (endpoint.py says who may
call). Its own module because Strawberry and graphql-core take about a second and 11 MB to import:
endpoint.py loads this on the first call to `/graphql`, so a gateway nobody queries never pays."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from services.gateway.admin import require_master
from services.gateway.graphql_api import PATH, schema
from services.gateway.graphql_api.live import Live
from services.gateway.state import GatewayState
from shared.errors import AiubError

WHAT = "the GraphQL interface"
MAX_SUBSCRIPTIONS = 10  # per WebSocket connection


class Router(GraphQLRouter[dict[str, Any], None]):
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

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry reads fields off whatever the JSON is: `null`, a string or a number was an
        # AttributeError and a 500. A list stays Strawberry's to refuse (batching is off).
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "the request body must be a JSON object: {\"query\": \"...\"}")
        return parsed

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

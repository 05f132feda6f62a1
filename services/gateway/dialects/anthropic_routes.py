"""The Anthropic front door's routes: `POST /v1/messages` and `POST /v1/messages/count_tokens`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.gateway import dialects
from services.gateway.body import read_body
from services.gateway.dialects.anthropic import MESSAGES
from services.gateway.dialects.anthropic_count import count_tokens
from services.gateway.inference import infer
from services.gateway.responses import JSON
from services.gateway.state import GatewayState


def add_routes(app: FastAPI, state: GatewayState) -> None:
    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        return await infer(state, request, dialect=MESSAGES)

    @app.post("/v1/messages/count_tokens")
    async def messages_count_tokens(request: Request) -> Response:
        dialects.use(request, MESSAGES)
        await state.policies.auth.authenticate(MESSAGES.authorization(request.headers))
        settings = state.config.runtime.gateway
        raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
        return Response(count_tokens(raw), media_type=JSON)

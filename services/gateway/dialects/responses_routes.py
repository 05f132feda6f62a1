"""The Responses front door's routes: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`.

A create runs in this order: authenticate, read the body, look up `previous_response_id` (so
an unknown or another key's id is a 404 before anything is generated), then the chat path
(`infer`, handed the principal and the body as `Received`: the key is read from its store once;
infer checks it for the model and the limits, as for any request). A finished answer is stored
before its body is returned, or (a stream) before its last event is sent, so a next turn that
names it finds it on any replica. Errors are OpenAI's JSON, as on the chat path: the Responses
API shares them, so these routes need no `dialects.use` of their own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from services.gateway.body import read_body
from services.gateway.dialects import responses_store as store
from services.gateway.dialects.responses import ResponsesDoor
from services.gateway.dialects.responses_kv import ResponseKV
from services.gateway.dialects.responses_request import previous_id
from services.gateway.inference import Received, infer
from services.gateway.responses import JSON
from services.gateway.state import GatewayState
from shared import logs
from shared.errors import AiubError

log = logs.get("gateway.responses")


async def _keep(kv: ResponseKV, tenant: str, door: ResponsesDoor, notes: Any) -> None:
    value = store.entry(tenant, notes, door.final)
    if value is None or door.final is None:
        return
    try:
        await kv.put(store.key(str(door.final["id"])), value)
    except AiubError as e:
        log.warning("response_not_stored", response_id=door.final["id"], error=e.message)


async def _storing(kv: ResponseKV, body: AsyncIterable[Any], tenant: str, door: ResponsesDoor,
                   notes: Any) -> AsyncIterator[Any]:
    """A stream's events as they come; the finished response is stored before its last events go
    (the translator's `end` made them, and set `final`, just before they reach here)."""
    stored = False
    parts = aiter(body)
    async with contextlib.aclosing(parts):  # type: ignore[type-var]
        async for part in parts:
            if not stored and door.final is not None:
                stored = True
                await _keep(kv, tenant, door, notes)
            yield part


def add_routes(app: FastAPI, state: GatewayState) -> None:
    kv = ResponseKV(lambda: state.nc, state.config.runtime.gateway.responses_ttl_s)

    @app.post("/v1/responses")
    @app.post("/responses", include_in_schema=False)
    async def create(request: Request) -> Response:
        principal = await state.policies.auth.authenticate(request.headers.get("authorization"))
        settings = state.config.runtime.gateway
        raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
        earlier: list[dict[str, Any]] = []
        if (previous := previous_id(raw)) is not None:
            key = store.key(previous, "previous_response_id")
            found = store.visible(await kv.get(key), principal.tenant, previous, "previous_response_id")
            earlier = store.earlier_items(found)
        door = ResponsesDoor(state.config, store.new_id(), int(time.time()), earlier)
        response = await infer(state, request, dialect=door, received=Received(principal, raw))
        notes = door.notes
        if notes is None or response.status_code != 200:
            return response
        if isinstance(response, StreamingResponse):
            response.body_iterator = _storing(kv, response.body_iterator, principal.tenant, door, notes)
        else:
            await _keep(kv, principal.tenant, door, notes)
        return response

    @app.get("/v1/responses/{response_id}")
    @app.get("/responses/{response_id}", include_in_schema=False)
    async def retrieve(request: Request, response_id: str) -> Response:
        principal = await state.policies.auth.authenticate(request.headers.get("authorization"))
        found = store.visible(await kv.get(store.key(response_id)), principal.tenant, response_id)
        return Response(store.body(found), media_type=JSON)

    @app.delete("/v1/responses/{response_id}")
    @app.delete("/responses/{response_id}", include_in_schema=False)
    async def delete(request: Request, response_id: str) -> Response:
        principal = await state.policies.auth.authenticate(request.headers.get("authorization"))
        key = store.key(response_id)
        store.visible(await kv.get(key), principal.tenant, response_id)
        await kv.delete(key)
        return Response(store.deleted(response_id), media_type=JSON)

"""The Ollama front door's routes, so Ollama clients can point at aiub (OLLAMA_HOST=http://host:4000).

Inference: `POST /api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`, through the one
chat path (infer with an OllamaDialect). Models: `GET /api/tags`, `POST /api/show`, `GET /api/ps`,
from the configuration (ollama_models.py), authenticated as inference is; `GET /api/version` and
`GET|HEAD /` ("Ollama is running", what Ollama's CLI probes) are open, as Ollama's are. Any other
`/api/...` path (pull, push, create, copy, delete…) is a 404 in Ollama's shape saying why.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from services.gateway import dialects
from services.gateway.body import read_body
from services.gateway.dialects import ollama_models
from services.gateway.dialects.ollama import Answered, OllamaDialect, iso
from services.gateway.dialects.ollama_request import Endpoint, model_name
from services.gateway.inference import infer
from services.gateway.responses import JSON
from services.gateway.state import GatewayState
from services.gateway.validation import decode_object
from shared.errors import ClientError

ENDPOINTS: tuple[Endpoint, ...] = ("chat", "generate", "embed", "embeddings")
ROOT_TEXT = "Ollama is running"


def add_routes(app: FastAPI, state: GatewayState) -> None:
    doors = {endpoint: OllamaDialect(endpoint, state.config) for endpoint in ENDPOINTS}
    chat = doors["chat"]
    loaded_at = iso(time.time())  # the models' `modified_at`: when this gateway read its config
    tags = ollama_models.tags_body(state.config, loaded_at)

    async def answer(request: Request, door: OllamaDialect) -> Response:
        try:
            return await infer(state, request, dialect=door)
        except Answered as answered:  # a load or unload: nothing to generate
            return Response(answered.body, media_type=JSON)

    @app.post("/api/chat")
    async def api_chat(request: Request) -> Response:
        return await answer(request, doors["chat"])

    @app.post("/api/generate")
    async def api_generate(request: Request) -> Response:
        return await answer(request, doors["generate"])

    @app.post("/api/embed")
    async def api_embed(request: Request) -> Response:
        return await answer(request, doors["embed"])

    @app.post("/api/embeddings")
    async def api_embeddings(request: Request) -> Response:
        return await answer(request, doors["embeddings"])

    async def authenticated(request: Request) -> None:
        dialects.use(request, chat)
        await state.policies.auth.authenticate(chat.authorization(request.headers))

    @app.get("/api/tags")
    async def api_tags(request: Request) -> Response:
        await authenticated(request)
        return Response(tags, media_type=JSON)

    @app.post("/api/show")
    async def api_show(request: Request) -> Response:
        await authenticated(request)
        settings = state.config.runtime.gateway
        raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
        asked, _ = model_name(decode_object(raw))
        return Response(ollama_models.show_body(state.config, asked, loaded_at), media_type=JSON)

    @app.get("/api/ps")
    async def api_ps(request: Request) -> Response:
        await authenticated(request)
        return Response(ollama_models.ps_body(), media_type=JSON)

    @app.get("/api/version")
    async def api_version() -> Response:
        return Response(ollama_models.version_body(), media_type=JSON)

    @app.api_route("/", methods=["GET", "HEAD"])
    async def root() -> Response:
        return PlainTextResponse(ROOT_TEXT)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
    async def api_other(request: Request, rest: str) -> Response:
        dialects.use(request, chat)
        raise ClientError(404, f"aiub does not serve /api/{rest}: it answers Ollama's chat, generate, embed, "
                               "embeddings, tags, show, ps and version; its models are configured, not pulled")

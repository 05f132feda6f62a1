"""The Ollama front door's routes, so Ollama clients can point at aiub (OLLAMA_HOST=http://host:4000).

Inference: `POST /api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`, through the one
chat path (infer with an OllamaDialect). Models: `GET /api/tags`, `POST /api/show`, `GET /api/ps`,
from the configuration (ollama_models.py), authenticated as inference is; `GET /api/version` and
`GET|HEAD /` ("Ollama is running", what Ollama's CLI probes) are open, as Ollama's are. Any other
`/api/...` path (pull, push, create, copy, delete…) is a 404 in Ollama's shape saying why.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from services.gateway import dialects
from services.gateway.body import read_body
from services.gateway.dialects import ollama_models
from services.gateway.dialects.ollama import Answered, OllamaDialect, iso
from services.gateway.dialects.ollama_request import Endpoint, model_name
from services.gateway.inference import infer
from services.gateway.responses import JSON, READ_METHODS
from services.gateway.state import GatewayState
from services.gateway.validation import decode_object
from shared.config import Config
from shared.errors import ClientError

ENDPOINTS: tuple[Endpoint, ...] = ("chat", "generate", "embed", "embeddings")
POST_ONLY = frozenset((*ENDPOINTS, "show"))
ROOT_TEXT = "Ollama is running"


class _Doors:
    """The doors and the model list for the config the gateway runs now: a pushed revision
    (live_config.py) renames models and changes their capabilities, so both follow it."""

    doors: dict[Endpoint, OllamaDialect]
    loaded_at: str
    tags: bytes

    def __init__(self, state: GatewayState) -> None:
        self._state = state
        self._built_for: Config | None = None

    def current(self) -> tuple[dict[Endpoint, OllamaDialect], str]:
        """The doors, and `modified_at` for the models: when this gateway read that config."""
        config = self._state.config
        if config is not self._built_for:
            self.doors = {endpoint: OllamaDialect(endpoint, config) for endpoint in ENDPOINTS}
            self.loaded_at = iso(time.time())
            self.tags = ollama_models.tags_body(config, self.loaded_at)
            self._built_for = config
        return self.doors, self.loaded_at


def add_routes(app: FastAPI, state: GatewayState) -> None:
    built = _Doors(state)

    def inference_route(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            try:
                return await infer(state, request, dialect=built.current()[0][endpoint])
            except Answered as answered:  # a load or unload: nothing to generate
                return Response(answered.body, media_type=JSON)

        route.__name__ = f"api_{endpoint}"
        return route

    for endpoint in ENDPOINTS:
        app.add_api_route(f"/api/{endpoint}", inference_route(endpoint), methods=["POST"])

    async def authenticated(request: Request) -> str:
        doors, loaded_at = built.current()
        dialects.use(request, doors["chat"])
        await state.policies.auth.authenticate(doors["chat"].authorization(request.headers))
        return loaded_at

    @app.api_route("/api/tags", methods=READ_METHODS)
    async def api_tags(request: Request) -> Response:
        await authenticated(request)
        return Response(built.tags, media_type=JSON)

    @app.post("/api/show")
    async def api_show(request: Request) -> Response:
        loaded_at = await authenticated(request)
        settings = state.config.runtime.gateway
        raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
        asked, _ = model_name(decode_object(raw))
        return Response(ollama_models.show_body(state.config, asked, loaded_at), media_type=JSON)

    @app.api_route("/api/ps", methods=READ_METHODS)
    async def api_ps(request: Request) -> Response:
        await authenticated(request)
        return Response(ollama_models.ps_body(), media_type=JSON)

    @app.api_route("/api/version", methods=READ_METHODS)
    async def api_version() -> Response:
        return Response(ollama_models.version_body(), media_type=JSON)

    @app.api_route("/", methods=["GET", "HEAD"])
    async def root() -> Response:
        return PlainTextResponse(ROOT_TEXT)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "HEAD"])
    async def api_other(request: Request, rest: str) -> Response:
        dialects.use(request, built.current()[0]["chat"])
        if rest in POST_ONLY:  # served, by another method: Ollama answers 405 here too
            raise ClientError(405, f"/api/{rest} takes POST, not {request.method}", code="405",
                              headers={"allow": "POST"})
        raise ClientError(404, f"aiub does not serve /api/{rest}: it answers Ollama's chat, generate, embed, "
                               "embeddings, tags, show, ps and version; its models are configured, not pulled")

"""Ollama's native API, local (`type: ollama`) or on ollama.com (`type: ollama_cloud`).

Chat goes to `/api/chat`, completions to `/api/generate`, embeddings to `/api/embed`; the
model list is `/api/tags`. Ollama cloud is the same API at https://ollama.com with the key as
a bearer token. Responses name the model the client asked for, never the backend's name.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.workers.adapters import ollama_request, ollama_response
from services.workers.adapters.base import BackendRequest, Usage
from services.workers.adapters.openai_request import backend_error_message
from services.workers.adapters.openai_shapes import ChunkWriter, StreamKind, response_id, wants_usage
from shared.config import ProviderSpec
from shared.messages import RequestKind, WorkOrder

PATHS: dict[RequestKind, str] = {"chat": "/api/chat", "completion": "/api/generate", "embedding": "/api/embed"}


def api_root(base_url: str) -> str:
    """`http://host:11434`, `.../api` and `.../v1` all mean the same server."""
    for suffix in ("/api", "/v1"):
        if base_url.endswith(suffix):
            return base_url[: -len(suffix)]
    return base_url


def bearer(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


class OllamaAdapter:
    kinds: frozenset[RequestKind] = frozenset(("chat", "completion", "embedding"))

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def build(self, order: WorkOrder, provider: ProviderSpec, api_key: str | None) -> BackendRequest:
        request = order.request
        if request.kind == "chat":
            body = ollama_request.chat_body(request.body, order.backend_model, request.stream)
        elif request.kind == "completion":
            body = ollama_request.generate_body(request.body, order.backend_model, request.stream)
        else:
            body = ollama_request.embed_body(request.body, order.backend_model)
        return BackendRequest("POST", api_root(provider.base_url) + PATHS[request.kind], body,
                              request.stream and request.kind != "embedding", bearer(api_key))

    def _writer(self, order: WorkOrder) -> ChunkWriter:
        kind: StreamKind = "chat" if order.request.kind == "chat" else "completion"
        return ChunkWriter(kind, response_id(kind, order.request.attempt), int(self._clock()), order.request.model)

    def stream(self, order: WorkOrder) -> ollama_response.OllamaStream:
        return ollama_response.OllamaStream(self._writer(order), wants_usage(order.request.body),
                                            order.request.attempt)

    def result(self, order: WorkOrder, body: bytes) -> tuple[bytes, Usage]:
        request = order.request
        created = int(self._clock())
        if request.kind == "chat":
            return ollama_response.chat_result(body, response_id("chat", request.attempt), created, request.model)
        if request.kind == "completion":
            return ollama_response.generate_result(body, response_id("completion", request.attempt), created,
                                                   request.model)
        return ollama_response.embed_result(body, request.model, request.body.get("encoding_format") == "base64")

    def error_message(self, body: bytes) -> str | None:
        return backend_error_message(body)

    def models_request(self, provider: ProviderSpec, api_key: str | None) -> BackendRequest:
        return BackendRequest("GET", api_root(provider.base_url) + "/api/tags", None, False, bearer(api_key))

    def parse_models(self, body: bytes) -> list[str]:
        return ollama_response.model_names(body)

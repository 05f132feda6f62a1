"""Anthropic's Messages API (`type: anthropic`): chat only.

`base_url` may be `https://api.anthropic.com` or `.../v1`. The key travels in `x-api-key`
with a pinned `anthropic-version`. Completions and embeddings have no Anthropic endpoint:
the worker answers them with a 400 before any call is made.

A request that came through the gateway's Anthropic front door carries the client's own body
(`native_dialect == "anthropic"`): it is sent as it came, not translated to OpenAI and back, so
fields with no OpenAI word (`thinking`, `cache_control`, documents) reach the backend. Only the
model (the provider's name for it), `stream` and `max_tokens` (the gateway's cap, applied to
the OpenAI body) are taken from the request. The answer is still read into OpenAI frames: the
gateway's cache, usage and records speak one shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.workers.adapters import anthropic_request, anthropic_response
from services.workers.adapters.base import BackendRequest, Usage
from services.workers.adapters.openai_compatible import api_root, model_ids
from services.workers.adapters.openai_request import backend_error_message
from services.workers.adapters.openai_shapes import ChunkWriter, response_id, wants_usage
from shared.config import ProviderSpec
from shared.messages import RequestKind, WorkOrder


class AnthropicAdapter:
    kinds: frozenset[RequestKind] = frozenset(("chat",))

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def build(self, order: WorkOrder, provider: ProviderSpec, api_key: str | None) -> BackendRequest:
        request = order.request
        if request.native_dialect == "anthropic" and request.native_body is not None:
            body = {**request.native_body, "model": order.backend_model, "stream": request.stream,
                    "max_tokens": request.body.get("max_tokens", request.native_body.get("max_tokens"))}
        else:
            body = anthropic_request.messages_body(request.body, order.backend_model, request.stream)
        return BackendRequest("POST", api_root(provider.base_url) + "/messages", body, request.stream,
                              anthropic_request.headers(api_key))

    def stream(self, order: WorkOrder) -> anthropic_response.AnthropicStream:
        request = order.request
        writer = ChunkWriter("chat", response_id("chat", request.attempt), int(self._clock()), request.model)
        return anthropic_response.AnthropicStream(writer, wants_usage(request.body))

    def result(self, order: WorkOrder, body: bytes) -> tuple[bytes, Usage]:
        request = order.request
        return anthropic_response.messages_result(body, response_id("chat", request.attempt), int(self._clock()),
                                                  request.model)

    def error_message(self, body: bytes) -> str | None:
        return backend_error_message(body)

    def models_request(self, provider: ProviderSpec, api_key: str | None) -> BackendRequest:
        return BackendRequest("GET", api_root(provider.base_url) + "/models?limit=1000", None, False,
                              anthropic_request.headers(api_key))

    def parse_models(self, body: bytes) -> list[str]:
        return model_ids(body)

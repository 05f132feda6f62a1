"""OpenAI's wire format, spoken by vLLM, llama.cpp server, Ollama's /v1 and OpenAI itself.

The body passes through untouched but for `model`, which becomes the provider's backend name
(`qwen-coder` → `Qwen/Qwen2.5-Coder-7B-Instruct-AWQ`); vLLM's guided decoding and llama.cpp's
sampling fields reach the backend as the client sent them. On the way back, chunks are
forwarded as the backend's own bytes; only when the backend name differs from the public one
is `model` rewritten, so a client sees the name it asked for.
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.workers.adapters.base import BackendRequest, StreamBroken, Usage
from shared.config import ProviderSpec
from shared.messages import RequestKind, WorkOrder
from shared.sse import DONE, SSEParser

PATHS: dict[RequestKind, str] = {
    "chat": "/chat/completions",
    "completion": "/completions",
    "embedding": "/embeddings",
}

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def api_root(base_url: str) -> str:
    """`http://host:8001` and `http://host:8001/v1` both mean the /v1 API."""
    return base_url if base_url.endswith("/v1") else base_url + "/v1"


def _usage(obj: dict[str, Any], usage: Usage) -> None:
    found = obj.get("usage")
    if isinstance(found, dict):
        usage.prompt_tokens = int(found.get("prompt_tokens") or 0)
        usage.completion_tokens = int(found.get("completion_tokens") or 0)


class OpenAIStream:
    def __init__(self, public_model: str, backend_model: str) -> None:
        self._parser = SSEParser()
        self._rename = public_model if public_model != backend_model else None
        self.usage = Usage()
        self.content_events = 0
        self._done = False

    @property
    def finished(self) -> bool:
        return self._done

    def feed(self, raw: bytes) -> list[bytes]:
        out: list[bytes] = []
        for payload in self._parser.feed(raw):
            if payload.strip() == DONE:
                self._done = True
                continue
            if self._done:
                continue
            needs_decode = self._rename is not None or b'"usage"' in payload or b'"error"' in payload
            if needs_decode:
                try:
                    obj = _decode(payload)
                except msgspec.DecodeError as e:
                    raise StreamBroken(f"unreadable chunk: {e}") from None
                if not isinstance(obj, dict):
                    raise StreamBroken("chunk is not a JSON object")
                if "error" in obj and "choices" not in obj:
                    error = obj["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise StreamBroken(f"backend reported an error mid-stream: {message}")
                _usage(obj, self.usage)
                if self._rename is not None and "model" in obj:
                    obj["model"] = self._rename
                    payload = _encode(obj)
            self.content_events += 1
            out.append(payload)
        return out


class OpenAICompatibleAdapter:
    kinds: frozenset[RequestKind] = frozenset(("chat", "completion", "embedding"))

    def build(self, order: WorkOrder, provider: ProviderSpec, api_key: str | None) -> BackendRequest:
        body = dict(order.request.body)
        body["model"] = order.backend_model
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        return BackendRequest("POST", api_root(provider.base_url) + PATHS[order.request.kind], body,
                              order.request.stream, headers)

    def stream(self, order: WorkOrder) -> OpenAIStream:
        return OpenAIStream(order.request.model, order.backend_model)

    def result(self, order: WorkOrder, body: bytes) -> tuple[bytes, Usage]:
        usage = Usage()
        if order.backend_model == order.request.model and b'"usage"' not in body:
            return body, usage
        try:
            obj = _decode(body)
        except msgspec.DecodeError as e:
            raise StreamBroken(f"unreadable response: {e}") from None
        if not isinstance(obj, dict):
            raise StreamBroken("response is not a JSON object")
        _usage(obj, usage)
        if order.backend_model != order.request.model and "model" in obj:
            obj["model"] = order.request.model
            return _encode(obj), usage
        return body, usage

    def error_message(self, body: bytes) -> str | None:
        try:
            obj = _decode(body)
        except msgspec.DecodeError:
            return body[:200].decode("utf-8", "replace") or None
        if isinstance(obj, dict):
            error = obj.get("error", obj.get("detail", obj.get("message")))
            if isinstance(error, dict):
                return str(error.get("message") or error)
            if error is not None:
                return str(error)
        return None

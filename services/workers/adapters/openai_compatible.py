"""OpenAI's wire format, spoken by vLLM, llama.cpp server and OpenAI itself.

The body passes through untouched but for `model`, which becomes the provider's backend name
(`qwen-coder` → `Qwen/Qwen2.5-Coder-7B-Instruct-AWQ`); vLLM's guided decoding and llama.cpp's
sampling fields reach the backend as the client sent them. On the way back, chunks are
forwarded as the backend's own bytes, with three repairs where a backend falls short of
OpenAI's stream, each costing a decode only where it is needed:
- `model` is rewritten when the backend name differs from the public one, so a client sees
  the name it asked for;
- a chat stream's first chunk gets `role: assistant` if the backend left it out;
- with `count_usage` (llama.cpp server, which sends no usage chunk for
  `stream_options.include_usage`), content chunks are counted and, if the stream ends without
  usage, a usage chunk is made up before the end: `completion_tokens` is the number of
  content chunks (that server sends one token per chunk); `prompt_tokens` is unknown, so 0.
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.workers.adapters.base import BackendRequest, StreamBroken, StreamProgress, Usage
from services.workers.adapters.openai_request import backend_error_message, decode_object
from services.workers.adapters.openai_shapes import usage_object, wants_usage
from shared.config import ProviderSpec
from shared.messages import RequestKind, WorkOrder
from shared.sse import DONE, SSEParser

PATHS: dict[RequestKind, str] = {
    "chat": "/chat/completions",
    "completion": "/completions",
    "embedding": "/embeddings",
}

_encode = msgspec.json.encode


def api_root(base_url: str) -> str:
    """`http://host:8001` and `http://host:8001/v1` both mean the /v1 API."""
    return base_url if base_url.endswith("/v1") else base_url + "/v1"


def _usage(obj: dict[str, Any], usage: Usage) -> bool:
    found = obj.get("usage")
    if isinstance(found, dict):
        usage.prompt_tokens = int(found.get("prompt_tokens") or 0)
        usage.completion_tokens = int(found.get("completion_tokens") or 0)
        return True
    return False


def _has_content(obj: dict[str, Any]) -> bool:
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict):
            delta = choice.get("delta")
            if (isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls"))) or choice.get("text"):
                return True
    return False


class OpenAIStream(StreamProgress):
    def __init__(self, public_model: str, backend_model: str, chat: bool = True, include_usage: bool = False,
                 count_usage: bool = False) -> None:
        super().__init__()
        self._parser = SSEParser()
        self._rename = public_model if public_model != backend_model else None
        self._needs_role = chat
        self._count = count_usage and include_usage
        self._saw_usage = False
        self._last: dict[str, Any] | None = None

    def feed(self, raw: bytes) -> list[bytes]:
        out: list[bytes] = []
        for payload in self._parser.feed(raw):
            if payload.strip() == DONE:
                if not self._done and self._count and not self._saw_usage and self._last is not None:
                    out.append(self._made_up_usage(self._last))
                self._done = True
                continue
            if self._done:
                continue
            needs_decode = (self._rename is not None or self._needs_role or self._count or b'"usage"' in payload
                            or b'"error"' in payload)
            if needs_decode:
                payload = self._repair(payload)
            self.content_events += 1
            out.append(payload)
        return out

    def _repair(self, payload: bytes) -> bytes:
        obj = decode_object(payload, "chunk")
        if "error" in obj and "choices" not in obj:
            error = obj["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise StreamBroken(f"backend reported an error mid-stream: {message}")
        changed = False
        if _usage(obj, self.usage):
            self._saw_usage = True
        if self._count:
            self._last = obj
            if _has_content(obj):
                self.usage.completion_tokens += 0 if self._saw_usage else 1
        if self._needs_role and obj.get("choices"):
            self._needs_role = False
            delta = obj["choices"][0].get("delta") if isinstance(obj["choices"][0], dict) else None
            if isinstance(delta, dict) and "role" not in delta:
                delta["role"] = "assistant"
                changed = True
        if self._rename is not None and "model" in obj:
            obj["model"] = self._rename
            changed = True
        return _encode(obj) if changed else payload

    def _made_up_usage(self, last: dict[str, Any]) -> bytes:
        head = {key: last[key] for key in ("id", "object", "created", "model") if key in last}
        if self._rename is not None:
            head["model"] = self._rename
        return _encode({**head, "choices": [], "usage": usage_object(self.usage)})


class OpenAICompatibleAdapter:
    kinds: frozenset[RequestKind] = frozenset(("chat", "completion", "embedding"))

    def __init__(self, count_usage: bool = False) -> None:
        self._count_usage = count_usage

    def build(self, order: WorkOrder, provider: ProviderSpec, api_key: str | None) -> BackendRequest:
        body = dict(order.request.body)
        body["model"] = order.backend_model
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        return BackendRequest("POST", api_root(provider.base_url) + PATHS[order.request.kind], body,
                              order.request.stream, headers)

    def stream(self, order: WorkOrder) -> OpenAIStream:
        return OpenAIStream(order.request.model, order.backend_model, order.request.kind == "chat",
                            wants_usage(order.request.body), self._count_usage)

    def result(self, order: WorkOrder, body: bytes) -> tuple[bytes, Usage]:
        usage = Usage()
        if order.backend_model == order.request.model and b'"usage"' not in body:
            return body, usage
        obj = decode_object(body, "response")
        _usage(obj, usage)
        if order.backend_model != order.request.model and "model" in obj:
            obj["model"] = order.request.model
            return _encode(obj), usage
        return body, usage

    def error_message(self, body: bytes) -> str | None:
        return backend_error_message(body)

    def models_request(self, provider: ProviderSpec, api_key: str | None) -> BackendRequest:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        return BackendRequest("GET", api_root(provider.base_url) + "/models", None, False, headers)

    def parse_models(self, body: bytes) -> list[str]:
        return model_ids(body)


def model_ids(body: bytes) -> list[str]:
    """The ids of an OpenAI-shaped model list (`data[].id`), which Anthropic's `/v1/models` shares."""
    data = decode_object(body, "model list").get("data")
    if not isinstance(data, list):
        raise StreamBroken("the model list has no 'data' array")
    return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
